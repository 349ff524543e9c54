"""conv2d / conv2d_backward against the float64 NumPy reference (fastnn.reference).

Error bound asserted, per element: |out - ref| <= gamma_K * B with gamma_K = K*u/(1-K*u),
u = 2**-24, and B the same computation on absolute values (|x|, |w|, |g|): the classic
bound for a dot product of length K summed in any order, with or without FMA (Higham,
Accuracy and Stability of Numerical Algorithms, 3.1). K is the length of the sum behind
each output: C_in*kh*kw (+1 for the bias) for the forward, N*OH*OW for the weight and bias
gradients (+ the chunk partials: at most 16 more additions), C_out*kh*kw for the input
gradient (each input pixel gathers at most kh*kw taps of C_out channels).
"""
import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn import functional as F
from fastnn import reference as R

U = 2.0 ** -24


def gamma(k):
    return k * U / (1 - k * U)


def assert_bounded(out, ref, bound, k, what):
    err = np.abs(out.astype(np.float64) - ref)
    worst = np.max(err - gamma(k) * bound) if err.size else 0.0
    assert worst <= 0.0, f"{what}: error exceeds gamma_{k} bound by {worst}"


def make(rng, n, c, h, w, o, kh, kw):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    return x, wt, b


def check_conv(rng, n, c, h, w, o, kh, kw, stride, padding, dilation):
    x, wt, b = make(rng, n, c, h, w, o, kh, kw)
    args = (stride, padding, dilation)
    x64, w64, b64 = x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64)
    y = F.conv2d(x, wt, b, *args)
    ref = R.conv2d(x64, w64, b64, *args)
    assert y.shape == ref.shape and y.dtype == np.float32
    assert_bounded(y, ref, R.conv2d(np.abs(x64), np.abs(w64), np.abs(b64), *args),
                   c * kh * kw + 1, "y")
    g = rng.standard_normal(y.shape).astype(np.float32)
    g64 = g.astype(np.float64)
    gx, gw, gb = F.conv2d_backward(g, x, wt, *args)
    rx, rw, rb = R.conv2d_backward(g64, x64, w64, *args)
    bx, bw, bb = R.conv2d_backward(np.abs(g64), np.abs(x64), np.abs(w64), *args)
    ohw = y.shape[2] * y.shape[3]
    assert_bounded(gx, rx, bx, o * kh * kw, "grad_x")
    assert_bounded(gw, rw, bw, n * ohw + 16, "grad_w")
    assert_bounded(gb, rb, bb, n * ohw + 16, "grad_b")


# (n, c_in, h, w, c_out, kh, kw, stride, padding, dilation)
SHAPES = [
    (4, 1, 28, 28, 32, 3, 3, 1, 0, 1),      # MNIST conv1
    (3, 32, 13, 13, 64, 3, 3, 1, 0, 1),     # MNIST conv2
    (1, 3, 7, 9, 5, 3, 2, 1, 0, 1),         # batch 1, odd, non-square kernel
    (2, 5, 11, 13, 7, 3, 5, (2, 3), (1, 2), (2, 1)),
    (2, 4, 5, 6, 3, 5, 6, 1, 0, 1),         # kernel == input: 1x1 output
    (2, 2, 4, 4, 3, 3, 3, 3, 2, 2),         # padding k-1, stride 3, dilation 2
    (2, 8, 9, 9, 20, 1, 1, 2, 0, 1),        # 1x1 conv
    (1, 70, 6, 5, 9, 3, 3, 1, 1, 1),        # K = 630 > one cache block of k
    (2, 3, 12, 10, 5, 3, 3, 1, (1, 2), (2, 1)),  # stride 1, padded, dilated: read in place
    # small outputs, many images: the backward's GEMMs take images in groups (of 3 and
    # partial ones at the chunks' ends)
    (40, 8, 9, 9, 12, 3, 3, 2, 1, 1),
    (33, 6, 8, 7, 5, 2, 3, 1, 0, (1, 2)),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_conv2d_matches_reference(isa, rng, shape):
    check_conv(rng, *shape)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 6), o=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 2), dw=st.integers(1, 2), extra_h=st.integers(0, 9),
       extra_w=st.integers(0, 9), data=st.data(), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_random_shapes(n, c, o, kh, kw, sh, sw, dh, dw, extra_h, extra_w, data, seed):
    ph = data.draw(st.integers(0, kh - 1))
    pw = data.draw(st.integers(0, kw - 1))
    h = max(1, dh * (kh - 1) + 1 - 2 * ph + extra_h)
    w = max(1, dw * (kw - 1) + 1 - 2 * pw + extra_w)
    before = fastnn.get_isa()
    try:
        for isa in fastnn.supported_isas():
            fastnn.set_isa(isa)
            check_conv(np.random.default_rng(seed), n, c, h, w, o, kh, kw, (sh, sw), (ph, pw),
                       (dh, dw))
    finally:
        fastnn.set_isa(before)


@pytest.mark.parametrize("shape", [(37, 1, 20, 20, 16, 3, 3, 1, 1, 1),
                                   (19, 16, 9, 11, 24, 3, 2, (1, 2), 1, 1),
                                   (9, 20, 7, 8, 6, 3, 3, 1, 1, 1),
                                   # fewer images than threads: channels split in parts
                                   (1, 3, 64, 64, 38, 3, 3, 1, 1, 1),
                                   (2, 32, 20, 20, 70, 3, 3, 1, 1, 1),
                                   # ... on the narrow tile where the wide one has 1 panel
                                   (1, 32, 14, 14, 32, 3, 3, 1, 1, 1),
                                   (1, 40, 7, 9, 24, 3, 3, 1, 1, 1),
                                   (48, 8, 9, 9, 12, 3, 3, 2, 1, 1)], ids=str)
def test_thread_count_does_not_change_bits(isa, rng, threads, shape):
    n, c, h, w, o, kh, kw, *args = shape
    x, wt, b = make(rng, n, c, h, w, o, kh, kw)
    g = rng.standard_normal(F.conv2d(x, wt, b, *args).shape).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        threads(t)
        results.append((F.conv2d(x, wt, b, *args),) + F.conv2d_backward(g, x, wt, *args))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            assert np.array_equal(a, b_)


def window_positions(idx, w, pool):
    """max_pool2d_with_indices' plane offsets `idx` (planes w wide) as conv2d_max_pool2d's
    uint8 positions in the window: (row - top) * kw + column - left."""
    kh, kw = np.broadcast_to(pool[0], 2)
    sh, sw = (kh, kw) if pool[1] is None else np.broadcast_to(pool[1], 2)
    ph, pw = np.broadcast_to(pool[2], 2)
    oh, ow = idx.shape[2:]
    rows = idx // w - (np.arange(oh)[:, None] * sh - ph)
    cols = idx % w - (np.arange(ow)[None, :] * sw - pw)
    assert (rows >= 0).all() and (rows < kh).all() and (cols >= 0).all() and (cols < kw).all()
    return (rows * kw + cols).astype(np.uint8)


def check_fused_is_unfused(x, wt, b, args, pool, algorithm=None, rng=None):
    """conv2d_max_pool2d (values, uint8 positions) and its backward (every gradient) equal
    conv2d + max_pool2d_with_indices and their backward, bitwise."""
    conv_y = F.conv2d(x, wt, b, *args, algorithm=algorithm)
    y, idx = F.max_pool2d_with_indices(conv_y, *pool)
    fy, pos = F.conv2d_max_pool2d(x, wt, b, *args, *pool, algorithm=algorithm)
    assert pos.dtype == np.uint8 and pos.shape == y.shape
    assert same_bits(fy, y) and np.array_equal(pos, window_positions(idx, conv_y.shape[3], pool))
    assert same_bits(F.conv2d_max_pool2d(x, wt, b, *args, *pool, return_indices=False,
                                         algorithm=algorithm), y)
    g = (rng or np.random.default_rng(1)).standard_normal(y.shape).astype(np.float32)
    g.flat[::5] = -0.0  # the unfused scatter adds into zeros: +0 (the bits are compared)
    expected = F.conv2d_backward(F.max_pool2d_backward(g, conv_y, *pool, indices=idx),
                                 x, wt, *args, algorithm=algorithm)
    got = F.conv2d_max_pool2d_backward(g, pos, x, wt, *args, *pool, algorithm=algorithm)
    for a, b_ in zip(got, expected):
        assert same_bits(a, b_)
    # with the relu after the pool: relu(y), and the gradient gated as relu_backward does
    ry, rpos = F.conv2d_max_pool2d(x, wt, b, *args, *pool, algorithm=algorithm,
                                   activation="relu")
    assert same_bits(ry, F.relu(y)) and np.array_equal(rpos, pos)
    relu_expected = F.conv2d_backward(
        F.max_pool2d_backward(F.relu_backward(g, y), conv_y, *pool, indices=idx), x, wt, *args,
        algorithm=algorithm)
    got = F.conv2d_max_pool2d_backward(g, pos, x, wt, *args, *pool, algorithm=algorithm,
                                       activation="relu", output=ry)
    for a, b_ in zip(got, relu_expected):
        assert same_bits(a, b_)
    return pos, g, expected


def check_relu_is_unfused(x, wt, b, args, algorithm=None, rng=None):
    """conv2d with activation="relu" and its backward equal conv2d, relu and their
    backward, bitwise."""
    y = F.conv2d(x, wt, b, *args, algorithm=algorithm)
    ry = F.conv2d(x, wt, b, *args, algorithm=algorithm, activation="relu")
    assert same_bits(ry, F.relu(y))
    g = (rng or np.random.default_rng(1)).standard_normal(y.shape).astype(np.float32)
    g.flat[::5] = -0.0
    expected = F.conv2d_backward(F.relu_backward(g, y), x, wt, *args, algorithm=algorithm)
    got = F.conv2d_backward(g, x, wt, *args, algorithm=algorithm, activation="relu", output=ry)
    for a, b_ in zip(got, expected):
        assert same_bits(a, b_)


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_nonfinite_weight_reaches_only_its_taps(isa, rng, bad, padding):
    """A NaN or inf filter tap makes NaN only where it multiplies the gradient, as in the
    reference: never through the zero padding (0 * inf)."""
    x, wt, _ = make(rng, 2, 3, 5, 6, 4, 3, 3)
    wt[1, 2, 0, 2] = bad
    g = rng.standard_normal(F.conv2d(x, wt, None, 1, padding).shape).astype(np.float32)
    gx, _, _ = F.conv2d_backward(g, x, wt, 1, padding)
    want = R.conv2d_backward(g.astype(np.float64), x.astype(np.float64), wt.astype(np.float64),
                             1, padding)[0]
    assert np.array_equal(np.isnan(gx), np.isnan(want))
    assert np.array_equal(np.isinf(gx), np.isinf(want))


# conv shape (n, c_in, h, w, c_out, kh, kw, stride, padding, dilation), pool (kernel, stride, padding)
FUSED = [((3, 1, 12, 12, 8, 3, 3, 1, 0, 1), (2, None, 0)),       # conv1-like: 2x2 kernel
         ((2, 32, 13, 13, 16, 3, 3, 1, 0, 1), (2, None, 0)),     # conv2-like: odd plane
         ((2, 5, 11, 9, 7, 3, 2, 2, 1, (2, 1)), (3, 2, 1)),       # overlapping, padded windows
         ((1, 3, 7, 7, 4, 1, 1, 1, 0, 1), ((3, 2), (1, 2), (1, 0))),
         ((1, 3, 64, 64, 38, 3, 3, 1, 1, 1), (2, None, 0)),      # one image, channels in parts
         ((1, 32, 20, 20, 70, 3, 3, 1, 1, 1), (3, 2, 1)),
         ((1, 32, 14, 14, 32, 3, 3, 1, 1, 1), (2, None, 0)),     # TinyVGG's, batch 1
         ((40, 8, 10, 10, 12, 3, 3, 2, 1, 1), (2, None, 0))]    # images grouped


def conv_pool_pass(c, kh, kw, conv_y_shape, pool):
    """Whether the fused pair's backward without the input gradient runs the conv + pool
    pass (conv.c's pool_pass): a short im2col (c*kh*kw <= 32) under 2x2 windows that tile
    the whole conv output. Its weight and bias gradients sum in pool order: not the
    unfused pair's bits, but bounded as they are."""
    return (c * kh * kw <= 32 and pool == (2, None, 0) and conv_y_shape[2] % 2 == 0 and
            conv_y_shape[3] % 2 == 0)


@pytest.mark.parametrize("conv,pool", FUSED, ids=str)
def test_conv2d_max_pool2d_is_conv_then_pool_bitwise(isa, threads, rng, conv, pool):
    n, c, h, w, o, kh, kw, *args = conv
    x, wt, b = make(rng, n, c, h, w, o, kh, kw)
    for t in (1, 2, 3):
        threads(t)
        pos, g, expected = check_fused_is_unfused(x, wt, b, args, pool, rng=rng)
        gx, gw, gb = F.conv2d_max_pool2d_backward(g, pos, x, wt, *args, *pool, bias=False,
                                                  need_input_grad=False)
        assert gx is None and gb is None
        if not conv_pool_pass(c, kh, kw, F.conv2d(x, wt, b, *args).shape, pool):
            assert same_bits(gw, expected[1])
        else:
            check_conv_pool_pass(x, wt, b, args, rng)


def check_conv_pool_pass(x, wt, b, args, rng, relu=False):
    """The fused pair's gradients without the input gradient (the conv + pool pass where
    conv_pool_pass) against the float64 reference of the unpooled gradient: within
    gamma_(n*ohw + 16) of the sums of absolute products, the bound of any order of
    summation, and inf or NaN exactly where the reference has them."""
    y, pos = F.conv2d_max_pool2d(x, wt, b, *args, activation="relu" if relu else None)
    conv_y = F.conv2d(x, wt, b, *args)
    g = rng.standard_normal(y.shape).astype(np.float32)
    g.flat[::7] = 0.0
    _, gw, gb = F.conv2d_max_pool2d_backward(g, pos, x, wt, *args, need_input_grad=False,
                                             activation="relu" if relu else None,
                                             output=y if relu else None)
    _, idx = F.max_pool2d_with_indices(conv_y, 2)
    gp = F.relu_backward(g, y) if relu else g
    unpooled = F.max_pool2d_backward(gp, conv_y, 2, indices=idx).astype(np.float64)
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    with np.errstate(invalid="ignore"):  # 0 * inf where the input has one
        _, rw, rb = R.conv2d_backward(unpooled, x64, w64, *args)
        _, bw, bb = R.conv2d_backward(np.abs(unpooled), np.abs(x64), np.abs(w64), *args)
    terms = conv_y.shape[0] * conv_y.shape[2] * conv_y.shape[3] + 16
    for got, ref, bound, what in ((gw, rw, bw, "grad_w"), (gb, rb, bb, "grad_b")):
        fin = np.isfinite(ref)
        assert np.array_equal(got[~fin], ref[~fin], equal_nan=True), what
        assert_bounded(got[fin], ref[fin], bound[fin], terms, what)


# conv shape (n, c_in, h, w, c_out, kh, kw, stride, padding, dilation) whose conv output
# the 2x2 pool tiles: MNIST's conv1, padded, strided, dilated (no copied rows), 5x5,
# rectangular, channels not a multiple of the tile's rows, one image in channel parts,
# more images than chunks
POOL_PASS = [(4, 1, 28, 28, 32, 3, 3, 1, 0, 1), (3, 2, 10, 12, 5, 3, 3, 1, 1, 1),
             (2, 3, 15, 11, 7, 3, 3, 2, 1, 1), (2, 2, 12, 12, 6, 3, 3, 1, 2, 2),
             (2, 1, 14, 14, 6, 5, 5, 1, 2, 1), (2, 3, 10, 12, 4, 3, 2, (1, 2), (1, 0), 1),
             (1, 3, 20, 20, 38, 3, 3, 1, 1, 1), (37, 1, 6, 6, 3, 3, 3, 1, 1, 1),
             (2, 1, 4, 4, 9, 3, 3, 1, 0, 1), (2, 2, 12, 10, 4, 3, 3, 2, (1, 2), (1, 3))]


@pytest.mark.parametrize("shape", POOL_PASS, ids=str)
def test_conv_pool_pass_matches_reference(isa, threads, rng, shape):
    """The conv + pool pass: the forward is the unfused pair's bits (check_fused_is_unfused
    runs it on the forward; its own backward keeps the input gradient), the weight and bias
    gradients bounded against the float64 reference, with and without the relu, whatever
    the thread count, and with inf and NaN in the input as the reference has them."""
    n, c, h, w, o, kh, kw, *args = shape
    x, wt, b = make(rng, n, c, h, w, o, kh, kw)
    assert conv_pool_pass(c, kh, kw, F.conv2d(x, wt, b, *args).shape, (2, None, 0))
    y, pos = F.conv2d_max_pool2d(x, wt, b, *args, activation="relu")
    g = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        threads(t)
        check_fused_is_unfused(x, wt, b, args, (2, None, 0), rng=rng)
        check_conv_pool_pass(x, wt, b, args, np.random.default_rng(t))
        check_conv_pool_pass(x, wt, b, args, np.random.default_rng(t), relu=True)
        results.append(F.conv2d_max_pool2d_backward(g, pos, x, wt, *args, need_input_grad=False,
                                                    activation="relu", output=y)[1:])
    for other in results[1:]:
        assert all(same_bits(a, b_) for a, b_ in zip(results[0], other))
    x[0, 0, 1, 2], x[-1, -1, -1, 0] = np.nan, np.inf
    check_conv_pool_pass(x, wt, b, args, rng)
    check_conv_pool_pass(x, wt, b, args, rng, relu=True)


# conv shape (n, c_in, h, w, c_out, kh, kw, stride, padding, dilation): a short im2col
# (1 and 3 channels), the channels-last GEMM, the input gradient by forward convolution
# (> 8 channels, stride 1) and by col2im (stride 2, dilation), Winograd's 3x3 shapes
RELU = [(3, 1, 12, 12, 8, 3, 3, 1, 1, 1), (2, 3, 9, 7, 5, 3, 3, 2, 1, 1),
        (2, 12, 9, 9, 16, 3, 3, 1, 1, 1), (2, 16, 10, 11, 7, 3, 3, 2, 0, (1, 2)),
        (1, 32, 16, 16, 32, 3, 3, 1, 1, 1), (4, 2, 5, 5, 3, 1, 1, 1, 0, 1),
        (2, 9, 14, 14, 33, 3, 3, 1, 0, 1), (36, 8, 9, 9, 12, 3, 3, 2, 1, 1)]


@pytest.mark.parametrize("conv", RELU, ids=str)
def test_conv2d_relu_is_conv_then_relu_bitwise(isa, threads, rng, conv):
    """activation="relu", on every algorithm the shape runs and any thread count; NaN and
    inf inputs included (relu keeps a NaN, its backward passes nothing there)."""
    n, c, h, w, o, kh, kw, *args = conv
    x, wt, b = make(rng, n, c, h, w, o, kh, kw)
    winograd = (kh, kw, args[0], args[2]) == (3, 3, 1, 1)
    for t in (1, 2, 3):
        threads(t)
        for algo in ("direct", "winograd", "winograd4x4") if winograd else ("direct",):
            check_relu_is_unfused(x, wt, b, args, algo, rng)
    x[0, 0, 1, 2], x[-1, -1, -1, 0] = np.nan, np.inf
    check_relu_is_unfused(x, wt, b, args, rng=rng)


def test_activation_arguments_are_checked(rng):
    x, wt, b = make(rng, 2, 3, 6, 6, 4, 3, 3)
    y = F.conv2d(x, wt, b, activation="relu")
    g = np.ones_like(y)
    for bad in ("ReLU", "tanh", 1, True):
        with pytest.raises(ValueError, match="activation must be None or 'relu'"):
            F.conv2d(x, wt, b, activation=bad)
    with pytest.raises(ValueError, match="output .* goes with activation='relu' and only"):
        F.conv2d_backward(g, x, wt, activation="relu")
    with pytest.raises(ValueError, match="output .* goes with activation='relu' and only"):
        F.conv2d_backward(g, x, wt, output=y)
    with pytest.raises(ValueError, match=r"output must have grad_out's shape \(2, 4, 4, 4\)"):
        F.conv2d_backward(g, x, wt, activation="relu", output=y[:, :, :3])
    with pytest.raises(TypeError, match="output must be a float32 array"):
        F.conv2d_backward(g, x, wt, activation="relu", output=y.astype(np.float64))
    py, pos = F.conv2d_max_pool2d(x, wt, b, activation="relu")
    with pytest.raises(ValueError, match=r"output must have grad_out's shape \(2, 4, 2, 2\)"):
        F.conv2d_max_pool2d_backward(np.ones_like(py), pos, x, wt, activation="relu",
                                     output=y)
    room = np.zeros(y.size + x.size, np.float32)
    shared = room[:y.size].reshape(y.shape)
    shared[...] = y
    with pytest.raises(ValueError, match="grad_input overlaps an input"):
        F.conv2d_backward(g, x, wt, activation="relu", output=shared,
                          grad_input=room[y.size - 1:-1].reshape(x.shape))


# (n, c_in, h, w, c_out, conv padding): odd and even sizes, batch 1, 1 and many channels
POSITION_SHAPES = [(1, 1, 28, 28, 8, 0), (2, 3, 13, 11, 5, 1), (1, 4, 9, 9, 3, 2),
                   (3, 2, 7, 10, 6, 1), (1, 16, 15, 15, 7, 0), (2, 1, 8, 7, 2, 0)]
# pool (kernel, stride, padding): 2x2, 3x3 with stride 2 and 1, padded, rectangular
POSITION_POOLS = [(2, None, 0), (3, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1)),
                  ((3, 2), 2, (1, 0))]


@pytest.mark.parametrize("pool", POSITION_POOLS, ids=str)
@pytest.mark.parametrize("shape", POSITION_SHAPES, ids=str)
def test_window_positions_are_the_unfused_argmax(isa, rng, shape, pool):
    """The byte positions of the fused pair, on every algorithm the shape runs, are
    max_pool2d_with_indices' argmax (the same ties), and unpool to the same gradients."""
    n, c, h, w, o, pad = shape
    x, wt, b = make(rng, n, c, h, w, o, 3, 3)
    x[:, :, 0::3] = x[:, :, 1::3] = 0.0  # the filters' rows 1, 2 see zeros only on every
    wt[:, :, 0] = 0.0                     # third output row: ties along it (bias only)
    for algo in ("direct", "winograd", "winograd4x4"):
        check_fused_is_unfused(x, wt, b, (1, pad, 1), pool, algo, rng)
    check_fused_is_unfused(x, wt, b, (2, pad, 1), pool, "direct", rng)  # strided conv


def test_window_positions_of_tied_and_nonfinite_windows(isa):
    """Ties take the first maximum in row-major window order, NaN the last NaN, an all
    -inf window its first element, as max_pool2d_with_indices."""
    x = np.zeros((1, 1, 6, 7), np.float32)
    x[0, 0, 0, 1] = x[0, 0, 3, 3] = np.nan
    x[0, 0, 1, 4] = x[0, 0, 2, 5] = np.inf
    x[0, 0, 4:, :2] = -np.inf
    one = np.ones((1, 1, 1, 1), np.float32)
    for pool in [(2, None, 0), (3, 2, 1), (2, 1, 1), (3, 3, 0)]:
        check_fused_is_unfused(x, one, None, (1, 0, 1), pool)


@pytest.mark.parametrize("w", [5, 11, 21])  # pooled rows of 2, 5 and 10: every row kernel
def test_window_positions_past_the_window_are_rejected(isa, rng, w):
    x, wt, b = make(rng, 2, 3, 7, w, 4, 2, 2)
    y, pos = F.conv2d_max_pool2d(x, wt, b)
    for bad_pos in (4, 9, 255):
        bad = pos.copy()
        bad[1, 3, 2, -1] = bad_pos
        with pytest.raises(ValueError, match=r"indices must be positions in \[0, kh\*kw\) = "
                                             r"\[0, 4\)"):
            F.conv2d_max_pool2d_backward(y, bad, x, wt)


def test_window_positions_need_a_byte(rng):
    """Windows of more than 256 elements have no byte positions: the fused pair raises
    unless asked for no indices, and a model does not fuse such a pool."""
    x, wt, b = make(rng, 1, 2, 20, 20, 3, 3, 3)
    y = F.conv2d_max_pool2d(x, wt, b, 1, 0, 1, (16, 17), return_indices=False)
    assert np.array_equal(y, F.max_pool2d(F.conv2d(x, wt, b), (16, 17)))
    F.conv2d_max_pool2d(x, wt, b, 1, 0, 1, (16, 16))  # 256 positions fit
    with pytest.raises(ValueError, match=r"kernel_size\[0\] \* kernel_size\[1\] <= 256, got "
                                         r"\(16, 17\)"):
        F.conv2d_max_pool2d(x, wt, b, 1, 0, 1, (16, 17))
    with pytest.raises(ValueError, match=r"<= 256, got \(17, 16\)"):
        F.conv2d_max_pool2d_backward(np.zeros((1, 3, 1, 1), np.float32),
                                     np.zeros((1, 3, 1, 1), np.uint8), x, wt, 1, 0, 1, (17, 16))
    from fastnn import nn
    big = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d((16, 17)), input_shape=(2, 20, 20))
    small = nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(16), input_shape=(2, 20, 20))
    for model, fused in ((big, False), (small, True)):
        assert any(isinstance(r, nn._FusedConv) for _, r in model._plan()) == fused
        out = model(x)
        assert np.array_equal(out, F.max_pool2d(F.conv2d(x, model[0].weight.data,
                                                         model[0].bias.data),
                                                model[1].kernel_size))
        model.backward(np.ones_like(out))


def test_conv2d_max_pool2d_bad_inputs(rng):
    x, wt, b = make(rng, 2, 3, 8, 8, 4, 3, 3)
    y, idx = F.conv2d_max_pool2d(x, wt, b, kernel_size=2)
    assert y.shape == idx.shape == (2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d_max_pool2d: kernel_size must be >= 1 \(positive\), got 0"):
        F.conv2d_max_pool2d(x, wt, b, kernel_size=0)
    with pytest.raises(ValueError, match="output size is too small"):
        F.conv2d_max_pool2d(x, wt, b, kernel_size=7)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 3, 3\) \(the pooled"):
        F.conv2d_max_pool2d_backward(np.zeros((2, 4, 6, 6), np.float32), idx, x, wt)
    assert idx.dtype == np.uint8
    for dtype in (np.int64, np.int32, np.int8, np.float32):
        with pytest.raises(TypeError, match="indices must be a uint8 array of window positions"):
            F.conv2d_max_pool2d_backward(y, idx.astype(dtype), x, wt)
        with pytest.raises(TypeError, match="indices must be a uint8 ndarray"):
            F.conv2d_max_pool2d(x, wt, b, kernel_size=2, indices=np.zeros(y.shape, dtype))
    with pytest.raises(ValueError, match="indices must have the shape of grad_out"):
        F.conv2d_max_pool2d_backward(y, idx[:1], x, wt)
    with pytest.raises(ValueError, match="indices must have shape"):
        F.conv2d_max_pool2d(x, wt, b, kernel_size=2, indices=np.zeros((2, 4, 3, 4), np.uint8))
    bad = idx.copy()
    bad[1, 2, 0, 1] = 4  # past the 2x2 window
    with pytest.raises(ValueError, match=r"indices must be positions in \[0, kh\*kw\) = "
                                         r"\[0, 4\) of each pooling window"):
        F.conv2d_max_pool2d_backward(y, bad, x, wt)
    bad[1, 2, 0, 1] = 255
    with pytest.raises(ValueError, match=r"indices must be positions"):
        F.conv2d_max_pool2d_backward(y, bad, x, wt)
    # 3x3 windows padded by 1: position 0 of the first window lies in the padding
    y, idx = F.conv2d_max_pool2d(x, wt, b, kernel_size=3, pool_stride=2, pool_padding=1)
    bad = idx.copy()
    bad[0, 0, 0, 0] = 0
    with pytest.raises(ValueError, match=r"\[0, 9\) of each pooling window that lie inside"):
        F.conv2d_max_pool2d_backward(y, bad, x, wt, kernel_size=3, pool_stride=2,
                                     pool_padding=1)
    with pytest.raises(ValueError, match="out must have shape"):
        F.conv2d_max_pool2d(x, wt, b, out=np.empty((2, 4, 6, 6), np.float32))


def test_optional_gradients_are_skipped(rng):
    x, wt, _ = make(rng, 3, 4, 8, 7, 5, 3, 3)
    g = rng.standard_normal((3, 5, 6, 5)).astype(np.float32)
    gx, gw, gb = F.conv2d_backward(g, x, wt)
    nx, nw, nb = F.conv2d_backward(g, x, wt, need_input_grad=False, bias=False)
    assert nx is None and nb is None
    assert np.array_equal(gw, nw)


def test_out_buffers_are_used_and_returned(rng):
    x, wt, b = make(rng, 2, 3, 6, 6, 4, 3, 3)
    out = np.full((2, 4, 4, 4), np.nan, np.float32)
    assert F.conv2d(x, wt, b, out=out) is out
    assert np.array_equal(out, F.conv2d(x, wt, b))
    g = rng.standard_normal(out.shape).astype(np.float32)
    bufs = [np.full(s, np.nan, np.float32) for s in (x.shape, wt.shape, (4,))]
    res = F.conv2d_backward(g, x, wt, grad_input=bufs[0], grad_weight=bufs[1], grad_bias=bufs[2])
    assert all(r is buf for r, buf in zip(res, bufs))
    for r, e in zip(res, F.conv2d_backward(g, x, wt)):
        assert np.array_equal(r, e)


def test_views_are_copied_silently(rng):
    x, wt, b = make(rng, 2, 3, 10, 12, 4, 3, 3)
    xv = np.asfortranarray(x)[:, :, ::2, 1::2]
    assert np.array_equal(F.conv2d(xv, wt[:, :, ::-1], b), F.conv2d(xv.copy(), wt[:, :, ::-1].copy(), b))


def test_empty_batch(rng):
    x = np.zeros((0, 3, 5, 5), np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(x, wt, np.ones(4, np.float32), padding=1)
    assert y.shape == (0, 4, 5, 5)
    gx, gw, gb = F.conv2d_backward(y, x, wt, padding=1)
    assert gx.shape == x.shape and (gw == 0).all() and gw.shape == wt.shape and (gb == 0).all()


def test_matches_torch_float32(rng):
    torch = pytest.importorskip("torch")
    for n, c, h, w, o, kh, kw, *args in SHAPES:
        x, wt, b = make(rng, n, c, h, w, o, kh, kw)
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(wt).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()
        ty = torch.nn.functional.conv2d(tx, tw, tb, *args)
        g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        ty.backward(torch.from_numpy(g))
        y = F.conv2d(x, wt, b, *args)
        scale = np.sqrt(c * kh * kw)  # both sides round in float32: ~sqrt(K) ulps typical
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-5 * scale)
        for mine, theirs in zip(F.conv2d_backward(g, x, wt, *args), (tx.grad, tw.grad, tb.grad)):
            ref = theirs.numpy()
            np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max() + 1e-6)


def test_layer_algorithm_check_uses_the_dilated_extent():
    """Conv2d(..., algorithm=...) checked its window on an input kh + 2 rows high, so a
    dilated kernel whose extent exceeds that (5x5, dilation 2: 9) raised at construction."""
    layer = fastnn.nn.Conv2d(2, 3, 5, padding=4, dilation=2, algorithm="direct")
    x = np.ones((1, 2, 6, 6), np.float32)
    assert layer(x).shape == (1, 3, 6, 6)
    with pytest.raises(ValueError, match="needs a 3x3 kernel, stride 1 and dilation 1"):
        fastnn.nn.Conv2d(2, 3, 3, dilation=2, algorithm="winograd")


@pytest.mark.parametrize("groups, cin, cout, kwargs", [
    (2, 4, 6, dict(kernel_size=3, padding=1)),
    (3, 3, 3, dict(kernel_size=(3, 2), stride=2, dilation=(1, 2))),  # depthwise
    (4, 8, 4, dict(kernel_size=2, padding="same", bias=False)),
])
def test_grouped_conv_matches_torch(rng, groups, cin, cout, kwargs):
    """Conv2d's groups (torch's) was missing (TypeError): outputs, input, weight and bias
    gradients are torch's, in a model too (not fused with its pool and relu)."""
    torch = pytest.importorskip("torch")
    layer = fastnn.nn.Conv2d(cin, cout, groups=groups, **kwargs)
    t_layer = torch.nn.Conv2d(cin, cout, groups=groups, **kwargs)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
    model = fastnn.nn.Sequential(layer, fastnn.nn.MaxPool2d(2), fastnn.nn.ReLU())
    t_model = torch.nn.Sequential(t_layer, torch.nn.MaxPool2d(2), torch.nn.ReLU())
    x = rng.standard_normal((2, cin, 9, 10)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = t_model(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(model(x), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.backward(g, need_input_grad=True), tx.grad.numpy(),
                               rtol=1e-5, atol=1e-5)
    for (_, p), (_, t) in zip(layer.named_parameters(), t_layer.named_parameters()):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by groups"):
        fastnn.nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros', 'reflect'"):
        fastnn.nn.Conv2d(4, 6, 3, padding_mode="mirror")


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, stride, groups", [(1, 1, 1), ((2, 1), 2, 2), ("same", 1, 1)])
def test_padding_modes_match_torch(rng, padding_mode, padding, stride, groups):
    """Conv2d's padding_mode (torch's reflect, replicate, circular) was missing: outputs,
    input gradients (folded back from the padding) and weight gradients are torch's."""
    torch = pytest.importorskip("torch")
    args = (2, 4, (3, 2), stride, padding, 1, groups, True, padding_mode)
    layer, t_layer = fastnn.nn.Conv2d(*args), torch.nn.Conv2d(*args)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
    x = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = t_layer(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, t_layer.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    wide = fastnn.nn.Conv2d(2, 4, 3, padding=7, padding_mode=padding_mode)
    if padding_mode == "replicate":  # any width, as torch's
        assert wide(x).shape == (2, 4, 19, 18)
    else:  # torch: reflect pads less than the size, circular at most the size
        with pytest.raises(ValueError, match="too large for padding_mode"):
            wide(x)


X = np.ones((2, 3, 8, 8), np.float32)
W = np.ones((4, 3, 3, 3), np.float32)
G = np.ones((2, 4, 6, 6), np.float32)

BAD_FORWARD = [
    (dict(x=X.astype(np.float64)), TypeError, "x must be a float32 array, got dtype float64"),
    (dict(weight=W.astype(np.float16)), TypeError, "weight must be a float32"),
    (dict(x=X[0]), ValueError, r"x must be 4-D, got shape \(3, 8, 8\)"),
    (dict(weight=W[0]), ValueError, "weight must be 4-D"),
    (dict(weight=np.ones((4, 2, 3, 3), np.float32)), ValueError, "x has 3 input channels.*weight expects 2"),
    (dict(weight=np.ones((4, 3, 9, 3), np.float32)), ValueError, "larger than the padded input"),
    (dict(dilation=4), ValueError, "larger than the padded input"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=(1, -2)), ValueError, "stride must be >= 1"),
    (dict(dilation=0), ValueError, "dilation must be >= 1"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(padding=1.5), TypeError, "padding must be an int or a pair"),
    (dict(stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
    (dict(bias=np.ones(5, np.float32)), ValueError, r"bias must have shape \(4,\), got \(5,\)"),
    (dict(bias=np.ones(4)), TypeError, "bias must be a float32"),
    (dict(out=np.empty((2, 4, 6, 5), np.float32)), ValueError, r"out must have shape \(2, 4, 6, 6\)"),
    (dict(out=np.empty((2, 4, 6, 6))), TypeError, "out must be a float32"),
    (dict(out=np.empty((2, 4, 6, 6), np.float32, order="F")), ValueError, "C-contiguous"),
    # a 1x1 output, as torch's, but a padded copy of 2**81 elements: it was "the C kernel
    # rejected its arguments", naming nothing
    (dict(padding=2**39, stride=2**40, dilation=2**39), ValueError,
     r"padding \(549755813888, 549755813888\) makes the padded input .* too large to index"),
    # 2**60 elements, past the kernels' 2**59 bound though 2**63 would index it
    (dict(padding=2**29, dilation=2**29), ValueError, "makes the padded input .* too large"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD_FORWARD)
def test_conv2d_bad_inputs(kw, exc, msg):
    args = dict(x=X, weight=W, bias=None, stride=1, padding=0, dilation=1)
    args.update(kw)
    out = args.pop("out", None)
    with pytest.raises(exc, match=msg):
        F.conv2d(**args, out=out)


BAD_BACKWARD = [
    (dict(grad_out=np.ones((2, 4, 6, 5), np.float32)), ValueError, r"grad_out must have shape \(2, 4, 6, 6\)"),
    (dict(grad_out=G.astype(np.float64)), TypeError, "grad_out must be a float32"),
    (dict(grad_out=G[0]), ValueError, "grad_out must be 4-D"),
    (dict(weight=np.ones((4, 2, 3, 3), np.float32)), ValueError, "input channels"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(grad_weight=np.empty((4, 3, 3, 2), np.float32)), ValueError, "grad_weight must have shape"),
    (dict(grad_input=np.empty(X.shape)), TypeError, "grad_input must be a float32"),
    (dict(grad_bias=np.empty((4, 1), np.float32)), ValueError, "grad_bias must have shape"),
    (dict(grad_input=X), ValueError, "grad_input overlaps an input"),
    (dict(grad_out=G[:, :, :1, :1], padding=2**39, stride=2**40, dilation=2**39), ValueError,
     "makes the padded input .* too large to index"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD_BACKWARD)
def test_conv2d_backward_bad_inputs(kw, exc, msg):
    args = dict(grad_out=G, x=X.copy(), weight=W)
    if "grad_input" in kw and kw["grad_input"] is X:
        kw = dict(grad_input=args["x"])
    args.update(kw)
    with pytest.raises(exc, match=msg):
        F.conv2d_backward(**args)


TRANSPOSED = [  # (N, C_in, C_out, H, W, kernel, stride, padding, output_padding, groups, dilation)
    (2, 4, 6, 5, 7, 3, 2, 1, 1, 2, 1), (1, 3, 2, 4, 4, 2, 1, 0, 0, 1, 1),
    (2, 2, 4, 3, 5, (3, 2), (2, 3), (1, 0), (1, 2), 1, (2, 1)), (3, 6, 3, 6, 6, 3, 1, 1, 0, 3, 1),
    (1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1), (2, 8, 16, 7, 7, 4, 2, 1, 0, 1, 1),
    (1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 1), (4, 16, 8, 14, 14, 3, 1, 1, 0, 1, 1),
    (2, 2, 2, 3, 4, 3, 1, 0, (1, 0), 1, (2, 1)),  # output_padding >= stride, < dilation
    (1, 4, 2, 1, 1, 2, (1, 2), 1, (2, 1), 2, (3, 2)),
]


@pytest.mark.parametrize("case", TRANSPOSED)
def test_conv_transpose2d_matches_the_float64_reference(isa, rng, case):
    """F.conv_transpose2d and its backward against fastnn.reference's (float64) within
    the dot-product bound, the reference itself the adjoint of conv2d (<conv_transpose(x),
    z> = <x, conv2d(z)> to float64 rounding) and torch's in float64."""
    n, ci, co, h, w, k, s, p, op, g, d = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, ci, h, w)).astype(np.float32)
    wt = rng.standard_normal((ci, co // g, kh, kw)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    args = (s, p, op, g, d)
    y = F.conv_transpose2d(x, wt, b, *args)
    ref = R.conv_transpose2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64),
                             *args)
    bound = R.conv_transpose2d(np.abs(x).astype(np.float64), np.abs(wt).astype(np.float64),
                               np.abs(b).astype(np.float64), *args)
    assert_bounded(y, ref, bound, ci // g * kh * kw + 1, "conv_transpose2d")
    gy = rng.standard_normal(y.shape).astype(np.float32)
    got = F.conv_transpose2d_backward(gy, x, wt, *args)
    want = R.conv_transpose2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                       wt.astype(np.float64), *args)
    bounds = R.conv_transpose2d_backward(np.abs(gy).astype(np.float64),
                                         np.abs(x).astype(np.float64),
                                         np.abs(wt).astype(np.float64), *args)
    for name, a, r, bnd, k_ in zip(("grad_x", "grad_weight", "grad_bias"), got, want, bounds,
                                   (co // g * kh * kw, n * h * w + 16, y[0, 0].size * n + 16)):
        assert a.shape == r.shape and a.dtype == np.float32, name
        assert_bounded(a, r, bnd, k_, name)
    z = rng.standard_normal(y.shape)  # the reference is conv2d's adjoint
    lhs = np.vdot(R.conv_transpose2d(x.astype(np.float64), wt.astype(np.float64), None, *args), z)
    conv = np.concatenate([R.conv2d(z[:, j * (co // g):(j + 1) * (co // g)],
                                    wt[j * (ci // g):(j + 1) * (ci // g)].astype(np.float64),
                                    None, s, p, d) for j in range(g)], 1)[:, :, :h, :w]
    assert lhs == pytest.approx(np.vdot(x.astype(np.float64), conv), rel=1e-12, abs=1e-12)
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.conv_transpose2d(torch.tensor(x, dtype=torch.float64),
                                             torch.tensor(wt, dtype=torch.float64),
                                             torch.tensor(b, dtype=torch.float64), *args)
    np.testing.assert_allclose(ref, t.numpy(), rtol=1e-12, atol=1e-12)


def test_conv_transpose2d_layer_trains_as_torchs(rng):
    """nn.ConvTranspose2d in a small autoencoder (torch's arguments, weight layout, init
    ranges and state_dict keys): outputs, input gradient and three Adam steps as torch's."""
    torch = pytest.importorskip("torch")
    nn, tnn = fastnn.nn, torch.nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1,
                                             groups=2, dilation=1, bias=True),
                          nn.ReLU(), nn.ConvTranspose2d(2, 1, (1, 1), bias=False))
    t_model = tnn.Sequential(tnn.Conv2d(1, 4, 3, stride=2, padding=1), tnn.ReLU(),
                             tnn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1,
                                                 groups=2), tnn.ReLU(),
                             tnn.ConvTranspose2d(2, 1, (1, 1), bias=False))
    assert list(model.state_dict()) == list(t_model.state_dict())
    assert repr(model) == repr(t_model)
    assert [v.shape for v in model.state_dict().values()] == \
        [tuple(v.shape) for v in t_model.state_dict().values()]
    bound = 1 / np.sqrt(1 * 3 * 3)  # torch's range: weight's dimension 1 is the fan-in
    w = nn.ConvTranspose2d(4, 2, 3, groups=2, seed=0).weight.data
    assert 0.8 * bound < np.abs(w).max() <= bound
    model.load_state_dict({k: v.numpy() for k, v in t_model.state_dict().items()})
    x = rng.random((3, 1, 8, 8), dtype=np.float32)
    opt, t_opt = fastnn.optim.Adam(model.parameters(), 0.01), torch.optim.Adam(
        t_model.parameters(), 0.01)
    loss_fn = fastnn.losses.MSELoss()
    for _ in range(3):
        opt.zero_grad()
        t_opt.zero_grad()
        out = model(x)
        assert out.shape == (3, 1, 8, 8)
        loss = loss_fn(out, x)
        dx = model.backward(loss_fn.backward(), need_input_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        t_loss = torch.nn.functional.mse_loss(t_model(tx), torch.tensor(x))
        t_loss.backward()
        assert loss == pytest.approx(t_loss.item(), rel=1e-5)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-6)
        opt.step()
        t_opt.step()
    for (k, v), t in zip(model.state_dict().items(), t_model.state_dict().values()):
        np.testing.assert_allclose(v, t.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_conv_transpose2d_saves_profiles_and_refuses_bad_arguments(tmp_path, rng):
    nn = fastnn.nn
    model = nn.Sequential(nn.ConvTranspose2d(3, 4, 2, stride=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 2), input_shape=(3, 4, 4))
    x = rng.random((2, 3, 4, 4), dtype=np.float32)
    fastnn.save(model, tmp_path / "m.fastnn")
    np.testing.assert_array_equal(fastnn.load(tmp_path / "m.fastnn")(x), model(x))
    model.profile(x, np.array([0, 1]), repeat=1, file=io.StringIO())
    # multiply-adds: each of the 2 * 4 * 4 input pixels meets the 3 * 4 * 2 * 2 weights
    assert model[0].macs((2, 4, 8, 8)) == 2 * 4 * 4 * 3 * 4 * 2 * 2
    for make, error, match in [
            (lambda: nn.ConvTranspose2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
            (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2), ValueError,
             "output_padding"),
            (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), ValueError,
             "only padding_mode='zeros'"),
            (lambda: nn.ConvTranspose2d(3, 4, 0), ValueError, "kernel_size, stride"),
            (lambda: nn.ConvTranspose2d(3, 4, 3, padding=5)(x), ValueError, "too small"),
            (lambda: F.conv_transpose2d(x, np.ones((2, 4, 3, 3), np.float32)), ValueError,
             "must share C_in"),
            (lambda: F.conv_transpose2d(x.astype(np.float64), np.ones((3, 4, 3, 3), np.float32)),
             TypeError, "x must be a float32 array"),
            (lambda: F.conv_transpose2d(x, np.ones((3, 4, 3, 3), np.float32), stride=0),
             ValueError, r"stride must lie in \[1, 2\*\*40\]"),
            (lambda: F.conv_transpose2d_backward(np.ones((2, 4, 5, 5), np.float32), x,
                                                 np.ones((3, 4, 3, 3), np.float32)),
             ValueError, r"grad_out must have shape \(2, 4, 6, 6\)")]:
        with pytest.raises(error, match=match):
            make()


@pytest.mark.parametrize("algorithm", [None, "direct", "winograd"])
def test_zero_input_channels(isa, rng, algorithm):
    """An input of 0 channels (and a (C_out, 0, kh, kw) weight) divided by zero in the
    conv plan (SIGFPE): the output is the bias, every gradient but the bias's empty or 0,
    fused with a pool too, and a transposed convolution to 0 channels likewise."""
    x = np.zeros((2, 0, 6, 6), np.float32)
    w, b = np.zeros((3, 0, 3, 3), np.float32), rng.standard_normal(3).astype(np.float32)
    y = F.conv2d(x, w, b, 1, 1, algorithm=algorithm)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 3, 1, 1), (2, 3, 6, 6)))
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, gb = F.conv2d_backward(g, x, w, 1, 1, algorithm=algorithm)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-5)
    p, pos = F.conv2d_max_pool2d(x, w, b, 1, 1, algorithm=algorithm)
    np.testing.assert_array_equal(p, np.broadcast_to(b.reshape(1, 3, 1, 1), (2, 3, 3, 3)))
    F.conv2d_max_pool2d_backward(p, pos, x, w, 1, 1, algorithm=algorithm)
    t = F.conv_transpose2d(rng.standard_normal((2, 3, 4, 4)).astype(np.float32),
                           np.zeros((3, 0, 3, 3), np.float32))
    assert t.shape == (2, 0, 6, 6)
