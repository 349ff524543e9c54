"""3x3 stride-1 convolutions per algorithm: fastnn direct vs Winograd F(2x2, 3x3) vs
F(4x4, 3x3) vs "auto" vs PyTorch (torch.nn.functional.conv2d and its backward), batch 128,
at the reference CNN's conv2, TinyVGG's and a VGG-style CIFAR net's shapes.

Forward+backward computes every gradient (input, weight, bias), in fastnn and PyTorch.
Flops per pass are the direct method's, 2*N*C_out*OH*OW*C_in*9 (x3 for forward+backward),
so a faster algorithm shows as a higher rate. The algorithms and PyTorch take turns block
by block (conftest.alternate).

The same comparison as a script, printing medians and ratios to the direct method's and
PyTorch's:
    python -m benchmarks.test_bench_winograd [--rounds 15] [--threads 2] [--batch 128]
and with --fwd the forward alone, with --dgrad the input gradient alone, with --wgrad the
weight gradient alone (the measurements behind "auto"'s rules in csrc/winograd.c), on
these cases and CROSSOVER_CASES."""
import argparse
import time

import numpy as np
import pytest

import fastnn
from fastnn import functional as F

from .conftest import THREADS, op_candidates, run_ids, time_op

N = 128  # (main's --batch)
# name: (c_in, hw, c_out, padding)
CASES = {"cnn conv2 32->64 13x13 p0": (32, 13, 64, 0),
         "tinyvgg 32->32 28x28 p1": (32, 28, 32, 1),
         "vgg-cifar 64->64 16x16 p1": (64, 16, 64, 1)}
# more shapes for the crossovers (--fwd, --dgrad, --wgrad)
CROSSOVER_CASES = {"16->32 16x16 p1": (16, 16, 32, 1), "128->128 8x8 p1": (128, 8, 128, 1),
               "64->64 32x32 p1": (64, 32, 64, 1), "32->64 13x13 p1": (32, 13, 64, 1),
               "64->64 8x8 p1": (64, 8, 64, 1), "16->16 28x28 p1": (16, 28, 16, 1),
               "8->16 28x28 p1": (8, 28, 16, 1), "64->128 7x7 p1": (64, 7, 128, 1),
               "32->32 14x14 p1": (32, 14, 32, 1), "1->32 28x28 p0": (1, 28, 32, 0),
               "3->16 32x32 p1": (3, 32, 16, 1), "8->8 28x28 p1": (8, 28, 8, 1),
               "16->8 28x28 p1": (16, 28, 8, 1), "4->16 28x28 p1": (4, 28, 16, 1),
               "16->16 14x14 p1": (16, 14, 16, 1), "16->16 7x7 p1": (16, 7, 16, 1)}
ALL_CASES = {**CASES, **CROSSOVER_CASES}
ALGORITHMS = ["direct", "winograd", "winograd4x4", "auto"]
PASSES = ["fwd", "fwd+bwd"]


def case_arrays(name):
    c, hw, o, p = ALL_CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((o, c, 3, 3), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    ohw = hw + 2 * p - 2
    g = rng.standard_normal((N, o, ohw, ohw), dtype=np.float32)
    return x, w, b, g, p, 2 * g.size * c * 9


def fastnn_step(name, mode, algorithm):
    x, w, b, g, p, _ = case_arrays(name)
    y, gx = np.empty(g.shape, np.float32), np.empty(x.shape, np.float32)
    gw, gb = np.empty(w.shape, np.float32), np.empty(b.shape, np.float32)

    def step():
        if mode in ("wgrad", "dgrad"):
            F.conv2d_backward(g, x, w, 1, p, bias=False, need_input_grad=mode == "dgrad",
                              need_weight_grad=mode == "wgrad", grad_input=gx,
                              grad_weight=gw, algorithm=algorithm)
            return
        F.conv2d(x, w, b, 1, p, out=y, algorithm=algorithm)
        if mode != "fwd":
            F.conv2d_backward(g, x, w, 1, p, grad_input=gx, grad_weight=gw, grad_bias=gb,
                              algorithm=algorithm)
    return step


def torch_step(torch, name, mode):
    x, w, b, g, p, _ = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                        for a in case_arrays(name))

    def step():
        torch.nn.functional.conv2d(x, w, b, padding=p)
        if mode != "fwd":
            torch.ops.aten.convolution_backward(g, x, w, [w.shape[0]], [1, 1], [p, p], [1, 1],
                                                False, [0, 0], 1, [True, True, True])
    return step


def flops_of(name, mode):
    return case_arrays(name)[-1] * (1 if mode == "fwd" else 3)


def conv3x3_call(case, mode):
    """call(label) for conftest.op_candidates: "fastnn-<algorithm>" ("fastnn": "auto")
    or "torch"."""
    def call(label):
        if label == "torch":
            import torch
            step = torch_step(torch, case, mode)

            def run():
                with torch.no_grad():
                    step()
            return run
        return fastnn_step(case, mode, label.partition("-")[2] or "auto")
    return call


# fastnn on the default variant with each algorithm ("fastnn": "auto"), and PyTorch
RUNS = [(f"fastnn-{a}" if a != "auto" else "fastnn", None) for a in ALGORITHMS] + [
    ("torch", None)]


@pytest.mark.benchmark(group="conv3x3")
@pytest.mark.parametrize("threads", THREADS[-1:])
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
@pytest.mark.parametrize("mode", PASSES)
@pytest.mark.parametrize("case", CASES)
def test_conv3x3(benchmark, record, alternating, case, mode, library, isa, threads):
    """Every algorithm and PyTorch taking turns (conftest.alternate)."""
    candidates = op_candidates("test_conv3x3", {"case": case, "mode": mode},
                               conv3x3_call(case, mode), RUNS)
    time_op(benchmark, alternating, ("conv3x3", case, mode), (library, isa, threads),
            candidates)
    record(benchmark, op=f"conv3x3 {mode}", shape=case, threads=threads, library=library,
           flops=flops_of(case, mode))


def main():
    global N  # case_arrays' batch
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=N)
    alone = ap.add_mutually_exclusive_group()
    alone.add_argument("--fwd", action="store_true", help="the forward alone")
    alone.add_argument("--dgrad", action="store_true", help="the input gradient alone")
    alone.add_argument("--wgrad", action="store_true", help="the weight gradient alone")
    args = ap.parse_args()
    one = "fwd" if args.fwd else "wgrad" if args.wgrad else "dgrad" if args.dgrad else None
    N = args.batch
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    fastnn.set_num_threads(args.threads)
    print(f"fastnn {fastnn.get_isa()}, {args.threads} thread(s), batch {N}, median of "
          f"{args.rounds} interleaved rounds (ms); ratios: time / direct's, time / torch's")
    for name in ALL_CASES if one else CASES:
        for mode in [one] if one else PASSES:
            steps = {a: fastnn_step(name, mode, a) for a in ALGORITHMS[:3]}
            if torch is not None and not one:
                steps["torch"] = torch_step(torch, name, mode)
            times = {k: [] for k in steps}
            for _ in range(args.rounds + 1):  # the first round warms up
                for k, step in steps.items():
                    t0 = time.perf_counter()
                    step()
                    times[k].append(time.perf_counter() - t0)
            med = {k: 1e3 * float(np.median(v[1:])) for k, v in times.items()}
            cells = [f"{k} {ms:7.2f} ({ms / med['direct']:.2f}"
                     + (f", {ms / med['torch']:.2f})" if "torch" in med else ")")
                     for k, ms in med.items()]
            print(f"{name:27s} {mode:7s} " + "  ".join(cells), flush=True)
        c, hw, o, p = ALL_CASES[name]
        shapes = ((N, c, hw, hw), (o, c, 3, 3), 1, p)
        print(f"{'':27s} auto runs {fastnn.conv2d_algorithm(*shapes)}, input gradient "
              f"{fastnn.conv2d_algorithm(*shapes, input_gradient=True)}, weight gradient "
              f"{fastnn.conv2d_algorithm(*shapes, weight_gradient=True)}")


if __name__ == "__main__":
    main()
