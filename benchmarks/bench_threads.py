"""Thread scaling of a training loop, with and without a co-tenant: samples/s of the
reference MLP and CNN (batch 128, Adam) on 2 threads against 1, the two alternating in
one process so that drift on a shared VM hits both alike.

    python benchmarks/bench_threads.py [--steps 60] [--rounds 5] [--cotenant | --one-cpu]

--cotenant starts one busy process (`while True: pass`) for the run: another job holding
a core, the case a pool whose caller waits for every worker handles worst. --one-cpu
confines the process to one CPU (as `taskset -c 0` would): 2 threads on one core."""
import argparse
import multiprocessing
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastnn  # noqa: E402
from fastnn import models  # noqa: E402

from benchmarks.test_bench_train import fastnn_step  # noqa: E402


def busy():
    while True:
        pass


def loop_seconds(name, batch, steps, threads, rng):
    """Seconds for `steps` training steps after one warm-up step."""
    fastnn.set_num_threads(threads)
    step = fastnn_step(getattr(models, name)())
    x = rng.standard_normal((batch * steps, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)
    step(x[:batch], y[:batch])
    start = time.perf_counter()
    for i in range(0, batch * steps, batch):
        step(x[i:i + batch], y[i:i + batch])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cotenant", action="store_true")
    where.add_argument("--one-cpu", action="store_true")
    args = parser.parse_args()
    if args.one_cpu:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(0)
    tenant = multiprocessing.Process(target=busy, daemon=True) if args.cotenant else None
    if tenant:
        tenant.start()
    try:
        print(f"ISA {fastnn.get_isa()}, {len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs, "
              f"co-tenant: {bool(tenant)}; "
              f"median of {args.rounds} alternating rounds")
        for name, steps in [("mlp", args.steps), ("cnn", max(1, args.steps // 6))]:
            times = {1: [], 2: []}
            for _ in range(args.rounds):
                for threads in (1, 2):
                    times[threads].append(loop_seconds(name, args.batch_size, steps, threads, rng))
            t1, t2 = np.median(times[1]), np.median(times[2])
            rate = args.batch_size * steps
            print(f"{name}: 1 thread {rate / t1:,.0f} samples/s, 2 threads {rate / t2:,.0f} "
                  f"samples/s: {t1 / t2:.2f}x")
    finally:
        if tenant:
            tenant.terminate()


if __name__ == "__main__":
    main()
