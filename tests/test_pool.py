"""Max and average pooling against fastnn.reference (float64 on the same float32 values).

Max pooling does no arithmetic, so its values and int64 indices must equal the
reference's exactly (ties: first maximum in row-major window order; -inf padding never
wins; NaN wins, the last NaN of a window). The backward scatter sums at most
K = ceil(kh/sh) * ceil(kw/sw) float32 gradients per input element, and average pooling
sums kh*kw terms and divides once: both are within gamma_{K+1} * (the same sum of
absolute values) of the float64 result, gamma_n = n*u/(1 - n*u), u = 2**-24 (Higham 3.1).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastnn import functional as F, reference as ref

U = 2.0 ** -24

# (x_shape, kernel_size, stride, padding)
CASES = [
    pytest.param((2, 3, 8, 8), 2, None, 0, id="2x2-even"),
    pytest.param((3, 2, 9, 7), 2, 2, 0, id="2x2-odd"),
    pytest.param((1, 4, 26, 26), 2, None, 0, id="2x2-cnn-batch1"),
    pytest.param((1, 2, 6, 70), 2, None, 0, id="2x2-wide"),  # 35 outputs: 2+ vectors per row
    # output rows of every width around the 4- and 8-lane vectors (the CNN's: 13 and 5)
    *[pytest.param((2, 3, 6, 2 * ow + ow % 2), 2, None, 0, id=f"2x2-row{ow}")
      for ow in (1, 3, 4, 5, 7, 8, 9, 13, 16, 17)],
    pytest.param((2, 2, 11, 11), 2, None, 0, id="2x2-cnn2-row5"),
    pytest.param((2, 2, 5, 5), 3, 2, 1, id="overlap-pad1"),
    pytest.param((1, 2, 5, 4), 3, 1, 1, id="stride1-pad1"),
    pytest.param((2, 1, 5, 6), (2, 3), (1, 2), (1, 1), id="nonsquare"),
    pytest.param((1, 1, 7, 7), 2, 3, 0, id="stride-over-kernel"),
    pytest.param((2, 3, 11, 13), (5, 4), (2, 3), (2, 2), id="big-window-max-pad"),
    pytest.param((1, 2, 1, 9), (1, 3), 1, (0, 1), id="one-row"),
    pytest.param((3, 1, 6, 6), 1, 1, 0, id="1x1"),
]


def inputs(rng, shape):
    """Distinct values, heavy ties, and -inf / NaN windows, all float32."""
    n = math.prod(shape)
    distinct = ((rng.permutation(n) - n / 2 + 0.5) * 0.01).reshape(shape)
    ties = rng.integers(0, 3, size=shape)
    special = rng.standard_normal(shape)
    special[..., :2, :2] = -np.inf
    special[:, 0, -1, -1] = np.nan
    special[:, 0, -1, -2] = np.nan
    return {k: v.astype(np.float32) for k, v in
            {"distinct": distinct, "ties": ties, "inf-nan": special}.items()}


def overlap_terms(kernel_size, stride):
    kh, kw = ref._pair(kernel_size)
    sh, sw = ref._pair(kernel_size if stride is None else stride)
    return math.ceil(kh / sh) * math.ceil(kw / sw)


def gamma(n):
    return n * U / (1 - n * U)


def assert_within(actual, expected, bound):
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    err = np.abs(actual.astype(np.float64) - expected)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", CASES)
def test_max_pool_matches_reference(isa, rng, x_shape, kernel_size, stride, padding):
    for name, x in inputs(rng, x_shape).items():
        y, idx = F.max_pool2d_with_indices(x, kernel_size, stride, padding)
        r_y, r_idx = ref.max_pool2d_with_indices(x.astype(np.float64), kernel_size, stride, padding)
        np.testing.assert_array_equal(y, r_y, err_msg=name)
        np.testing.assert_array_equal(idx, r_idx, err_msg=name)
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(F.max_pool2d(x, kernel_size, stride, padding), r_y)
        if name == "inf-nan":
            continue
        g = rng.standard_normal(y.shape).astype(np.float32)
        g64 = g.astype(np.float64)
        r_gx = ref.max_pool2d_backward(g64, x.astype(np.float64), kernel_size, stride, padding)
        bound = gamma(overlap_terms(kernel_size, stride)) * ref.max_pool2d_backward(
            np.abs(g64), x.astype(np.float64), kernel_size, stride, padding)
        saved = F.max_pool2d_backward(g, x, kernel_size, stride, padding, indices=idx)
        recomputed = F.max_pool2d_backward(g, x, kernel_size, stride, padding)
        assert_within(saved, r_gx, bound)
        np.testing.assert_array_equal(saved, recomputed)


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", CASES)
def test_avg_pool_matches_reference(isa, rng, x_shape, kernel_size, stride, padding):
    x = rng.standard_normal(x_shape).astype(np.float32)
    x64 = x.astype(np.float64)
    kh, kw = ref._pair(kernel_size)
    y = F.avg_pool2d(x, kernel_size, stride, padding)
    bound = gamma(kh * kw + 1) * ref.avg_pool2d(np.abs(x64), kernel_size, stride, padding)
    assert_within(y, ref.avg_pool2d(x64, kernel_size, stride, padding), bound)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g64 = g.astype(np.float64)
    gx = F.avg_pool2d_backward(g, x, kernel_size, stride, padding)
    bound = gamma(overlap_terms(kernel_size, stride) + 1) * ref.avg_pool2d_backward(
        np.abs(g64), x64, kernel_size, stride, padding)
    assert_within(gx, ref.avg_pool2d_backward(g64, x64, kernel_size, stride, padding), bound)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       pad=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_max_pool_property(n, c, h, w, kh, kw, sh, sw, pad, seed):
    padding = (kh // 2, kw // 2) if pad else 0
    ph, pw = ref._pair(padding)
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, size=(n, c, h, w)).astype(np.float32)  # many ties
    y, idx = F.max_pool2d_with_indices(x, (kh, kw), (sh, sw), padding)
    r_y, r_idx = ref.max_pool2d_with_indices(x.astype(np.float64), (kh, kw), (sh, sw), padding)
    np.testing.assert_array_equal(y, r_y)
    np.testing.assert_array_equal(idx, r_idx)
    # Small integers: every sum below is exact in float32.
    g = rng.integers(-4, 5, size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(
        F.max_pool2d_backward(g, x, (kh, kw), (sh, sw), padding, indices=idx),
        ref.max_pool2d_backward(g.astype(np.float64), x.astype(np.float64), (kh, kw), (sh, sw),
                                padding))


def test_ties_first_maximum_and_padding():
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]]]], np.float32)
    y, idx = F.max_pool2d_with_indices(x, 2, stride=1)
    np.testing.assert_array_equal(y, [[[[3.0, 3.0]]]])
    np.testing.assert_array_equal(idx, [[[[1, 1]]]])
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    y, idx = F.max_pool2d_with_indices(x, 2, stride=1, padding=1)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(idx, [[[[0, 0, 1], [0, 0, 1], [2, 2, 3]]]])


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 1)])
def test_thread_count_does_not_change_bits(isa, rng, threads, kernel_size, stride, padding):
    x = rng.standard_normal((64, 16, 20, 18)).astype(np.float32)
    y = F.max_pool2d(x, kernel_size, stride, padding)
    g = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        y, idx = F.max_pool2d_with_indices(x, kernel_size, stride, padding)
        results.append((y, idx, F.max_pool2d_backward(g, x, kernel_size, stride, padding),
                        F.avg_pool2d(x, kernel_size, stride, padding),
                        F.avg_pool2d_backward(g, x, kernel_size, stride, padding)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_out_buffers_are_used_and_layouts_copied(rng):
    x = rng.standard_normal((2, 3, 8, 10)).astype(np.float32)
    y, idx = np.empty((2, 3, 4, 5), np.float32), np.empty((2, 3, 4, 5), np.int64)
    r = F.max_pool2d_with_indices(x, 2, out=y, indices=idx)
    assert r[0] is y and r[1] is idx
    np.testing.assert_array_equal(y, ref.max_pool2d(x, 2))
    gx = np.full_like(x, np.nan)
    assert F.max_pool2d_backward(y, x, 2, indices=idx, out=gx) is gx
    np.testing.assert_array_equal(gx, ref.max_pool2d_backward(y, x, 2))
    xt = np.asfortranarray(x)  # non-contiguous input: copied silently
    np.testing.assert_array_equal(F.avg_pool2d(xt, 2), F.avg_pool2d(x, 2))
    np.testing.assert_array_equal(F.max_pool2d(x[:, :, ::-1], 2), ref.max_pool2d(x[:, :, ::-1], 2))


def test_empty_batch():
    x = np.empty((0, 3, 8, 8), np.float32)
    y, idx = F.max_pool2d_with_indices(x, 2)
    assert y.shape == idx.shape == (0, 3, 4, 4)
    assert F.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 8, 8)
    assert F.max_pool2d_backward(y, x, 2, indices=idx).shape == x.shape
    assert F.avg_pool2d_backward(y, x, 2).shape == x.shape


X = np.zeros((1, 2, 6, 6), np.float32)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, r"stride must be >= 1 \(positive\)"),
    (lambda: F.avg_pool2d(X, 2, stride=-1), ValueError, r"stride must be >= 1 \(positive\)"),
    (lambda: F.max_pool2d(X, 0), ValueError, r"kernel_size must be >= 1 \(positive\)"),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "at most half"),
    (lambda: F.avg_pool2d(X, 2, padding=-1), ValueError, "non-negative"),
    (lambda: F.max_pool2d(X, 7), ValueError, "output size is too small"),
    (lambda: F.max_pool2d(X[0], 2), ValueError, r"x must be 4-D.*\(2, 6, 6\)"),
    (lambda: F.max_pool2d(X.astype(np.float64), 2), TypeError, "x must be a float32 array"),
    (lambda: F.max_pool2d(X, 2.5), TypeError, "kernel_size must be an int or a pair"),
    (lambda: F.max_pool2d(X, (2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
    (lambda: F.max_pool2d(X, 2, out=np.empty((1, 2, 3, 4), np.float32)), ValueError,
     r"out must have shape \(1, 2, 3, 3\)"),
    (lambda: F.max_pool2d(X, 2, out=np.empty((1, 2, 3, 3))), TypeError, "out must be a float32"),
    (lambda: F.max_pool2d(X, 2, out=np.empty((1, 2, 3, 3), np.float32, order="F")), ValueError,
     "C-contiguous"),
    (lambda: F.max_pool2d_with_indices(X, 2, indices=np.empty((1, 2, 3, 3), np.int32)),
     TypeError, "indices must be a int64"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 2, 3, 4), np.float32), X, 2), ValueError,
     r"grad_out must have shape \(1, 2, 3, 3\)"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, 2,
                                   indices=np.zeros((1, 2, 3, 3), np.int32)), TypeError,
     "indices must be an int64"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, 2,
                                   indices=np.full((1, 2, 3, 3), 36)), ValueError,
     r"indices must lie in \[0, H\*W\)"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, 2,
                                   indices=np.full((1, 2, 3, 3), -1)), ValueError,
     r"indices must lie"),
    (lambda: F.avg_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, 2,
                                   out=np.zeros((1, 2, 6, 5), np.float32)), ValueError,
     r"out must have shape \(1, 2, 6, 6\)"),
])
def test_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_out_overlapping_input_is_rejected():
    x = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        F.max_pool2d(x, 2, out=x.reshape(-1)[:16].reshape(1, 1, 4, 4))
    g = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        F.avg_pool2d_backward(g, x, 2, out=x)


# ---- adaptive average pooling ----

# (x_shape, output_size): sizes that divide and do not divide the input, 1x1 (global
# average pooling), an output larger than the input, None (keep the input's size).
ADAPTIVE_CASES = [
    pytest.param((2, 3, 7, 7), 3, id="7to3"),
    pytest.param((2, 2, 5, 5), 2, id="5to2"),
    pytest.param((3, 4, 8, 6), (4, 3), id="divides"),
    pytest.param((2, 3, 7, 5), 1, id="global"),
    pytest.param((2, 3, 1, 1), 1, id="global-1x1-input"),
    pytest.param((1, 2, 3, 3), 5, id="3to5-larger"),
    pytest.param((2, 2, 5, 7), (2, None), id="none-keeps-width"),
    pytest.param((1, 1, 2, 9), (3, 4), id="mixed"),
]


def adaptive_terms(in_size, out_size):
    """Most input elements in one window, and most windows holding one input element."""
    k = max(-(-(i + 1) * in_size // out_size) - i * in_size // out_size for i in range(out_size))
    return k, -(-out_size // in_size) + 1


@pytest.mark.parametrize("x_shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_reference(isa, rng, x_shape, output_size):
    x = rng.standard_normal(x_shape).astype(np.float32)
    x64 = x.astype(np.float64)
    y = F.adaptive_avg_pool2d(x, output_size)
    r_y = ref.adaptive_avg_pool2d(x64, output_size)
    (kh, th), (kw, tw) = (adaptive_terms(n, o) for n, o in zip(x_shape[2:], r_y.shape[2:]))
    assert_within(y, r_y, gamma(kh * kw + 1) * ref.adaptive_avg_pool2d(np.abs(x64), output_size))
    g = rng.standard_normal(y.shape).astype(np.float32)
    g64 = g.astype(np.float64)
    gx = F.adaptive_avg_pool2d_backward(g, x.shape)
    bound = gamma(th * tw + 1) * ref.adaptive_avg_pool2d_backward(np.abs(g64), x.shape)
    assert_within(gx, ref.adaptive_avg_pool2d_backward(g64, x.shape), bound)


@pytest.mark.parametrize("x_shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_torch(rng, x_shape, output_size):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(x_shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, output_size)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, output_size), ty.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d_backward(g, x.shape), tx.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("output_size", [1, 3, 9])
def test_adaptive_thread_count_does_not_change_bits(isa, rng, threads, output_size):
    x = rng.standard_normal((64, 16, 20, 18)).astype(np.float32)
    g = rng.standard_normal((64, 16, output_size, output_size)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append((F.adaptive_avg_pool2d(x, output_size),
                        F.adaptive_avg_pool2d_backward(g, x.shape)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_adaptive_out_buffers_and_empty_batch(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = np.empty((2, 3, 4, 4), np.float32)
    assert F.adaptive_avg_pool2d(x, 4, out=y) is y
    gx = np.full_like(x, np.nan)
    assert F.adaptive_avg_pool2d_backward(y, list(x.shape), out=gx) is gx
    np.testing.assert_allclose(gx, ref.adaptive_avg_pool2d_backward(y, x.shape), rtol=1e-6)
    e = np.empty((0, 3, 5, 5), np.float32)
    assert F.adaptive_avg_pool2d(e, 2).shape == (0, 3, 2, 2)
    assert F.adaptive_avg_pool2d_backward(np.empty((0, 3, 2, 2), np.float32),
                                          e.shape).shape == e.shape


G = np.zeros((1, 2, 3, 3), np.float32)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, r"output_size must be in \[1, 2\*\*40\]"),
    (lambda: F.adaptive_avg_pool2d(X, (2, -1)), ValueError, "output_size must be in"),
    (lambda: F.adaptive_avg_pool2d(X, 2**41), ValueError, "output_size must be in"),
    (lambda: F.adaptive_avg_pool2d(X, 2.0), TypeError, "output_size must be an int or a pair"),
    (lambda: F.adaptive_avg_pool2d(X, None), TypeError, "output_size must be an int or a pair"),
    (lambda: F.adaptive_avg_pool2d(X, (1, 2, 3)), TypeError, "output_size must be an int"),
    (lambda: F.adaptive_avg_pool2d(X, True), TypeError, "output_size must be an int"),
    (lambda: F.adaptive_avg_pool2d(X[0], 2), ValueError, r"x must be 4-D.*\(2, 6, 6\)"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 2, 0, 3), np.float32), 1), ValueError,
     "H, W >= 1"),
    (lambda: F.adaptive_avg_pool2d(X.astype(np.float64), 2), TypeError,
     "x must be a float32 array"),
    (lambda: F.adaptive_avg_pool2d(X, 2, out=np.empty((1, 2, 3, 3), np.float32)), ValueError,
     r"out must have shape \(1, 2, 2, 2\)"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((0, 1, 2**40, 1), np.float32), 2**40), ValueError,
     "output_size .* is too large"),
    (lambda: F.adaptive_avg_pool2d_backward(G, (1, 2, 6)), TypeError,
     r"input_shape must be 4 ints"),
    (lambda: F.adaptive_avg_pool2d_backward(G, 6), TypeError, "input_shape must be 4 ints"),
    (lambda: F.adaptive_avg_pool2d_backward(G, (1, 2, 0, 6)), ValueError, "H, W >= 1"),
    (lambda: F.adaptive_avg_pool2d_backward(G, (1, 3, 6, 6)), ValueError,
     r"grad_y must be 4-D \(1, 3, oh, ow\)"),
    (lambda: F.adaptive_avg_pool2d_backward(G[0], (1, 2, 6, 6)), ValueError,
     "grad_y must be 4-D"),
    (lambda: F.adaptive_avg_pool2d_backward(G.astype(np.float16), (1, 2, 6, 6)), TypeError,
     "grad_y must be a float32 array"),
    (lambda: F.adaptive_avg_pool2d_backward(G, (1, 2, 2**40, 2**40)), ValueError,
     "too large"),
    (lambda: F.adaptive_avg_pool2d_backward(G, (1, 2, 6, 6), out=np.zeros((1, 2, 6, 5),
                                                                         np.float32)),
     ValueError, r"out must have shape \(1, 2, 6, 6\)"),
])
def test_adaptive_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# (x_shape, kernel_size, stride, padding): sizes where ceil_mode adds a clipped window, and
# one where torch drops the window that would start in the padding
CEIL_CASES = [
    pytest.param((2, 3, 7, 9), 2, None, 0, id="2x2-odd"),
    pytest.param((1, 2, 8, 6), 3, 2, 1, id="3x3-s2-p1"),
    pytest.param((2, 1, 5, 5), (3, 2), (3, 2), (1, 1), id="nonsquare"),
    pytest.param((1, 1, 6, 6), 2, 3, 1, id="start-in-padding-dropped"),
    pytest.param((1, 2, 3, 4), 3, 2, 0, id="one-window-plus-clipped"),
]


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", CEIL_CASES)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_ceil_mode_and_count_include_pad_match_torch(rng, x_shape, kernel_size, stride, padding,
                                                    ceil_mode):
    """torch's ceil_mode (MaxPool2d, AvgPool2d) and count_include_pad (AvgPool2d) were
    missing: the layers raised TypeError. The outputs, indices, gradients and, for average
    pooling, each clipped window's divisor are torch's."""
    torch = pytest.importorskip("torch")
    from fastnn import nn
    x = rng.standard_normal(x_shape).astype(np.float32)
    args = (kernel_size, stride, padding)
    tx = torch.tensor(x, requires_grad=True)
    ty, t_idx = torch.nn.functional.max_pool2d(tx, *args, ceil_mode=ceil_mode,
                                               return_indices=True)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    y, idx = F.max_pool2d_with_indices(x, *args, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())
    layer = nn.MaxPool2d(*args, ceil_mode=ceil_mode)
    for training in (True, False):  # eval mode finds the indices in backward
        layer.train(training)
        np.testing.assert_array_equal(layer(x), y)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    for count_include_pad in (True, False):
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.avg_pool2d(tx, *args, ceil_mode=ceil_mode,
                                            count_include_pad=count_include_pad)
        ty.backward(torch.from_numpy(g))
        layer = nn.AvgPool2d(*args, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", [
    pytest.param((1, 2, 8, 2), (1, 4), (1, 3), 0, id="kernel-longer-than-width"),
    pytest.param((2, 1, 1, 6), 4, None, 0, id="kernel-longer-than-height"),
    pytest.param((1, 1, 7, 1), (4, 2), (4, 2), (2, 0), id="padded-height"),
])
def test_ceil_mode_window_longer_than_the_input_matches_torch(rng, x_shape, kernel_size,
                                                              stride, padding):
    """With ceil_mode torch keeps a window that starts in the input and runs past the
    padding even when the kernel is longer than the padded input; fastnn raised "output
    size is too small" (its size check ran in floor mode, and C truncated the negative
    span). Without ceil_mode both raise."""
    torch = pytest.importorskip("torch")
    from fastnn import nn
    x = rng.standard_normal(x_shape).astype(np.float32)
    args = (kernel_size, stride, padding)
    for layer, t_layer in [(nn.MaxPool2d(*args, ceil_mode=True),
                            torch.nn.MaxPool2d(*args, ceil_mode=True))] + [
            (nn.AvgPool2d(*args, ceil_mode=True, count_include_pad=c),
             torch.nn.AvgPool2d(*args, ceil_mode=True, count_include_pad=c))
            for c in (True, False)]:
        tx = torch.tensor(x, requires_grad=True)
        ty = t_layer(tx)
        g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    _, t_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), *args, ceil_mode=True,
                                              return_indices=True)
    np.testing.assert_array_equal(F.max_pool2d_with_indices(x, *args, ceil_mode=True)[1],
                                  t_idx.numpy())
    np.testing.assert_array_equal(ref.max_pool2d_with_indices(x, *args, ceil_mode=True)[1],
                                  t_idx.numpy())  # the reference refused them too
    with pytest.raises(ValueError, match="output size is too small"):
        nn.MaxPool2d(*args)(x)
    with pytest.raises(ValueError, match="output size is too small"):
        F.avg_pool2d(x, *args)


def test_pool_layers_take_torchs_arguments():
    from fastnn import nn
    nn.MaxPool2d(2, 2, 0, 1, False, True)  # torch's positional order
    nn.AvgPool2d(2, 2, 0, True, False, None)
    with pytest.raises(ValueError, match="dilation must be 1"):
        nn.MaxPool2d(2, dilation=2)
    with pytest.raises(ValueError, match="return_indices must be False"):
        nn.MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="divisor_override must be None"):
        nn.AvgPool2d(2, divisor_override=3)
    with pytest.raises(TypeError, match="ceil_mode must be True or False"):
        nn.AvgPool2d(2, ceil_mode="yes")
    with pytest.raises(TypeError, match="count_include_pad must be True or False"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4), np.float32), 2, count_include_pad=1)
