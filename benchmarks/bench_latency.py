"""Small-batch inference latency, or (--train) the training step, against PyTorch, the
two alternating in one process: blocks of `--calls` calls of fastnn `model(x)` and of its
torch twin (eval mode, `torch.inference_mode`), or of a training step of each (Adam,
cross-entropy, as the benchmark suite's), each block's median, `--blocks` of each, so that
drift on a shared VM hits both alike (conftest.alternate, as the report's training and
inference benchmarks time them), with the spread of the ratios block by block.

    python benchmarks/bench_latency.py [--threads 2] [--batch 1] [--blocks 7] [--calls 200]
    python benchmarks/bench_latency.py --train [--batch 128] [--blocks 7] [--calls 10]

Prints per model the median of the block medians and torch/fastnn, with the range of the
per-block ratios."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn  # noqa: E402
from fastnn import models  # noqa: E402

from benchmarks.conftest import alternate, inference_threads, library_threads  # noqa: E402
from benchmarks.test_bench_train import ARCH_NAMES, fastnn_step, torch_step  # noqa: E402
from benchmarks.twins import inputs, torch_twin  # noqa: E402


def runs(model, x, y, torch, train, threads):
    """fastnn's and the torch twin's (context, warm, run) for conftest.alternate:
    model(x) in eval mode (PyTorch's under torch.inference_mode), or a training step."""
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    if train:
        ours, theirs = fastnn_step(model.train()), torch_step(torch, model.train())
        ours_f, theirs_f = (lambda: ours(x, y)), (lambda: theirs(tx, ty))
    else:
        twin = torch_twin(model.eval()).eval()
        ours_f, theirs_f = (lambda: model(x)), (lambda: twin(tx))
    context = library_threads if train else inference_threads
    return {"fastnn": (lambda: context("fastnn", threads), ours_f, ours_f),
            "torch": (lambda: context("torch", threads), theirs_f, theirs_f)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", action="store_true", help="time training steps")
    parser.add_argument("--batch", type=int, help="default 1, or 128 with --train")
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--calls", type=int, help="default 200, or 10 with --train")
    args = parser.parse_args()
    batch = args.batch or (128 if args.train else 1)
    n_calls = args.calls or (10 if args.train else 200)
    import torch
    print(f"{'training step' if args.train else 'inference'}, batch {batch}, "
          f"{args.threads} thread(s), ISA {fastnn.get_isa()}, {args.blocks} blocks of "
          f"{n_calls} calls each")
    for name in ARCH_NAMES:
        model = getattr(models, name)(seed=0)
        times = alternate(runs(model, *inputs(model, batch), torch, args.train, args.threads),
                          args.blocks, n_calls)
        ours, theirs = (np.median(np.reshape(times[lib], (args.blocks, n_calls)), axis=1)
                        for lib in ("fastnn", "torch"))
        ratios = sorted(t / o for o, t in zip(ours, theirs))
        a, b = np.median(ours), np.median(theirs)
        print(f"{name:12s} fastnn {a * 1e6:8.1f} us  PyTorch {b * 1e6:8.1f} us  "
              f"PyTorch / fastnn {b / a:5.2f}x  (blocks {ratios[0]:.2f}-{ratios[-1]:.2f}x)")


if __name__ == "__main__":
    main()
