"""SGEMM: fastnn (every ISA variant) vs NumPy (OpenBLAS) vs PyTorch, 1..N threads, over
a sweep of square sizes (the report's GFLOP/s-vs-size plot) and at the MNIST training
shapes (forward A·B and backward A·Bᵀ, Aᵀ·B): batch 128, N=10 among them, and batch 1
(M=1, the Linear layers of one-image inference, with their backward forms)."""
import numpy as np
import pytest

import fastnn

from .conftest import QUICK, THREADS, library_threads

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


def record_gemm(record, benchmark, case, library, threads, isa=None):
    _, m, k, n = CASES[case]
    record(benchmark, op="gemm", shape=case, library=library, threads=threads,
           flops=2 * m * n * k, isa=isa, **({"size": m} if case.endswith("^3") else {}))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", CASES)
def test_gemm_fastnn(benchmark, record, case, threads, isa):
    a, b, out = operands(*CASES[case])
    with library_threads("fastnn", threads):
        benchmark(fastnn.matmul, a, b, out)
    record_gemm(record, benchmark, case, "fastnn", threads, isa)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", CASES)
def test_gemm_numpy(benchmark, record, case, threads):
    pytest.importorskip("threadpoolctl")
    a, b, out = operands(*CASES[case])
    with library_threads("numpy", threads):
        benchmark(np.matmul, a, b, out=out)
    record_gemm(record, benchmark, case, "numpy", threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", CASES)
def test_gemm_torch(benchmark, record, torch, case, threads):
    a, b, out = (torch.from_numpy(t) for t in operands(*CASES[case]))
    with library_threads("torch", threads):
        benchmark(torch.matmul, a, b, out=out)
    record_gemm(record, benchmark, case, "torch", threads)
