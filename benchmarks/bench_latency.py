"""Small-batch inference latency against PyTorch, the two alternating in one process:
blocks of `--calls` calls of fastnn `model(x)` and of its torch twin (eval mode,
`torch.inference_mode`), each block's median, `--blocks` of each, so that drift on a
shared VM hits both alike (the report's pytest-benchmark group times one library after
the other).

    python benchmarks/bench_latency.py [--threads 2] [--batch 1] [--blocks 7] [--calls 200]

Prints per model the median of the block medians and torch/fastnn, with the range of the
per-block ratios."""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn  # noqa: E402
from fastnn import models  # noqa: E402

from benchmarks.test_bench_train import ARCH_NAMES  # noqa: E402
from benchmarks.twins import inputs, torch_twin  # noqa: E402


def block_median(f, x, calls):
    """Median seconds of `calls` calls f(x), after a tenth as many unmeasured."""
    for _ in range(calls // 10):
        f(x)
    times = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter()
        f(x)
        times[k] = time.perf_counter() - start
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    import torch
    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, {args.threads} thread(s), ISA {fastnn.get_isa()}, "
          f"{args.blocks} blocks of {args.calls} calls each")
    for name in ARCH_NAMES:
        model = getattr(models, name)(seed=0).eval()
        x = inputs(model, args.batch)[0]
        twin, tx = torch_twin(model).eval(), torch.from_numpy(x)
        ours, theirs = [], []
        with torch.inference_mode():
            for _ in range(args.blocks):
                ours.append(block_median(model, x, args.calls))
                theirs.append(block_median(twin, tx, args.calls))
        ratios = sorted(t / o for o, t in zip(ours, theirs))
        a, b = np.median(ours), np.median(theirs)
        print(f"{name:12s} fastnn {a * 1e6:8.1f} us  PyTorch {b * 1e6:8.1f} us  "
              f"PyTorch / fastnn {b / a:5.2f}x  (blocks {ratios[0]:.2f}-{ratios[-1]:.2f}x)")


if __name__ == "__main__":
    main()
