"""Tests for fastnn.reference, the pure-NumPy ground truth of every op.

Backward passes are checked against central finite differences in float64,
forward passes on small hand-computed examples, and, when torch is installed,
every forward, backward and optimizer step against PyTorch.
"""

import math

import numpy as np
import pytest

from fastnn import reference as ref

FD_EPS = 1e-6
FD_RTOL = 1e-6


def numerical_grad(f, x, g, eps=FD_EPS):
    """Central-difference gradient of sum(g * f(x)) with respect to the array x."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        up = np.sum(g * f(x))
        flat[i] = orig - eps
        down = np.sum(g * f(x))
        flat[i] = orig
        gflat[i] = (up - down) / (2 * eps)
    return grad


def assert_grad_close(analytic, numeric):
    """Finite-difference agreement, relative to the size of the gradient."""
    scale = max(1.0, float(np.abs(numeric).max()))
    np.testing.assert_allclose(analytic, numeric, rtol=FD_RTOL, atol=FD_RTOL * scale)


def distinct_values(rng, shape, spacing=1e-2, offset=0.5):
    """Random permutation of values spaced `spacing` apart, none of them zero."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2 + offset) * spacing).reshape(shape)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Shapes: (x_shape, weight_shape, stride, padding, dilation).
CONV_CASES = [
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, 1, id="basic"),
    pytest.param((2, 2, 7, 6), (3, 2, 3, 3), 2, 0, 1, id="stride2"),
    pytest.param((2, 2, 5, 5), (3, 2, 3, 3), 1, 1, 1, id="pad1"),
    pytest.param((2, 2, 6, 7), (3, 2, 2, 3), (2, 1), (1, 0), 1, id="nonsquare"),
    pytest.param((1, 2, 7, 7), (2, 2, 3, 3), 1, 1, 2, id="dilation2"),
    pytest.param((1, 3, 4, 4), (2, 3, 3, 3), 1, 1, 1, id="batch1"),
    pytest.param((2, 3, 4, 4), (2, 3, 1, 1), 1, 0, 1, id="1x1"),
    pytest.param((1, 1, 7, 6), (1, 1, 2, 2), 3, 0, 1, id="stride-skips-rows"),
]

# (x_shape, kernel_size, stride, padding).
POOL_CASES = [
    pytest.param((2, 2, 4, 4), 2, None, 0, id="k2"),
    pytest.param((2, 2, 5, 5), 3, 2, 1, id="overlap-pad1"),
    pytest.param((1, 2, 5, 4), 3, 1, 1, id="stride1-pad1"),
    pytest.param((2, 1, 5, 6), (2, 3), (1, 2), (1, 1), id="nonsquare"),
    pytest.param((1, 1, 7, 7), 2, 3, 0, id="stride-skips-rows"),
]

# (forward, backward, backward takes the forward output rather than the input).
ACTIVATIONS = [
    pytest.param(ref.relu, ref.relu_backward, False, id="relu"),
    pytest.param(ref.leaky_relu, ref.leaky_relu_backward, False, id="leaky_relu"),
    pytest.param(
        lambda x: ref.leaky_relu(x, 0.2),
        lambda g, x: ref.leaky_relu_backward(g, x, 0.2),
        False,
        id="leaky_relu-0.2",
    ),
    pytest.param(ref.sigmoid, ref.sigmoid_backward, True, id="sigmoid"),
    pytest.param(ref.tanh, ref.tanh_backward, True, id="tanh"),
    pytest.param(ref.softmax, ref.softmax_backward, True, id="softmax"),
    pytest.param(ref.log_softmax, ref.log_softmax_backward, True, id="log_softmax"),
    pytest.param(ref.gelu, ref.gelu_backward, False, id="gelu"),
    pytest.param(lambda x: ref.gelu(x, "tanh"), lambda g, x: ref.gelu_backward(g, x, "tanh"),
                 False, id="gelu-tanh"),
    pytest.param(ref.silu, ref.silu_backward, False, id="silu"),
    pytest.param(ref.elu, ref.elu_backward, False, id="elu"),
    pytest.param(lambda x: ref.elu(x, -0.5), lambda g, x: ref.elu_backward(g, x, -0.5), False,
                 id="elu--0.5"),
]


# ---------------------------------------------------------------------------
# Backward passes against finite differences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
def test_linear_backward_fd(rng, x_shape):
    x, w, b = rng.normal(size=x_shape), rng.normal(size=(5, 4)), rng.normal(size=5)
    g = rng.normal(size=x_shape[:-1] + (5,))
    gx, gw, gb = ref.linear_backward(g, x, w)
    assert_grad_close(gx, numerical_grad(lambda t: ref.linear(t, w, b), x, g))
    assert_grad_close(gw, numerical_grad(lambda t: ref.linear(x, t, b), w, g))
    assert_grad_close(gb, numerical_grad(lambda t: ref.linear(x, w, t), b, g))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_dropout_backward_fd(rng, p):
    """Dropout's gradient is dropout of the gradient with the same seed."""
    x, g = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    assert_grad_close(ref.dropout(g, p, 5), numerical_grad(lambda t: ref.dropout(t, p, 5), x, g))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", CONV_CASES)
def test_conv2d_backward_fd(rng, x_shape, w_shape, stride, padding, dilation):
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    args = dict(stride=stride, padding=padding, dilation=dilation)
    g = rng.normal(size=ref.conv2d(x, w, b, **args).shape)
    gx, gw, gb = ref.conv2d_backward(g, x, w, **args)
    assert_grad_close(gx, numerical_grad(lambda t: ref.conv2d(t, w, b, **args), x, g))
    assert_grad_close(gw, numerical_grad(lambda t: ref.conv2d(x, t, b, **args), w, g))
    assert_grad_close(gb, numerical_grad(lambda t: ref.conv2d(x, w, t, **args), b, g))


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
def test_max_pool2d_backward_fd(rng, x_shape, kernel_size, stride, padding):
    x = distinct_values(rng, x_shape)
    pool = lambda t: ref.max_pool2d(t, kernel_size, stride, padding)  # noqa: E731
    g = rng.normal(size=pool(x).shape)
    gx = ref.max_pool2d_backward(g, x, kernel_size, stride, padding)
    assert_grad_close(gx, numerical_grad(pool, x, g))


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
def test_avg_pool2d_backward_fd(rng, x_shape, kernel_size, stride, padding):
    x = rng.normal(size=x_shape)
    pool = lambda t: ref.avg_pool2d(t, kernel_size, stride, padding)  # noqa: E731
    g = rng.normal(size=pool(x).shape)
    gx = ref.avg_pool2d_backward(g, x, kernel_size, stride, padding)
    assert_grad_close(gx, numerical_grad(pool, x, g))


@pytest.mark.parametrize("forward, backward, uses_output", ACTIVATIONS)
def test_activation_backward_fd(rng, forward, backward, uses_output):
    x = distinct_values(rng, (4, 5), spacing=0.3)  # no zeros near the FD step for relu
    g = rng.normal(size=x.shape)
    analytic = backward(g, forward(x) if uses_output else x)
    assert_grad_close(analytic, numerical_grad(forward, x, g))


def test_cross_entropy_probs_backward_fd(rng):
    logits, probs = rng.standard_normal((5, 4)) * 3, rng.random((5, 4))
    numeric = numerical_grad(lambda t: ref.cross_entropy_probs(t, probs), logits, 1.0)
    assert_grad_close(ref.cross_entropy_probs_backward(logits, probs), numeric)
    labels = np.array([0, 3, 1, 1, 2])  # one-hot probabilities: the labels' loss
    assert ref.cross_entropy_probs(logits, np.eye(4)[labels]) == pytest.approx(
        ref.cross_entropy(logits, labels))


def test_cross_entropy_backward_fd(rng):
    logits, labels = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
    numeric = numerical_grad(lambda t: ref.cross_entropy(t, labels), logits, 1.0)
    assert_grad_close(ref.cross_entropy_backward(logits, labels), numeric)


def test_bce_with_logits_backward_fd(rng):
    logits, targets = rng.normal(size=(4, 3)) * 3, rng.uniform(size=(4, 3))
    loss = lambda t: ref.binary_cross_entropy_with_logits(t, targets)  # noqa: E731
    analytic = ref.binary_cross_entropy_with_logits_backward(logits, targets)
    assert_grad_close(analytic, numerical_grad(loss, logits, 1.0))


def test_mse_loss_backward_fd(rng):
    pred, target = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    numeric = numerical_grad(lambda t: ref.mse_loss(t, target), pred, 1.0)
    assert_grad_close(ref.mse_loss_backward(pred, target), numeric)


# (x_shape, output_size): windows that divide, overlap, cover everything, or repeat.
ADAPTIVE_CASES = [
    pytest.param((2, 2, 6, 4), (3, 2), id="divides"),
    pytest.param((1, 2, 7, 5), (3, 2), id="overlap"),
    pytest.param((2, 1, 3, 4), 1, id="global"),
    pytest.param((1, 1, 3, 2), (5, None), id="larger-and-none"),
]


@pytest.mark.parametrize("x_shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_backward_fd(rng, x_shape, output_size):
    x = rng.normal(size=x_shape)
    pool = lambda t: ref.adaptive_avg_pool2d(t, output_size)  # noqa: E731
    g = rng.normal(size=pool(x).shape)
    assert_grad_close(ref.adaptive_avg_pool2d_backward(g, x.shape), numerical_grad(pool, x, g))


@pytest.mark.parametrize("shapes, axis", [([(2, 3, 2), (2, 1, 2)], 1), ([(2, 2), (3, 2)], 0)])
def test_merge_backward_fd(rng, shapes, axis):
    xs = [rng.normal(size=s) for s in shapes]
    g = rng.normal(size=ref.concatenate(xs, axis).shape)
    grads = ref.concatenate_backward(g, [s[axis] for s in shapes], axis)
    for i, x in enumerate(xs):
        f = lambda t: ref.concatenate(xs[:i] + [t] + xs[i + 1:], axis)  # noqa: E731
        assert_grad_close(grads[i], numerical_grad(f, x, g))
    same = [rng.normal(size=shapes[0]) for _ in range(3)]  # add: the identity for each input
    g = rng.normal(size=shapes[0])
    for i, x in enumerate(same):
        f = lambda t: ref.add(same[:i] + [t] + same[i + 1:])  # noqa: E731
        assert_grad_close(g, numerical_grad(f, x, g))


# (x_shape, affine): 2-D, 3-D and 4-D inputs, N = 2, C = 1, odd spatial sizes.
BN_CASES = [
    pytest.param((5, 3), True, id="2d"),
    pytest.param((2, 3, 5), True, id="3d"),
    pytest.param((2, 2, 3, 3), True, id="4d"),
    pytest.param((3, 1, 3, 1), False, id="c1-no-affine"),
]


def bn_args(rng, x_shape, affine):
    c = x_shape[1]
    x = rng.normal(size=x_shape) * 2 + 1
    w, b = (rng.normal(size=c), rng.normal(size=c)) if affine else (None, None)
    return x, w, b, rng.normal(size=c), rng.random(c) + 0.5


@pytest.mark.parametrize("x_shape, affine", BN_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_fd(rng, x_shape, affine, training):
    x, w, b, rm, rv = bn_args(rng, x_shape, affine)
    args = dict(training=training, eps=1e-3)

    def bn(x, w=w, b=b):  # fresh copies: the running statistics are updated in place
        return ref.batch_norm(x, rm.copy(), rv.copy(), w, b, **args)[0]

    _, mean, invstd = ref.batch_norm(x, rm.copy(), rv.copy(), w, b, **args)
    g = rng.normal(size=x_shape)
    gx, gw, gb = ref.batch_norm_backward(g, x, w, mean, invstd, training=training)
    assert_grad_close(gx, numerical_grad(bn, x, g))
    if affine:
        assert_grad_close(gw, numerical_grad(lambda t: bn(x, t, b), w, g))
        assert_grad_close(gb, numerical_grad(lambda t: bn(x, w, t), b, g))
    else:
        assert gw is None and gb is None


# (x_shape, normalized_shape, weight, bias)
LN_CASES = [
    pytest.param((4, 5), (5,), True, True, id="2d"),
    pytest.param((2, 3, 4), (3, 4), True, False, id="two-dims-no-bias"),
    pytest.param((3, 6), 6, False, False, id="no-affine"),
    pytest.param((2, 1, 3), (3,), False, True, id="bias-only"),
]


def ln_args(rng, x_shape, normalized_shape, weight, bias):
    shape = x_shape[len(x_shape) - len(np.atleast_1d(normalized_shape)):]
    x = rng.normal(size=x_shape) * 2 + 1
    return (x, rng.normal(size=shape) if weight else None,
            rng.normal(size=shape) if bias else None)


@pytest.mark.parametrize("x_shape, normalized_shape, weight, bias", LN_CASES)
def test_layer_norm_backward_fd(rng, x_shape, normalized_shape, weight, bias):
    x, w, b = ln_args(rng, x_shape, normalized_shape, weight, bias)

    def ln(x, w=w, b=b):
        return ref.layer_norm(x, normalized_shape, w, b, eps=1e-3)[0]

    _, mean, rstd = ref.layer_norm(x, normalized_shape, w, b, eps=1e-3)
    assert mean.shape == rstd.shape == x.shape[:x.ndim - np.ndim(np.zeros(normalized_shape))]
    g = rng.normal(size=x_shape)
    gx, gw, gb = ref.layer_norm_backward(g, x, normalized_shape, mean, rstd, w, b)
    assert_grad_close(gx, numerical_grad(ln, x, g))
    if weight:
        assert_grad_close(gw, numerical_grad(lambda t: ln(x, t, b), w, g))
    else:
        assert gw is None
    if bias:
        assert_grad_close(gb, numerical_grad(lambda t: ln(x, w, t), b, g))
    else:
        assert gb is None


# ---------------------------------------------------------------------------
# Forward values on hand-checked examples
# ---------------------------------------------------------------------------


def test_conv2d_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    # 1*1 + 2*2 + 4*3 + 5*4 = 37, and so on for each 2x2 window.
    expected = np.array([[37.0, 47.0], [67.0, 77.0]]) + 0.5
    np.testing.assert_array_equal(ref.conv2d(x, w, np.array([0.5]))[0, 0], expected)
    # Padding 1, stride 2: the corner windows see 1, 2 or 4 real pixels.
    padded = ref.conv2d(x, w, stride=2, padding=1)[0, 0]
    np.testing.assert_array_equal(padded, [[1 * 4, 2 * 3 + 3 * 4], [4 * 2 + 7 * 4, 77]])
    # Dilation 2 with a 2x2 kernel reads the four corners of the 3x3 input.
    np.testing.assert_array_equal(ref.conv2d(x, w, dilation=2), [[[[1 + 6 + 21 + 36]]]])


def test_im2col_layout_and_output_shape():
    x = np.arange(2 * 2 * 3 * 4, dtype=np.float64).reshape(2, 2, 3, 4)
    cols = ref.im2col(x, (2, 3), 1, 0, 1)
    assert cols.shape == (2, 2 * 2 * 3, 2 * 2)
    # Row c*kh*kw + i*kw + j, column oh*OW + ow holds x[n, c, oh + i, ow + j].
    assert cols[1, 1 * 6 + 1 * 3 + 2, 1 * 2 + 1] == x[1, 1, 2, 3]
    assert ref.conv2d_output_shape(28, 28, 5, 1, 2, 1) == (28, 28)
    assert ref.conv2d_output_shape(7, 9, (3, 2), (2, 3), (1, 0), (2, 1)) == (3, 3)
    assert ref.conv2d_output_shape(10, 10, 3, 2, 0, 1) == (4, 4)


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride=0), dict(stride=(1, -1)), dict(padding=-1), dict(dilation=0)],
)
def test_conv2d_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ref.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), **kwargs)


def test_conv2d_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        ref.conv2d(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError):  # kernel larger than the input
        ref.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))


def test_max_pool2d_tie_picks_first_maximum():
    x = np.array([[[[1.0, 7.0, 7.0], [7.0, 0.0, 2.0]]]])
    y, idx = ref.max_pool2d_with_indices(x, 2, stride=1)
    np.testing.assert_array_equal(y, [[[[7.0, 7.0]]]])
    assert idx.dtype == np.int64
    # Window (0, 0) holds 7 at (0,1) and (1,0): row-major order picks (0,1) -> index 1.
    # Window (0, 1) holds 7 at (0,1) and (0,2): the first is again index 1.
    np.testing.assert_array_equal(idx, [[[[1, 1]]]])
    # The tie sends both gradients to the single winning input.
    gx = ref.max_pool2d_backward(np.array([[[[1.0, 10.0]]]]), x, 2, stride=1)
    np.testing.assert_array_equal(gx, [[[[0.0, 11.0, 0.0], [0.0, 0.0, 0.0]]]])


def test_max_pool2d_padding_is_negative_infinity():
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # all negative: zero padding would win
    y, idx = ref.max_pool2d_with_indices(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])


def test_window_positions_by_hand():
    """conv2d_max_pool2d's byte positions: (row - top) * kw + column - left in the window,
    the maxima of max_pool2d_with_indices (padding never wins)."""
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y, pos = ref.max_pool2d_window_positions(x, 2, stride=1, padding=1)
    assert pos.dtype == np.uint8
    np.testing.assert_array_equal(y, ref.max_pool2d(x, 2, stride=1, padding=1))
    # window (i, j) starts at (i - 1, j - 1): element (0, 0) is its position 3, 2, 1, 0
    np.testing.assert_array_equal(pos[0, 0], [[3, 2, 2], [1, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="256 window positions"):
        ref.max_pool2d_window_positions(np.zeros((1, 1, 17, 17)), (16, 17))


@pytest.mark.parametrize("pool", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 1))])
def test_conv2d_max_pool2d_backward_fd(rng, pool):
    x, w, b = distinct_values(rng, (2, 2, 7, 6)), rng.normal(size=(3, 2, 2, 2)), rng.normal(size=3)
    fused = lambda t, u, v: ref.conv2d_max_pool2d(t, u, v, 1, 1, 1, *pool)[0]  # noqa: E731
    y, pos = ref.conv2d_max_pool2d(x, w, b, 1, 1, 1, *pool)
    g = rng.normal(size=y.shape)
    gx, gw, gb = ref.conv2d_max_pool2d_backward(g, pos, x, w, 1, 1, 1, *pool)
    assert_grad_close(gx, numerical_grad(lambda t: fused(t, w, b), x, g))
    assert_grad_close(gw, numerical_grad(lambda t: fused(x, t, b), w, g))
    assert_grad_close(gb, numerical_grad(lambda t: fused(x, w, t), b, g))


def test_avg_pool2d_counts_padding():
    x = np.ones((1, 1, 2, 2))
    y = ref.avg_pool2d(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


@pytest.mark.parametrize("pool", [ref.max_pool2d, ref.avg_pool2d])
def test_pool_rejects_padding_over_half_kernel(pool):
    with pytest.raises(ValueError):
        pool(np.zeros((1, 1, 5, 5)), 3, padding=2)
    with pytest.raises(ValueError):
        pool(np.zeros((1, 1, 5, 5)), 2, stride=0)


def test_relu_family_at_zero():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(ref.relu(x), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(ref.relu_backward(np.ones(3), x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ref.leaky_relu(x, 0.5), [-1.0, 0.0, 3.0])
    np.testing.assert_array_equal(ref.leaky_relu_backward(np.ones(3), x, 0.5), [0.5, 0.5, 1.0])


def test_softmax_rows_sum_to_one_and_are_stable():
    x = np.array([[1.0, 2.0, 3.0], [1e4, 0.0, -1e4], [1e4, 1e4, 1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = ref.softmax(x)
        log_y = ref.log_softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(y[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[2], [1 / 3] * 3)
    np.testing.assert_allclose(log_y[1], [0.0, -1e4, -2e4])
    np.testing.assert_allclose(np.exp(log_y), y, rtol=1e-14)


def test_sigmoid_is_finite_for_large_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = ref.sigmoid(np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0]))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [0.0, 1 / (1 + math.e), 0.5, 1 / (1 + 1 / math.e), 1.0])


def test_losses_by_hand():
    assert ref.cross_entropy(np.zeros((3, 7)), np.array([0, 3, 6])) == pytest.approx(math.log(7))
    np.testing.assert_allclose(
        ref.cross_entropy_backward(np.zeros((2, 4)), np.array([1, 3])),
        [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]],
    )
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        big = ref.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0]), np.zeros(2))
    assert big == pytest.approx(500.0)  # (1000 + 0) / 2
    assert ref.binary_cross_entropy_with_logits(np.zeros(4), np.ones(4)) == pytest.approx(
        math.log(2)
    )
    assert ref.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 4.0])) == pytest.approx(2.5)
    np.testing.assert_allclose(ref.mse_loss_backward(np.array([1.0, 2.0]), np.zeros(2)), [1, 2])


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0.0, 1.0], [0]])
def test_cross_entropy_rejects_bad_labels(labels):
    with pytest.raises(ValueError):
        ref.cross_entropy(np.zeros((2, 3)), np.array(labels))


def test_flatten_matches_c_order():
    x = np.arange(24).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(ref.flatten(x), np.arange(24).reshape(2, 12))


def test_float32_stays_float32(rng):
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    x, w, b = f32(2, 3, 6, 6), f32(4, 3, 3, 3), f32(4)
    y = ref.conv2d(x, w, b, padding=1)
    for out in (
        y,
        *ref.conv2d_backward(y, x, w, padding=1),
        ref.im2col(x, 3, 1, 1, 1),
        ref.max_pool2d(x, 2),
        ref.max_pool2d_backward(ref.max_pool2d(x, 2), x, 2),
        ref.avg_pool2d(x, 3, 2, 1),
        ref.avg_pool2d_backward(ref.avg_pool2d(x, 3, 2, 1), x, 3, 2, 1),
        *ref.linear_backward(f32(5, 4), f32(5, 3), f32(4, 3)),
        ref.relu_backward(x, x),
        ref.leaky_relu(x),
        ref.sigmoid(x),
        ref.softmax_backward(x, ref.softmax(x)),
        ref.log_softmax_backward(x, ref.log_softmax(x)),
        ref.cross_entropy_backward(f32(3, 4), np.array([0, 1, 2])),
        ref.mse_loss(x, x),
    ):
        assert out.dtype == np.float32


def test_optimizer_steps_by_hand():
    param, grad, buf = np.array([1.0, -2.0]), np.array([0.5, -0.25]), np.zeros(2)
    ref.sgd_step(param, grad, buf, lr=0.1, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(buf, grad)  # first step: the buffer is the gradient
    np.testing.assert_allclose(param, [0.95, -1.975])
    ref.sgd_step(param, grad, buf, lr=0.1, momentum=0.9, dampening=0.5, first_step=False)
    np.testing.assert_allclose(buf, 0.9 * grad + 0.5 * grad)

    # Adam's first step moves each parameter by about lr against the sign of its gradient.
    param, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    ref.adam_step(param, grad, m, v, step=1, lr=0.01)
    np.testing.assert_allclose(param, [0.99, -1.99], rtol=1e-7)
    with pytest.raises(ValueError):
        ref.adam_step(param, grad, m, v, step=0)
    with pytest.raises(ValueError):
        ref.sgd_step(param, grad, buf, lr=0.1, nesterov=True, first_step=True)


# ---------------------------------------------------------------------------
# Against PyTorch (optional)
# ---------------------------------------------------------------------------

TORCH_RTOL = 1e-12
TORCH_ATOL = 1e-12


def assert_matches_torch(actual, expected):
    """Tight float64 agreement with a torch tensor (or a number)."""
    expected = expected.detach().numpy() if hasattr(expected, "detach") else expected
    np.testing.assert_allclose(actual, expected, rtol=TORCH_RTOL, atol=TORCH_ATOL)


def torch_grads(fn, *arrays, grad_out=None):
    """Run fn on float64 leaf tensors; return (output, input gradients) via autograd."""
    torch = pytest.importorskip("torch")
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(None if grad_out is None else torch.from_numpy(grad_out))
    return out, [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
def test_linear_matches_torch(rng, x_shape):
    F = pytest.importorskip("torch.nn.functional")
    x, w, b = rng.normal(size=x_shape), rng.normal(size=(5, 4)), rng.normal(size=5)
    g = rng.normal(size=x_shape[:-1] + (5,))
    out, grads = torch_grads(F.linear, x, w, b, grad_out=g)
    assert_matches_torch(ref.linear(x, w, b), out)
    for mine, theirs in zip(ref.linear_backward(g, x, w), grads):
        assert_matches_torch(mine, theirs)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", CONV_CASES)
def test_conv2d_matches_torch(rng, x_shape, w_shape, stride, padding, dilation):
    F = pytest.importorskip("torch.nn.functional")
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    args = dict(stride=stride, padding=padding, dilation=dilation)
    y = ref.conv2d(x, w, b, **args)
    g = rng.normal(size=y.shape)
    out, grads = torch_grads(lambda *t: F.conv2d(*t, **args), x, w, b, grad_out=g)
    assert_matches_torch(y, out)
    for mine, theirs in zip(ref.conv2d_backward(g, x, w, **args), grads):
        assert_matches_torch(mine, theirs)


def pool_inputs(rng, shape):
    """Inputs for pooling: distinct values, heavy ties, and -inf/NaN windows."""
    ties = rng.integers(0, 3, size=shape).astype(np.float64)
    special = rng.normal(size=shape)
    special[..., :2, :2] = -np.inf
    special[:, 0, -1, -1] = np.nan
    special[:, 0, -2, -1] = np.nan
    return {"distinct": distinct_values(rng, shape), "ties": ties, "inf-nan": special}


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
def test_max_pool2d_matches_torch(rng, x_shape, kernel_size, stride, padding):
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torch.nn.functional")
    for name, x in pool_inputs(rng, x_shape).items():
        y, idx = ref.max_pool2d_with_indices(x, kernel_size, stride, padding)
        t_y, t_idx = F.max_pool2d_with_indices(torch.from_numpy(x), kernel_size, stride, padding)
        np.testing.assert_array_equal(y, t_y.numpy(), err_msg=name)
        np.testing.assert_array_equal(idx, t_idx.numpy(), err_msg=name)
        assert idx.dtype == np.int64
        if name == "inf-nan":
            continue  # gradients through NaN/-inf inputs are not meaningful
        g = rng.normal(size=y.shape)
        _, (t_gx,) = torch_grads(
            lambda t: F.max_pool2d(t, kernel_size, stride, padding), x, grad_out=g
        )
        assert_matches_torch(ref.max_pool2d_backward(g, x, kernel_size, stride, padding), t_gx)


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
def test_avg_pool2d_matches_torch(rng, x_shape, kernel_size, stride, padding):
    F = pytest.importorskip("torch.nn.functional")
    x = rng.normal(size=x_shape)
    y = ref.avg_pool2d(x, kernel_size, stride, padding)
    g = rng.normal(size=y.shape)
    out, (t_gx,) = torch_grads(
        lambda t: F.avg_pool2d(t, kernel_size, stride, padding), x, grad_out=g
    )
    assert_matches_torch(y, out)
    assert_matches_torch(ref.avg_pool2d_backward(g, x, kernel_size, stride, padding), t_gx)


def torch_activation(name):
    """The torch.nn.functional counterpart of an ACTIVATIONS entry."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return {
        "relu": F.relu,
        "leaky_relu": F.leaky_relu,
        "leaky_relu-0.2": lambda t: F.leaky_relu(t, 0.2),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda t: F.softmax(t, dim=-1),
        "log_softmax": lambda t: F.log_softmax(t, dim=-1),
        "gelu": F.gelu,
        "gelu-tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "elu": F.elu,
        "elu--0.5": lambda t: F.elu(t, -0.5),
    }[name]


@pytest.mark.parametrize(
    "name, forward, backward, uses_output",
    [pytest.param(p.id, *p.values, id=p.id) for p in ACTIVATIONS],
)
def test_activation_matches_torch(rng, name, forward, backward, uses_output):
    x = rng.normal(size=(3, 4, 5)) * 4
    x[0, 0, :3] = [0.0, -0.0, 30.0]  # exact zeros for the relu family's gradient
    x[1, 1] = [1e4, -1e4, 800.0, -800.0, 0.0]  # extremes for the stable formulas
    g = rng.normal(size=x.shape)
    out, (t_gx,) = torch_grads(torch_activation(name), x, grad_out=g)
    y = forward(x)
    assert_matches_torch(y, out)
    assert_matches_torch(backward(g, y if uses_output else x), t_gx)


def test_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, labels = rng.normal(size=(6, 5)) * 3, rng.integers(0, 5, size=6)
    out, (t_g,) = torch_grads(lambda t: F.cross_entropy(t, torch.from_numpy(labels)), logits)
    assert_matches_torch(ref.cross_entropy(logits, labels), out)
    assert_matches_torch(ref.cross_entropy_backward(logits, labels), t_g)

    logits, targets = rng.normal(size=(4, 3)) * 5, rng.uniform(size=(4, 3))
    logits[0, :2] = [100.0, -100.0]
    out, (t_g,) = torch_grads(
        lambda t: F.binary_cross_entropy_with_logits(t, torch.from_numpy(targets)), logits
    )
    assert_matches_torch(ref.binary_cross_entropy_with_logits(logits, targets), out)
    assert_matches_torch(ref.binary_cross_entropy_with_logits_backward(logits, targets), t_g)

    pred, target = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    out, (t_g,) = torch_grads(lambda t: F.mse_loss(t, torch.from_numpy(target)), pred)
    assert_matches_torch(ref.mse_loss(pred, target), out)
    assert_matches_torch(ref.mse_loss_backward(pred, target), t_g)


def test_flatten_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_array_equal(ref.flatten(x), torch.flatten(torch.from_numpy(x), 1).numpy())


@pytest.mark.parametrize("x_shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_torch(rng, x_shape, output_size):
    F = pytest.importorskip("torch.nn.functional")
    x = rng.normal(size=x_shape)
    y = ref.adaptive_avg_pool2d(x, output_size)
    g = rng.normal(size=y.shape)
    out, (t_gx,) = torch_grads(lambda t: F.adaptive_avg_pool2d(t, output_size), x, grad_out=g)
    assert_matches_torch(y, out)
    assert_matches_torch(ref.adaptive_avg_pool2d_backward(g, x.shape), t_gx)


@pytest.mark.parametrize("x_shape, affine", BN_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(rng, x_shape, affine, training):
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torch.nn.functional")
    x, w, b, rm, rv = bn_args(rng, x_shape, affine)
    x[:, 0] = 0.25  # a constant channel: variance 0
    t_rm, t_rv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    args = dict(training=training, momentum=0.3, eps=1e-3)
    y, mean, invstd = ref.batch_norm(x, rm, rv, w, b, **args)
    g = rng.normal(size=x_shape)
    arrays = (x,) if w is None else (x, w, b)
    out, grads = torch_grads(lambda *t: F.batch_norm(t[0], t_rm, t_rv, *t[1:], **args),
                             *arrays, grad_out=g)
    assert_matches_torch(y, out)
    assert_matches_torch(rm, t_rm)
    assert_matches_torch(rv, t_rv)
    mine = ref.batch_norm_backward(g, x, w, mean, invstd, training=training)
    for a, t in zip(mine, grads):
        assert_matches_torch(a, t)


@pytest.mark.parametrize("x_shape, normalized_shape, weight, bias", LN_CASES)
def test_layer_norm_matches_torch(rng, x_shape, normalized_shape, weight, bias):
    F = pytest.importorskip("torch.nn.functional")
    x, w, b = ln_args(rng, x_shape, normalized_shape, weight, bias)
    x[0] = 0.25  # a constant row: variance 0
    shape = tuple(np.atleast_1d(normalized_shape))
    y, mean, rstd = ref.layer_norm(x, normalized_shape, w, b, eps=1e-3)
    g = rng.normal(size=x_shape)
    given = [a for a in (w, b) if a is not None]

    def t_ln(t, *params):
        it = iter(params)
        return F.layer_norm(t, shape, next(it) if weight else None, next(it) if bias else None,
                            eps=1e-3)

    out, grads = torch_grads(t_ln, x, *given, grad_out=g)
    assert_matches_torch(y, out)
    mine = ref.layer_norm_backward(g, x, normalized_shape, mean, rstd, w, b)
    for a, t in zip([mine[0]] + [m for m in mine[1:] if m is not None], grads):
        assert_matches_torch(a, t)


def test_batch_norm_rejects_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ref.batch_norm(np.ones((1, 3)), None, None, None, None, training=True)
    with pytest.raises(ValueError, match="required"):
        ref.batch_norm(np.ones((2, 3)), None, None, None, None, training=False)


N_STEPS = 3  # the first step is special for SGD; later ones exercise Adam's bias correction


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
        dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
        dict(lr=0.1, momentum=0.9, dampening=0.3),
        dict(lr=0.1, weight_decay=1e-2),
    ],
    ids=["momentum", "nesterov", "dampening", "plain"],
)
def test_sgd_matches_torch(rng, kwargs):
    torch = pytest.importorskip("torch")
    param, grads = rng.normal(size=(3, 4)), rng.normal(size=(N_STEPS, 3, 4))
    t_param = torch.tensor(param, requires_grad=True)
    opt = torch.optim.SGD([t_param], **kwargs)
    buf = np.zeros_like(param)
    for step, grad in enumerate(grads):
        ref.sgd_step(param, grad, buf, first_step=step == 0, **kwargs)
        t_param.grad = torch.from_numpy(grad.copy())
        opt.step()
        assert_matches_torch(param, t_param)
        if kwargs.get("momentum"):
            assert_matches_torch(buf, opt.state[t_param]["momentum_buffer"])


@pytest.mark.parametrize(
    "optimizer, decoupled, kwargs",
    [
        ("Adam", False, dict(lr=1e-2, weight_decay=1e-2)),
        ("Adam", False, dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6)),
        ("AdamW", True, dict(lr=1e-2)),  # AdamW's default weight_decay is 1e-2
        ("AdamW", True, dict(lr=1e-2, weight_decay=0.1, betas=(0.5, 0.9))),
    ],
    ids=["adam-wd", "adam-betas", "adamw-default", "adamw-wd"],
)
def test_adam_matches_torch(rng, optimizer, decoupled, kwargs):
    torch = pytest.importorskip("torch")
    param, grads = rng.normal(size=(3, 4)), rng.normal(size=(N_STEPS, 3, 4))
    t_param = torch.tensor(param, requires_grad=True)
    opt = getattr(torch.optim, optimizer)([t_param], **kwargs)
    beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
    mine = dict(
        lr=kwargs["lr"],
        beta1=beta1,
        beta2=beta2,
        eps=kwargs.get("eps", 1e-8),
        weight_decay=kwargs.get("weight_decay", 1e-2 if decoupled else 0.0),
        decoupled=decoupled,
    )
    m, v = np.zeros_like(param), np.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        ref.adam_step(param, grad, m, v, step=step, **mine)
        t_param.grad = torch.from_numpy(grad.copy())
        opt.step()
        assert_matches_torch(param, t_param)
        assert_matches_torch(m, opt.state[t_param]["exp_avg"])
        assert_matches_torch(v, opt.state[t_param]["exp_avg_sq"])
