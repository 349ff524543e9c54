"""SGEMM: fastnn (every ISA variant) vs NumPy (OpenBLAS), 1 and 2 threads, at square
sizes and at the MNIST training shapes (forward A·B and backward A·Bᵀ, Aᵀ·B)."""
import numpy as np
import pytest

import fastnn

from .conftest import THREADS, library_threads

M = 128
MNIST_KN = [(784, 64), (64, 64), (64, 10), (1600, 128), (128, 10)]


def _cases():
    for s in (1024, 2048):
        yield f"{s}^3", ("nn", s, s, s)
    for k, n in MNIST_KN:
        yield f"fwd {M}x{k}x{n}", ("nn", M, k, n)       # x @ W
        yield f"dx {M}x{n}x{k}", ("nt", M, n, k)        # grad @ W.T
        yield f"dW {k}x{M}x{n}", ("tn", k, M, n)        # x.T @ grad


CASES = dict(_cases())


def operands(form, m, k, n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if form == "tn" else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if form == "nt" else (k, n), dtype=np.float32)
    return (a.T if form == "tn" else a), (b.T if form == "nt" else b), np.empty((m, n), np.float32)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", CASES)
def test_gemm_fastnn(benchmark, record, case, threads, isa):
    form, m, k, n = CASES[case]
    a, b, out = operands(form, m, k, n)
    with library_threads("fastnn", threads):
        benchmark(fastnn.matmul, a, b, out)
    record(benchmark, op="gemm", shape=case, library="fastnn", threads=threads,
           flops=2 * m * n * k, isa=isa)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", CASES)
def test_gemm_numpy(benchmark, record, case, threads):
    pytest.importorskip("threadpoolctl")
    form, m, k, n = CASES[case]
    a, b, out = operands(form, m, k, n)
    with library_threads("numpy", threads):
        benchmark(np.matmul, a, b, out=out)
    record(benchmark, op="gemm", shape=case, library="numpy", threads=threads, flops=2 * m * n * k)
