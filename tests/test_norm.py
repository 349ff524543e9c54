"""Batch normalization against fastnn.reference (float64 on the same float32 values) on
every ISA, bitwise across thread counts, and against torch where installed.

Error bounds, u = 2**-24: the statistics are summed in double (their error is far below
u), so each float32 result is within a few roundings of the float64 one given the same
float32 inputs. The forward y = (x - mean) * a + b, a = weight * invstd, rounds mean,
invstd, a, the difference, the product and the sum: within 8u (|a| (|x| + |mean|) + |b|).
The input gradient a * gy + (k * (x - mean) + d), k = -weight * invstd**3 * mean(gy xhat),
d = -a * mean(gy), is within 8u of the sum of the magnitudes of its terms (with
|x| + |mean| for x - mean); grad_weight, grad_bias and the running statistics are one
rounding of a double result: within 2u of their magnitude.
"""
import numpy as np
import pytest

from fastnn import functional as F, reference as ref

U = 2.0 ** -24

# (x_shape, affine)
CASES = [
    pytest.param((5, 3), True, id="2d"),
    pytest.param((2, 1), True, id="2d-n2-c1"),
    pytest.param((64, 300), True, id="2d-wide"),       # two column chunks
    pytest.param((7, 4, 9), False, id="3d-no-affine"),
    pytest.param((2, 3, 5, 7), True, id="4d-odd"),
    pytest.param((2, 1, 3, 3), True, id="4d-c1"),
    pytest.param((3, 5, 1, 1), True, id="4d-1x1"),       # spatial size 1: the 2-D path
    pytest.param((4, 6, 8, 8), False, id="4d-no-affine"),
    pytest.param((2, 2, 2, 3, 5), True, id="5d"),
]


def bn_inputs(rng, shape, affine):
    """x with a mean far from 0 in some channels and a constant channel (variance 0)."""
    c = shape[1]
    offset = (rng.integers(-3, 4, size=c) * 10.0).reshape((1, c) + (1,) * (len(shape) - 2))
    x = rng.standard_normal(shape) * 2 + offset
    x[:, -1] = 2.5  # constant: variance exactly 0
    f32 = lambda a: None if a is None else np.asarray(a, np.float32)  # noqa: E731
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    return (f32(x), f32(w), f32(b), f32(rng.standard_normal(c)),
            f32(rng.random(c) + 0.5))


def per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def assert_within(actual, expected, bound):
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    err = np.abs(actual.astype(np.float64) - expected)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


def f64(a):
    return None if a is None else a.astype(np.float64)


@pytest.mark.parametrize("shape, affine", CASES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_reference(isa, rng, shape, affine, training):
    x, w, b, rm, rv = bn_inputs(rng, shape, affine)
    r_rm, r_rv = f64(rm), f64(rv)
    old_rm, old_rv = r_rm.copy(), r_rv.copy()
    eps, mom = 1e-3, 0.3
    y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=mom, eps=eps)
    r_y, r_mean, r_invstd = ref.batch_norm(f64(x), r_rm, r_rv, f64(w), f64(b),
                                           training=training, momentum=mom, eps=eps)
    assert mean.dtype == invstd.dtype == np.float32 and mean.shape == (shape[1],)
    assert_within(mean, r_mean, 2 * U * np.abs(r_mean) + 1e-12 * np.abs(x).max())
    assert_within(invstd, r_invstd, 2 * U * r_invstd)
    assert_within(rm, r_rm, 2 * U * (np.abs((1 - mom) * old_rm) + np.abs(mom * r_mean)))
    assert_within(rv, r_rv, 2 * U * (np.abs((1 - mom) * old_rv) + np.abs(r_rv)))
    wa = 1.0 if w is None else per_channel(np.abs(f64(w)), x.ndim)
    a = wa * per_channel(r_invstd, x.ndim)
    bound = 8 * U * (a * (np.abs(x) + per_channel(np.abs(r_mean), x.ndim)) +
                     (0 if b is None else per_channel(np.abs(f64(b)), x.ndim)))
    assert_within(y, r_y, bound)
    if training:  # the constant channel normalises to exactly its bias
        np.testing.assert_array_equal(y[:, -1], 0 if b is None else b[-1])

    g = rng.standard_normal(shape).astype(np.float32)
    gx, gw, gb = F.batch_norm_backward(g, x, w, mean, invstd, training=training)
    r_gx, r_gw, r_gb = ref.batch_norm_backward(f64(g), f64(x), f64(w), f64(mean), f64(invstd),
                                               training=training)
    m = x.size // shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    xhat = (f64(x) - per_channel(f64(mean), x.ndim)) * per_channel(f64(invstd), x.ndim)
    mean_g = per_channel(np.abs(f64(g).sum(axis=axes)) / m, x.ndim)
    mean_gxhat = per_channel(np.abs((f64(g) * xhat).sum(axis=axes)) / m, x.ndim)
    a = wa * per_channel(f64(invstd), x.ndim)
    terms = a * np.abs(g)
    if training:
        terms = terms + a * (mean_g + mean_gxhat * per_channel(f64(invstd), x.ndim) * (
            np.abs(x) + per_channel(np.abs(f64(mean)), x.ndim)))
    assert_within(gx, r_gx, 8 * U * terms)
    if affine:
        assert_within(gw, r_gw, 2 * U * (np.abs(g) * np.abs(xhat)).sum(axis=axes))
        assert_within(gb, r_gb, 2 * U * np.abs(g).sum(axis=axes))
    else:
        assert gw is None and gb is None


@pytest.mark.parametrize("shape", [(48, 20, 15, 13), (512, 300), (4, 3, 1000)])
def test_thread_count_does_not_change_bits(isa, rng, threads, shape):
    x, w, b, rm, rv = bn_inputs(rng, shape, True)
    g = rng.standard_normal(shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        r_m, r_v = rm.copy(), rv.copy()
        y, mean, invstd = F.batch_norm(x, r_m, r_v, w, b, training=True)
        e_y = F.batch_norm(x, rm, rv, w, b, training=False)[0]
        results.append((y, mean, invstd, r_m, r_v, e_y,
                        *F.batch_norm_backward(g, x, w, mean, invstd, training=True),
                        *F.batch_norm_backward(g, x, w, mean, invstd, training=False)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_mean_far_from_zero_keeps_precision(rng):
    """The shifted one-pass variance: a mean 1e4 standard deviations away costs nothing."""
    x = (1e4 + rng.standard_normal((64, 2, 10))).astype(np.float32)
    y, mean, invstd = F.batch_norm(x, None, None, None, None, training=True, eps=0.0)
    r_y, r_mean, r_invstd = ref.batch_norm(f64(x), None, None, None, None, training=True,
                                           eps=0.0)
    np.testing.assert_allclose(invstd, r_invstd, rtol=4 * U)
    np.testing.assert_allclose(mean, r_mean, rtol=2 * U)


@pytest.mark.parametrize("shape, affine", [((4, 3), True), ((2, 3, 4, 5), True),
                                           ((2, 1, 3, 3), False), ((3, 5, 7), True)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(rng, shape, affine, training):
    torch = pytest.importorskip("torch")
    x, w, b, rm, rv = bn_inputs(rng, shape, affine)
    t_rm, t_rv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    t_y = torch.nn.functional.batch_norm(leaves[0], t_rm, t_rv, *leaves[1:], training=training,
                                         momentum=0.2, eps=1e-4)
    g = rng.standard_normal(shape).astype(np.float32)
    t_y.backward(torch.from_numpy(g))
    y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4)
    grads = F.batch_norm_backward(g, x, w, mean, invstd, training=training)
    close = dict(rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(y, t_y.detach().numpy(), **close)
    np.testing.assert_allclose(rm, t_rm.numpy(), **close)
    np.testing.assert_allclose(rv, t_rv.numpy(), **close)
    for mine, leaf in zip([gr for gr in grads if gr is not None], leaves):
        scale = float(np.abs(leaf.grad.numpy()).max())
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_running_stats_update_in_place_and_eval_uses_them(rng):
    x = rng.standard_normal((8, 3, 4)).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    F.batch_norm(x, rm, rv, None, None, training=True, momentum=1.0)
    np.testing.assert_allclose(rm, x.mean(axis=(0, 2)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv, x.var(axis=(0, 2), ddof=1), rtol=1e-5)
    y, mean, invstd = F.batch_norm(x, rm, rv, None, None, training=False, eps=0.0)
    np.testing.assert_array_equal(mean, rm)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(rv.astype(np.float64)), rtol=2 * U)
    before = rm.copy(), rv.copy()
    F.batch_norm(x, rm, rv, None, None, training=True, momentum=0.0)  # momentum 0: unchanged
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])
    F.batch_norm(x + 1, rm, None, None, None, training=True)  # only one of them given
    np.testing.assert_allclose(rm, before[0] + 0.1, rtol=1e-6)


def test_out_buffers_are_used(rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    w = np.ones(3, np.float32)
    y, m, s = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    r = F.batch_norm(x, None, None, w, None, training=True, out=y, save_mean=m, save_invstd=s)
    assert r[0] is y and r[1] is m and r[2] is s
    gx, gw, gb = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    r = F.batch_norm_backward(y, x, w, m, s, training=True, grad_input=gx, grad_weight=gw,
                              grad_bias=gb)
    assert r[0] is gx and r[1] is gw and r[2] is gb
    assert F.batch_norm_backward(y, x, w, m, s, training=True, need_input_grad=False)[0] is None
    assert F.batch_norm_backward(y, x, w, m, s, training=True,
                                 need_weight_grad=False)[1:] == (None, None)
    np.testing.assert_array_equal(
        F.batch_norm(np.asfortranarray(x), None, None, w, None, training=True)[0], y)


def test_empty_batch_leaves_running_stats():
    x = np.empty((0, 3, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, invstd = F.batch_norm(x, rm, rv, None, None, training=True)
    assert y.shape == x.shape and np.all(np.isnan(mean)) and np.all(np.isnan(invstd))
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)
    gx, gw, gb = F.batch_norm_backward(x, x, np.ones(3, np.float32), mean, invstd,
                                       training=True)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, 0)
    np.testing.assert_array_equal(gb, 0)
    assert F.batch_norm(np.empty((2, 0), np.float32), None, None, None, None,
                        training=True)[0].shape == (2, 0)


X = np.zeros((2, 3, 4), np.float32)
C3 = np.ones(3, np.float32)
S3 = (np.zeros(3, np.float32), np.ones(3, np.float32))


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: F.batch_norm(np.zeros((1, 3), np.float32), None, None, None, None, training=True),
     ValueError, "Expected more than 1 value per channel when training"),
    (lambda: F.batch_norm(np.zeros((1, 3, 1, 1), np.float32), None, None, None, None,
                          training=True), ValueError, "more than 1 value per channel"),
    (lambda: F.batch_norm(X, None, None, None, None, training=False), ValueError,
     "running_mean and running_var are required when training=False"),
    (lambda: F.batch_norm(X, C3, None, None, None, training=False), ValueError, "required"),
    (lambda: F.batch_norm(X[0, 0], None, None, None, None, training=True), ValueError,
     r"x must be \(N, C\) or \(N, C, \*spatial\)"),
    (lambda: F.batch_norm(X.astype(np.float64), None, None, None, None, training=True),
     TypeError, "x must be a float32 array"),
    (lambda: F.batch_norm(X, None, None, np.ones(4, np.float32), None, training=True),
     ValueError, r"weight must have shape \(3,\)"),
    (lambda: F.batch_norm(X, None, None, None, np.ones((3, 1), np.float32), training=True),
     ValueError, r"bias must have shape \(3,\)"),
    (lambda: F.batch_norm(X, None, None, C3.astype(np.float64), None, training=True),
     TypeError, "weight must be a float32 array"),
    (lambda: F.batch_norm(X, [0.0, 0.0, 0.0], None, None, None, training=True), TypeError,
     "running_mean is updated in place"),
    (lambda: F.batch_norm(X, np.zeros(6, np.float32)[::2], None, None, None, training=True),
     ValueError, "running_mean is updated in place: it must be a writeable"),
    (lambda: F.batch_norm(X, None, np.ones(3, np.float64), None, None, training=True),
     TypeError, "running_var must be a float32 array"),
    (lambda: F.batch_norm(X, S3[0], S3[0], None, None, training=True), ValueError,
     "running_mean overlaps"),
    (lambda: F.batch_norm(X, None, None, None, None, training=1), TypeError,
     "training must be a bool"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, momentum=1.5), ValueError,
     r"momentum must be in \[0, 1\]"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, momentum="0.1"), TypeError,
     "momentum must be a real number"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, eps=-1.0), ValueError,
     "eps must be finite and >= 0"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, eps=float("nan")),
     ValueError, "eps must be finite"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, out=np.empty((2, 3, 5))),
     TypeError, "out must be a float32"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True,
                          save_mean=np.empty(4, np.float32)), ValueError,
     r"save_mean must have shape \(3,\)"),
    (lambda: F.batch_norm(X, None, None, None, None, training=True, out=X), ValueError,
     "out overlaps an input"),
    (lambda: F.batch_norm_backward(X[:1], X, None, *S3, training=True), ValueError,
     r"grad_y must have the shape of x \(2, 3, 4\)"),
    (lambda: F.batch_norm_backward(X, X, None, None, S3[1], training=True), ValueError,
     "save_mean is required"),
    (lambda: F.batch_norm_backward(X, X, None, S3[0], np.ones(2, np.float32), training=True),
     ValueError, r"save_invstd must have shape \(3,\)"),
    (lambda: F.batch_norm_backward(X, X, C3, *S3, training="yes"), TypeError,
     "training must be a bool"),
    (lambda: F.batch_norm_backward(X, X, C3, *S3, training=True,
                                   grad_weight=np.empty(3, np.float64)), TypeError,
     "grad_weight must be a float32"),
    (lambda: F.batch_norm_backward(X, X.copy(), C3, *S3, training=True, grad_input=X),
     ValueError, "grad_input overlaps an input"),
    (lambda: F.batch_norm_backward(X, X, None, *S3, training=True, grad_weight=C3.copy()),
     ValueError, r"grad_weight was given but is not computed \(weight is None"),
    (lambda: F.batch_norm_backward(X, X, C3, *S3, training=True, need_input_grad=False,
                                   grad_input=np.empty_like(X)), ValueError,
     "grad_input was given but is not computed"),
])
def test_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("shape", [(64, 300), (7, 4, 9), (2, 3, 5, 7), (3, 5, 1, 1),
                                   (8, 16, 12, 12)], ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_is_bitwise_the_two_steps(isa, rng, threads, shape, training):
    """activation="relu" relus the output in the same pass, and its backward gates grad_y
    by that output: bitwise relu(batch_norm(...)) and the two backward steps
    (relu_backward, then batch_norm_backward), NaN and 0 included, on 1 and 2 threads."""
    x, w, b, rm, rv = bn_inputs(rng, shape, True)
    x.flat[::7] = 0.0
    x.flat[3] = np.nan
    g = rng.standard_normal(shape).astype(np.float32)
    for t in (1, 2):
        threads(t)
        y, mean, invstd = F.batch_norm(x, rm.copy(), rv.copy(), w, b, training)
        fy, fmean, finvstd = F.batch_norm(x, rm.copy(), rv.copy(), w, b, training,
                                          activation="relu")
        assert np.array_equal(fy, F.relu(y), equal_nan=True)
        assert np.array_equal(fmean, mean, equal_nan=True)
        assert np.array_equal(finvstd, invstd, equal_nan=True)
        want = F.batch_norm_backward(F.relu_backward(g, y), x, w, mean, invstd,
                                     training=training)
        got = F.batch_norm_backward(g, x, w, mean, invstd, training=training,
                                    activation="relu", output=fy)
        for a, e in zip(got, want):
            assert np.array_equal(a, e, equal_nan=True)


@pytest.mark.parametrize("call, msg", [
    (lambda: F.batch_norm(X, None, None, None, None, True, activation="tanh"),
     "activation must be None or 'relu'"),
    (lambda: F.batch_norm_backward(X, X, None, *S3, training=True, activation="relu"),
     "output .* goes with activation='relu' and only with it"),
    (lambda: F.batch_norm_backward(X, X, None, *S3, training=True, output=X),
     "output .* goes with activation='relu' and only with it"),
    (lambda: F.batch_norm_backward(X, X, None, *S3, training=True, activation="relu",
                                   output=X[:1]), r"output must have grad_y's shape"),
    (lambda: F.batch_norm_backward(X, X, None, *S3, training=True, activation="relu",
                                   output=X.astype(np.float64)), "output must be a float32"),
])
def test_batch_norm_relu_bad_arguments(call, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        call()


def test_batch_norm_takes_torchs_positional_order(rng):
    """F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum,
    eps), torch's order: it took (x, weight, bias, running_mean, running_var), so torch's
    call scaled by the running mean and updated the weights as statistics, silently."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    w, b = rng.random(3).astype(np.float32) + 0.5, rng.standard_normal(3).astype(np.float32)
    for training in (True, False):
        rm, rv = rng.standard_normal(3).astype(np.float32), rng.random(3).astype(np.float32)
        t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
        y = F.batch_norm(x, rm, rv, w, b, training, 0.3, 1e-3)[0]
        t_y = torch.nn.functional.batch_norm(torch.tensor(x), t_rm, t_rv, torch.tensor(w),
                                             torch.tensor(b), training, 0.3, 1e-3)
        np.testing.assert_allclose(y, t_y.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rm, t_rm.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rv, t_rv.numpy(), rtol=1e-5, atol=1e-6)


# ---- layer normalization: the same error model over each row of normalized_shape values
# (mean and rstd from double sums, each one rounding; y and grad_x a few roundings of
# their terms' magnitudes; grad_weight and grad_bias one rounding of double sums).

# (x_shape, normalized_shape, weight, bias)
LN_CASES = [
    pytest.param((5, 3), (3,), True, True, id="2d"),
    pytest.param((1, 1), 1, True, True, id="one-value"),      # variance 0: y = bias
    pytest.param((2, 3, 7), (3, 7), True, False, id="two-dims-no-bias"),
    pytest.param((4, 33), 33, False, False, id="odd-no-affine"),
    pytest.param((2, 3, 5, 9), (9,), False, True, id="4d-bias-only"),
    pytest.param((64, 300), (300,), True, True, id="wide"),  # two column chunks of grads
    pytest.param((0, 5), (5,), True, True, id="empty-batch"),
    pytest.param((7,), (7,), True, True, id="no-batch"),
]


def ln_inputs(rng, shape, normalized_shape, weight, bias):
    """x with rows of means far from 0 and a constant row (variance 0)."""
    k = len(np.atleast_1d(normalized_shape))
    pshape = shape[len(shape) - k:]
    x = rng.standard_normal(shape) * 2 + rng.integers(-3, 4, size=shape[:len(shape) - k] + (1,) * k) * 10.0
    if x.ndim > k and x.shape[0] > 1:
        x[0] = 2.5
    f32 = lambda a: None if a is None else np.asarray(a, np.float32)  # noqa: E731
    return (f32(x), f32(rng.standard_normal(pshape)) if weight else None,
            f32(rng.standard_normal(pshape)) if bias else None)


@pytest.mark.parametrize("shape, normalized_shape, weight, bias", LN_CASES)
def test_layer_norm_matches_reference(isa, rng, shape, normalized_shape, weight, bias):
    x, w, b = ln_inputs(rng, shape, normalized_shape, weight, bias)
    eps = 1e-3
    y, mean, rstd = F.layer_norm(x, normalized_shape, w, b, eps)
    r_y, r_mean, r_rstd = ref.layer_norm(f64(x), normalized_shape, f64(w), f64(b), eps)
    k = len(np.atleast_1d(normalized_shape))
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    assert mean.dtype == rstd.dtype == np.float32 and mean.shape == shape[:x.ndim - k]
    row = lambda v: np.asarray(v).reshape(np.shape(v) + (1,) * k)  # noqa: E731
    absx = np.abs(f64(x))
    assert_within(mean, r_mean, 2 * U * np.abs(f64(x)).max(axis=axes, initial=0))
    assert_within(rstd, r_rstd, 2 * U * r_rstd)
    wa = 1.0 if w is None else np.abs(f64(w))
    bound = 8 * U * (wa * row(r_rstd) * (absx + row(np.abs(r_mean))) +
                     (0 if b is None else np.abs(f64(b))))
    assert_within(y, r_y, bound)

    g = rng.standard_normal(shape).astype(np.float32)
    gx, gw, gb = F.layer_norm_backward(g, x, normalized_shape, mean, rstd, w, b)
    r_gx, r_gw, r_gb = ref.layer_norm_backward(f64(g), f64(x), normalized_shape, f64(mean),
                                               f64(rstd), f64(w), f64(b))
    gw64 = np.abs(f64(g)) * wa
    xhat = (f64(x) - row(f64(mean))) * row(f64(rstd))
    terms = row(f64(rstd)) * (gw64 + gw64.mean(axis=axes, keepdims=True) +
                              (gw64 * np.abs(xhat)).mean(axis=axes, keepdims=True) *
                              row(f64(rstd)) * (absx + row(np.abs(f64(mean)))))
    assert_within(gx, r_gx, 8 * U * terms)
    for mine, want, scale in ((gw, r_gw, np.abs(f64(g) * xhat)), (gb, r_gb, np.abs(f64(g)))):
        if want is None:
            assert mine is None
        else:
            assert_within(mine, want, 2 * U * scale.sum(axis=lead))


@pytest.mark.parametrize("shape", [(2048, 300), (48, 20, 131), (3, 40000)])
def test_layer_norm_thread_count_does_not_change_bits(isa, rng, threads, shape):
    x, w, b = ln_inputs(rng, shape, shape[-1], True, True)
    g = rng.standard_normal(shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        y, mean, rstd = F.layer_norm(x, shape[-1], w, b)
        results.append((y, mean, rstd, *F.layer_norm_backward(g, x, shape[-1], mean, rstd, w, b)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


# one-value: torch's float32 x - mean of a single value is rounding noise (grad_weight
# 3e-6 where it is 0: the reference test checks that case)
@pytest.mark.parametrize("shape, normalized_shape, weight, bias",
                         [c for c in LN_CASES if c.id not in ("wide", "one-value")])
def test_layer_norm_matches_torch(rng, shape, normalized_shape, weight, bias):
    torch = pytest.importorskip("torch")
    x, w, b = ln_inputs(rng, shape, normalized_shape, weight, bias)
    leaves = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    nshape = tuple(np.atleast_1d(normalized_shape))
    t_y = torch.nn.functional.layer_norm(leaves[0], nshape, leaves[1], leaves[2], eps=1e-4)
    g = rng.standard_normal(shape).astype(np.float32)
    t_y.backward(torch.from_numpy(g))
    y, mean, rstd = F.layer_norm(x, normalized_shape, w, b, eps=1e-4)
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=1e-5, atol=2e-5)
    grads = F.layer_norm_backward(g, x, normalized_shape, mean, rstd, w, b)
    for mine, leaf in zip(grads, leaves):
        if leaf is None:
            assert mine is None
            continue
        want = leaf.grad.numpy()
        scale = float(np.abs(want).max(initial=0))
        np.testing.assert_allclose(mine, want, rtol=1e-4, atol=1e-5 * scale)


def test_layer_norm_inf_nan_as_torch():
    """A row holding inf or NaN is NaN throughout, in y and grad_x, as torch's; other rows
    are untouched."""
    torch = pytest.importorskip("torch")
    x = np.array([[1, np.inf, 2], [1, 2, np.nan], [-np.inf, 0, 1], [1, 2, 4]], np.float32)
    w, b = np.float32([1, 2, 3]), np.float32([0, 1, -1])
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    t_y = torch.nn.functional.layer_norm(leaves[0], (3,), leaves[1], leaves[2])
    g = np.ones_like(x)
    t_y.backward(torch.from_numpy(g))
    y, mean, rstd = F.layer_norm(x, 3, w, b)
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=1e-5, atol=1e-6)
    gx, gw, gb = F.layer_norm_backward(g, x, 3, mean, rstd, w, b)
    np.testing.assert_allclose(gx, leaves[0].grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, leaves[1].grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, leaves[2].grad.numpy(), rtol=1e-5, atol=1e-6)
    assert np.isfinite(y[3]).all()


def test_layer_norm_out_buffers_and_layouts(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = np.ones(6, np.float32)
    y, m, r = np.empty_like(x), np.empty(4, np.float32), np.empty(4, np.float32)
    res = F.layer_norm(x, (6,), w, None, out=y, save_mean=m, save_rstd=r)
    assert res[0] is y and res[1] is m and res[2] is r
    gx, gw = np.empty_like(x), np.empty(6, np.float32)
    res = F.layer_norm_backward(y, x, 6, m, r, w, None, grad_input=gx, grad_weight=gw)
    assert res[0] is gx and res[1] is gw and res[2] is None
    assert F.layer_norm_backward(y, x, 6, m, r, w, need_input_grad=False)[0] is None
    assert F.layer_norm_backward(y, x, 6, m, r, w, need_weight_grad=False)[1] is None
    np.testing.assert_array_equal(F.layer_norm(np.asfortranarray(x), 6, w)[0], y)
    mean_far = (1e4 + rng.standard_normal((3, 50))).astype(np.float32)  # shifted sums
    np.testing.assert_allclose(F.layer_norm(mean_far, 50, eps=0.0)[2],
                               ref.layer_norm(f64(mean_far), 50, eps=0.0)[2], rtol=4 * U)


XL = np.zeros((2, 3, 4), np.float32)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: F.layer_norm(XL, (3,)), ValueError,
     r"normalized_shape \(3,\) must be the trailing dimensions of x"),
    (lambda: F.layer_norm(XL, (2, 3, 4, 1)), ValueError, "must be the trailing dimensions"),
    (lambda: F.layer_norm(XL, ()), TypeError, "normalized_shape must be an int or a non-empty"),
    (lambda: F.layer_norm(XL, 4.0), TypeError, "normalized_shape must be an int"),
    (lambda: F.layer_norm(XL, (True,)), TypeError, "normalized_shape must be an int"),
    (lambda: F.layer_norm(XL, (0,)), ValueError, "normalized_shape must hold positive ints"),
    (lambda: F.layer_norm(XL, 4, eps=-1.0), ValueError, "eps must be finite and >= 0"),
    (lambda: F.layer_norm(XL, 4, eps=float("nan")), ValueError, "eps must be finite"),
    (lambda: F.layer_norm(XL, 4, eps="1e-5"), TypeError, "eps must be a real number"),
    (lambda: F.layer_norm(XL, 4, np.ones(3, np.float32)), ValueError,
     r"weight must have shape \(4,\)"),
    (lambda: F.layer_norm(XL, 4, None, np.ones(4)), TypeError, "bias must be a float32"),
    (lambda: F.layer_norm(XL.astype(np.float64), 4), TypeError, "x must be a float32"),
    (lambda: F.layer_norm(XL, 4, out=XL), ValueError, "out overlaps an input"),
    (lambda: F.layer_norm(XL, 4, save_rstd=np.empty(6, np.float32)), ValueError,
     r"save_rstd must have shape \(2, 3\)"),
    (lambda: F.layer_norm_backward(XL[:1], XL, 4, *S3[:2]), ValueError,
     r"grad_y must have the shape of x"),
    (lambda: F.layer_norm_backward(XL, XL, 4, None, np.ones((2, 3), np.float32)), ValueError,
     "save_mean is required"),
    (lambda: F.layer_norm_backward(XL, XL, 4, np.ones((2, 3), np.float32),
                                   np.ones(3, np.float32)), ValueError,
     r"save_rstd must have shape \(2, 3\)"),
    (lambda: F.layer_norm_backward(XL, XL, 4, *(np.ones((2, 3), np.float32),) * 2,
                                   grad_weight=np.empty(4, np.float32)), ValueError,
     r"grad_weight was given but is not computed \(weight is None"),
    (lambda: F.layer_norm_backward(XL, XL, 4, *(np.ones((2, 3), np.float32),) * 2,
                                   need_input_grad=1), TypeError,
     "need_input_grad must be True or False"),
])
def test_layer_norm_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
