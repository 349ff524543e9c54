"""Fused optimizer kernels (fastnn._core.sgd_step / adam_step / rmsprop_step) against
fastnn.reference's run in float64 on the same starting values.

The kernels update in float32 with torch's operation order: each step adds a few
roundings (~4u relative, u = 2**-24) to quantities of the size of the parameter, the
gradient, m and v, so after five steps every array stays within 1e-6 of the reference
relative to its own magnitude (atol = 1e-6 * max|array|, covering elements that pass
near zero, e.g. m as gradients change sign)."""
import numpy as np
import pytest

from fastnn import _core, reference as ref

SHAPES = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (37, 41), (10,), (1,), (0,)]
STEPS = 5


def make(rng, shapes=SHAPES):
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def assert_close(actual, expected):
    for a, e in zip(actual, expected):
        scale = float(np.abs(e).max()) if e.size else 0.0
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.8, nesterov=True),
    dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.1, weight_decay=5e-2, nesterov=True, momentum=0.5),
], ids=["plain", "momentum", "dampening", "nesterov", "weight-decay", "all"])
def test_sgd_matches_reference(isa, rng, kw):
    params = make(rng)
    bufs = [np.zeros_like(p) for p in params]
    r_params = [p.astype(np.float64) for p in params]
    r_bufs = [b.astype(np.float64) for b in bufs]
    for step in range(STEPS):
        grads = make(rng)
        _core.sgd_step(params, grads, bufs if kw.get("momentum") else None, first_step=step == 0,
                       **kw)
        for p, g, b in zip(r_params, grads, r_bufs):
            ref.sgd_step(p, g.astype(np.float64), b, first_step=step == 0, **kw)
        assert_close(params, r_params)
        if kw.get("momentum"):
            assert_close(bufs, r_bufs)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=1e-2, beta1=0.0, beta2=0.5),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, weight_decay=0.1, decoupled=True),
    dict(lr=3e-3, eps=1e-3, decoupled=True),
], ids=["default", "betas", "adam-l2", "adamw", "eps"])
def test_adam_matches_reference(isa, rng, kw):
    params = make(rng)
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    r_params, r_ms, r_vs = ([a.astype(np.float64) for a in arrays] for arrays in (params, ms, vs))
    for step in range(1, STEPS + 1):
        grads = make(rng)
        _core.adam_step(params, grads, ms, vs, step=step, **kw)
        for p, g, m, v in zip(r_params, grads, r_ms, r_vs):
            ref.adam_step(p, g.astype(np.float64), m, v, step=step, **kw)
        assert_close(params, r_params)
        assert_close(ms, r_ms)
        assert_close(vs, r_vs)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=1e-3, alpha=0.9, eps=1e-7),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, momentum=0.9),
    dict(lr=1e-2, centered=True),
    dict(lr=1e-2, alpha=0.5, momentum=0.5, centered=True, weight_decay=0.01, eps=1e-3),
    dict(lr=1e-3, alpha=0.9, eps=1e-7, eps_inside=True),
    dict(lr=1e-2, alpha=0.5, momentum=0.5, centered=True, eps=1e-3, eps_inside=True),
], ids=["default", "keras", "l2", "momentum", "centered", "all", "eps-inside",
        "eps-inside-centered"])
def test_rmsprop_matches_reference(isa, rng, kw):
    params = make(rng)
    sq, ga, bufs = ([np.zeros_like(p) for p in params] for _ in range(3))
    r_params, r_sq, r_ga, r_bufs = ([a.astype(np.float64) for a in arrays]
                                    for arrays in (params, sq, ga, bufs))
    for _ in range(STEPS):
        grads = make(rng)
        _core.rmsprop_step(params, grads, sq, ga if kw.get("centered") else None,
                           bufs if kw.get("momentum") else None, **kw)
        for p, g, s, a, b in zip(r_params, grads, r_sq, r_ga, r_bufs):
            ref.rmsprop_step(p, g.astype(np.float64), s, a, b, **kw)
        assert_close(params, r_params)
        assert_close(sq, r_sq)
        if kw.get("centered"):
            assert_close(ga, r_ga)
        if kw.get("momentum"):
            assert_close(bufs, r_bufs)


def test_thread_count_does_not_change_bits(isa, rng, threads):
    shapes = [(300, 700), (5,), (1000, 300), (17,)]
    start, grads = make(rng, shapes), make(rng, shapes)
    results = []
    for n in (1, 2, 3):
        threads(n)
        params = [p.copy() for p in start]
        ms, vs = [np.zeros_like(p) for p in start], [np.zeros_like(p) for p in start]
        bufs = [np.zeros_like(p) for p in start]
        sgd_params = [p.copy() for p in start]
        rms = [[np.zeros_like(p) for p in start] for _ in range(3)]
        rms_params = [p.copy() for p in start]
        for step in range(1, 3):
            _core.adam_step(params, grads, ms, vs, step=step, weight_decay=0.01)
            _core.sgd_step(sgd_params, grads, bufs, lr=0.1, momentum=0.9, first_step=step == 1)
            _core.rmsprop_step(rms_params, grads, *rms, momentum=0.9, centered=True)
        results.append(params + ms + vs + sgd_params + bufs + rms_params + sum(rms, []))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_empty_parameter_list():
    _core.sgd_step([], [], None, lr=0.1, first_step=True)
    _core.adam_step([], [], [], [], step=1)
    _core.rmsprop_step([], [], [], None, None)


P = [np.ones((2, 3), np.float32), np.ones(4, np.float32)]


def arrays():
    return [p.copy() for p in P]


def sgd(**kw):
    args = dict(params=arrays(), grads=arrays(), bufs=arrays(), lr=0.1, momentum=0.9,
                first_step=True)
    args.update(kw)
    _core.sgd_step(args.pop("params"), args.pop("grads"), args.pop("bufs"), **args)


def adam(**kw):
    args = dict(params=arrays(), grads=arrays(), ms=arrays(), vs=arrays(), step=1)
    args.update(kw)
    _core.adam_step(args.pop("params"), args.pop("grads"), args.pop("ms"), args.pop("vs"), **args)


def rmsprop(**kw):
    args = dict(params=arrays(), grads=arrays(), square_avgs=arrays(), grad_avgs=arrays(),
                bufs=arrays(), momentum=0.9, centered=True)
    args.update(kw)
    _core.rmsprop_step(args.pop("params"), args.pop("grads"), args.pop("square_avgs"),
                       args.pop("grad_avgs"), args.pop("bufs"), **args)


readonly = arrays()
readonly[1].flags.writeable = False


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: sgd(grads=arrays()[:1]), ValueError, r"grads must be a list of 2 arrays"),
    (lambda: sgd(bufs=None), ValueError, r"bufs must be a list of 2 arrays .*got None"),
    (lambda: sgd(grads=[P[0], np.ones(5, np.float32)]), ValueError,
     r"grads\[1\] must have shape \(4,\) like params\[1\], got \(5,\)"),
    (lambda: sgd(grads=[P[0], np.ones(4)]), TypeError, r"grads\[1\] must be a float32"),
    (lambda: sgd(params=[np.ones((3, 2), np.float32).T, P[1].copy()]), ValueError,
     r"params\[0\] must be a writeable C-contiguous"),
    (lambda: sgd(params=readonly), ValueError, r"params\[1\] must be a writeable"),
    (lambda: sgd(lr=-1.0), ValueError, "lr must be >= 0"),
    (lambda: sgd(lr=float("nan")), ValueError, "lr must be >= 0"),
    (lambda: sgd(momentum=-0.1), ValueError, "momentum and weight_decay must be >= 0"),
    (lambda: sgd(momentum=0.0, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda: sgd(dampening=0.1, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda: adam(step=0), ValueError, "step must be an int >= 1"),
    (lambda: adam(step=1.5), ValueError, "step must be an int >= 1"),
    (lambda: adam(lr=-1e-3), ValueError, "lr must be >= 0"),
    (lambda: adam(beta1=1.0), ValueError, r"beta1 must lie in \[0, 1\)"),
    (lambda: adam(beta2=-0.1), ValueError, r"beta2 must lie in \[0, 1\)"),
    (lambda: adam(eps=0.0), ValueError, "eps must be > 0"),
    (lambda: adam(weight_decay=-1.0), ValueError, "weight_decay must be >= 0"),
    (lambda: adam(vs=arrays()[:1]), ValueError, r"vs must be a list of 2 arrays"),
    (lambda: adam(ms=[P[0].copy(), P[1].astype(np.float16)]), TypeError,
     r"ms\[1\] must be a float32"),
    (lambda: adam(params=[P[0].copy(), [1.0, 2.0, 3.0, 4.0]]), TypeError,
     r"params\[1\] must be a float32 ndarray, got list"),
    (lambda: rmsprop(lr=-1.0), ValueError, "lr must be >= 0"),
    (lambda: rmsprop(alpha=1.5), ValueError, r"alpha must lie in \[0, 1\]"),
    (lambda: rmsprop(eps=0.0), ValueError, "eps must be > 0"),
    (lambda: rmsprop(momentum=-1.0), ValueError, "weight_decay and momentum must be >= 0"),
    (lambda: rmsprop(grad_avgs=None), ValueError, r"grad_avgs must be a list of 2 arrays"),
    (lambda: rmsprop(bufs=arrays()[:1]), ValueError, r"bufs must be a list of 2 arrays"),
    (lambda: rmsprop(square_avgs=[P[0].copy(), P[1].astype(np.float64)]), TypeError,
     r"square_avgs\[1\] must be a float32"),
])
def test_bad_arguments_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_sgd_without_momentum_ignores_bufs(rng):
    params, grads = make(rng), make(rng)
    expected = [p.astype(np.float64) - 0.1 * g.astype(np.float64) for p, g in zip(params, grads)]
    _core.sgd_step(params, grads, None, lr=0.1, first_step=False)
    assert_close(params, expected)
