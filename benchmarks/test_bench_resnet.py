"""Training speed: fastnn vs PyTorch on models.resnet (the same architecture in both:
a 3x3 stem with BatchNorm, BasicBlocks of 16, 32 and 64 channels, global average
pooling, a Linear head), batch 128, Adam, cross-entropy, 2 threads (or 1 on a 1-core
machine). Both start from the same state_dict and see the same random images.

"training step": one forward + loss + backward + update, the two libraries taking turns
block by block (conftest.alternate), in the group "training step" with the reference MLP
and CNN of test_bench_train.py; samples/s in the benchmark's extra_info."""
import os

import numpy as np
import pytest

from fastnn import models
from fastnn.profiling import training_flops

from .conftest import op_candidates, run_ids, time_op
from .test_bench_train import fastnn_step, torch_twin_step
from .twins import torch_twin

BATCH = 128
THREADS = min(2, os.cpu_count())


def batch():
    rng = np.random.default_rng(0)
    return rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)


def torch_resnet(torch):
    """models.resnet's architecture in torch.nn, with its state_dict loaded."""
    tnn = torch.nn

    class BasicBlock(tnn.Module):  # models.BasicBlock's config() arguments and keys
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(out_channels)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(out_channels)
            self.downsample = None
            if stride != 1 or in_channels != out_channels:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    tnn.BatchNorm2d(out_channels))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    return torch_twin(models.resnet(seed=0), {"BasicBlock": BasicBlock})


def resnet_call(label):
    """call(label) for conftest.op_candidates: one training step of fastnn's or PyTorch's
    ResNet on the batch."""
    xb, yb = batch()
    if label == "torch":
        import torch
        step = torch_twin_step(torch, torch_resnet(torch))
        xb, yb = torch.from_numpy(xb), torch.from_numpy(yb)
    else:
        step = fastnn_step(models.resnet(seed=0))
    return lambda: step(xb, yb)


RUNS = [("fastnn", None), ("torch", None)]


@pytest.mark.benchmark(group="training step")
@pytest.mark.parametrize("threads", [THREADS])
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
def test_train_resnet(benchmark, record, alternating, library, isa, threads):
    """fastnn (the default variant) and PyTorch taking turns (conftest.alternate)."""
    candidates = op_candidates("test_train_resnet", {}, resnet_call, RUNS)
    time_op(benchmark, alternating, "resnet", (library, isa, threads), candidates)
    stats = getattr(benchmark, "stats", None)
    if stats and getattr(stats, "stats", None):
        benchmark.extra_info["samples_per_sec"] = BATCH / stats.stats.median
    record(benchmark, op="train step", shape=f"resnet b{BATCH}", library=library,
           threads=threads, flops=training_flops(models.resnet(seed=0), (BATCH, 1, 28, 28)),
           model="resnet", batch=BATCH, samples=BATCH)
