"""Channels-last (NHWC) convolution operands: conv2d's layout= and the graph plan's
channels-last activations between fused convolutions (fastnn/nn/conv.py, _FusedConv).

The layout changes where values sit, never what they are: every result on NHWC operands
is the NCHW one transposed, bitwise, on every algorithm (Winograd reads and writes NHWC
as it is; the direct method, and Winograd where its result is not finite, run on NCHW
copies), and the bias gradient sums an NHWC gradient in the NCHW loop's order."""
import numpy as np
import pytest

import fastnn.functional as F
from fastnn import losses, models, optim
from fastnn.nn import conv as conv_module

ALGOS = ["direct", "winograd", "winograd4x4", "auto"]
LAYOUTS = ["NHWC", ("NCHW", "NHWC"), ("NHWC", "NCHW")]


def hwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def chw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def sides(layout):
    return (layout, layout) if isinstance(layout, str) else layout


def run(x, w, b, pad, algo, pool, act, layout, g, rng):
    """Forward and backward in `layout` (operands converted in, results back to NCHW)."""
    xl, yl = (s == "NHWC" for s in sides(layout))
    to_x, to_y = (hwc if xl else np.asarray), (hwc if yl else np.asarray)
    back_x, back_y = (chw if xl else np.asarray), (chw if yl else np.asarray)
    opts = dict(algorithm=algo, activation=act, layout=layout)
    if pool is None:
        y = F.conv2d(to_x(x), w, b, 1, pad, **opts)
        pos = None
        grads = F.conv2d_backward(to_y(g), to_x(x), w, 1, pad,
                                  output=y if act else None, **opts)
    else:
        y, pos = F.conv2d_max_pool2d(to_x(x), w, b, 1, pad, 1, *pool, **opts)
        grads = F.conv2d_max_pool2d_backward(to_y(g), pos, to_x(x), w, 1, pad, 1, *pool,
                                             output=y if act else None, **opts)
        pos = back_y(pos)
    return back_y(y), pos, back_x(grads[0]), grads[1], grads[2]


def check_same(x, w, b, pad, algo, pool, act, rng):
    y_shape = F.conv2d(x, w, b, 1, pad).shape
    if pool is not None:
        y_shape = F.conv2d_max_pool2d(x, w, b, 1, pad, 1, *pool)[0].shape
    g = rng.standard_normal(y_shape).astype(np.float32)
    want = run(x, w, b, pad, algo, pool, act, "NCHW", g, rng)
    for layout in LAYOUTS:
        got = run(x, w, b, pad, algo, pool, act, layout, g, rng)
        for name, a, e in zip(("y", "indices", "grad_x", "grad_w", "grad_b"), got, want):
            assert (a is None) == (e is None)
            if a is not None:
                assert np.array_equal(a, e, equal_nan=True), (layout, name)


# (n, c_in, size, c_out, padding): one image, channels past the lanes and short of them
# (3: the scalar unpool), odd and tiny sizes, padding 0 to 2
SHAPES = [(1, 32, 8, 32, 1), (3, 17, 7, 40, 0), (2, 3, 9, 5, 2), (4, 32, 12, 17, 1),
          (2, 40, 5, 32, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("pool", [None, (2, None, 0), (3, 2, 1)], ids=str)
@pytest.mark.parametrize("act", [None, "relu"])
def test_channels_last_is_nchw_transposed(isa, rng, shape, algo, pool, act):
    n, c, size, o, pad = shape
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, 3, 3)) * 0.2).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    check_same(x, w, b, pad, algo, pool, act, rng)


@pytest.mark.parametrize("algo", ["winograd", "winograd4x4"])
@pytest.mark.parametrize("pool", [None, (2, None, 0)], ids=str)
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_channels_last_nonfinite_takes_the_direct_methods_results(isa, rng, algo, pool, value):
    """A weight of inf or NaN: Winograd's output is not finite, and the layout's results
    are the direct method's on NCHW copies, still the NCHW call's bitwise."""
    x = rng.standard_normal((2, 32, 10, 10)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.2).astype(np.float32)
    w[3, 5, 1, 1] = value
    check_same(x, w, None, 1, algo, pool, None, rng)


def test_channels_last_threads_bitwise(isa, threads, rng):
    x = hwc(rng.standard_normal((16, 32, 20, 20)).astype(np.float32))
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.2).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    g = rng.standard_normal((16, 10, 10, 32)).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        threads(t)
        y, pos = F.conv2d_max_pool2d(x, w, b, 1, 1, layout="NHWC")
        out.append((y, *F.conv2d_max_pool2d_backward(g, pos, x, w, 1, 1, layout="NHWC")))
    for results in zip(*out):
        assert all(np.array_equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("algo", ["direct", "winograd4x4"])
def test_channels_last_positions_past_the_window_are_refused(isa, rng, algo):
    x = hwc(rng.standard_normal((2, 32, 8, 8)).astype(np.float32))
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    y, pos = F.conv2d_max_pool2d(x, w, None, 1, 1, layout="NHWC", algorithm=algo)
    pos[1, 2, 3, 7] = 4
    with pytest.raises(ValueError, match="indices"):
        F.conv2d_max_pool2d_backward(np.ones_like(y), pos, x, w, 1, 1, layout="NHWC",
                                     algorithm=algo)


@pytest.mark.parametrize("layout", ["NWHC", None, 1, ("NCHW",), ("NHWC", "nchw"), ["NHWC"]])
def test_bad_layout_is_named(rng, layout):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="conv2d: layout must be 'NCHW', 'NHWC' or a pair"):
        F.conv2d(x, w, layout=layout)


def test_channels_last_shapes_are_checked(rng):
    """x's channels are its last axis under NHWC: an NCHW array there is refused, naming
    the layout."""
    x = rng.standard_normal((2, 32, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 32, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="x has 9 input channels .*channels-last"):
        F.conv2d(x, w, layout="NHWC")
    y = F.conv2d(hwc(x), w, layout=("NHWC", "NCHW"))
    assert y.shape == (2, 8, 7, 7)
    with pytest.raises(ValueError, match="grad_out must have shape \\(2, 7, 7, 8\\)"):
        F.conv2d_backward(y, hwc(x), w, layout="NHWC")


def train(model, x, y, steps=3):
    loss_fn, opt = losses.CrossEntropyLoss(), optim.Adam(model.parameters(), 1e-3)
    outs = []
    for _ in range(steps):
        opt.zero_grad()
        outs.append(model(x).copy())
        loss_fn(outs[-1], y)
        model.backward(loss_fn.backward())
        opt.step()
    return outs, [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("name,shape", [("tinyvgg", (1, 28, 28)), ("vgg_cifar", (3, 32, 32))])
def test_plan_runs_channels_last_between_convolutions(isa, rng, monkeypatch, name, shape):
    """The graph plan of TinyVGG and VGG-CIFAR passes NHWC between its Winograd
    convolutions (not into the first one, fed by the model's input, nor out of the last,
    read by Flatten), and trains to the bits of the all-NCHW plan; a batch on which the
    convolutions run direct stays NCHW."""
    x = rng.standard_normal((64,) + shape).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = getattr(models, name)(seed=0)
    got = train(model, x, y)
    layouts = [step.runner._layout for step in model._graph_for(((None,) + shape,)).steps
               if isinstance(step.runner, conv_module._FusedConv)]
    assert layouts == [("NCHW", "NCHW"), ("NCHW", "NHWC"), ("NHWC", "NHWC"),
                       ("NHWC", "NCHW")]
    monkeypatch.setattr(conv_module, "_winograd_throughout", lambda conv, shape: False)
    want = train(getattr(models, name)(seed=0), x, y)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert np.array_equal(a, b)
    monkeypatch.undo()
    model.eval()
    model(x[:1])
    layouts = {step.runner._layout for step in model._graph_for(((None,) + shape,)).steps
               if isinstance(step.runner, conv_module._FusedConv)}
    assert layouts == {("NCHW", "NCHW")}
    np.testing.assert_array_equal(model(x[:2]), model.predict(x[:2]))
