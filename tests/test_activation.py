"""Activations against fastnn.reference in float64 on the same float32 inputs.

relu and leaky_relu do at most one rounding (x * slope), so they equal the reference
run on the float32 arrays exactly (NumPy also rounds x * float32(slope) once).
The transcendental ones use fastnn's vectorised expf (within 3u, u = 2**-24, measured
over its whole range; results below FLT_MIN lose relative precision gradually) or
Cephes' tanhf on that expf (measured within 2.5u) plus a few float32 operations, so
each element is within a small multiple of u of the float64 result, relative to the
magnitudes involved (bounds stated per test). softmax's exp(x - max) has the extra
relative error |x - max| * u from rounding x - max.

gelu's Phi(x) is erfc(-x/sqrt2)/2 by Numerical Recipes' erfcc (a fit of relative error
below 1.2e-7) on that expf: exp(-z^2 + P(t)) carries the rounding of z = x/sqrt2 and of
z^2, relative error ~1.5 x^2 u, so the bound grows with x^2 (x = -10: ~800u, where torch's
1 + erf(x/sqrt2) has cancelled to 0). The tanh form's sigmoid(2v) carries ~|v| u of its
argument's rounding. Results below FLT_MIN come from subnormal intermediates: absolute
error up to 2**-140 there. Each bound below is the measured maximum over [-15, 15] (600k
points) rounded up.
"""
import math

import numpy as np
import pytest

from fastnn import functional as F, reference as ref

U = 2.0 ** -24
SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 33), (2, 1, 4, 3, 5), (0, 4)]
ROW_SHAPES = [(1,), (7,), (3, 5), (2, 3, 33), (128, 10), (1, 1000)]


def sample(rng, shape, scale=4.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if x.size >= 6:
        x.reshape(-1)[:6] = [0.0, -0.0, 30.0, -30.0, 1e4, -1e4]
    return x


def assert_within(actual, expected, bound):
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    err = np.abs(actual.astype(np.float64) - expected)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("slope", [None, 0.01, 0.2])
def test_relu_family_exact(isa, rng, shape, slope):
    x, g = sample(rng, shape), sample(rng, shape, 1.0)
    if slope is None:
        y, gx = F.relu(x), F.relu_backward(g, x)
        r_y, r_gx = ref.relu(x), ref.relu_backward(g, x)
    else:
        y, gx = F.leaky_relu(x, slope), F.leaky_relu_backward(g, x, slope)
        r_y, r_gx = ref.leaky_relu(x, slope), ref.leaky_relu_backward(g, x, slope)
    np.testing.assert_array_equal(y, r_y)
    np.testing.assert_array_equal(gx, r_gx)
    assert y.dtype == gx.dtype == np.float32 and y.shape == gx.shape == x.shape


def test_relu_nan_and_zero(isa):
    """relu's gradient passes where x is NaN, as torch's threshold_backward (x <= 0 ? 0 :
    g): it was 0 there. Element by element as torch, over a length reaching the vector
    loops and their tails."""
    x = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(F.relu(x), [np.nan, 0, np.inf, 0, 0, 0, 2])
    np.testing.assert_array_equal(F.relu_backward(np.ones_like(x), x), [1, 0, 1, 0, 0, 0, 1])
    torch = pytest.importorskip("torch")
    long = np.tile(x, 11)
    g = np.linspace(0.5, 1.5, long.size, dtype=np.float32)
    for fn, args in (("relu", ()), ("leaky_relu", (0.5,))):
        t = torch.tensor(long, requires_grad=True)
        ty = getattr(torch.nn.functional, fn)(t, *args)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_array_equal(getattr(F, fn)(long, *args), ty.detach().numpy())
        np.testing.assert_array_equal(getattr(F, fn + "_backward")(g, long, *args),
                                      t.grad.numpy())
    np.testing.assert_array_equal(F.leaky_relu(x, 0.5), [np.nan, -np.inf, np.inf, 0, 0, -0.5, 2])
    np.testing.assert_array_equal(F.leaky_relu_backward(np.ones_like(x), x, 0.5),
                                  [0.5, 0.5, 1, 0.5, 0.5, 0.5, 1])


@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_and_tanh(isa, rng, shape):
    x, g = sample(rng, shape), sample(rng, shape, 1.0)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    # forward: exp (3u) or tanhf (2u), then an add and a divide: 6u relative
    y = F.sigmoid(x)
    r_y = ref.sigmoid(x64)
    assert_within(y, r_y, 6 * U * r_y)
    t = F.tanh(x)
    r_t = ref.tanh(x64)
    assert_within(t, r_t, 6 * U * np.abs(r_t))
    # backward from the float32 outputs: three roundings each (1 - y is exact or one more)
    y64, t64 = y.astype(np.float64), t.astype(np.float64)
    assert_within(F.sigmoid_backward(g, y), ref.sigmoid_backward(g64, y64),
                  4 * U * np.abs(g64) * y64 * (1 + y64))
    assert_within(F.tanh_backward(g, t), ref.tanh_backward(g64, t64),
                  4 * U * np.abs(g64) * (1 + t64 * t64))


@pytest.mark.parametrize("shape", ROW_SHAPES)
def test_softmax_and_log_softmax(isa, rng, shape):
    x, g = sample(rng, shape), sample(rng, shape, 1.0)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    z = np.abs(x64 - x64.max(axis=-1, keepdims=True))  # |x - max|
    # exp(x - max) carries (|z| + 3)u, the row sum (a weighted mean of those) ~3u more,
    # and 1/sum and the scaling 2u
    y = F.softmax(x)
    r_y = ref.softmax(x64)
    assert_within(y, r_y, (z + 8) * U * r_y)
    ly = F.log_softmax(x)
    r_ly = ref.log_softmax(x64)
    lse = np.abs(r_ly - (x64 - x64.max(axis=-1, keepdims=True)))
    assert_within(ly, r_ly, 4 * U * (z + lse + 1))
    y64, ly64 = y.astype(np.float64), ly.astype(np.float64)
    dot = np.abs(g64 * y64).sum(axis=-1, keepdims=True)
    assert_within(F.softmax_backward(g, y), ref.softmax_backward(g64, y64),
                  4 * U * y64 * (np.abs(g64) + dot))
    gsum = np.abs(g64).sum(axis=-1, keepdims=True)
    assert_within(F.log_softmax_backward(g, ly), ref.log_softmax_backward(g64, ly64),
                  4 * U * (np.abs(g64) + 2 * np.exp(ly64) * gsum))


@pytest.mark.parametrize("shape", [(4, 0), (0, 5), (0,)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_empty(name, shape):
    x = np.empty(shape, np.float32)
    assert getattr(F, name)(x).shape == shape
    assert getattr(F, name + "_backward")(x, x).shape == shape


SMOOTH = [("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("elu", {}),
          ("elu", {"alpha": 0.3}), ("elu", {"alpha": -2.0})]
TINY = 2.0 ** -140  # subnormal results: see the module's docstring
BETA = math.sqrt(2 / math.pi)


def smooth_bounds(name, kwargs, x, g):
    """(forward bound, backward bound) of a SMOOTH entry at float64 x and g, in u."""
    if name == "gelu":
        phi = ref._phi(x)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        if kwargs:
            s = ref._gelu_tanh_s(x)
            grow = 1 + np.abs(2 * BETA * (x + 0.044715 * x ** 3))
            right = np.abs(0.5 * x * 4 * s * (1 - s) * BETA * (1 + 3 * 0.044715 * x * x))
            return 4 * grow * np.abs(x) * s, 5 * grow * np.abs(g) * (s + right)
        grow = 1 + x * x
        return 8 * grow * np.abs(x) * phi, 8 * grow * np.abs(g) * (phi + np.abs(x) * pdf)
    if name == "silu":
        s = ref.sigmoid(x)
        return 4 * np.abs(x) * s, 16 * np.abs(g) * s * (1 + np.abs(x) * (1 - s))
    return 4 * np.abs(ref.elu(x, **kwargs)), 3 * np.abs(ref.elu_backward(g, x, **kwargs))


@pytest.mark.parametrize("shape", SHAPES + [(1, 1), (3, 1001)])
@pytest.mark.parametrize("name, kwargs", SMOOTH)
def test_gelu_silu_elu_match_reference(isa, rng, shape, name, kwargs):
    x, g = sample(rng, shape), sample(rng, shape, 1.0)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
    r_fwd, r_bwd = getattr(ref, name), getattr(ref, name + "_backward")
    with np.errstate(over="ignore", invalid="ignore"):
        fb, bb = smooth_bounds(name, kwargs, x64, g64)
    assert_within(fwd(x, **kwargs), r_fwd(x64, **kwargs), fb * U + TINY)
    assert_within(bwd(g, x, **kwargs), r_bwd(g64, x64, **kwargs), bb * U + TINY)


@pytest.mark.parametrize("name, kwargs", SMOOTH)
def test_gelu_silu_elu_bounds_over_a_dense_range(isa, name, kwargs):
    """The stated bounds over [-15, 15] (past it the results are 0, x or -alpha up to
    the bound's few u), 300k points."""
    x = np.linspace(-15, 15, 300_001, dtype=np.float32)
    x64, g = x.astype(np.float64), np.ones(x.size, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        fb, bb = smooth_bounds(name, kwargs, x64, g)
    assert_within(getattr(F, name)(x, **kwargs), getattr(ref, name)(x64, **kwargs),
                  fb * U + TINY)
    assert_within(getattr(F, name + "_backward")(g.astype(np.float32), x, **kwargs),
                  getattr(ref, name + "_backward")(g, x64, **kwargs), bb * U + TINY)


SPECIALS = np.array([-np.inf, np.inf, np.nan, -1e20, 1e20, -1e4, 1e4, -100.0, -20.0, -10.0,
                     0.0, -0.0, 1e-30, -1e-30, 1e-45], np.float32)


@pytest.mark.parametrize("name, kwargs", SMOOTH)
def test_gelu_silu_elu_special_values_as_torch(isa, name, kwargs):
    """inf, NaN, huge and tiny inputs: NaN, inf and finite exactly where float32 torch
    has them (gelu(-inf) and silu(-inf) NaN, elu(-inf) = -alpha; the gradient NaN at
    +-inf, elu's at NaN grad_out's), values within torch's rounding (torch's 1 + erf
    cancels to 0 for x < -5.3 where the kernel keeps the tail: atol 1e-6). torch runs one
    element at a time: its vector kernels disagree with themselves (the AVX-512 one, taken
    on Zen 5, gives gelu(inf) = NaN; the AVX2 and scalar ones inf)."""
    torch = pytest.importorskip("torch")
    t_fn = getattr(torch.nn.functional, name)
    g = np.linspace(0.5, 1.5, SPECIALS.size, dtype=np.float32)
    ty, tgx = np.empty_like(SPECIALS), np.empty_like(SPECIALS)
    for i in range(SPECIALS.size):
        t = torch.tensor(SPECIALS[i:i + 1], requires_grad=True)
        out = t_fn(t, *kwargs.values()) if name == "elu" else t_fn(t, **kwargs)
        out.backward(torch.from_numpy(g[i:i + 1]))
        ty[i], tgx[i] = out.item(), t.grad.item()
    y = getattr(F, name)(SPECIALS, **kwargs)
    gx = getattr(F, name + "_backward")(g, SPECIALS, **kwargs)
    np.testing.assert_allclose(y, ty, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx, tgx, rtol=1e-6, atol=1e-6)


def test_exp_accuracy_over_its_range(isa):
    # sigmoid(x) = e/(1 + e) for x < 0 exercises exp over [-104, 0]; below -87.3 the
    # results are subnormal, with absolute error under the smallest normal's ulp.
    x = np.linspace(-104, 0, 400_001, dtype=np.float32)
    r = ref.sigmoid(x.astype(np.float64))
    assert_within(F.sigmoid(x), r, 6 * U * r + 2.0 ** -149)


def test_stable_for_extreme_inputs():
    x = np.array([[-1e30, 0.0, 1e30, 88.0, -104.0]], np.float32)
    assert np.all(np.isfinite(F.sigmoid(x)))
    y = F.softmax(x)
    np.testing.assert_array_equal(y, [[0, 0, 1, 0, 0]])
    assert np.isfinite(F.log_softmax(x)).all()


@pytest.mark.parametrize("fn", [F.relu, F.leaky_relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax,
                                F.gelu, F.silu, F.elu])
def test_forward_in_place(rng, fn):
    x = sample(rng, (5, 9))
    expected = fn(x)
    assert fn(x, out=x) is x
    np.testing.assert_array_equal(x, expected)


NAMES = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_thread_count_does_not_change_bits(isa, rng, threads, name):
    x = sample(rng, (600, 1000))  # above every op's threading threshold
    g = sample(rng, x.shape, 1.0)
    fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
    uses_output = name in ("sigmoid", "tanh", "softmax", "log_softmax")
    results = []
    for n in (1, 2, 3):
        threads(n)
        y = fwd(x)
        results.append((y, bwd(g, y if uses_output else x)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, kwargs", SMOOTH[:5])
def test_smooth_thread_count_does_not_change_bits(isa, rng, threads, name, kwargs):
    x = sample(rng, (300, 1001))  # above the threading threshold, an odd row length
    g = sample(rng, x.shape, 1.0)
    fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append((fwd(x, **kwargs), bwd(g, x, **kwargs)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_out_and_layouts(rng):
    x = sample(rng, (6, 8))
    out = np.empty_like(x)
    assert F.relu(x, out=out) is out
    np.testing.assert_array_equal(F.sigmoid(x.T), F.sigmoid(x).T)  # copied to contiguous
    np.testing.assert_array_equal(F.softmax(x.T), F.softmax(np.ascontiguousarray(x.T)))


DROPOUT_SEEDS = [0, 1, 2**32 - 1, 2**32, 0x9E3779B97F4A7C15, 2**64 - 1]


@pytest.mark.parametrize("shape", SHAPES + [(3, 1001), (64, 257)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1 - 2**-30])
def test_dropout_matches_reference(isa, rng, shape, p):
    """The mask equals the reference's hash exactly; a kept element is x * fl(1/(1-p)),
    within 2u of the float64 x / (1 - p)."""
    x = sample(rng, shape)
    for seed in DROPOUT_SEEDS:
        y = F.dropout(x, p, seed)
        keep = ref.dropout_mask(shape, p, seed)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_array_equal(y[~keep], 0)
        want = ref.dropout(x.astype(np.float64), p, seed)
        assert_within(y, want, 2 * U * np.abs(want))
        # the backward pass is the same call on the gradient
        g = sample(rng, shape, 1.0)
        np.testing.assert_array_equal(F.dropout(g, p, seed) != 0, keep & (g != 0))


def test_dropout_statistics(rng):
    """1M elements: the kept share is 1 - p, pairs of neighbours and of seeds (one bit
    apart) are kept independently, to within 5 standard deviations."""
    n = 1 << 20
    x = np.ones(n, np.float32)
    for p in (0.1, 0.5, 0.8):
        q = 1 - p
        for seed in (0, 1, 2**32, 12345):
            keep = F.dropout(x, p, seed) != 0
            other = F.dropout(x, p, seed ^ 1) != 0
            neighbours = (keep[1:] & keep[:-1]).mean()
            for share, want, count in ((keep.mean(), q, n), (neighbours, q * q, n - 1),
                                       ((keep & other).mean(), q * q, n)):
                assert abs(share - want) < 5 * np.sqrt(want * (1 - want) / count), (p, seed)
    np.testing.assert_array_equal(F.dropout(x, 0.0, 7), x)


def test_dropout_same_bits_whatever_the_threads_and_in_place(isa, threads, rng):
    x = sample(rng, (1 << 18) + 3)
    threads(1)
    one = F.dropout(x, 0.3, 99)
    threads(2)
    np.testing.assert_array_equal(F.dropout(x, 0.3, 99), one)
    inplace = x.copy()
    assert F.dropout(inplace, 0.3, 99, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, one)


def test_dropout_keeps_nan_and_inf_like_torch():
    x = np.array([np.nan, np.inf, -np.inf] * 200, np.float32)
    y = F.dropout(x, 0.5, 3)
    keep = ref.dropout_mask(x.shape, 0.5, 3)
    assert 0 < keep.sum() < keep.size
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x) | (np.isinf(x) & ~keep))  # inf * 0
    np.testing.assert_array_equal(y[keep], x[keep] * np.float32(2))


BAD = [
    (lambda: F.dropout(np.ones(3, np.float32), 1.0, 0), ValueError, r"p must be in \[0, 1\)"),
    (lambda: F.dropout(np.ones(3, np.float32), float("nan"), 0), ValueError, "p must be"),
    (lambda: F.dropout(np.ones(3, np.float32), -0.1, 0), ValueError, "p must be"),
    (lambda: F.dropout(np.ones(3, np.float32), "0.1", 0), TypeError, "p must be a real"),
    (lambda: F.dropout(np.ones(3, np.float32), 0.5, -1), ValueError, "seed must be in"),
    (lambda: F.dropout(np.ones(3, np.float32), 0.5, 2**64), ValueError, "seed must be in"),
    (lambda: F.dropout(np.ones(3, np.float32), 0.5, 1.0), TypeError, "seed must be an int"),
    (lambda: F.dropout(np.ones(3, np.float32), 0.5, True), TypeError, "seed must be an int"),
    (lambda: F.dropout(np.ones(3), 0.5, 0), TypeError, "x must be a float32"),
    (lambda: F.dropout(np.ones(3, np.float32), 0.5, 0, out=np.ones(2, np.float32)), ValueError,
     r"out must have shape \(3,\)"),
    (lambda: F.relu(np.ones(3)), TypeError, "x must be a float32 array, got dtype float64"),
    (lambda: F.sigmoid([1, 2]), TypeError, "x must be a float32 array"),
    (lambda: F.relu_backward(np.ones(3, np.float32), np.ones(4, np.float32)), ValueError,
     r"grad_out must have the shape of x \(4,\)"),
    (lambda: F.tanh_backward(np.ones(3, np.int32), np.ones(3, np.float32)), TypeError,
     "grad_out must be a float32"),
    (lambda: F.relu(np.ones(3, np.float32), out=np.ones(4, np.float32)), ValueError,
     r"out must have shape \(3,\)"),
    (lambda: F.relu(np.ones(3, np.float32), out=np.ones(3)), TypeError, "out must be a float32"),
    (lambda: F.relu(np.ones((3, 3), np.float32), out=np.ones((3, 3), np.float32).T), ValueError,
     "C-contiguous"),
    (lambda: F.softmax(np.float32(1.0)), ValueError, "at least 1 dimension"),
    (lambda: F.gelu(np.ones(3, np.float32), "erf"), ValueError,
     "approximate must be 'none' or 'tanh', got 'erf'"),
    (lambda: F.gelu_backward(np.ones(3, np.float32), np.ones(3, np.float32), None), TypeError,
     "approximate must be a str"),
    (lambda: F.elu(np.ones(3, np.float32), float("nan")), ValueError, "alpha must be finite"),
    (lambda: F.elu_backward(np.ones(3, np.float32), np.ones(3, np.float32), 1e39), ValueError,
     "alpha must be finite"),
    (lambda: F.elu(np.ones(3, np.float32), True), TypeError, "alpha must be a real number"),
    (lambda: F.silu(np.ones(3, np.float64)), TypeError, "x must be a float32"),
    (lambda: F.silu_backward(np.ones(2, np.float32), np.ones(3, np.float32)), ValueError,
     r"grad_out must have the shape of x \(3,\)"),
]


@pytest.mark.parametrize("call, exc, msg", BAD)
def test_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_overlapping_out_is_rejected():
    buf = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        F.relu(buf[:8], out=buf[2:])
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        F.relu_backward(x, x, out=x)
    readonly = np.ones(3, np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        F.relu(np.ones(3, np.float32), out=readonly)


@pytest.mark.parametrize("dim", [0, 1, -2, 2, -1])
def test_softmax_and_log_softmax_over_dim_match_torch(rng, dim):
    """F.softmax(x, dim) and F.log_softmax(x, dim), torch's signature (dim was refused:
    TypeError), with their backwards and out= (in place included)."""
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for f, f_back, t_f in [(F.softmax, F.softmax_backward, torch.softmax),
                           (F.log_softmax, F.log_softmax_backward, torch.log_softmax)]:
        tx = torch.tensor(x, requires_grad=True)
        ty = t_f(tx, dim)
        ty.backward(torch.from_numpy(g))
        y = f(x, dim)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f_back(g, y, dim), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
        inplace = x.copy()
        assert f(inplace, dim=dim, out=inplace) is inplace
        np.testing.assert_array_equal(inplace, y)
    with pytest.raises(ValueError, match=r"dim must be in \[-3, 3\)"):
        F.softmax(x, 3)
    with pytest.raises(TypeError, match="dim must be an int"):
        F.log_softmax(x, 1.0)
