"""fastnn.matmul / SGEMM against a float64 NumPy reference.

Error bound asserted: for every element, |C - A@B| <= gamma_K * (|A| @ |B|) with
gamma_K = K*u / (1 - K*u), u = 2**-24 (float32 unit roundoff): the classic worst-case
bound for a dot product of length K summed in any order with or without FMA
(Higham, Accuracy and Stability of Numerical Algorithms, 3.1). It grows with K because
each of the K additions may round once; the reference itself is exact to ~1e-16 here.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn import _core

U = 2.0 ** -24


def assert_gemm_close(c, a, b, alpha=1.0, beta=0.0, c0=None):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = alpha * (a64 @ b64)
    bound_terms = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if c0 is not None and beta != 0.0:
        ref += beta * c0.astype(np.float64)
        bound_terms += abs(beta) * np.abs(c0.astype(np.float64))
    k = a.shape[1] + 2  # + the alpha scaling and the beta*C addition
    gamma = k * U / (1 - k * U)
    err = np.abs(c.astype(np.float64) - ref)
    worst = np.max(err - gamma * bound_terms) if err.size else 0.0
    assert worst <= 0.0, f"error exceeds gamma_K bound by {worst}"


def operand(rng, rows, cols, transposed):
    """A (rows, cols) float32 operand, stored transposed (a .T view) if asked."""
    if transposed:
        return rng.standard_normal((cols, rows)).astype(np.float32).T
    return rng.standard_normal((rows, cols)).astype(np.float32)


SIZES = [1, 2, 3, 5, 7, 13, 16, 17, 31, 64, 97, 127, 128, 251, 300]


@settings(max_examples=60, deadline=None)
@given(m=st.sampled_from(SIZES) | st.integers(1, 300), n=st.sampled_from(SIZES) | st.integers(1, 300),
       k=st.sampled_from(SIZES) | st.integers(1, 300), ta=st.booleans(), tb=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_matmul_matches_reference(m, n, k, ta, tb, seed):
    rng = np.random.default_rng(seed)
    a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
    before = fastnn.get_isa()
    try:
        for isa in fastnn.supported_isas():
            fastnn.set_isa(isa)
            assert_gemm_close(fastnn.matmul(a, b), a, b)
    finally:
        fastnn.set_isa(before)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (6, 16, 256), (7, 17, 257), (128, 10, 64),
                                   (128, 64, 784), (784, 64, 128), (13, 600, 5), (600, 3, 700),
                                   (300, 299, 1030),
                                   # few rows (B read in place): batch-1/8 linear layers
                                   (1, 128, 1600), (1, 10, 64), (1, 1600, 128), (2, 1, 300),
                                   (3, 700, 33), (5, 64, 1), (8, 129, 257), (8, 10, 7),
                                   # the wide (AVX-512) tile's products
                                   (96, 160, 64), (128, 256, 300), (240, 1600, 128)])
def test_matmul_shapes_and_transposes(isa, rng, m, n, k, ta, tb):
    a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
    assert_gemm_close(fastnn.matmul(a, b), a, b)


@pytest.mark.parametrize("n", [1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 49, 65])
def test_every_tile_edge(isa, rng, n):
    """Rows and columns past every multiple of the tiles and of their halves (a tile's
    edge runs half its rows or vectors where no more are left: 12x32 -> 6x32, 12x16, 6x16),
    whichever tile the shape takes."""
    for m in range(1, 30):
        for ta in (False, True):
            a, b = operand(rng, m, 37, ta), operand(rng, 37, n, False)
            assert_gemm_close(fastnn.matmul(a, b), a, b)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 10, 12, 15, 16, 17, 20, 24, 31, 63, 64, 65, 127, 128,
                               129, 150, 200, 255, 256, 263])
@pytest.mark.parametrize("k", [3, 10, 45])
def test_few_rows_every_column_edge(isa, rng, n, k):
    """Up to 8 rows of A, B read in place: its rows contiguous (an R x NV register tile,
    the wide ISA's from 128 columns, then half tiles, then the rest flush with the last
    column in a tile of 2 vectors or 1 or, below a vector, single columns) or its columns
    (dot products, K shorter than a vector too); A either layout; beta too."""
    for m in range(1, 9):
        for ta, tb in ((False, False), (True, False), (False, True)):
            a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
            assert_gemm_close(fastnn.matmul(a, b), a, b)
            c0 = rng.standard_normal((m, n)).astype(np.float32)
            c = c0.copy()
            _core.gemm(a, b, c, 0.5, -2.0)
            assert_gemm_close(c, a, b, 0.5, -2.0, c0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 10, 13, 16])
def test_few_columns_run_transposed(isa, rng, threads, n):
    """A product with few columns runs as C^T = op(B)^T op(A)^T through a buffer where that
    fills the tile better and op(A)^T is read in place (A stored transposed: a weight
    gradient x^T g; or up to 8 columns of dot products): every row edge, alpha and beta,
    K past a block, and the same bits on any thread count."""
    for m in list(range(1, 40)) + [97, 128, 1000]:
        for k, ta, tb in ((37, True, False), (300, True, True), (45, False, True)):
            a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
            assert_gemm_close(fastnn.matmul(a, b), a, b)
    c0 = rng.standard_normal((1000, n)).astype(np.float32)
    for alpha, beta in ((1.0, 1.0), (0.5, -2.0), (-1.5, 0.0)):
        c = c0.copy()
        _core.gemm(a, b, c, alpha, beta)
        assert_gemm_close(c, a, b, alpha, beta, c0)
    a, b = operand(rng, 1000, 300, True), operand(rng, 300, n, False)
    threads(1)
    one = fastnn.matmul(a, b)
    threads(2)
    assert np.array_equal(one, fastnn.matmul(a, b))


@pytest.mark.parametrize("m,n,k", [(9, 64, 600), (12, 4160, 40), (10, 48, 1), (24, 32, 5),
                                   (128, 64, 64), (128, 128, 1600), (120, 64, 784),
                                   (144, 96, 300), (192, 64, 257), (193, 64, 257), (97, 32, 3)])
def test_b_read_in_place(isa, rng, threads, m, n, k):
    """A product whose rows fit one row block reads B's rows in place, unpacked, across K
    blocks and N blocks (and packs it from one row more); alpha and beta too; the same
    bits on 1 and 2 threads."""
    a, b = operand(rng, m, k, False), operand(rng, k, n, False)
    threads(2)
    c1 = fastnn.matmul(a, b)
    assert_gemm_close(c1, a, b)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    _core.gemm(a, b, c, 0.5, -2.0)
    assert_gemm_close(c, a, b, 0.5, -2.0, c0)
    threads(1)
    assert np.array_equal(fastnn.matmul(a, b), c1)


@pytest.mark.parametrize("n", [16, 32, 64])
@pytest.mark.parametrize("view", ["unaligned", "reversed", "broadcast"])
def test_b_in_place_any_layout(isa, rng, view, n):
    """B read in place from a misaligned start (its rows one tile wide, as packed panels
    are), with its rows reversed, or broadcast (row stride 0)."""
    k = 50
    flat = rng.standard_normal(k * n + 1).astype(np.float32)
    b = {"unaligned": flat[1:].reshape(k, n), "reversed": flat[1:].reshape(k, n)[::-1],
         "broadcast": np.broadcast_to(flat[:n], (k, n))}[view]
    for m in (9, 12, 20):
        a = operand(rng, m, k, False)
        assert_gemm_close(fastnn.matmul(a, b), a, b)


def test_large_k_blocks_and_column_blocks(isa, rng):
    a, b = operand(rng, 37, 2100, False), operand(rng, 2100, 4200, False)  # > KC and > NC
    assert_gemm_close(fastnn.matmul(a, b), a, b)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (0.0, 3.0)])
def test_alpha_beta_accumulate(isa, rng, alpha, beta):
    a, b = operand(rng, 33, 70, False), operand(rng, 70, 45, True)
    c0 = rng.standard_normal((33, 45)).astype(np.float32)
    c = c0.copy()
    _core.gemm(a, b, c, alpha, beta)
    assert_gemm_close(c, a, b, alpha, beta, c0)


def test_beta_zero_ignores_nan_in_out(isa, rng):
    a, b = operand(rng, 20, 30, False), operand(rng, 30, 40, False)
    out = np.full((20, 40), np.nan, np.float32)
    fastnn.matmul(a, b, out=out)
    assert np.isfinite(out).all()
    assert_gemm_close(out, a, b)


def test_out_is_written_and_returned(rng):
    a, b = operand(rng, 9, 4, False), operand(rng, 4, 5, False)
    out = np.empty((9, 5), np.float32)
    assert fastnn.matmul(a, b, out=out) is out
    assert_gemm_close(out, a, b)


@pytest.mark.parametrize("view", ["strided", "negative", "readonly", "broadcast", "fortran"])
def test_any_layout_is_read_in_place(isa, rng, view):
    base = rng.standard_normal((40, 60)).astype(np.float32)
    a = {"strided": base[::2, ::3], "negative": base[::-1, ::-2],
         "readonly": base.copy(), "broadcast": np.broadcast_to(base[0], (40, 60)),
         "fortran": np.asfortranarray(base)}[view]
    if view == "readonly":
        a.flags.writeable = False
    b = rng.standard_normal((a.shape[1], 7)).astype(np.float32)
    assert_gemm_close(fastnn.matmul(a, b), a, b)
    assert_gemm_close(fastnn.matmul(b.T, a.T), b.T, a.T)


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)])
def test_empty_dimensions(m, n, k):
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    out = np.full((m, n), np.nan, np.float32)
    c = fastnn.matmul(a, b, out=out)
    assert c.shape == (m, n)
    assert (c == 0).all()


@pytest.mark.parametrize("tb", [True, False])
@pytest.mark.parametrize("m,n,k", [(300, 301, 302), (128, 64, 784), (5, 700, 900), (1000, 3, 1000),
                                   (128, 1600, 130)])  # the last: columns split though M is not short
def test_thread_count_does_not_change_bits(isa, rng, threads, m, n, k, tb):
    a, b = operand(rng, m, k, False), operand(rng, k, n, tb)
    threads(1)
    one = fastnn.matmul(a, b)
    threads(2)
    two = fastnn.matmul(a, b)
    threads(3)
    three = fastnn.matmul(a, b)
    assert np.array_equal(one, two) and np.array_equal(one, three)


def test_same_input_same_bits(isa, rng):
    a, b = operand(rng, 200, 100, False), operand(rng, 100, 150, False)
    assert np.array_equal(fastnn.matmul(a, b), fastnn.matmul(a, b))


def test_threads_api_and_threadpoolctl(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads(2)
    assert fastnn.get_num_threads() == (2 if fastnn._core.has_openmp() else 1)
    if fastnn._core.has_openmp():
        with threadpoolctl.threadpool_limits(1, "openmp"):
            assert fastnn.get_num_threads() == 1
    for bad in (1.5, "2", True, None):
        with pytest.raises(TypeError, match="n must be an int"):
            fastnn.set_num_threads(bad)
    top = fastnn._core.max_threads()
    assert top >= 2
    threads(top)  # the documented maximum is accepted
    for bad in (0, -1, top + 1, 10**6, 2**64):
        with pytest.raises(ValueError, match=f"between 1 and max_threads\\(\\) = {top}"):
            fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == (top if fastnn._core.has_openmp() else 1)
    fastnn.matmul(np.ones((300, 300), np.float32), np.ones((300, 300), np.float32))


def test_pool_in_a_forked_child(threads, rng):
    """The child of a fork has no pool workers: it starts its own, same bits."""
    threads(2)
    a, b = operand(rng, 300, 400, False), operand(rng, 400, 300, False)
    want = fastnn.matmul(a, b)
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit status
        ok = all(np.array_equal(fastnn.matmul(a, b), want) for _ in range(3))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_pool_confined_to_one_cpu(threads, rng):
    """A process confined to one CPU (taskset, or a busy neighbour on the other core): the
    worker finds itself on its caller's CPU and parks; every result has the same bits."""
    threads(2)
    a, b = operand(rng, 300, 400, False), operand(rng, 400, 300, False)
    x = rng.standard_normal((8, 16, 13, 13)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    want = fastnn.matmul(a, b), fastnn.functional.conv2d(x, w)
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit status
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        ok = all(np.array_equal(fastnn.matmul(a, b), want[0])
                 and np.array_equal(fastnn.functional.conv2d(x, w), want[1]) for _ in range(50))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_pool_after_the_thread_count_is_lowered(threads, rng):
    """Workers past a lowered thread count park; raised again, they rejoin: every result
    has the same bits."""
    a, b = operand(rng, 300, 400, False), operand(rng, 400, 300, False)
    threads(1)
    want = fastnn.matmul(a, b)
    for n in (fastnn._core.max_threads(), 2, 1, fastnn._core.max_threads(), 2):
        threads(n)
        assert all(np.array_equal(fastnn.matmul(a, b), want) for _ in range(20))


def test_pool_shared_by_application_threads(threads, rng):
    """Kernels called from several Python threads at once (the GIL released): one job
    runs on the pool at a time, the others on their callers; every result the same."""
    import concurrent.futures
    threads(2)
    a, b = operand(rng, 257, 300, False), operand(rng, 300, 190, False)
    x = rng.standard_normal((4, 16, 13, 13)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    want = fastnn.matmul(a, b), fastnn.functional.conv2d(x, w)

    def work(_):
        return fastnn.matmul(a, b), fastnn.functional.conv2d(x, w)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for got in pool.map(work, range(16)):
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_show_config_reports_everything(capsys):
    config = fastnn.show_config()
    assert set(config) == {"version", "compiler", "openmp", "isa", "default_isa",
                           "supported_isas", "zmm_width", "threads", "max_threads"}
    assert config["isa"] in config["supported_isas"]
    has_avx512 = "avx512" in config["supported_isas"]
    assert fastnn._core.zmm_width() in ((256, 512) if has_avx512 else (0,))
    assert "isa" in capsys.readouterr().out


BAD = [
    (lambda r: (np.ones((3, 4)), np.ones((4, 2), np.float32)), TypeError, "a must be a float32 array, got dtype float64"),
    (lambda r: (np.ones((3, 4), np.float32), np.ones((4, 2), np.int32)), TypeError, "b must be a float32 array"),
    (lambda r: (np.ones(4, np.float32), np.ones((4, 2), np.float32)), ValueError, r"a must be 2-D.*\(4,\)"),
    (lambda r: (np.ones((3, 4), np.float32), np.ones((2, 4, 1), np.float32)), ValueError, "b must be 2-D"),
    (lambda r: (np.ones((3, 4), np.float32), np.ones((5, 2), np.float32)), ValueError,
     r"inner dimensions differ.*\(3, 4\).*\(5, 2\)"),
]


@pytest.mark.parametrize("make,exc,msg", BAD)
def test_bad_inputs_raise_clear_errors(make, exc, msg):
    a, b = make(None)
    with pytest.raises(exc, match=msg):
        fastnn.matmul(a, b)


def test_bad_out_raises_clear_errors():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 2\)"):
        fastnn.matmul(a, b, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="out must be a float32"):
        fastnn.matmul(a, b, out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        fastnn.matmul(a, b, out=np.empty((2, 3), np.float32).T)
    sq = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        fastnn.matmul(sq, sq, out=sq)
    with pytest.raises(ValueError, match="overlaps"):
        big = np.ones((8, 4), np.float32)
        fastnn.matmul(big[:4], sq, out=big[2:6])


def _import_with_isa(value):
    env = dict(os.environ, FASTNN_ISA=value)
    return subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_isa())"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["avx512", "avx2", "generic"])
def test_isa_override_at_import(name):
    proc = _import_with_isa(name)
    if name in fastnn.supported_isas():
        assert proc.returncode == 0 and proc.stdout.strip() == name
    else:  # a clear ImportError, never an illegal instruction
        assert proc.returncode == 1
        assert "ImportError" in proc.stderr and "not supported by this CPU" in proc.stderr


def test_default_isa_rule():
    # the best variant the CPU runs (supported_isas lists them best last), Zen 4 included
    assert _core.default_isa() == fastnn.supported_isas()[-1]
    if not os.environ.get("FASTNN_ISA"):
        proc = _import_with_isa("")
        assert proc.returncode == 0 and proc.stdout.strip() == _core.default_isa()


def test_unknown_isa_is_an_import_error():
    proc = _import_with_isa("sse9")
    assert proc.returncode == 1 and "unknown ISA 'sse9'" in proc.stderr


def test_machine_probes_report_positive_rates(threads):
    threads(1)
    assert 0 < _core.fma_peak(100_000) < 1e5
    assert 0 < _core.copy_bandwidth(1 << 20, repeats=2) < 1e4


@pytest.mark.skipif(fastnn._core.zmm_width() == 0, reason="no AVX-512: one tile choice")
def test_zmm_width_changes_no_bit(rng):
    """Where zmm runs at full width (512) the avx512 kernels take their wide tiles up to
    1.5x the narrow tiles' padded work: other tiles for the same products (8 or 20 rows,
    the Winograd GEMMs of a few tiles), the same bits."""
    import fastnn.functional as F
    was, isa = fastnn._core.zmm_width(), fastnn.get_isa()
    fastnn.set_isa("avx512")
    x = rng.standard_normal((2, 64, 16, 16)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 64, 16, 16)).astype(np.float32)
    products = [(rng.standard_normal((m, k)).astype(np.float32),
                 rng.standard_normal((k, n)).astype(np.float32))
                for m, k, n in [(8, 32, 64), (20, 64, 64), (128, 784, 64), (5, 17, 40)]]
    results = []
    try:
        for width in (256, 512):
            fastnn._core._set_zmm_width(width)
            out = [fastnn.matmul(a, b) for a, b in products]
            for algo in ("direct", "winograd4x4"):
                out += [F.conv2d(x, w, None, 1, 1, algorithm=algo),
                        *F.conv2d_backward(g, x, w, 1, 1, algorithm=algo)]
            results.append(out)
    finally:
        fastnn._core._set_zmm_width(was)
        fastnn.set_isa(isa)
    for a, b in zip(*results):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="_set_zmm_width"):
        fastnn._core._set_zmm_width(384)
