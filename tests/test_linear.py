"""linear / linear_backward against the float64 NumPy reference (fastnn.reference).

Error bound asserted, per element: |out - ref| <= gamma_K * B, gamma_K = K*u/(1-K*u),
u = 2**-24, B the same computation on absolute values: the dot-product bound of
tests/test_gemm.py. K = in_features + 1 (the bias) for the output, out_features for
grad_x, N for grad_weight and grad_bias.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn import functional as F
from fastnn import reference as R

U = 2.0 ** -24


def assert_bounded(out, ref, bound, k, what):
    gamma = k * U / (1 - k * U)
    err = np.abs(out.astype(np.float64) - ref)
    worst = np.max(err - gamma * bound) if err.size else 0.0
    assert worst <= 0.0, f"{what}: error exceeds gamma_{k} bound by {worst}"


def check_linear(rng, n, i, o):
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((o, i)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    g = rng.standard_normal((n, o)).astype(np.float32)
    x64, w64, b64, g64 = (a.astype(np.float64) for a in (x, w, b, g))
    y = F.linear(x, w, b)
    assert_bounded(y, R.linear(x64, w64, b64), R.linear(abs(x64), abs(w64), abs(b64)), i + 1, "y")
    assert_bounded(F.linear(x, w), R.linear(x64, w64), R.linear(abs(x64), abs(w64)), i, "y")
    refs = R.linear_backward(g64, x64, w64)
    bounds = R.linear_backward(abs(g64), abs(x64), abs(w64))
    for got, ref, bound, k, what in zip(F.linear_backward(g, x, w), refs, bounds, (o, n, n),
                                        ("grad_x", "grad_w", "grad_b")):
        assert got.shape == ref.shape
        assert_bounded(got, ref, bound, k, what)


MNIST = [(784, 64), (64, 64), (64, 10), (1600, 128), (128, 10)]


@pytest.mark.parametrize("n", [1, 128])
@pytest.mark.parametrize("i,o", MNIST + [(1, 1), (7, 3), (300, 17)])
def test_linear_matches_reference(isa, rng, n, i, o):
    check_linear(rng, n, i, o)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 70), i=st.integers(1, 90), o=st.integers(1, 40),
       seed=st.integers(0, 2 ** 32 - 1))
def test_linear_random_shapes(n, i, o, seed):
    before = fastnn.get_isa()
    try:
        for isa in fastnn.supported_isas():
            fastnn.set_isa(isa)
            check_linear(np.random.default_rng(seed), n, i, o)
    finally:
        fastnn.set_isa(before)


def test_thread_count_does_not_change_bits(isa, rng, threads):
    x = rng.standard_normal((300, 700)).astype(np.float32)
    w = rng.standard_normal((130, 700)).astype(np.float32)
    b = rng.standard_normal(130).astype(np.float32)
    g = rng.standard_normal((300, 130)).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        threads(t)
        results.append((F.linear(x, w, b),) + F.linear_backward(g, x, w))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            assert np.array_equal(a, b_)


def test_optional_gradients_and_out_buffers(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    gx, gw, gb = F.linear_backward(g, x, w)
    nx, nw, nb = F.linear_backward(g, x, w, need_input_grad=False, bias=False)
    assert nx is None and nb is None and np.array_equal(gw, nw)
    bufs = [np.full(s, np.nan, np.float32) for s in ((5, 4), (3, 4), (3,))]
    res = F.linear_backward(g, x, w, grad_input=bufs[0], grad_weight=bufs[1], grad_bias=bufs[2])
    assert all(r is buf for r, buf in zip(res, bufs))
    assert all(np.array_equal(r, e) for r, e in zip(res, (gx, gw, gb)))
    out = np.full((5, 3), np.nan, np.float32)
    assert F.linear(x, w, out=out) is out and np.array_equal(out, F.linear(x, w))


def test_empty_batch():
    x = np.zeros((0, 4), np.float32)
    w = np.ones((3, 4), np.float32)
    assert F.linear(x, w, np.ones(3, np.float32)).shape == (0, 3)
    gx, gw, gb = F.linear_backward(np.zeros((0, 3), np.float32), x, w)
    assert gx.shape == (0, 4) and (gw == 0).all() and (gb == 0).all()


def test_matches_torch_float32(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((128, 784)).astype(np.float32)
    w = rng.standard_normal((64, 784)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    ref = torch.nn.functional.linear(*map(torch.from_numpy, (x, w, b))).numpy()
    np.testing.assert_allclose(F.linear(x, w, b), ref, rtol=1e-4, atol=1e-4)


X, W = np.ones((5, 4), np.float32), np.ones((3, 4), np.float32)
BAD = [
    (lambda: F.linear(X.astype(np.float64), W), TypeError, "x must be a float32 array, got dtype float64"),
    (lambda: F.linear(X[0], W), ValueError, r"x must be 2-D, got shape \(4,\)"),
    (lambda: F.linear(X, np.ones((3, 5), np.float32)), ValueError, r"weight must have shape \(out_features, 4\)"),
    (lambda: F.linear(X, W, np.ones(4, np.float32)), ValueError, r"bias must have shape \(3,\)"),
    (lambda: F.linear(X, W, out=np.empty((5, 4), np.float32)), ValueError, r"out must have shape \(5, 3\)"),
    (lambda: F.linear(X, W, out=np.empty((5, 3), np.int32)), TypeError, "out must be a float32"),
    (lambda: F.linear_backward(np.ones((5, 2), np.float32), X, W), ValueError, r"grad_out must have shape \(5, 3\)"),
    (lambda: F.linear_backward(np.ones((5, 3)), X, W), TypeError, "grad_out must be a float32"),
    (lambda: F.linear_backward(np.ones((5, 3), np.float32), X, W, grad_weight=np.empty((4, 3), np.float32)),
     ValueError, "grad_weight must have shape"),
]


@pytest.mark.parametrize("call,exc,msg", BAD)
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
