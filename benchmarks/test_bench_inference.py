"""Small-batch inference latency: batch 1 and 8 through the reference and architecture
models in eval mode, fastnn `model(x)` and `model.predict(x)` vs PyTorch under
`torch.inference_mode()` vs Keras `model(x, training=False)` (in its own process), each
the median of many calls (pytest-benchmark's rounds; Keras: 100 calls after 3 warm-up
calls). GFLOP/s: 2 FLOPs per multiply-add of the forward pass."""
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import models

from .conftest import QUICK, THREADS, library_threads, replay
from .test_bench_train import ARCH_NAMES as NAMES
from .twins import inputs, torch_twin

pytestmark = pytest.mark.benchmark(group="inference")

BATCHES = [1, 8]
KERAS_ROUNDS = 3 if QUICK else 100


def case(name, batch):
    model = getattr(models, name)(seed=0).eval()
    return model, inputs(model, batch)[0]


def forward_flops(model, batch):
    shape, macs = (batch,) + model.input_shape, 0
    for layer in model.layers:
        shape = layer.output_shape(shape)
        macs += layer.macs(shape)
    return 2 * macs


def record_infer(benchmark, record, library, name, batch, threads, **extra):
    record(benchmark, op="infer", shape=f"{name} b{batch}", library=library, threads=threads,
           flops=forward_flops(getattr(models, name)(seed=0), batch), model=name, batch=batch,
           **extra)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("call", ["model(x)", "predict"])
def test_infer_fastnn(benchmark, record, call, name, batch, threads):
    model, x = case(name, batch)
    with library_threads("fastnn", threads):
        benchmark(model if call == "model(x)" else model.predict, x)
    record_infer(benchmark, record, "fastnn" if call == "model(x)" else "fastnn-predict", name,
                 batch, threads, isa=fastnn.get_isa())


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", NAMES)
def test_infer_torch(benchmark, record, torch, name, batch, threads):
    model, x = case(name, batch)
    twin, tx = torch_twin(model).eval(), torch.from_numpy(x)
    with torch.inference_mode(), library_threads("torch", threads):
        benchmark(twin, tx)
    record_infer(benchmark, record, "torch", name, batch, threads)


KERAS_CASES = [{"model": name, "kind": "infer", "batch": batch, "rounds": KERAS_ROUNDS}
               for name in NAMES for batch in BATCHES]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("keras_case", KERAS_CASES,
                         ids=[f"{c['model']}-b{c['batch']}" for c in KERAS_CASES])
def test_infer_keras(benchmark, record, keras_times, keras_case, threads):
    replay(benchmark, keras_times(keras_case, threads))
    record_infer(benchmark, record, "keras", keras_case["model"], keras_case["batch"], threads)


@pytest.mark.parametrize("mode", [[], ["--train", "--batch", "8"]], ids=["inference", "train"])
def test_bench_latency_script_runs(torch, mode):
    """benchmarks/bench_latency.py (alternating fastnn / PyTorch blocks) on tiny blocks,
    inference and training steps: the script never rots."""
    script = os.path.join(os.path.dirname(__file__), "bench_latency.py")
    out = subprocess.run([sys.executable, script, "--blocks", "1", "--calls", "2", *mode],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert all(f"{name} " in out for name in NAMES) and "PyTorch / fastnn" in out
