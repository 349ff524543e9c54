"""SGEMM: fastnn (every ISA variant) vs NumPy (OpenBLAS) vs PyTorch, 1..N threads, over
a sweep of square sizes (the report's GFLOP/s-vs-size plot) and at the MNIST training
shapes (forward A·B and backward A·Bᵀ, Aᵀ·B): batch 128, N=10 among them, and batch 1
(M=1, the Linear layers of one-image inference, with their backward forms). The runs of
a shape (fastnn's variants, NumPy, PyTorch, every thread count) take turns block by block
(conftest.op_candidates), so that drift on a shared VM hits them alike."""
import numpy as np
import pytest

import fastnn

from .conftest import QUICK, THREADS, op_candidates, op_runs, run_ids, time_op

pytestmark = pytest.mark.benchmark(group="gemm")

M = 128
MNIST_KN = [(784, 64), (64, 64), (64, 10), (1600, 128), (128, 10)]
BATCH1_KN = [(784, 64), (1600, 128), (128, 10)]
SIZES = [64, 128, 256] if QUICK else [64, 128, 256, 512, 1024, 2048]


def _cases():
    for s in SIZES:
        yield f"{s}^3", ("nn", s, s, s)
    for m, kn in ((M, MNIST_KN), (1, BATCH1_KN)):
        for k, n in kn:
            yield f"fwd {m}x{k}x{n}", ("nn", m, k, n)       # x @ W
            yield f"dx {m}x{n}x{k}", ("nt", m, n, k)        # grad @ W.T
            yield f"dW {k}x{m}x{n}", ("tn", k, m, n)        # x.T @ grad


CASES = dict(_cases())


def operands(form, m, k, n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if form == "tn" else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if form == "nt" else (k, n), dtype=np.float32)
    return (a.T if form == "tn" else a), (b.T if form == "nt" else b), np.empty((m, n), np.float32)


def gemm_call(case):
    """call(library) for conftest.op_candidates: one product of the case."""
    def call(library):
        a, b, out = operands(*CASES[case])
        if library == "torch":
            import torch
            a, b, out = (torch.from_numpy(t) for t in (a, b, out))
            return lambda: torch.matmul(a, b, out=out)
        if library == "numpy":
            return lambda: np.matmul(a, b, out=out)
        return lambda: fastnn.matmul(a, b, out)
    return call


RUNS = op_runs("numpy", "torch")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
@pytest.mark.parametrize("case", CASES)
def test_gemm(benchmark, record, alternating, case, library, isa, threads):
    """fastnn on every variant, NumPy and PyTorch on every thread count, taking turns."""
    candidates = op_candidates("test_gemm", {"case": case}, gemm_call(case), RUNS)
    time_op(benchmark, alternating, ("gemm", case), (library, isa, threads), candidates)
    _, m, k, n = CASES[case]
    record(benchmark, op="gemm", shape=case, library=library, threads=threads,
           flops=2 * m * n * k, isa=isa, **({"size": m} if case.endswith("^3") else {}))
