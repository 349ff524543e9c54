"""Data-parallel scaling: training samples/s of the reference CNN and MLP on 2 MPI ranks x 1
thread against 1 process x 1 thread (the same global batch), and the per-step time of the
gradient all-reduce at 2 ranks.

    python benchmarks/bench_distributed.py [--steps 60] [--batch-size 128] [--ranks 2]
                                           [--repeat 3]

launches `mpirun -n 2` (and the 1-process baseline) itself, with OMP_NUM_THREADS=1 per
rank, and prints a table. Each run trains on synthetic 28x28 data with the loop
fit(distributed=True) runs (DataParallel.batches, forward, backward, sync_gradients,
optimizer step); the first 5 steps are warm-up. "all-reduce" is sync_gradients timed
after a barrier (pure communication and reduction); "sync wait" is the same call in the
training loop, which also waits for the slowest rank."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 5
# The scaling model's links: (name, bytes/s, per-message latency in s)
LINKS = [("10 Gb/s Ethernet (TCP, 25 us)", 10e9 / 8, 25e-6),
         ("100 Gb/s InfiniBand (RDMA, 2 us)", 100e9 / 8, 2e-6)]


def ring_allreduce_seconds(nbytes, p, bandwidth, latency):
    """A ring all-reduce (= fastnn's reduce-scatter + allgather): 2 (p-1) messages, each
    rank sending and receiving 2 (p-1)/p of the gradient bytes."""
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def scaling_table(rows):
    """Efficiency on paper at 8 and 64 nodes for (model, gradient bytes, compute ms per
    step of one rank's share): compute / (compute + all-reduce), no overlap."""
    lines = ["model  nodes  link                              all-reduce ms  compute ms  "
             "efficiency"]
    for name, nbytes, compute_ms in rows:
        for p in (8, 64):
            for link, bandwidth, latency in LINKS:
                ms = 1e3 * ring_allreduce_seconds(nbytes, p, bandwidth, latency)
                lines.append(f"{name:<7}{p:>5}  {link:<34}{ms:>13.3f}{compute_ms:>12.2f}"
                             f"{compute_ms / (compute_ms + ms):>11.1%}")
    return "\n".join(lines)


def worker(model_name, steps, batch_size, distributed):
    """Run in each rank: print one JSON line (rank 0) with the timings."""
    sys.path.insert(0, ROOT)
    from fastnn import distributed as dist, losses, models, optim
    from fastnn.datasets import iterate_batches
    ddp = None
    if distributed:
        dist.init()
    model = getattr(models, model_name)(seed=0)
    if distributed:
        ddp = dist.DataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = losses.CrossEntropyLoss()
    n = (steps + WARMUP) * batch_size
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 28, 28), np.float32)
    y = rng.integers(0, 10, n)
    # The batches of fit() on each side: shuffled, so each is gathered (a copy).
    batches = ddp.batches(x, y, batch_size, seed=0) if ddp else \
        iterate_batches(x, y, batch_size, shuffle=True, seed=0)
    sync = 0.0
    for i, (xb, yb) in enumerate(batches):
        if i == WARMUP:
            if ddp:
                dist.allgather([0])  # start the clock together
            start = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        if ddp:
            t = time.perf_counter()
            ddp.sync_gradients(len(xb))
            sync += time.perf_counter() - t if i >= WARMUP else 0.0
        opt.step()
    seconds = time.perf_counter() - start
    allreduce = []
    if ddp:
        seconds = float(dist.allgather([seconds]).max())
        for _ in range(20):
            dist.allgather([0])
            t = time.perf_counter()
            ddp.sync_gradients(batch_size // dist.world_size())
            allreduce.append(time.perf_counter() - t)
    if dist.is_main():
        params = sum(p.data.size for p in model.parameters())
        print(json.dumps({"samples_per_sec": steps * batch_size / seconds,
                          "step_ms": 1e3 * seconds / steps, "sync_ms": 1e3 * sync / steps,
                          "allreduce_ms": 1e3 * float(np.median(allreduce)) if allreduce else 0,
                          "gradient_bytes": 4 * params}), flush=True)


def launch(model_name, ranks, steps, batch_size):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, __file__, "--worker", model_name, "--steps", str(steps),
           "--batch-size", str(batch_size)]
    if ranks > 1:  # mpirun binds each rank to a core unless they outnumber the cores
        over = ["--oversubscribe"] if ranks > (os.cpu_count() or 1) else []
        cmd = [shutil.which("mpirun"), "--allow-run-as-root", *over, "-n", str(ranks)] + cmd \
            + ["--distributed"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--models", default="cnn,mlp")
    p.add_argument("--repeat", type=int, default=3,
                   help="alternate the 1-process and the MPI runs this many times and keep "
                        "the best of each (the machine may be shared)")
    p.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.batch_size, args.distributed)
    print(f"global batch {args.batch_size}, {args.steps} timed steps, 1 thread per rank")
    print(f"{'model':<6}{'grad KiB':>10}{'1x1 samples/s':>15}{f'{args.ranks}x1 samples/s':>15}"
          f"{'speed-up':>10}{'step ms':>9}{'sync wait ms':>14}{'all-reduce ms':>15}")
    table = []
    for name in args.models.split(","):
        runs = [(launch(name, 1, args.steps, args.batch_size),
                 launch(name, args.ranks, args.steps, args.batch_size))
                for _ in range(args.repeat)]
        one, many = (max((run[k] for run in runs), key=lambda r: r["samples_per_sec"])
                     for k in (0, 1))
        print(f"{name:<6}{many['gradient_bytes'] / 1024:>10,.0f}{one['samples_per_sec']:>15,.0f}"
              f"{many['samples_per_sec']:>15,.0f}"
              f"{many['samples_per_sec'] / one['samples_per_sec']:>9.2f}x"
              f"{many['step_ms']:>9.2f}{many['sync_ms']:>14.3f}{many['allreduce_ms']:>15.3f}",
              flush=True)
        table.append((name, many["gradient_bytes"], many["step_ms"] - many["sync_ms"]))
    print(f"\nScaling on paper, {args.batch_size // args.ranks} samples per rank per step "
          f"(the measured compute of one rank above):")
    print(scaling_table(table))


if __name__ == "__main__":
    main()
