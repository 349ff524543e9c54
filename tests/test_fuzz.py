"""Boundary fuzzing: every public kernel function, layer, loss and optimizer called with
hostile arguments drawn by hypothesis. Each call must either return what fastnn.reference
computes (in float64) or raise ValueError/TypeError/MemoryError whose message names an
argument; never crash, hang, overflow or allocate unbounded memory.

Hostile: every dtype, 0-d/1-d/5-d arrays, empty and size-1 dimensions, huge shapes
(broadcast views costing no memory, zero-size arrays with 2**40-long dimensions),
non-contiguous, negative-stride, unaligned and read-only views, outputs that are read-only,
mis-shaped, mis-typed, strided or overlap an input, out-of-range sizes/strides/padding
(0, negative, 2**31 ... 2**64, bools, floats, strings), NaN and inf, mismatched batches.

The profile is deterministic (derandomize) and makes >= 10,000 calls (asserted)."""
import inspect
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import functional as F
from fastnn import datasets, distributed as dist, losses, nn, optim
from fastnn import reference as R

settings.register_profile("fuzz", max_examples=175, derandomize=True, deadline=None,
                          database=None, print_blob=True,
                          suppress_health_check=list(HealthCheck))
FUZZ = settings.get_profile("fuzz")
ALLOWED = (ValueError, TypeError, MemoryError)
CALLS = {}  # test name -> calls made

HOSTILE_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.float64,
                  np.complex64, object, np.dtype(">f4")]  # big-endian float32 too
HOSTILE_INTS = [0, -1, -2**63, 2**31, 2**40 + 1, 2**62, 2**63, 2**64, True, 1.5, "2", None,
                (1, 2, 3), (), (2, -1), np.int64(2), np.uint64(2**63), float("nan")]
HOSTILE_REALS = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e300, True, "0.1",
                 1j, None, (0.9,), np.float32(0.5), 2**70]
# Shapes of broadcast views whose contiguous copy or output would need > 2**45 bytes.
HUGE = {1: (2**45,), 2: (2**23, 2**23), 3: (2**15, 2**15, 2**16), 4: (2**12, 2**12, 2**11, 2**11),
        5: (2**9,) * 5}


@dataclass
class Op:
    name: str
    fn: object
    ref: object
    make: object                                    # (rng, draw) -> dict of valid arguments
    outs: dict = field(default_factory=dict)        # out kwarg -> index in result (None: all)
    windows: tuple = ()                             # int arguments (sizes, strides, padding)
    float_arrays: tuple = ()                        # float32 array arguments
    in_place: tuple = ()    # of float_arrays: updated in place, so never relayouted when valid


def randn(r, *shape):
    return np.asarray(r.standard_normal(shape), np.float32)


def dims(draw, lo=1, hi=4):
    return draw(st.integers(lo, hi))


# ---- valid argument builders (small shapes; size-1 dimensions come up often) ----

def make_unary(r, draw, ndim_min=0):
    shape = tuple(dims(draw) for _ in range(draw(st.integers(ndim_min, 3))))
    return {"x": randn(r, *shape)}


def make_over_dim(r, draw, backward=False):
    """softmax's arguments: x (or grad_out and y) of >= 1 dimension, and a dim of it."""
    args = make_backward(r, draw, 1, "y") if backward else make_unary(r, draw, 1)
    ndim = (args["y"] if backward else args["x"]).ndim
    return {**args, "dim": draw(st.integers(-ndim, ndim - 1))}


def over_dim(f, backward=False):
    """fastnn.reference's last-axis f over dimension dim: moved last and back."""
    def ref(*arrays, dim=-1, **named):
        arrays = [np.moveaxis(a, dim, -1) for a in (*arrays, *named.values())]
        return np.moveaxis(f(*arrays), -1, dim)
    if backward:
        return lambda grad_out, y, dim=-1: ref(grad_out, y, dim=dim)
    return lambda x, dim=-1: ref(x, dim=dim)


def make_dropout(r, draw):
    return {**make_unary(r, draw), "p": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9])),
            "seed": draw(st.integers(0, 2**64 - 1))}


def make_backward(r, draw, ndim_min=0, src="x"):
    x = make_unary(r, draw, ndim_min)["x"]
    return {"grad_out": randn(r, *x.shape), src: x}


def make_linear(r, draw, backward=False):
    n, i, o = dims(draw), dims(draw), dims(draw)
    args = {"x": randn(r, n, i), "weight": randn(r, o, i)}
    if backward:
        return {"grad_out": randn(r, n, o), **args}
    return {**args, "bias": randn(r, o) if draw(st.booleans()) else None}


def make_conv(r, draw, backward=False):
    kh, kw, dil = dims(draw, 1, 3), dims(draw, 1, 3), dims(draw, 1, 2)
    pad, stride = dims(draw, 0, 2), dims(draw, 1, 2)
    n, c, o = dims(draw, 1, 2), dims(draw, 1, 3), dims(draw, 1, 3)
    h = max(dims(draw, 1, 7), dil * (kh - 1) + 1)
    w = max(dims(draw, 1, 7), dil * (kw - 1) + 1)
    layout = draw(st.sampled_from(CONV_LAYOUTS))
    args = {"x": to_layout(randn(r, n, c, h, w), layout, 0), "weight": randn(r, o, c, kh, kw)}
    win = {"stride": stride, "padding": pad, "dilation": dil, "algorithm": draw_algorithm(
        draw, (kh, kw, stride, dil) == (3, 3, 1, 1)), "activation": draw_activation(draw),
        "layout": layout}
    if backward:
        oh, ow = R.conv2d_output_shape(h, w, (kh, kw), stride, pad, dil)
        return with_output(r, {"grad_out": to_layout(randn(r, n, o, oh, ow), layout, 1), **args,
                               **win})
    return {**args, "bias": randn(r, o) if draw(st.booleans()) else None, **win}


CONV_LAYOUTS = ["NCHW", "NHWC", ("NCHW", "NHWC"), ("NHWC", "NCHW")]


def is_hwc(layout, side):
    """Whether side 0 (x) or 1 (the output) of a conv2d layout is channels-last."""
    return (layout if isinstance(layout, str) else layout[side]) == "NHWC"


def to_layout(a, layout, side, back=False):
    """An NCHW array in side's layout (back: from it to NCHW)."""
    if not is_hwc(layout, side) or a is None:
        return a
    return np.ascontiguousarray(np.moveaxis(a, 3, 1) if back else np.moveaxis(a, 1, 3))


def make_conv_transpose(r, draw, backward=False):
    """conv_transpose2d's arguments (output_padding below stride or dilation, as torch)."""
    kh, kw, dil, stride = dims(draw, 1, 3), dims(draw, 1, 3), dims(draw, 1, 2), dims(draw, 1, 2)
    groups = dims(draw, 1, 2)
    n, c, o = dims(draw, 1, 2), groups * dims(draw, 1, 2), groups * dims(draw, 1, 2)
    h, w = dims(draw, 1, 5), dims(draw, 1, 5)
    op = draw(st.integers(0, max(stride, dil) - 1))
    pad = draw(st.integers(0, (min(h, w) - 1) * stride // 2))
    args = {"x": randn(r, n, c, h, w), "weight": randn(r, c, o // groups, kh, kw),
            "stride": stride, "padding": pad, "output_padding": op, "groups": groups,
            "dilation": dil}
    if backward:
        oh, ow = ((m - 1) * stride - 2 * pad + dil * (k - 1) + op + 1 for m, k in ((h, kh), (w, kw)))
        return {"grad_out": randn(r, n, o, oh, ow), **args}
    return {**args, "bias": randn(r, o) if draw(st.booleans()) else None}


def draw_activation(draw):
    return draw(st.sampled_from([None, "relu"]))


def with_output(r, args):
    """A backward's arguments with the relu output it gates by, under activation="relu"
    (zeros in it, as a relu makes them)."""
    if args["activation"] is not None:
        args["output"] = np.maximum(randn(r, *args["grad_out"].shape), 0)
    return args


def draw_algorithm(draw, winograd_fits):
    """A convolution algorithm valid for the window (Winograd: 3x3, stride 1, dilation 1)."""
    return draw(st.sampled_from([None, "auto", "direct"] +
                                (["winograd", "winograd4x4"] if winograd_fits else [])))


def conv_ref(ref, backward=False):
    """The reference op (one algorithm: exact) called without the algorithm argument, its
    activation ("relu") applied to the output (the first, with indices), or its gradient
    gated by the relu output."""
    def call_ref(*args, algorithm=None, activation=None, output=None, layout="NCHW",
                 need_input_grad=True, **kwargs):
        if activation not in (None, "relu"):
            raise ValueError("activation must be None or 'relu'")
        if layout not in CONV_LAYOUTS:
            raise ValueError("layout must be 'NCHW', 'NHWC' or a pair of them")
        kwargs["x"] = to_layout(kwargs["x"], layout, 0, back=True)
        for key in ("grad_out", "indices"):
            if key in kwargs:
                kwargs[key] = to_layout(kwargs[key], layout, 1, back=True)
        if not backward:
            y = ref(*args, **kwargs)
            if activation is not None:
                y = (R.relu(y[0]), y[1]) if isinstance(y, tuple) else R.relu(y)
            return tuple(to_layout(a, layout, 1) for a in y) if isinstance(y, tuple) \
                else to_layout(y, layout, 1)
        if (output is None) != (activation is None):
            raise ValueError("output goes with activation='relu' only")
        grad_out = kwargs.pop("grad_out")
        if output is not None:
            output = to_layout(output, layout, 1, back=True)
            if output.shape != grad_out.shape:
                raise ValueError("output and grad_out differ in shape")
            grad_out = R.relu_backward(grad_out, output)
        gx, gw, gb = ref(grad_out, *args, **kwargs)
        return to_layout(gx, layout, 0), gw, gb
    return call_ref


def make_conv_pool(r, draw, backward=False):
    args = make_conv(r, draw)
    layout = args["layout"]
    x, w = to_layout(args["x"], layout, 0, back=True), args["weight"]
    win = {k: args[k] for k in CONV if k not in ("algorithm", "activation", "layout")}
    oh, ow = R.conv2d_output_shape(x.shape[2], x.shape[3], w.shape[2:], *win.values())
    k = dims(draw, 1, min(3, oh, ow))
    pool = {"kernel_size": k, "pool_stride": dims(draw, 1, 3) if draw(st.booleans()) else None,
            "pool_padding": dims(draw, 0, k // 2)}
    if min(oh, ow) >= 2 and draw(st.booleans()):  # the CNNs' 2x2 pool, often
        pool = {"kernel_size": 2, "pool_stride": None, "pool_padding": 0}
    if not backward:
        return {**args, **pool}
    y, pos = R.conv2d_max_pool2d(x, w, args["bias"], *win.values(), *pool.values())
    # without the input gradient (a first layer), a 2x2 pool over a short im2col runs the
    # conv + pool pass
    return with_output(r, {"grad_out": to_layout(randn(r, *y.shape), layout, 1),
                           "indices": to_layout(pos, layout, 1), "x": args["x"], "weight": w,
                           **win, **pool, "algorithm": args["algorithm"],
                           "activation": args["activation"], "layout": layout,
                           "need_input_grad": draw(st.booleans())})


def make_pool(r, draw, backward=False, indices=False, avg=False):
    k, s = dims(draw, 1, 3), dims(draw, 1, 3)
    p = dims(draw, 0, k // 2)
    x = randn(r, dims(draw, 1, 2), dims(draw, 1, 3), max(dims(draw, 1, 7), k),
              max(dims(draw, 1, 7), k))
    args = {"x": x, "kernel_size": k, "stride": s if draw(st.booleans()) else None,
            "padding": p, "ceil_mode": draw(st.booleans())}
    if avg:
        args["count_include_pad"] = draw(st.booleans())
    if not backward:
        return args
    y, idx = R.max_pool2d_with_indices(x, k, args["stride"], p, args["ceil_mode"])
    args = {"grad_out": randn(r, *y.shape), **args}
    if indices:
        args["indices"] = idx
    return args


def make_bn(r, draw, backward=False):
    """x (N, C, *spatial) with more than one value per channel when training."""
    training = draw(st.booleans())
    spatial = tuple(dims(draw, 1, 3) for _ in range(draw(st.integers(0, 2))))
    n, c = dims(draw), dims(draw)
    if training and n * np.prod(spatial, dtype=int) == 1:
        n = 2
    x = randn(r, n, c, *spatial)
    weight = randn(r, c) if draw(st.booleans()) else None
    if backward:
        if n * x[0, 0].size > 1:
            _, mean, invstd = R.batch_norm(x, None, None, None, None, training=True)
        else:
            mean, invstd = randn(r, c), np.abs(randn(r, c)) + 0.5
        args = {"grad_y": randn(r, *x.shape), "x": x, "weight": weight,
                "save_mean": mean.astype(np.float32), "save_invstd": invstd.astype(np.float32),
                "training": training, "activation": draw_activation(draw)}
        if args["activation"] is not None:  # the relu output it gates by
            args["output"] = np.maximum(randn(r, *x.shape), 0)
        return args
    no_stats = training and draw(st.booleans())  # optional in training only
    return {"x": x, "weight": weight, "bias": randn(r, c) if draw(st.booleans()) else None,
            "running_mean": None if no_stats else randn(r, c),
            "running_var": None if no_stats else np.abs(randn(r, c)) + 0.5, "training": training,
            "momentum": draw(st.sampled_from([0.0, 0.1, 1.0])),
            "eps": draw(st.sampled_from([0.0, 1e-5, 1.0])), "activation": draw_activation(draw)}


def make_smooth(r, draw, name, backward=False):
    """gelu's (approximate), silu's or elu's (alpha) arguments, or their backward's."""
    args = make_backward(r, draw) if backward else make_unary(r, draw)
    if name == "gelu":
        args["approximate"] = draw(st.sampled_from(["none", "tanh"]))
    if name == "elu":
        args["alpha"] = draw(st.sampled_from([1.0, 0.3, -2.0, 0]))
    return args


SMOOTH_ARGS = {"gelu": ("approximate",), "silu": (), "elu": ("alpha",)}


def make_ln(r, draw, backward=False):
    """x (*lead, *normalized_shape), the shape as an int or a tuple, optional weight and
    bias; for the backward the statistics of the forward."""
    shape = tuple(dims(draw) for _ in range(draw(st.integers(1, 2))))
    lead = tuple(dims(draw, 0 if draw(st.booleans()) else 1) for _ in range(draw(st.integers(0, 2))))
    x = randn(r, *lead, *shape)
    normalized = shape[0] if len(shape) == 1 and draw(st.booleans()) else shape
    weight = randn(r, *shape) if draw(st.booleans()) else None
    bias = randn(r, *shape) if draw(st.booleans()) else None
    if backward:
        _, mean, rstd = R.layer_norm(x, normalized, eps=1e-5)
        return {"grad_y": randn(r, *x.shape), "x": x, "normalized_shape": normalized,
                "save_mean": mean.astype(np.float32), "save_rstd": rstd.astype(np.float32),
                "weight": weight, "bias": bias}
    return {"x": x, "normalized_shape": normalized, "weight": weight, "bias": bias,
            "eps": draw(st.sampled_from([0.0, 1e-5, 1.0]))}


def make_adaptive(r, draw, backward=False):
    x = randn(r, dims(draw, 1, 2), dims(draw, 1, 3), dims(draw, 1, 7), dims(draw, 1, 7))
    size = draw(st.sampled_from([1, 2, 3, 5, (2, None), (None, 1), (4, 3)]))
    if not backward:
        return {"x": x, "output_size": size}
    return {"grad_y": randn(r, *R.adaptive_avg_pool2d(x, size).shape), "input_shape": x.shape}


def make_merge(r, draw, kind):
    """add's inputs of one shape, or concatenate's agreeing outside `axis`, or the
    gradient of a concatenation and the sizes to split it into."""
    shape = [dims(draw) for _ in range(draw(st.integers(1, 4)))]
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    inputs = []
    for _ in range(dims(draw, 1, 3)):
        if kind != "add":
            shape[axis] = dims(draw, 0, 3)
        inputs.append(randn(r, *shape))
    if kind == "add":
        return {"inputs": inputs}
    if kind == "concatenate":
        return {"inputs": inputs, "axis": axis}
    return {"grad_y": np.concatenate(inputs, axis), "sizes": [a.shape[axis] for a in inputs],
            "axis": axis}


def make_ce(r, draw):
    n, c = dims(draw, 1, 5), dims(draw, 1, 5)
    return {"logits": 3 * randn(r, n, c), "labels": r.integers(0, c, n)}


def make_pair(a, b):
    def make(r, draw):
        x = make_unary(r, draw)["x"]
        t = r.random(x.shape).astype(np.float32)
        return {a: x, b: t}
    return make


def make_matmul(r, draw):
    m, k, n = dims(draw, 1, 9), dims(draw, 1, 9), dims(draw, 1, 9)
    return {"a": randn(r, m, k), "b": randn(r, k, n)}


def ref_pool_backward(kind):
    def ref(grad_out, x, kernel_size, stride, padding, ceil_mode=False, indices=None,
            **avg_args):
        if indices is None:
            f = R.max_pool2d_backward if kind == "max" else R.avg_pool2d_backward
            return f(grad_out, x, kernel_size, stride, padding, ceil_mode, **avg_args)
        R.max_pool2d(x, kernel_size, stride, padding, ceil_mode)  # checks the arguments
        if indices.shape != grad_out.shape:
            raise ValueError("indices and grad_out differ in shape")
        n, c, h, w = x.shape
        grad_x = np.zeros((n * c, h * w))
        np.add.at(grad_x, (np.arange(n * c)[:, None], indices.reshape(n * c, -1)),
                  grad_out.reshape(n * c, -1))
        return grad_x.reshape(x.shape)
    return ref


def ref_ce_with_grad(logits, labels):
    return R.cross_entropy(logits, labels), R.cross_entropy_backward(logits, labels)


def ref_matmul(a, b):
    return a @ b


POOL = ("kernel_size", "stride", "padding")
INDEX_DTYPES = {"conv2d_max_pool2d": np.uint8}  # indices= dtypes other than int64
CONV = ("stride", "padding", "dilation", "algorithm", "activation", "layout")
CONV_POOL = ("kernel_size", "pool_stride", "pool_padding")
TRANSPOSE = ("stride", "padding", "output_padding", "groups", "dilation")
OPS = [Op(name, getattr(F, name), getattr(R, name), make_unary, {"out": None}, (), ("x",))
       for name in ("relu", "sigmoid", "tanh", "leaky_relu")]
OPS += [Op(name, getattr(F, name), over_dim(getattr(R, name)), make_over_dim,
           {"out": None}, ("dim",), ("x",)) for name in ("softmax", "log_softmax")]
OPS += [Op(name + "_backward", getattr(F, name + "_backward"), getattr(R, name + "_backward"),
           lambda r, d, src=src, lo=lo: make_backward(r, d, lo, src), {"out": None}, (),
           ("grad_out", src))
        for name, src, lo in (("relu", "x", 0), ("leaky_relu", "x", 0), ("sigmoid", "y", 0),
                              ("tanh", "y", 0))]
OPS += [Op(name + "_backward", getattr(F, name + "_backward"),
           over_dim(getattr(R, name + "_backward"), True),
           lambda r, d: make_over_dim(r, d, True), {"out": None}, ("dim",), ("grad_out", "y"))
        for name in ("softmax", "log_softmax")]
OPS += [
    Op("dropout", F.dropout, R.dropout, make_dropout, {"out": None}, ("p", "seed"), ("x",)),
    Op("linear", F.linear, R.linear, make_linear, {"out": None}, (), ("x", "weight", "bias")),
    Op("linear_backward", F.linear_backward, R.linear_backward,
       lambda r, d: make_linear(r, d, True),
       {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}, (), ("grad_out", "x", "weight")),
    Op("conv2d", F.conv2d, conv_ref(R.conv2d), make_conv, {"out": None}, CONV,
       ("x", "weight", "bias")),
    Op("conv2d_backward", F.conv2d_backward, conv_ref(R.conv2d_backward, True),
       lambda r, d: make_conv(r, d, True),
       {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}, CONV,
       ("grad_out", "x", "weight", "output")),
    Op("conv_transpose2d", F.conv_transpose2d, R.conv_transpose2d, make_conv_transpose,
       {"out": None}, TRANSPOSE, ("x", "weight", "bias")),
    Op("conv_transpose2d_backward", F.conv_transpose2d_backward,
       lambda *a, bias=True, need_input_grad=True, need_weight_grad=True, **k:
       R.conv_transpose2d_backward(*a, **k),
       lambda r, d: make_conv_transpose(r, d, True),
       {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}, TRANSPOSE,
       ("grad_out", "x", "weight")),
    Op("conv2d_max_pool2d", F.conv2d_max_pool2d, conv_ref(R.conv2d_max_pool2d),
       make_conv_pool,
       {"out": 0, "indices": 1}, CONV + CONV_POOL, ("x", "weight", "bias")),
    Op("conv2d_max_pool2d_backward", F.conv2d_max_pool2d_backward,
       conv_ref(R.conv2d_max_pool2d_backward, True),
       lambda r, d: make_conv_pool(r, d, True),
       {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}, CONV + CONV_POOL,
       ("grad_out", "x", "weight", "output")),
    Op("max_pool2d", F.max_pool2d, R.max_pool2d, make_pool, {"out": None}, POOL, ("x",)),
    Op("max_pool2d_with_indices", F.max_pool2d_with_indices, R.max_pool2d_with_indices,
       make_pool, {"out": 0, "indices": 1}, POOL, ("x",)),
    Op("max_pool2d_backward", F.max_pool2d_backward, ref_pool_backward("max"),
       lambda r, d: make_pool(r, d, True, d(st.booleans())), {"out": None}, POOL,
       ("grad_out", "x")),
    Op("avg_pool2d", F.avg_pool2d, R.avg_pool2d, lambda r, d: make_pool(r, d, avg=True),
       {"out": None}, POOL, ("x",)),
    Op("avg_pool2d_backward", F.avg_pool2d_backward, ref_pool_backward("avg"),
       lambda r, d: make_pool(r, d, True, avg=True), {"out": None}, POOL, ("grad_out", "x")),
    Op("adaptive_avg_pool2d", F.adaptive_avg_pool2d, R.adaptive_avg_pool2d, make_adaptive,
       {"out": None}, ("output_size",), ("x",)),
    Op("adaptive_avg_pool2d_backward", F.adaptive_avg_pool2d_backward,
       R.adaptive_avg_pool2d_backward, lambda r, d: make_adaptive(r, d, True), {"out": None},
       ("input_shape",), ("grad_y",)),
    Op("batch_norm", F.batch_norm, R.batch_norm, make_bn,
       {"out": 0, "save_mean": 1, "save_invstd": 2}, ("momentum", "eps", "activation"),
       ("x", "weight", "bias", "running_mean", "running_var"), ("running_mean", "running_var")),
    Op("batch_norm_backward", F.batch_norm_backward, R.batch_norm_backward,
       lambda r, d: make_bn(r, d, True), {"grad_input": 0, "grad_weight": 1, "grad_bias": 2},
       ("activation",), ("grad_y", "x", "weight", "save_mean", "save_invstd", "output")),
    Op("layer_norm", F.layer_norm, R.layer_norm, make_ln,
       {"out": 0, "save_mean": 1, "save_rstd": 2}, ("normalized_shape", "eps"),
       ("x", "weight", "bias")),
    Op("layer_norm_backward", F.layer_norm_backward, R.layer_norm_backward,
       lambda r, d: make_ln(r, d, True), {"grad_input": 0, "grad_weight": 1, "grad_bias": 2},
       ("normalized_shape",), ("grad_y", "x", "save_mean", "save_rstd", "weight", "bias")),
    Op("add", F.add, R.add, lambda r, d: make_merge(r, d, "add"), {"out": None}, (),
       ("inputs",)),
    Op("concatenate", F.concatenate, R.concatenate, lambda r, d: make_merge(r, d, "concatenate"),
       {"out": None}, ("axis",), ("inputs",)),
    Op("concatenate_backward", F.concatenate_backward, R.concatenate_backward,
       lambda r, d: make_merge(r, d, "backward"), {"out": None}, ("sizes", "axis"),
       ("grad_y",)),
    Op("cross_entropy", F.cross_entropy, R.cross_entropy, make_ce, {}, (), ("logits",)),
    Op("cross_entropy_backward", F.cross_entropy_backward, R.cross_entropy_backward, make_ce,
       {"out": None}, (), ("logits",)),
    Op("cross_entropy_with_grad", F.cross_entropy_with_grad, ref_ce_with_grad, make_ce,
       {"grad": 1}, (), ("logits",)),
    Op("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
       R.binary_cross_entropy_with_logits, make_pair("logits", "targets"), {}, (),
       ("logits", "targets")),
    Op("binary_cross_entropy_with_logits_backward", F.binary_cross_entropy_with_logits_backward,
       R.binary_cross_entropy_with_logits_backward, make_pair("logits", "targets"),
       {"out": None}, (), ("logits", "targets")),
    Op("mse_loss", F.mse_loss, R.mse_loss, make_pair("pred", "target"), {}, (),
       ("pred", "target")),
    Op("mse_loss_backward", F.mse_loss_backward, R.mse_loss_backward,
       make_pair("pred", "target"), {"out": None}, (), ("pred", "target")),
    Op("matmul", fastnn.matmul, ref_matmul, make_matmul, {"out": None}, (), ("a", "b")),
]
OPS += [Op(name + suffix, getattr(F, name + suffix), getattr(R, name + suffix),
           lambda r, d, name=name, b=bool(suffix): make_smooth(r, d, name, b), {"out": None},
           SMOOTH_ARGS[name], ("grad_out", "x") if suffix else ("x",))
        for name in SMOOTH_ARGS for suffix in ("", "_backward")]
PUBLIC = {name for name in dir(F) if not name.startswith("_") and callable(getattr(F, name))}


def test_every_public_function_is_fuzzed():
    assert PUBLIC <= {op.name for op in OPS}


# ---- hostile array layouts, each holding the same values ----

@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@settings(FUZZ, max_examples=3)
@given(data=st.data())
def test_byte_swapped_float32_is_refused(op, data):
    """A big-endian float32 array has float32's type number: every float array argument
    in that byte order raises TypeError naming it (read as native, it is garbage)."""
    kwargs = op.make(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), data.draw)
    for key in [k for k in op.float_arrays if kwargs.get(k) is not None]:
        value = kwargs[key]
        swapped = ([a.astype(">f4") for a in value] if isinstance(value, list)
                   else value.astype(">f4"))
        status, got = call(op.name, lambda: op.fn(**{**kwargs, key: swapped}))
        assert status == "raised" and isinstance(got, TypeError), f"{key}: {got!r}"
        check_named(got, {key} | ({"inputs", "x"} if isinstance(value, list) else set()))


def relayout(a, how):
    """a's values in another memory layout (all valid inputs)."""
    if a.ndim == 0 and how != "readonly":
        return a
    if how == "reversed":  # negative strides on every axis
        return np.flip(np.flip(a).copy())
    if how == "strided":  # every other element of a larger buffer
        big = np.zeros(tuple(2 * d for d in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "unaligned":  # C-contiguous but one byte off the dtype's alignment
        buf = np.zeros(a.nbytes + a.itemsize, np.uint8)[1:1 + a.nbytes]
        view = buf.view(a.dtype).reshape(a.shape)
        view[...] = a
        return view
    if how == "readonly":
        view = a.copy()
        view.flags.writeable = False
        return view
    return a


LAYOUTS = ["plain", "reversed", "strided", "fortran", "unaligned", "readonly"]


def to64(v):
    if isinstance(v, list):  # add's and concatenate's inputs
        return [to64(a) for a in v]
    # float16 too: a float16 target the losses take would be summed in float16 by NumPy
    return v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v


def call(test, thunk):
    """thunk(): ("ok", result) or ("raised", exception); counted."""
    CALLS[test] = CALLS.get(test, 0) + 1
    try:
        return "ok", thunk()
    except ALLOWED as e:
        return "raised", e


def check_named(e, names):
    """The message names one of `names` (whole words)."""
    msg = str(e)
    assert any(re.search(rf"\b{re.escape(n)}\b", msg) for n in names), \
        f"{type(e).__name__}({msg!r}) names none of {sorted(names)}"


def as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def assert_matches(got, want):
    for g, w in zip(as_tuple(got), as_tuple(want)):
        if g is None:
            continue
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        if g.dtype.kind in "iu":
            assert np.array_equal(g, w)
            continue
        with np.errstate(over="ignore"):
            w = w.astype(g.dtype)  # what float32 can hold: overflow to inf included
        finite = np.abs(w[np.isfinite(w)])
        scale = finite.max() if finite.size else 1.0
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale + 1e-6)


def reference(op, kwargs):
    """The reference result for float64 copies of the arguments (out= buffers dropped),
    or the exception it raised."""
    with np.errstate(all="ignore"):
        try:
            args = {k: to64(v) for k, v in kwargs.items() if k not in op.outs}
            return "ok", op.ref(**args)
        except (ValueError, IndexError, TypeError, MemoryError) as e:
            return "raised", e


MUTATIONS = ["dtype", "ndim", "shape", "huge", "empty", "nonfinite", "window",
             "out", "object"]


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@FUZZ
@given(data=st.data())
def test_kernel_boundary(op, data):
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kwargs = op.make(r, draw)
    arrays = [k for k in op.float_arrays if kwargs.get(k) is not None]
    # First the valid arguments in hostile layouts: must work and match the reference.
    def hostile_layout(v):
        if isinstance(v, list):
            return [hostile_layout(a) for a in v]
        return relayout(v, draw(st.sampled_from(LAYOUTS)))

    valid = {k: hostile_layout(v) if k in arrays and k not in op.in_place else v
             for k, v in kwargs.items()}
    status, got = call(op.name, lambda: op.fn(**valid))
    assert status == "ok", f"valid input rejected: {got!r}"
    want_status, want = reference(op, valid)
    assert want_status == "ok", want
    assert_matches(got, want)

    # Then one hostile change.
    mutation = draw(st.sampled_from(MUTATIONS))
    target = draw(st.sampled_from(arrays))
    must_raise, names = False, {target}
    box, key = kwargs, target  # a list of arrays (add's inputs) is hit in one element
    if isinstance(kwargs[target], list):
        box = kwargs[target] = list(kwargs[target])
        key = draw(st.integers(0, len(box) - 1))
    if mutation == "dtype":
        dtype = draw(st.sampled_from(HOSTILE_DTYPES))
        box[key] = box[key].astype(dtype)
        must_raise = True
    elif mutation == "ndim":
        ndim = draw(st.sampled_from([0, 1, 5]))
        shape = box[key].shape
        box[key] = randn(r, *shape[:ndim], *[2] * (ndim - len(shape)))
    elif mutation == "shape":  # one dimension of one array off (mismatched batch, ...)
        a = box[key]
        if a.ndim:
            axis = draw(st.integers(0, a.ndim - 1))
            shape = list(a.shape)
            shape[axis] = draw(st.sampled_from([0, 1, shape[axis] + 1, shape[axis] + 2]))
            box[key] = randn(r, *shape)
    elif mutation == "huge":  # a broadcast view of a shape far beyond memory: no bytes yet
        box[key] = np.broadcast_to(np.float32(1), HUGE[max(box[key].ndim, 1)])
    elif mutation == "empty":  # zero-size arrays, some with astronomically long other dims
        a = box[key]
        shape = list(a.shape) or [1]
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] = 0
        if draw(st.booleans()):
            shape[(axis + 1) % len(shape)] = 2**40 if len(shape) > 1 else 0
        box[key] = np.empty(shape, np.float32)
    elif mutation == "nonfinite":
        a = box[key].copy()
        if a.size:
            idx = draw(st.integers(0, a.size - 1))
            a.flat[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        box[key] = a
    elif mutation == "window" and op.windows:
        target = draw(st.sampled_from(op.windows))
        names = set(op.windows)
        kwargs[target] = draw(st.sampled_from(HOSTILE_INTS))
    elif mutation == "out" and op.outs:
        target = draw(st.sampled_from(sorted(op.outs)))
        names = {target}
        status, want = reference(op, kwargs)
        shape = np.shape(as_tuple(want)[op.outs[target] or 0]) if status == "ok" else (1,)
        dtype = np.float32 if target != "indices" else INDEX_DTYPES.get(op.name, np.int64)
        kind = draw(st.sampled_from(["readonly", "dtype", "shape", "strided", "fortran",
                                     "overlap", "list"]))
        out = np.zeros(shape, dtype)
        if kind == "readonly":
            out.flags.writeable = False
            must_raise = True
        elif kind == "dtype":
            out = out.astype(np.float64 if dtype == np.float32 else np.int32)
            must_raise = True
        elif kind == "shape":
            out = np.zeros(tuple(shape) + (1,), dtype)
            must_raise = True
        elif kind == "strided":
            out = np.zeros(tuple(2 * d for d in shape) or (2,), dtype)[..., ::2]
            must_raise = out.shape == tuple(shape) and out.size > 1
        elif kind == "fortran":
            out = np.asfortranarray(out)  # fine unless it is truly not C-contiguous
        elif kind == "overlap" and dtype == np.float32:
            holder, hk = kwargs, arrays[0]
            if isinstance(holder[hk], list):  # the first array of the list
                holder = kwargs[hk] = list(holder[hk])
                hk = 0
            src = holder[hk]
            if src.shape == tuple(shape) and src.size and not (op.name in (
                    "relu", "sigmoid", "tanh", "leaky_relu", "softmax", "log_softmax", "add",
                    "dropout", "gelu", "silu", "elu")):
                holder[hk] = src = src.copy()
                out = src  # an input as the output of an op that is not in place
                must_raise = True
        elif kind == "list":
            out = out.tolist()
            must_raise = True
        kwargs[target] = out
    elif mutation == "object":  # not arrays at all
        box[key] = draw(st.sampled_from([None, "x", 3, [[1.0, 2.0], [3.0]], {"a": 1}]))

    status, got = call(op.name, lambda: op.fn(**kwargs))
    if status == "raised":
        check_named(got, names | set(kwargs) | set(op.outs))
        if mutation == "dtype" or must_raise:
            check_named(got, names)
        return
    assert not must_raise, f"{mutation} input accepted"
    want_status, want = reference(op, kwargs)
    if want_status == "raised":  # only an empty result may stand where the reference fails
        assert all(np.size(g) == 0 or np.isnan(g) for g in as_tuple(got) if g is not None), \
            f"accepted what the reference rejects: {want!r}"
        return
    assert_matches(got, want)


# ---- layers, losses, optimizers: constructors with hostile arguments, then calls ----

def conv_args(d):
    """Conv2d arguments: int padding, or "valid", or "same" (stride 1); 1 or 2 groups."""
    padding = [0, 1, "valid", "same"][d(0, 3)]
    groups = d(1, 2)
    return [groups * d(1, 2), groups * d(1, 2), d(1, 3), 1 if padding == "same" else d(1, 2),
            padding, d(1, 2), groups, True, ["zeros", "reflect", "replicate", "circular"][d(0, 3)]]


LAYER_ARGS = {  # valid positional constructor arguments from d(lo, hi) -> int
    nn.Linear: lambda d: [d(1, 5), d(1, 5)],
    nn.Conv2d: conv_args,
    nn.ConvTranspose2d: lambda d: [d(1, 3), d(1, 3), d(1, 3), d(1, 2)],  # .., kernel, stride
    nn.MaxPool2d: lambda d: [d(1, 3), d(1, 3), 0, 1, False, bool(d(0, 1))],  # .., ceil_mode
    nn.AvgPool2d: lambda d: [d(1, 3), d(1, 3), 0, bool(d(0, 1)), bool(d(0, 1))],
    nn.LeakyReLU: lambda d: [0.1],
    nn.Softmax: lambda d: [[-1, 0, None][d(0, 2)]],  # dims valid for any ndim (None: 0 or 1)
    nn.LogSoftmax: lambda d: [[-1, 0, None][d(0, 2)]],
    nn.Flatten: lambda d: [1, -1],
    nn.Dropout: lambda d: [0.3],
    nn.BatchNorm1d: lambda d: [d(1, 4)],
    nn.BatchNorm2d: lambda d: [d(1, 4)],
    nn.AdaptiveAvgPool2d: lambda d: [d(1, 4)],
    nn.GELU: lambda d: [["none", "tanh"][d(0, 1)]],
    nn.ELU: lambda d: [0.5],
    nn.LayerNorm: lambda d: [d(1, 4), 1e-5, bool(d(0, 1)), bool(d(0, 1))],
}
# Layer sizes that could actually be allocated (2**31 floats) are left out: they are valid.
LAYER_HOSTILE = [v for v in HOSTILE_INTS + HOSTILE_REALS if not isinstance(v, int) or
                 isinstance(v, bool) or v < 2**31 or v > 2**40]


def layer_input(layer, r, draw):
    if isinstance(layer, nn.Linear):  # (N, in) or (N, *, in)
        return randn(r, dims(draw), *[dims(draw) for _ in range(draw(st.integers(0, 1)))],
                     layer.in_features)
    if isinstance(layer, nn.Conv2d):  # (larger than a reflect/circular padding)
        (kh, kw), (dh, dw) = layer.kernel_size, layer.dilation
        more = 0 if layer.padding_mode == "zeros" else 2
        return randn(r, dims(draw), layer.in_channels, dh * (kh - 1) + dims(draw, 1, 3) + more,
                     dw * (kw - 1) + dims(draw, 1, 3) + more)
    if isinstance(layer, nn.ConvTranspose2d):
        return randn(r, dims(draw), layer.in_channels, dims(draw), dims(draw))
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        k = max(layer.kernel_size)
        return randn(r, dims(draw), dims(draw), k + dims(draw, 0, 3), k + dims(draw, 0, 3))
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):  # > 1 value per channel
        spatial = [dims(draw) for _ in range(2 if isinstance(layer, nn.BatchNorm2d) else
                                             draw(st.integers(0, 1)))]
        return randn(r, dims(draw, 2, 4), layer.num_features, *spatial)
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return randn(r, dims(draw), dims(draw), dims(draw, 1, 7), dims(draw, 1, 7))
    if isinstance(layer, nn.LayerNorm):  # (N, *, *normalized_shape)
        return randn(r, dims(draw), *[dims(draw) for _ in range(draw(st.integers(0, 1)))],
                     *layer.normalized_shape)
    return randn(r, *[dims(draw) for _ in range(draw(st.integers(1, 4)))])


def layer_reference(layer, x):
    x = x.astype(np.float64)
    if isinstance(layer, nn.Linear):
        return R.linear(x, layer.weight.data, None if layer.bias is None else layer.bias.data)
    if isinstance(layer, nn.Conv2d):  # "same" with an odd extent: the extra zeros bottom/right
        pad = layer._pad
        if layer.padding_mode == "zeros":
            x = np.pad(x, [(0, 0), (0, 0), (0, layer._extra[0]), (0, layer._extra[1])])
        else:  # the input padded in torch's mode, then no padding
            x, pad = np.pad(x, layer._mode_pads(*x.shape[2:]), mode={
                "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[
                    layer.padding_mode]), (0, 0)
        w, b = layer.weight.data, layer.bias
        return np.concatenate([  # a group at a time
            R.conv2d(x[:, ci], w[co], None if b is None else b.data[co], layer.stride,
                     pad, layer.dilation) for ci, co in layer._groups()], axis=1)
    if isinstance(layer, nn.ConvTranspose2d):
        return R.conv_transpose2d(x, layer.weight.data, None if layer.bias is None else
                                  layer.bias.data, *layer._args())
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):  # training: the batch statistics
        return R.batch_norm(x, None, None, layer.weight.data, layer.bias.data, training=True,
                            eps=layer.eps)[0]
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return R.adaptive_avg_pool2d(x, layer.output_size)
    if isinstance(layer, nn.LayerNorm):
        w, b = (None if p is None else p.data for p in (layer.weight, layer.bias))
        return R.layer_norm(x, layer.normalized_shape, w, b, layer.eps)[0]
    if isinstance(layer, nn.GELU):
        return R.gelu(x, layer.approximate)
    if isinstance(layer, nn.ELU):
        return R.elu(x, layer.alpha)
    if isinstance(layer, nn.Identity):
        return x
    if isinstance(layer, nn.MaxPool2d):
        return R.max_pool2d(x, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode)
    if isinstance(layer, nn.AvgPool2d):
        return R.avg_pool2d(x, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                            layer.count_include_pad)
    if isinstance(layer, nn.LeakyReLU):
        return R.leaky_relu(x, layer.negative_slope)
    if isinstance(layer, nn.Flatten):
        return R.flatten(x)
    if isinstance(layer, (nn.Softmax, nn.LogSoftmax)) and x.ndim:  # over dim: moved last
        f = R.softmax if isinstance(layer, nn.Softmax) else R.log_softmax
        dim = layer._dim  # the forward's (dim=None: torch's implicit choice)
        return np.moveaxis(f(np.moveaxis(x, dim, -1)), -1, dim)
    if isinstance(layer, nn.Dropout):
        return None
    return getattr(R, type(layer).__name__.lower())(x)


LAYERS = [nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.ReLU, nn.LeakyReLU, nn.Sigmoid,
          nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d,
          nn.AdaptiveAvgPool2d, nn.Identity, nn.GELU, nn.SiLU, nn.ELU, nn.LayerNorm]


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_layer_boundary(data):
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cls = draw(st.sampled_from(LAYERS))
    args = LAYER_ARGS.get(cls, lambda d: [])(lambda a, b: draw(st.integers(a, b)))
    hostile = args and draw(st.booleans())
    if hostile:
        i = draw(st.integers(0, len(args) - 1))
        args[i] = draw(st.sampled_from(LAYER_HOSTILE))
    status, layer = call("layers", lambda: cls(*args))
    if status == "raised":
        assert hostile, f"valid constructor arguments {args} rejected: {layer!r}"
        check_named(layer, {cls.__name__})
        return
    try:
        x = layer_input(layer, r, draw)
    except (ValueError, TypeError, MemoryError):  # accepted hostile sizes: cannot build input
        return
    mutation = draw(st.sampled_from(["layout", "dtype", "ndim", "nonfinite", "huge"]))
    if mutation == "layout":
        x = relayout(x, draw(st.sampled_from(LAYOUTS)))
    elif mutation == "dtype":
        x = x.astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif mutation == "ndim":
        x = randn(r, *[2] * draw(st.sampled_from([0, 1, 5])))
    elif mutation == "nonfinite" and x.size:
        x.flat[0] = np.nan
    elif mutation == "huge":
        x = np.broadcast_to(np.float32(0), HUGE[max(x.ndim, 1)])
    status, y = call("layers", lambda: layer.forward(x))
    if status == "raised":
        assert mutation != "layout" or hostile, f"valid input rejected: {y!r}"
        check_named(y, {"x", "input", type(layer).__name__})
        return
    if mutation in ("dtype", "huge"):  # only views cost nothing: Flatten, Dropout, Identity
        if isinstance(layer, (nn.Dropout, nn.Identity)):
            assert y is x and mutation == "huge", f"{mutation} input accepted"
        else:
            assert isinstance(layer, nn.Flatten), f"{mutation} input accepted"
            assert y.shape == (x.shape[0], int(np.prod(x.shape[1:]))) and y.dtype == x.dtype
        return
    want = layer_reference(layer, x)
    if want is not None:
        with np.errstate(all="ignore"):
            assert_matches(y, want)
    grad = randn(r, *y.shape)
    grad = relayout(grad, draw(st.sampled_from(LAYOUTS)))
    status, g = call("layers", lambda: layer.backward(grad))
    if status == "raised":
        assert False, f"backward of a valid forward failed: {g!r}"
    assert g is None or g.shape == x.shape


# ---- models: the graph engine (subclassed, functional, Sequential), merge layers, state_dict ----

class FuzzNet(nn.Module):
    """Conv2d(padding="same", even kernel), BatchNorm2d, a value added to itself,
    Concatenate, global average pooling, Linear."""

    def __init__(self):
        self.conv = nn.Conv2d(2, 3, 2, padding="same", seed=0)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.cat = nn.Concatenate()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6, 4, seed=1)

    def forward(self, x):
        h = self.relu(self.bn(self.conv(x)))
        return self.fc(self.flat(self.pool(self.cat([h, h + h]))))


def fuzz_functional():
    x = fastnn.Input(shape=(2, 5, 5))
    h = nn.ReLU()(nn.BatchNorm2d(3)(nn.Conv2d(2, 3, 2, padding="same", seed=0)(x)))
    h = nn.AdaptiveAvgPool2d(1)(nn.Concatenate()([h, h + h]))
    return fastnn.Model(x, nn.Linear(6, 4, seed=1)(nn.Flatten()(h)))


MODELS = {"subclass": FuzzNet, "functional": fuzz_functional,
          "sequential": lambda: nn.Sequential(nn.Flatten(), nn.Linear(50, 4, seed=0),
                                              nn.BatchNorm1d(4), nn.Identity()),
          "named sequential": lambda: nn.Sequential({  # torch's Sequential(OrderedDict)
              "flat": nn.Flatten(), "fc": nn.Linear(50, 4, seed=0), "bn": nn.BatchNorm1d(4)})}


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_model_boundary(data):
    """Models called on hostile batches and backpropagating hostile gradients."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    model = MODELS[draw(st.sampled_from(sorted(MODELS)))]()
    model.train(draw(st.booleans()))
    x = randn(r, dims(draw, 2, 4), 2, 5, 5)
    mutation = draw(st.sampled_from(["valid", "layout", "nonfinite", "dtype", "ndim",
                                     "channels", "huge", "list"]))
    if mutation == "layout":
        x = relayout(x, draw(st.sampled_from(LAYOUTS)))
    elif mutation == "nonfinite":
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    elif mutation == "dtype":
        x = x.astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif mutation == "ndim":
        x = randn(r, *[2] * draw(st.sampled_from([0, 1, 2, 5])))
    elif mutation == "channels":
        x = randn(r, len(x), 3, 5, 5)
    elif mutation == "huge":
        x = np.broadcast_to(np.float32(0), HUGE[4])
    elif mutation == "list":
        x = x.tolist()
    status, y = call("models", lambda: model(x))
    if status == "raised":
        assert mutation not in ("valid", "layout", "nonfinite"), f"valid input rejected: {y!r}"
        check_named(y, {"input", "x"})
        return
    assert mutation in ("valid", "layout", "nonfinite"), f"{mutation} input accepted"
    assert y.shape == (len(x), 4) and y.dtype == np.float32
    assert mutation == "nonfinite" or np.isfinite(y).all()
    g = randn(r, *y.shape)
    status, gx = call("models", lambda: model.backward(g, need_input_grad=True))
    assert status == "ok", f"backward of a valid forward failed: {gx!r}"
    assert gx.shape == x.shape
    bad = draw(st.sampled_from(["shape", "dtype", "ndim"]))
    g = {"shape": randn(r, len(x), 5), "dtype": g.astype(np.float64),
         "ndim": randn(r, len(x))}[bad]
    status, e = call("models", lambda: model.backward(g))
    assert status == "raised", f"a {bad} gradient accepted"
    check_named(e, {"grad_out", "grad_y", "grad", "input"})


STATE_HOSTILE = ["missing", "unexpected", "shape", "dtype", "ragged", "none", "scalar",
                 "float64", "list"]


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_load_state_dict_boundary(data):
    """load_state_dict with one hostile entry: an error naming the key and nothing
    copied, or (float64 arrays, nested lists) a copy of the values."""
    draw = data.draw
    model = MODELS[draw(st.sampled_from(sorted(MODELS)))]()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: np.asarray(v + 1) for k, v in before.items()}  # 0-d stays an array
    key = draw(st.sampled_from(sorted(state)))
    mutation = draw(st.sampled_from(STATE_HOSTILE))
    if mutation == "missing":
        del state[key]
    elif mutation == "unexpected":
        key = key + "_extra"
        state[key] = np.zeros(1)
    elif mutation == "shape":
        state[key] = np.zeros(state[key].shape + (2,))
    elif mutation == "dtype":
        state[key] = state[key].astype(draw(st.sampled_from([np.complex64, object, "U3"])))
    elif mutation == "ragged":
        state[key] = [[1.0], [1.0, 2.0]]
    elif mutation == "none":
        state[key] = None
    elif mutation == "scalar":
        state[key] = 1.5 if state[key].ndim else np.zeros(3)
    elif mutation == "float64":
        state[key] = state[key].astype(np.float64)
    elif mutation == "list":
        state[key] = state[key].tolist()
    assign = draw(st.booleans())  # the entries become the arrays, or (not float32) a copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # assign=True's "copied ... instead of assigning"
        status, e = call("state_dicts", lambda: model.load_state_dict(state, assign=assign))
    if mutation == "missing" and key.endswith("num_batches_tracked"):
        assert status == "ok", e  # torch keeps the count a plain dict lacks
        assert model.state_dict()[key] == before[key]
        return
    if mutation in ("float64", "list") or (mutation == "dtype" and state[key].dtype == object
                                           and before[key].dtype.kind == "f"):
        if status == "ok":
            for k, v in model.state_dict().items():
                np.testing.assert_array_equal(v, np.asarray(state[k], v.dtype))
                assert v.dtype == before[k].dtype and v.flags.c_contiguous and \
                    v.flags.writeable
            return
    assert status == "raised", f"{mutation} entry {key} accepted"
    check_named(e, {key})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing copied


LOSSES = [losses.CrossEntropyLoss, losses.BCEWithLogitsLoss, losses.MSELoss]
SOFT = "probabilities"  # CrossEntropyLoss with float class-probability targets


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_loss_boundary(data):
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(LOSSES + [SOFT]))
    loss_fn = losses.CrossEntropyLoss() if kind == SOFT else kind()
    n, c = dims(draw, 1, 5), dims(draw, 1, 5)
    pred = randn(r, n, c)
    target = (r.integers(0, c, n) if kind is losses.CrossEntropyLoss
              else r.random((n, c)).astype(np.float32))
    which = draw(st.sampled_from(["pred", "target"]))
    mutation = draw(st.sampled_from(["layout", "dtype", "batch", "ndim", "nonfinite"]))
    value = pred if which == "pred" else target
    if mutation == "layout":
        value = relayout(value, draw(st.sampled_from(LAYOUTS)))
    elif mutation == "dtype":
        value = value.astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif mutation == "batch":
        value = value[:-1] if len(value) > 1 else np.concatenate([value, value])
    elif mutation == "ndim":
        value = value.reshape(-1) if value.ndim == 2 else value[:, None]
    elif mutation == "nonfinite" and value.dtype == np.float32:
        value = value.copy()
        value.flat[0] = np.inf
    pred, target = (value, target) if which == "pred" else (pred, value)
    status, got = call("losses", lambda: loss_fn(pred, target))
    if status == "raised":
        assert mutation != "layout", f"valid input rejected: {got!r}"
        check_named(got, {"logits", "labels", "targets", "target", "pred"})
        return
    name = {"CrossEntropyLoss": "cross_entropy", "BCEWithLogitsLoss":
            "binary_cross_entropy_with_logits", "MSELoss": "mse_loss"}[type(loss_fn).__name__]
    if kind == SOFT:
        if np.asarray(target).dtype.kind != "f":  # a dtype mutation: integer labels now
            return
        name = "cross_entropy_probs"
    with np.errstate(all="ignore"):
        try:
            want = getattr(R, name)(to64(pred), to64(target))
        except ValueError as e:
            assert False, f"accepted what the reference rejects: {e}"
        want_grad = getattr(R, name + "_backward")(to64(pred), to64(target))
        assert_matches(got, want)
        assert_matches(loss_fn.backward(), want_grad)


LOSS_ARGS = {  # torch's arguments each loss takes -> a valid value for n samples, c classes
    losses.CrossEntropyLoss: {"weight": lambda r, n, c: r.random(c) + 0.5,
                              "ignore_index": lambda r, n, c: int(r.integers(-1, c)),
                              "reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3],
                              "label_smoothing": lambda r, n, c: 0.1},
    losses.BCEWithLogitsLoss: {"weight": lambda r, n, c: r.random((n, c)) + 0.5,
                               "pos_weight": lambda r, n, c: r.random(c) + 0.5,
                               "reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3]},
    losses.MSELoss: {"reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3]},
    losses.NLLLoss: {"weight": lambda r, n, c: r.random(c) + 0.5,
                     "ignore_index": lambda r, n, c: int(r.integers(-1, c)),
                     "reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3]},
    losses.BCELoss: {"weight": lambda r, n, c: r.random((n, c)) + 0.5,
                     "reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3]},
    losses.L1Loss: {"reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3]},
    losses.HuberLoss: {"reduction": lambda r, n, c: ["mean", "sum", "none"][n % 3],
                       "delta": lambda r, n, c: float(r.uniform(0.1, 2))},
}
HOSTILE_LOSS_ARGS = HOSTILE_INTS + HOSTILE_REALS + [
    "max", np.zeros((2, 2, 2)), np.zeros(7, complex), np.array(["a"]), np.zeros(0)]


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_loss_arguments_boundary(data):
    """torch's loss arguments: hostile values raise naming the argument (at construction,
    or at the call for a weight that does not fit the batch); valid ones give the per-sample
    values whose reduction the loss returns, and a gradient of pred's shape."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cls = draw(st.sampled_from(sorted(LOSS_ARGS, key=lambda c: c.__name__)))
    n, c = dims(draw, 1, 5), dims(draw, 1, 5)
    kwargs = {k: make(r, n, c) for k, make in LOSS_ARGS[cls].items() if draw(st.booleans())}
    hostile = draw(st.booleans())
    if hostile:
        key = draw(st.sampled_from(sorted(LOSS_ARGS[cls])))
        kwargs[key] = draw(st.sampled_from(HOSTILE_LOSS_ARGS))
    status, loss_fn = call("loss_args", lambda: cls(**kwargs))
    if status == "raised":
        assert hostile, f"valid arguments {kwargs} rejected: {loss_fn!r}"
        check_named(loss_fn, {key})
        return
    labels = cls in (losses.CrossEntropyLoss, losses.NLLLoss)
    pred = r.random((n, c)).astype(np.float32) if cls is losses.BCELoss else randn(r, n, c)
    target = r.integers(0, c, n) if labels else r.random((n, c)).astype(np.float32)
    status, got = call("loss_args", lambda: loss_fn(pred, target))
    if status == "raised":
        assert hostile, f"valid arguments {kwargs} rejected at the call: {got!r}"
        check_named(got, {key})
        return
    grad = loss_fn.backward()
    assert grad.shape == pred.shape and grad.dtype == np.float32
    reduction = kwargs.get("reduction", "mean")
    if reduction == "none":
        assert got.shape == ((n,) if labels else (n, c))
        return
    assert isinstance(got, float)
    loss_fn.reduction = "none"
    values = loss_fn(pred, target)
    if reduction == "sum":
        np.testing.assert_allclose(got, values.sum(dtype=np.float64), rtol=1e-5, atol=1e-6)


OPTIMIZERS = {optim.SGD: ["lr", "momentum", "weight_decay", "dampening"],
              optim.Adam: ["lr", "eps", "weight_decay"], optim.AdamW: ["lr", "eps", "weight_decay"],
              optim.RMSprop: ["lr", "alpha", "eps", "weight_decay", "momentum"],
              optim.KerasAdam: ["lr", "eps", "weight_decay"],
              optim.KerasAdamW: ["lr", "eps", "weight_decay"],
              optim.KerasRMSprop: ["lr", "alpha", "eps", "weight_decay", "momentum"]}


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_param_group_boundary(data):
    """torch's param_groups[0][key] = value: a hostile value raises naming the optimizer
    and leaves it as it was; an accepted one is what hyperparameters() then reports."""
    draw = data.draw
    cls = draw(st.sampled_from(sorted(OPTIMIZERS, key=lambda c: c.__name__)))
    opt = cls([nn.Parameter(np.ones(3, np.float32))], lr=0.1)
    key = draw(st.sampled_from(OPTIMIZERS[cls] + ["params", "nesterov", "unknown"]))
    value = draw(st.sampled_from(HOSTILE_REALS + [0.5, 0.0]))
    before = opt.hyperparameters()
    status, got = call("optimizers", lambda: opt.param_groups[0].__setitem__(key, value))
    if status == "raised":
        check_named(got, {cls.__name__})
        assert opt.hyperparameters() == before
    else:
        assert key in before and opt.param_groups[0][key] == opt.hyperparameters()[key]


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_param_groups_boundary(data):
    """torch-style param groups, the second with an option drawn hostile: the constructor
    raises naming the optimizer, or the second group steps exactly as an optimizer of its
    own built with that option, and the first as one with the optimizer's values."""
    draw = data.draw
    cls = draw(st.sampled_from(sorted(OPTIMIZERS, key=lambda c: c.__name__)))
    a, b = (nn.Parameter(np.linspace(-1, 1, 3, dtype=np.float32)) for _ in range(2))
    key = draw(st.sampled_from(OPTIMIZERS[cls] + ["momentum", "amsgrad", "centered",
                                                  "maximize", "unknown"]))
    value = draw(st.sampled_from(HOSTILE_REALS + [0.5, 0.0, True, False]))
    params = draw(st.sampled_from(["ok", "ok", "one", "none", "int", "shared"]))
    group = {"params": {"ok": [b], "one": b, "none": None, "int": 3, "shared": [a]}[params],
             key: value}
    status, opt = call("optimizers", lambda: cls([{"params": [a]}, group], lr=0.1))
    if status == "raised":
        check_named(opt, {cls.__name__})
        return
    assert params in ("ok", "one"), f"params {params!r} accepted"
    alone = [cls([nn.Parameter(p.data.copy())], **{"lr": 0.1, **own})
             for p, own in ((a, {}), (b, {key: value}))]
    for p in [a, b] + [q.params[0] for q in alone]:
        p.grad = np.full(3, 0.5, np.float32)
    with np.errstate(all="ignore"):
        for o in [opt] + alone:
            o.step()
    for p, o in zip([a, b], alone):
        assert np.array_equal(p.data, o.params[0].data, equal_nan=True)


SCHEDULERS = {optim.StepLR: {"step_size": 2, "gamma": 0.5},
              optim.MultiStepLR: {"milestones": [1, 3], "gamma": 0.5},
              optim.ExponentialLR: {"gamma": 0.9},
              optim.CosineAnnealingLR: {"T_max": 3, "eta_min": 0.01},
              optim.LinearLR: {"start_factor": 0.5, "end_factor": 1.0, "total_iters": 2},
              optim.LambdaLR: {"lr_lambda": lambda e: 0.5 ** e},
              optim.ReduceLROnPlateau: {"mode": "min", "factor": 0.5, "patience": 0,
                                        "threshold": 1e-4, "cooldown": 1, "min_lr": 0.0}}


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_scheduler_boundary(data):
    """Every lr scheduler with one argument drawn hostile (or a hostile lr_lambda or
    metric): it raises naming the scheduler, or every lr it sets is finite and >= 0."""
    draw = data.draw
    cls = draw(st.sampled_from(sorted(SCHEDULERS, key=lambda c: c.__name__)))
    opt = optim.SGD([{"params": [nn.Parameter(np.ones(2, np.float32))]},
                     {"params": [nn.Parameter(np.ones(2, np.float32))], "lr": 0.5}], lr=0.1)
    kwargs = dict(SCHEDULERS[cls])
    key = draw(st.sampled_from(sorted(kwargs)))
    kwargs[key] = draw(st.sampled_from(
        HOSTILE_INTS + HOSTILE_REALS + [[], [1, "x"], [abs], [lambda e: float("nan")] * 2,
                                        lambda e: -e, lambda e: 1e308 * 10 ** e, "max", "abs"]))
    metric = draw(st.sampled_from([1.0, float("nan"), float("inf"), "x", None]))
    name = cls.__name__

    def run():
        sched = cls(opt, **kwargs)
        for _ in range(4):
            sched.step(metric) if cls is optim.ReduceLROnPlateau else sched.step()
        return sched
    status, got = call("optimizers", run)
    if status == "raised":
        check_named(got, {name, f"{name}.step"})
    lrs = [g["lr"] for g in opt.param_groups]
    assert all(isinstance(lr, float) and 0 <= lr < float("inf") for lr in lrs), lrs


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_optimizer_boundary(data):
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cls = draw(st.sampled_from(sorted(OPTIMIZERS, key=lambda c: c.__name__)))
    shapes = [tuple(dims(draw, 0, 4) for _ in range(draw(st.integers(0, 3))))
              for _ in range(dims(draw, 1, 3))]
    params = [nn.Parameter(randn(r, *s)) for s in shapes]
    for p in params:
        p.grad = randn(r, *p.shape)
    kwargs = {"lr": 0.1}
    if cls is optim.SGD:
        kwargs.update(momentum=draw(st.sampled_from([0.0, 0.9])), weight_decay=0.01)
    if issubclass(cls, optim.RMSprop):
        kwargs.update(momentum=draw(st.sampled_from([0.0, 0.9])), weight_decay=0.01,
                      centered=draw(st.booleans()))
    kwargs["maximize"] = draw(st.booleans())  # torch's flags: the gradient negated, and
    if cls in (optim.Adam, optim.AdamW):  # amsgrad (its maximum of v is v at step 1)
        kwargs["amsgrad"] = draw(st.booleans())
    if cls is optim.Adam:
        kwargs["decoupled_weight_decay"] = draw(st.booleans())
    hostile = draw(st.booleans())
    if hostile:
        kwargs[draw(st.sampled_from(OPTIMIZERS[cls]))] = draw(st.sampled_from(HOSTILE_REALS))
    bad_params = draw(st.sampled_from([None, "empty", "arrays", "ints", "twice", "none",
                                       "module"]))
    given_params = {None: params, "empty": [], "arrays": [p.data for p in params],
                    "ints": [1, 2], "twice": params + params[-1:], "none": None,
                    "module": nn.Linear(2, 2)}[bad_params]
    status, opt = call("optimizers", lambda: cls(given_params, **kwargs))
    if status == "raised":
        assert hostile or bad_params, f"valid optimizer arguments rejected: {opt!r}"
        check_named(opt, {cls.__name__})
        return
    assert bad_params is None, f"parameters {bad_params!r} accepted"
    before = [(p.data.copy(), p.grad.copy()) for p in params]  # float32: its overflow too
    status, _ = call("optimizers", opt.step)
    assert status == "ok", f"step after a valid constructor failed: {_!r}"
    with np.errstate(all="ignore"):  # float32 overflow is part of the check
        for p, (w, g) in zip(params, before):
            hyper = opt.hyperparameters()
            hyper.pop("amsgrad", None)
            decoupled = hyper.pop("decoupled_weight_decay", issubclass(cls, optim.AdamW))
            if hyper.pop("maximize", False):
                g = -g
            if cls is optim.SGD:
                R.sgd_step(w, g, np.zeros_like(w), lr=hyper["lr"], momentum=hyper["momentum"],
                           dampening=hyper["dampening"], weight_decay=hyper["weight_decay"],
                           nesterov=hyper["nesterov"], first_step=True)
            elif issubclass(cls, optim.RMSprop):
                R.rmsprop_step(w, g, np.zeros_like(w), np.zeros_like(w), np.zeros_like(w),
                               **hyper, eps_inside=cls is optim.KerasRMSprop)
            else:  # Keras adds eps before the bias correction 1 - beta2 of step 1
                b2 = hyper["betas"][1]
                eps = hyper["eps"] / np.sqrt(1 - b2) if cls._keras_eps else hyper["eps"]
                R.adam_step(w, g, np.zeros_like(w), np.zeros_like(w), step=1, lr=hyper["lr"],
                            beta1=hyper["betas"][0], beta2=b2, eps=eps,
                            weight_decay=hyper["weight_decay"], decoupled=decoupled)
            assert_matches(p.data, w)


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_to_categorical_boundary(data):
    """fastnn.keras.utils.to_categorical on hostile labels and class counts."""
    from fastnn.keras.utils import to_categorical
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = r.integers(0, 5, dims(draw, 0, 6))
    num_classes = draw(st.sampled_from([None, 5, 7]))
    mutation = draw(st.sampled_from(["none", "dtype", "range", "classes", "column"]))
    if mutation == "dtype":
        labels = labels.astype(draw(st.sampled_from(HOSTILE_DTYPES + [np.float32])))
        if labels.dtype.kind == "f" and labels.size:
            labels = labels + draw(st.sampled_from([0.0, 0.5]))
    elif mutation == "range" and labels.size:
        labels[0] = draw(st.sampled_from([-1, 5, 2**40]))
    elif mutation == "classes":
        num_classes = draw(st.sampled_from(HOSTILE_INTS))
    elif mutation == "column":
        labels = labels[:, None]
    status, got = call("to_categorical", lambda: to_categorical(labels, num_classes))
    if status == "raised":
        assert mutation != "none" or (labels.size == 0 and num_classes is None), got
        check_named(got, {"to_categorical"})
        return
    flat = np.asarray(labels).reshape(-1).astype(np.int64)
    assert got.dtype == np.float32 and got.size == flat.size * got.shape[-1]
    rows = got.reshape(-1, got.shape[-1])
    assert np.array_equal(rows.sum(-1), np.ones(flat.size))
    if flat.size:
        assert np.array_equal(rows.argmax(-1), flat)


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_safetensors_file_boundary(data, tmp_path_factory):
    """fastnn.load_weights on valid files with hostile byte edits: a truncation, a flipped
    byte or a rewritten header loads the weights or raises ValueError naming the file."""
    draw = data.draw
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2, bias=False))
    path = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    fastnn.save_weights(model, path)
    blob = bytearray(path.read_bytes())
    how = draw(st.sampled_from(["truncate", "flip", "extend", "header"]))
    if how == "truncate":
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        k = draw(st.integers(0, len(blob) - 1))
        blob[k] ^= 1 << draw(st.integers(0, 7))
    elif how == "extend":
        blob += bytes(draw(st.integers(1, 64)))
    else:
        n = int.from_bytes(blob[:8], "little")
        text = draw(st.sampled_from(['[]', '{"a": 1}', '{"0.weight": {"dtype": "F32", '
                                     '"shape": [2, 3], "data_offsets": [0, 99]}}', '{',
                                     '{"0.weight": {"dtype": "Q9", "shape": [1], '
                                     '"data_offsets": [0, 4]}}',
                                     '{"0.weight": {"dtype": "F32", "shape": [0, 2305843009'
                                     '213693952000], "data_offsets": [0, 0]}}',
                                     '{"a": {}, "a": {}}', '[' * 50_000 + ']' * 50_000,
                                     '{"__metadata__": {"a": 1}}', '{"0.weight": {"dtype": '
                                     '[1], "shape": [1], "data_offsets": [0, 4]}}']))
        blob = len(text).to_bytes(8, "little") + text.encode() + blob[8 + n:]
    bad = path.with_name("bad.safetensors")
    bad.write_bytes(bytes(blob))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    status, got = call("safetensors", lambda: fastnn.load_weights(model, bad))
    if status == "raised":
        assert isinstance(got, ValueError) and str(bad) in str(got), got
        for k, v in model.state_dict().items():  # nothing half-loaded
            assert np.array_equal(v, before[k])
        return
    assert how == "flip"  # only a flip inside the data can leave a valid file


KERAS_LAYERS = {  # class name -> (valid keyword arguments, the ones to make hostile)
    "Dense": ({"units": 3}, ["units"]),
    "Conv2D": ({"filters": 2, "kernel_size": 3, "strides": 1},
               ["filters", "kernel_size", "strides", "dilation_rate"]),
    "MaxPooling2D": ({"pool_size": 2}, ["pool_size", "strides"]),
    "AveragePooling2D": ({"pool_size": 2}, ["pool_size", "strides"]),
    "Dropout": ({"rate": 0.5}, ["rate"]),
    "BatchNormalization": ({}, ["momentum", "epsilon"]),
    "Activation": ({"activation": "relu"}, ["activation"]),
    "Identity": ({}, ["name"]),
    "ReLU": ({}, ["negative_slope", "max_value", "threshold"]),
    "LeakyReLU": ({}, ["negative_slope"]),
    "Softmax": ({}, ["axis"]),
    "ZeroPadding2D": ({"padding": 1}, ["padding"]),
    "Reshape": ({"target_shape": (-1,)}, ["target_shape"]),
    "Rescaling": ({"scale": 0.5}, ["scale", "offset"]),
}


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_keras_layer_boundary(data):
    """fastnn.keras layers built with hostile arguments into a model on images (or flat
    vectors for Dense): a model that predicts finite values or a clear error naming the
    layer or the argument."""
    from fastnn import keras as fk
    draw = data.draw
    name = draw(st.sampled_from(sorted(KERAS_LAYERS)))
    kwargs, hostile = KERAS_LAYERS[name]
    kwargs = dict(kwargs)
    bad = draw(st.booleans())
    if bad:
        arg = draw(st.sampled_from(hostile))
        kwargs[arg] = draw(st.sampled_from(HOSTILE_INTS + HOSTILE_REALS))
    if name in ("Dense", "Conv2D"):  # Keras' initializers by name
        kwargs["kernel_initializer"] = draw(st.sampled_from(fk.layers.INITIALIZERS))
    shape = (4,) if name == "Dense" else (6, 6, 2)
    if name in ("Conv2D", "MaxPooling2D", "AveragePooling2D"):  # 'same': a Pad2d when odd
        kwargs["padding"] = draw(st.sampled_from(["valid", "same"]))

    def build_and_predict():
        model = fk.Sequential([getattr(fk.layers, name)(**kwargs, input_shape=shape)])
        return model.predict(np.ones((2,) + shape, np.float32))

    status, got = call("keras_layers", build_and_predict)
    if status == "raised":  # AveragePooling2D refuses a 'same' that pads
        assert bad or "padding='same' that pads" in str(got), \
            f"valid arguments rejected: {got!r}"
        check_named(got, {name, *hostile, "padding", "predict"})  # predict: huge outputs
        return
    assert np.isfinite(got).all()


MERGES = {"Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply,
          "Maximum": np.maximum, "Minimum": np.minimum}


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_merge_layer_boundary(data):
    """fastnn.nn's merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum) on
    hostile lists (counts, shapes, dtypes, layouts, NaN) and gradients: the NumPy result
    and gradients of the right shapes, or an error naming the layer or the input."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(sorted(MERGES) + ["Average"]))
    layer = getattr(nn, kind)()
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    k = draw(st.integers(0, 4))
    xs = [relayout(randn(r, *shape), draw(st.sampled_from(LAYOUTS))) for _ in range(k)]
    mutation = draw(st.sampled_from(["none", "shape", "dtype", "nan", "not a list"]))
    if xs and mutation == "shape":
        xs[-1] = randn(r, *(shape + (2,)))
    elif xs and mutation == "dtype":
        xs[0] = xs[0].astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif xs and mutation == "nan" and xs[0].flags.writeable:
        xs[0].flat[0] = np.nan
    elif mutation == "not a list":
        xs = xs[0] if xs else None
    status, y = call("merge_layers", lambda: layer(xs))
    valid = isinstance(xs, list) and k >= 2 and mutation in ("none", "nan") and (
        kind != "Subtract" or k == 2)
    if status == "raised":
        assert not valid, f"valid inputs rejected: {y!r}"
        check_named(y, {kind, "x", "input", "inputs"})
        return
    assert valid, f"{mutation} inputs (k={k}) accepted"
    want = xs[0].astype(np.float64)
    for x in xs[1:]:
        want = MERGES.get(kind, np.add)(want, x)
    if kind == "Average":
        want = want / k
    with np.errstate(all="ignore"):
        assert_matches(y, want)
    grad = relayout(randn(r, *y.shape), draw(st.sampled_from(LAYOUTS)))
    status, grads = call("merge_layers", lambda: layer.backward(grad))
    assert status == "ok", f"backward of a valid forward failed: {grads!r}"
    assert len(grads) == k and all(g.shape == shape for g in grads)
    status, got = call("merge_layers", lambda: layer.backward(grad[..., :1] if shape[-1] > 1
                                                              else grad.astype(np.float64)))
    assert status == "raised", "a gradient of another shape or dtype accepted"
    check_named(got, {"grad_out"})


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_keras_graph_boundary(data):
    """fastnn.keras' functional graphs built with hostile merges (kinds, Concatenate
    axes, shapes of both layouts, a shared layer on another shape) and given hostile
    inputs (lists, dicts, lengths, shapes): finite predictions of Keras' shape, or an
    error naming the layer, the argument or the call."""
    from fastnn import keras as fk
    draw = data.draw
    kind = draw(st.sampled_from(sorted(MERGES) + ["Average", "Concatenate"]))
    images = draw(st.booleans())
    first = (5, 5, 2) if images else (4,)
    shapes = [first, first if draw(st.booleans()) else draw(st.sampled_from(
        [(5, 5, 3), (4,), (3,), (5, 4, 2)]))]
    axis = -1 if draw(st.booleans()) else draw(st.sampled_from(
        [1, 2, 3, 0, 4, -5] + HOSTILE_INTS[:6]))
    names = draw(st.sampled_from([("a", "b")] * 3 + [("a", "a"), (None, None)]))

    def build():
        inputs = [fk.Input(s, name=n) for s, n in zip(shapes, names)]
        branches = [fk.layers.Conv2D(2, 3, padding="same")(t) if len(t.shape) == 4 and
                    draw(st.booleans()) else t for t in inputs]  # NCHW for some
        merge = getattr(fk.layers, kind)
        merged = merge(axis=axis)(branches) if kind == "Concatenate" else merge()(branches)
        dense = fk.layers.Dense(3)
        out = dense(fk.layers.Flatten()(merged))
        if draw(st.booleans()):  # shared, on its own output: 3 features, not its input's
            out = dense(out)
        return fk.Model(inputs, out)

    status, model = call("keras_graphs", build)
    if status == "raised":
        check_named(model, {kind, "Model", "Dense", "dense", "axis", "input", "name",
                            *(n for n in names if n)})
        assert not (kind != "Concatenate" and shapes[0] == shapes[1] and names[0] != names[1]
                    and names[0] is not None and "dense" not in str(model)), model
        return
    n = draw(st.sampled_from([3, 0, 1]))
    xs = [np.ones((n,) + s, np.float32) for s in shapes]
    how = draw(st.sampled_from(["list", "dict", "one", "length", "shape", "dtype"]))
    if how == "dict":
        xs = dict(zip([t.name for t in model._keras_inputs], xs))
    elif how == "one":
        xs = xs[0]
    elif how == "length":
        xs[1] = xs[1][:1]
    elif how == "shape":  # an extra axis of 2 (one of 1 Keras drops)
        xs[1] = np.repeat(xs[1][..., None], 2, -1)
    elif how == "dtype":
        xs[0] = xs[0].astype(draw(st.sampled_from([object, np.complex64, np.str_])))
    valid = how in ("list", "dict") or (how == "length" and n <= 1)  # [:1] of n <= 1
    status, got = call("keras_graphs", lambda: model.predict(xs, verbose=0))
    if status == "raised":
        assert not valid or n == 0, f"valid inputs rejected: {got!r}"
        check_named(got, {"predict", "x", "x[0]", "x[1]"})
        return
    assert valid, f"{how} x accepted"
    assert got.shape == (n, 3) and np.isfinite(got).all()


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_keras_model_file_boundary(data, tmp_path_factory):
    """fastnn.keras.models.load_model on a saved model's file with hostile byte edits, or
    save(overwrite=) with hostile flags: the model as saved, or ValueError naming the file
    (FileExistsError for overwrite=False over a file; TypeError for one not a bool)."""
    from fastnn import keras as fk
    draw = data.draw
    L = fk.layers
    if draw(st.booleans()):  # named: the file's length must not vary between examples
        model = fk.Sequential([L.Dense(3, activation="relu", input_shape=(4,), name="hidden"),
                               L.Dense(2, activation="softmax", name="probs")],
                              name="net")  # else sequential_<count>
        x = np.ones((2, 4), np.float32)
    else:  # a graph: two inputs, a merge, a shared layer
        a, b = fk.Input((4,), name="a"), fk.Input((4,), name="b")
        shared = L.Dense(3, activation="relu", name="hidden")
        h = L.Concatenate(name="cat")([shared(a), shared(b)])
        model = fk.Model([a, b], L.Dense(2, activation="softmax", name="probs")(h), name="net")
        x = [np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)]
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.getbasetemp() / "fuzz.keras"
    model.save(path)
    blob = bytearray(path.read_bytes())
    how = draw(st.sampled_from(["truncate", "flip", "extend", "overwrite"]))
    if how == "overwrite":
        flag = draw(st.sampled_from([True, False, 0, 1, None, "no", np.bool_(False)]))

        def save():
            try:
                return model.save(path, overwrite=flag)
            except FileExistsError as e:  # an OSError: not among ALLOWED
                return e

        status, got = call("keras_model_files", save)
        if flag is True:
            assert status == "ok" and got is None
        else:
            assert isinstance(got, (FileExistsError, TypeError)) and "overwrite" in str(got)
        return
    if how == "truncate":
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        k = draw(st.integers(0, len(blob) - 1))
        blob[k] ^= 1 << draw(st.integers(0, 7))
    else:
        blob += bytes(draw(st.integers(1, 64)))
    bad = path.with_name("bad.keras")
    bad.write_bytes(bytes(blob))
    status, got = call("keras_model_files", lambda: fk.models.load_model(bad))
    if status == "raised":
        assert isinstance(got, ValueError) and str(bad) in str(got), got
        return
    assert how in ("flip", "extend")  # zip metadata the reader does not use
    np.testing.assert_array_equal(got.predict(x), model.predict(x))


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_keras_loss_call_boundary(data):
    """fastnn.keras.losses objects called on hostile targets and predictions (dtypes,
    shapes, labels out of range, NaN), and get_layer on hostile names and indices: a
    float32 scalar or an error naming the loss (get_layer)."""
    from fastnn import keras as fk
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cls = draw(st.sampled_from([fk.losses.CategoricalCrossentropy, fk.losses.BinaryCrossentropy,
                                fk.losses.SparseCategoricalCrossentropy,
                                fk.losses.MeanSquaredError, fk.losses.MeanAbsoluteError,
                                fk.losses.Huber]))
    regression = (fk.losses.MeanSquaredError, fk.losses.MeanAbsoluteError, fk.losses.Huber)
    loss = cls() if cls in regression else cls(from_logits=draw(st.booleans()))
    n, c = dims(draw, 1, 4), dims(draw, 1, 4)
    pred = r.random((n, c)).astype(np.float32)
    true = r.integers(0, c, n) if cls is fk.losses.SparseCategoricalCrossentropy \
        else r.random((n, c)).astype(np.float32)
    how = draw(st.sampled_from(["none", "dtype", "shape", "labels", "nan", "list"]))
    if how == "dtype":
        pred = pred.astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif how == "shape":
        pred = pred.reshape(-1)
    elif how == "labels":
        true = true + draw(st.sampled_from([c, -c - 1, 0.5]))
    elif how == "nan":
        pred[0, 0] = np.nan
    elif how == "list":
        true = true.tolist()
    status, got = call("keras_loss_calls", lambda: loss(true, pred))
    if status == "raised":
        assert how != "none", got
        check_named(got, {type(loss).__name__})
        return
    assert isinstance(got, np.float32)
    assert np.isfinite(got) or how in ("nan", "dtype", "labels"), (how, got)
    model = fk.Sequential([fk.layers.Dense(2, input_shape=(2,), name="a")])
    key = draw(st.sampled_from(HOSTILE_INTS + ["a", "b", None]))
    by_name = draw(st.booleans())
    status, got = call("keras_loss_calls", lambda: model.get_layer(
        **({"name": key} if by_name else {"index": key})))
    if status == "ok":
        assert got is model.layers[0]
    else:
        check_named(got, {"get_layer"})


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_keras_metric_boundary(data):
    """fastnn.keras.metrics objects built with hostile arguments (name, threshold, k),
    updated with hostile targets, predictions and sample weights, and compile given
    hostile metrics: a float32 result (in [0, 1] for accuracies) or an error naming the
    metric class (compile)."""
    from fastnn import keras as fk
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    name = draw(st.sampled_from(list(fk.metrics.CLASSES)))
    cls = fk.metrics.CLASSES[name]
    kwargs = {"name": draw(st.sampled_from([None, "", "m", 3, b"m", ("m",)]))}
    if cls is fk.metrics.BinaryAccuracy:
        kwargs["threshold"] = draw(st.sampled_from(HOSTILE_REALS + [0.3]))
    if cls is fk.metrics.SparseTopKCategoricalAccuracy:
        kwargs["k"] = draw(st.sampled_from(HOSTILE_INTS + [1, 3]))
    status, metric = call("keras_metrics", lambda: cls(**kwargs))
    if status == "raised":
        check_named(metric, {name})
        return
    n, c = dims(draw, 1, 4), dims(draw, 1, 4)
    pred = r.random((n, c)).astype(np.float32)
    true = r.integers(0, c, n) if cls.sparse else r.integers(0, 2, (n, c)).astype(np.float32)
    weight = None
    how = draw(st.sampled_from(["none", "dtype", "shape", "labels", "nan", "list", "weight"]))
    if how == "dtype":
        true = true.astype(draw(st.sampled_from(HOSTILE_DTYPES)))
    elif how == "shape":
        pred = pred.reshape(-1)
    elif how == "labels":
        true = true + draw(st.sampled_from([c, -c - 1, 0.5]))
    elif how == "nan":
        pred[0, 0] = np.nan
    elif how == "list":
        true = true.tolist()
    elif how == "weight":
        weight = draw(st.sampled_from([r.random(n), r.random(n + 1), -np.ones(n),
                                       np.full(n, np.nan), np.zeros(n), "w", [[1.0]] * n]))
    status, got = call("keras_metrics", lambda: metric(true, pred, sample_weight=weight))
    if status == "raised":
        assert how != "none", got
        check_named(got, {name})
    else:
        assert isinstance(got, np.float32), got
        if "Accuracy" in name:  # NaN outputs count as wrong, as in Keras
            assert 0 <= got <= 1, (how, got)
        else:  # a NaN output gives a NaN error, as in Keras
            assert np.isfinite(got) or how == "nan", (how, got)
        metric.reset_state()
        assert metric.result() == 0
    model = fk.Sequential([fk.layers.Input((2,)), fk.layers.Dense(2, activation="softmax")])
    entry = draw(st.sampled_from([metric, cls, {"class_name": name}, {"class_name": "x"},
                                  {"class_name": name, "config": {"k": -1}}, 3, None,
                                  "accuracy", b"mae"]))
    status, got = call("keras_metrics", lambda: model.compile(
        "sgd", "sparse_categorical_crossentropy", metrics=[entry, "mae"]))
    if status == "raised":
        check_named(got, {"compile"})


@settings(FUZZ, max_examples=50)  # of 57 distinct shapes
@given(data=st.data())
def test_keras_build_boundary(data):
    """Sequential.build on hostile input shapes: built for them (then predicts that
    shape) or a ValueError/TypeError naming build (or Dense, for a shape of images)."""
    from fastnn import keras as fk
    draw = data.draw
    model = fk.Sequential([fk.layers.Dense(2)])
    shape = draw(st.sampled_from([(None, 3), [None, 3], (4, 3)]) |
                 st.tuples(st.sampled_from([None, 1]), st.sampled_from(HOSTILE_INTS)) |
                 st.sampled_from(HOSTILE_INTS))
    status, got = call("keras_build", lambda: model.build(shape))
    if status == "raised":
        check_named(got, {"build", "Dense"})
        return
    assert model.predict(np.ones((2, shape[1]), np.float32)).shape == (2, 2)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_keras_weights_config_and_clipping_boundary(data):
    """fastnn.keras' Variable.assign, optimizers' clipnorm / clipvalue / global_clipnorm,
    Layer.from_config and Sequential.pop(rebuild) with hostile values: done (a weight of
    its shape, a finite positive clip) or a ValueError/TypeError/IndexError naming the
    argument, the model unchanged."""
    from fastnn import keras as fk
    draw = data.draw
    model = fk.Sequential([fk.layers.Input((3,)), fk.layers.Dense(2, name="d")])
    before = model.get_weights()
    what = draw(st.sampled_from(["assign", "clipnorm", "clipvalue", "global_clipnorm",
                                 "from_config", "rebuild"]))
    value = draw(st.sampled_from(HOSTILE_REALS + HOSTILE_INTS + HOSTILE_WEIGHTS +
                                 [np.ones((3, 2)), np.ones((2, 3)), {"units": 2},
                                  {"units": 0}, {"bogus": 1}, {}]))
    thunk = {"assign": lambda: model.layers[0].kernel.assign(value),
             "from_config": lambda: fk.layers.Dense.from_config(value),
             "rebuild": lambda: model.pop(rebuild=value)}.get(
        what, lambda: fk.optimizers.SGD(**{what: value}))
    CALLS["keras_weights"] = CALLS.get("keras_weights", 0) + 1
    try:
        got = thunk()
    except (ValueError, TypeError) as e:
        check_named(e, {what, "kernel.assign", "units", "bogus", "Dense", "config"})
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        return
    if what == "assign":
        assert np.shape(value) == (3, 2)
        np.testing.assert_array_equal(model.get_weights()[0], np.asarray(value, np.float32))
    elif what in ("clipnorm", "clipvalue", "global_clipnorm"):
        assert value is None or 0 < getattr(got, what) < np.inf
    elif what == "from_config":
        assert got.units == value["units"]
    else:
        assert got.name == "d" and model.layers == []


HOSTILE_WEIGHTS = [[1.0] * 5, [1.0] * 7, [-1.0] + [1.0] * 5, [np.nan] + [1.0] * 5,
                   [np.inf] + [1.0] * 5, np.ones((6, 2)), np.ones((6, 1)), np.ones(6, bool),
                   np.ones(6, np.complex64), ["1"] * 6, 3.0, "w", [[1.0], [1.0, 2.0]],
                   [0.0] * 6, np.arange(6)]
HOSTILE_CLASS_WEIGHTS = [{0: 1.0, 1: 2.0}, {1: 0}, {2: 1.0}, {-1: 1.0}, {0: -1.0},
                         {0: float("nan")}, {0: float("inf")}, {True: 1.0}, {"0": 1.0},
                         {0.0: 1.0}, {0: "1"}, {0: None}, {np.int64(1): np.float32(3)},
                         [1.0, 2.0], "balanced", {}, {0: True}, {2**64: 1.0}]


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_keras_training_boundary(data):
    """fit / evaluate / train_on_batch / test_on_batch of a fastnn.keras model with hostile
    sample_weight, class_weight, validation_data, initial_epoch and callbacks: finite
    results or a ValueError/TypeError naming the method and the argument, never NaN
    weights trained on or a silent wrong length."""
    from fastnn import keras as fk
    draw = data.draw
    model = fk.Sequential([fk.layers.Input((3,)), fk.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((6, 3), np.float32), np.arange(6) % 2
    what = draw(st.sampled_from(["sample_weight", "class_weight", "validation_data",
                                 "initial_epoch", "callbacks", "metrics"]))
    method = draw(st.sampled_from(["fit", "evaluate", "train_on_batch", "test_on_batch"]))
    kwargs, names = {}, {"sample_weight", "class_weight"}
    if what == "sample_weight":
        kwargs["sample_weight"] = draw(st.sampled_from(HOSTILE_WEIGHTS))
    elif what == "class_weight":
        method = draw(st.sampled_from(["fit", "train_on_batch"]))
        kwargs["class_weight"] = draw(st.sampled_from(HOSTILE_CLASS_WEIGHTS))
    elif what == "validation_data":
        method, names = "fit", {"validation_data", "sample_weight", "x", "y"}
        kwargs["validation_data"] = draw(st.sampled_from([
            (x, y), (x, y, np.ones(6)), (x, y, np.ones(5)), (x,), (x, y, None, None),
            (x, y, [np.nan] * 6), (x[:, :2], y), (x, y[:3]), x, None, [x, y]]))
    elif what == "initial_epoch":
        method, names = "fit", {"initial_epoch", "epochs"}
        kwargs["initial_epoch"] = draw(st.sampled_from(HOSTILE_INTS))
    elif what == "callbacks":
        method = draw(st.sampled_from(["fit", "evaluate"]))
        names = {"callbacks"}
        kwargs["callbacks"] = draw(st.sampled_from([
            [], [fk.callbacks.Callback()], [fk.callbacks.History()], [fk.callbacks.Callback],
            [object()], [None], fk.callbacks.Callback(), "cb", [lambda logs: None]]))
    else:
        names = {"compile", "metric", "metrics"}
        metrics = draw(st.sampled_from([["mae"], ["acc", "mse"], ["top_k_categorical_accuracy"],
                                        ["accuracy", "accuracy"], ["f1"], [None], "accuracy",
                                        [["acc"]], ["Accuracy"]]))
        status, got = call("keras_training", lambda: model.compile(
            "sgd", "categorical_crossentropy", metrics=metrics))
        if status == "raised":
            check_named(got, names)
            return
        y = np.eye(2, dtype=np.float32)[y]
    status, got = call("keras_training", lambda: getattr(model, method)(
        x, y, **kwargs, **({"verbose": 0} if method in ("fit", "evaluate") else {})))
    check_keras_result(status, got, names, method, model)


def check_keras_result(status, got, names, method, model):
    """A Keras training call's fuzz outcome: raised naming an argument of `names` and the
    method, or returned finite logs and left finite weights. True if it returned."""
    if status == "raised":
        check_named(got, names)
        check_named(got, {method})
        return False
    values = got.history.values() if method == "fit" else np.ravel(got)
    assert all(np.isfinite(v).all() for v in values), got
    for w in model.get_weights():
        assert np.isfinite(w).all()
    return True


HOSTILE_PER_OUTPUT = [None, "mse", ["mse"], ["mse", "mse", "mse"], ("mse", "mae"),
                      {"a": "mse"}, {"a": "mse", "b": "mse", "c": "mse"}, {"a": "mse", 1: "mse"},
                      {"a": None, "b": "mse"}, ["mse", None], [1.0, 2.0], [1.0, np.nan],
                      [1.0, "x"], {"a": 1.0, "b": True}, 3.0, "loss", [[1.0], [2.0]],
                      {"b": 1.0, "a": 2.0}, ["mse", "nope"], [], {}, np.ones(2), [None, None]]


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_keras_outputs_boundary(data):
    """A fastnn.keras model with two outputs (a list or a dict of them, or hostile
    outputs): compile's loss, loss_weights and metrics, and fit / evaluate /
    train_on_batch / test_on_batch / predict's y, sample_weight and class_weight drawn
    hostile: finite results or a ValueError/TypeError naming the argument."""
    from fastnn import keras as fk
    draw = data.draw
    inp = fk.Input((3,))
    heads = [fk.layers.Dense(2, activation="softmax", name="a")(inp),
             fk.layers.Dense(1, name="b")(inp)]
    outputs = draw(st.sampled_from(["list", "dict", "hostile"]))
    if outputs == "hostile":
        bad = draw(st.sampled_from([[], {}, {1: heads[0]}, {"": heads[0]}, [heads[0], 3],
                                    {"a": heads[0], "b": "x"}, (heads[0], None)]))
        status, got = call("keras_outputs", lambda: fk.Model(inp, bad))
        assert status == "raised"
        check_named(got, {"output", "outputs", "Model"})
        return
    model = fk.Model(inp, heads if outputs == "list" else dict(zip("ab", heads)))
    x = np.ones((6, 3), np.float32)
    y = {"a": np.arange(6) % 2, "b": np.ones((6, 1), np.float32)}
    kwargs = {"loss": {"a": "sparse_categorical_crossentropy", "b": "mse"}}
    what = draw(st.sampled_from(["loss", "loss_weights", "metrics", "y", "sample_weight",
                                 "class_weight"]))
    if what in ("loss", "loss_weights", "metrics"):
        kwargs[what] = draw(st.sampled_from(HOSTILE_PER_OUTPUT))
        status, got = call("keras_outputs", lambda: model.compile("sgd", **kwargs))
        if status == "raised":
            check_named(got, {what, "metric", "loss"})
            return
        status, got = call("keras_outputs", lambda: model.evaluate(x, y, verbose=0))
        if status == "raised":  # a loss valid for one output, not for the other's targets
            check_named(got, {"y", "targets", "labels"})
            return
        assert np.isfinite(got).all(), got
        return
    model.compile("sgd", **kwargs)
    method = draw(st.sampled_from(["fit", "evaluate", "train_on_batch", "test_on_batch"]))
    args = {"y": y}
    if what == "y":
        args["y"] = draw(st.sampled_from([
            y["a"], [y["a"]], [y["a"], y["b"], y["b"]], [y["b"], y["a"]], {"a": y["a"]},
            {"a": y["a"], "c": y["b"]}, [y["a"], y["b"][:3]], [y["a"], None], None,
            [y["a"], np.full((6, 1), np.nan)], (y["a"], y["b"]), [y["a"], "b"]]))
    elif what == "sample_weight":
        args["sample_weight"] = draw(st.sampled_from(HOSTILE_WEIGHTS + [
            [np.ones(6), np.ones(6)], [np.ones(6)], [None, np.ones(6)], {"a": np.ones(6)},
            {"a": np.ones(6), "b": None}, [np.ones(6), -np.ones(6)], [np.ones(5), None]]))
    else:
        method = draw(st.sampled_from(["fit", "train_on_batch"]))
        args["class_weight"] = draw(st.sampled_from(HOSTILE_CLASS_WEIGHTS))
    status, got = call("keras_outputs", lambda: getattr(model, method)(
        x, **args, **({"verbose": 0} if method in ("fit", "evaluate") else {})))
    if not check_keras_result(status, got, {"y", "x", "sample_weight", "class_weight",
                                             "targets", "labels"}, method, model):
        return
    predicted = model.predict(x, verbose=0)
    assert isinstance(predicted, list if outputs == "list" else dict)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_keras_subclass_boundary(data):
    """A subclassed fastnn.keras model built from hostile input shapes (build, or predict
    on hostile data) or whose call does what a recorded graph cannot: built (then it
    predicts), or a ValueError/TypeError naming build, the layer or what cannot be
    traced."""
    from fastnn import keras as fk
    draw = data.draw
    body = draw(st.sampled_from([
        lambda self, x, training: self.dense(x),
        lambda self, x, training: self.dense(x) if training else x,
        lambda self, x, training: self.dense(x) if x else x,
        lambda self, x, training: self.dense(x) * 2,
        lambda self, x, training: [self.dense(x), x],
        lambda self, x, training: self.dense(self.dense(x)),
        lambda self, x, training: self.dense(x, training=draw(st.sampled_from(HOSTILE_INTS))),
        lambda self, x, training: None, lambda self, x, training: {"a": x, 3: x}]))

    class Sub(fk.Model):
        def __init__(self):
            super().__init__()
            self.dense = fk.layers.Dense(2)

        def call(self, inputs, training=None):
            return body(self, inputs, training)

    model = Sub()
    if draw(st.booleans()):
        shape = draw(st.sampled_from([(None, 3), (5, 3), (None, 2, 3)]) |
                     st.tuples(st.sampled_from([None, 1]), st.sampled_from(HOSTILE_INTS)) |
                     st.sampled_from(HOSTILE_INTS))
        status, got = call("keras_subclass", lambda: model.build(shape))
    else:
        x = draw(st.sampled_from([np.ones((2, 3), np.float32), np.ones((2, 3, 1)),
                                  np.ones(3), np.ones((0, 3)), np.array([["a"]]), None,
                                  np.full((2, 3), np.nan, np.float32),
                                  [np.ones((2, 3)), np.ones((3, 3))], [np.ones((2, 3))] * 2,
                                  {"a": np.ones((2, 3))}, [np.ones((2, 3)), "b"], []]))
        status, got = call("keras_subclass", lambda: model.predict(x, verbose=0))
    if status == "raised":
        check_named(got, {"build", "Dense", "dense", "trace", "training", "Model", "output",
                          "x", "predict", "Sub", "layer", "inputs"})
        return
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    out = model.predict([np.ones((2,) + s[1:], np.float32) for s in shapes]
                        if len(shapes) > 1 else np.ones((2,) + shapes[0][1:], np.float32),
                        verbose=0)
    assert all(np.isfinite(o).all() for o in (out if isinstance(out, list) else [out]))


@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_keras_callbacks_boundary(data, tmp_path_factory):
    """The callbacks of fastnn.keras.callbacks built with hostile arguments, then run by a
    fit: they work or raise ValueError/TypeError naming the callback (KeyError for a
    ModelCheckpoint filepath naming a value not logged, as Keras)."""
    from fastnn import keras as fk
    draw = data.draw
    tmp = tmp_path_factory.getbasetemp()
    C = fk.callbacks
    hostile = draw(st.sampled_from(HOSTILE_REALS + HOSTILE_INTS))
    path = tmp / hostile if isinstance(hostile, str) else hostile  # "0.1": a file, in tmp
    make = draw(st.sampled_from([
        lambda: C.ReduceLROnPlateau(factor=hostile), lambda: C.ReduceLROnPlateau(patience=hostile),
        lambda: C.ReduceLROnPlateau(cooldown=hostile), lambda: C.ReduceLROnPlateau(min_lr=hostile),
        lambda: C.ReduceLROnPlateau(min_delta=hostile), lambda: C.ReduceLROnPlateau(mode=hostile),
        lambda: C.ReduceLROnPlateau(monitor=hostile),
        lambda: C.ModelCheckpoint(tmp / "m-{epoch}.keras", save_freq=hostile),
        lambda: C.ModelCheckpoint(tmp / "m.keras", monitor=hostile, save_best_only=True),
        lambda: C.ModelCheckpoint(tmp / "m.keras", initial_value_threshold=hostile,
                                  save_best_only=True, monitor="loss"),
        lambda: C.ModelCheckpoint(path), lambda: C.ModelCheckpoint(""),
        lambda: C.ModelCheckpoint(tmp / "{missing}.keras"),
        lambda: C.ModelCheckpoint(tmp / "{epoch:d}{loss:q}.keras"),
        lambda: C.ModelCheckpoint(tmp), lambda: C.CSVLogger(path),
        lambda: C.CSVLogger(tmp / "log.csv", separator=hostile),
        lambda: C.LambdaCallback(on_epoch_end=hostile),
        lambda: C.LambdaCallback(on_epoch_ended=lambda epoch, logs: None),
        lambda: C.LearningRateScheduler(lambda epoch, lr: hostile)]))
    model = fk.Sequential([fk.layers.Input((3,)), fk.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.ones((6, 3), np.float32), np.arange(6) % 2

    def run():
        return model.fit(x, y, epochs=2, verbose=0, callbacks=[make()])

    try:
        status, got = call("keras_callbacks", run)
    except (KeyError, IsADirectoryError) as e:  # Keras' errors for these paths
        assert "ModelCheckpoint" in str(e), e
        return
    if status == "raised":
        # (a rate of 1e300 diverges: the loss kernel refuses the non-finite logits)
        check_named(got, {"ReduceLROnPlateau", "ModelCheckpoint", "CSVLogger",
                          "LambdaCallback", "LearningRateScheduler", "cross_entropy_with_grad"})
        return
    assert all(np.isfinite(v).all() for v in got.history.values())
    assert model.optimizer.lr >= 0


def _flag_calls():
    """(name of the flag, what the error names, call(value)) for every True/False
    argument of the public API."""
    from fastnn import keras as fk
    p = [nn.Parameter(np.ones(2, np.float32))]
    x, y = np.ones((4, 2), np.float32), np.zeros(4, np.int64)
    model = nn.Sequential(nn.Linear(2, 2), input_shape=(2,))
    other = nn.Sequential(nn.Linear(2, 2), input_shape=(2,))
    r = np.random.default_rng(0)
    img, w = randn(r, 1, 2, 3, 3), randn(r, 2, 2, 1, 1)
    return [
        ("bias", "Linear", lambda v: nn.Linear(2, 2, bias=v)),
        ("bias", "Conv2d", lambda v: nn.Conv2d(1, 1, 1, bias=v)),
        ("affine", "BatchNorm2d", lambda v: nn.BatchNorm2d(2, affine=v)),
        ("bias", "BatchNorm1d", lambda v: nn.BatchNorm1d(2, bias=v)),
        ("track_running_stats", "BatchNorm1d",
         lambda v: nn.BatchNorm1d(2, track_running_stats=v)),
        ("nesterov", "SGD", lambda v: optim.SGD(p, momentum=0.9, nesterov=v)),
        ("centered", "RMSprop", lambda v: optim.RMSprop(p, centered=v)),
        ("shuffle", "iterate_batches", lambda v: datasets.iterate_batches(x, y, 2, shuffle=v)),
        ("shuffle", "fit", lambda v: model.fit(x, y, optimizer="sgd", shuffle=v, verbose=0)),
        ("restore_best_weights", "EarlyStopping",
         lambda v: fastnn.training.EarlyStopping(restore_best_weights=v)),
        ("use_bias", "Dense", lambda v: fk.layers.Dense(2, use_bias=v)),
        ("center", "BatchNormalization",
         lambda v: fk.layers.BatchNormalization(center=v, scale=v)),
        ("trainable", "dense", lambda v: fk.layers.Dense(2, trainable=v, name="dense")),
        ("from_logits", "BinaryCrossentropy",
         lambda v: fk.losses.BinaryCrossentropy(from_logits=v)),
        ("strict", "load_state_dict",
         lambda v: model.load_state_dict(model.state_dict(), strict=v)),
        ("assign", "load_state_dict",
         lambda v: model.load_state_dict(model.state_dict(), assign=v)),
        ("keep_vars", "state_dict", lambda v: model.state_dict(keep_vars=v)),
        ("recurse", "named_parameters", lambda v: model.parameters(recurse=v)),
        ("remove_duplicate", "named_buffers", lambda v: model.named_buffers(remove_duplicate=v)),
        ("remove_duplicate", "named_modules", lambda v: model.modules(remove_duplicate=v)),
        ("persistent", "register_buffer",
         lambda v: other.register_buffer("b", np.zeros(2), persistent=v)),
        # the backward kernels' flags (bint or truthiness: "no" counted as True)
        ("bias", "linear_backward", lambda v: F.linear_backward(x, x, x[:2], bias=v)),
        ("need_input_grad", "conv2d_backward",
         lambda v: F.conv2d_backward(img, img, w, need_input_grad=v)),
        ("need_weight_grad", "batch_norm_backward", lambda v: F.batch_norm_backward(
            x, x, x[0], x[0], x[0], training=True, need_weight_grad=v)),
        ("requires_grad", "Parameter", lambda v: nn.Parameter(x, requires_grad=v)),
        ("requires_grad", "Sequential.requires_grad_", lambda v: other.requires_grad_(v)),
        ("mode", "Sequential.train", lambda v: other.train(v)),
        ("need_input_grad", "Sequential.backward",
         lambda v: (other(x), other.backward(x, need_input_grad=v))),
        ("inplace", "ReLU", lambda v: nn.ReLU(inplace=v)),
        ("inplace", "Dropout", lambda v: nn.Dropout(inplace=v)),
        ("amsgrad", "Adam", lambda v: optim.Adam(p, amsgrad=v)),
        ("decoupled_weight_decay", "Adam", lambda v: optim.Adam(p, decoupled_weight_decay=v)),
        ("maximize", "RMSprop", lambda v: optim.RMSprop(p, maximize=v)),
        ("nesterov", "SGD", lambda v: fk.optimizers.SGD(momentum=0.9, nesterov=v)),
        ("centered", "RMSprop", lambda v: fk.optimizers.RMSprop(centered=v)),
        ("save_best_only", "ModelCheckpoint",
         lambda v: fk.callbacks.ModelCheckpoint("m.keras", save_best_only=v)),
        ("save_weights_only", "ModelCheckpoint",
         lambda v: fk.callbacks.ModelCheckpoint("m.keras", save_weights_only=v)),
        ("append", "CSVLogger", lambda v: fk.callbacks.CSVLogger("log.csv", append=v)),
        ("raise_error", "TerminateOnNaN", lambda v: fk.callbacks.TerminateOnNaN(raise_error=v)),
    ]


@settings(FUZZ, max_examples=300)  # of 35 calls x 13 values
@given(data=st.data())
def test_flag_boundary(data):
    """Every True/False argument takes only True or False (NumPy's bools too): a string
    such as "no", a list or None counted as True or False, silently."""
    draw = data.draw
    name, owner, make = draw(st.sampled_from(_flag_calls()))
    value = draw(st.sampled_from([True, False, np.True_, np.False_, 0, 1, None, "no", "",
                                  [], [0], 1.0, np.int64(1)]))
    status, got = call("flags", lambda: make(value))
    if isinstance(value, (bool, np.bool_)):
        assert status == "ok", f"{owner}({name}={value!r}) rejected: {got!r}"
    else:
        assert isinstance(got, TypeError) and f"{name} must be True or False" in str(got), got
        check_named(got, {owner})


# ModuleList and ModuleDict: hostile indices, keys and values, then a model holding one runs
# (each drawn as often from the valid as from the hostile ones)
CONTAINER_VALUES = st.sampled_from([lambda: nn.Linear(2, 2), nn.ReLU, nn.Tanh]) | \
    st.sampled_from([lambda: None, lambda: 3, lambda: "relu", lambda: [nn.ReLU()],
                     lambda: np.zeros(2), lambda: nn.Parameter(np.zeros(2)), nn.ModuleList])
CONTAINER_KEYS = st.sampled_from(["a", "b", "c"]) | \
    st.sampled_from(["", ".", "a.b", 0, None, b"a", ("a",), ["a"], 1.5, "ä b"])
CONTAINER_INDICES = st.sampled_from([0, 1, -1, -3, 5, np.int64(1), slice(1, None),
                                     slice(None, None, -1)]) | st.sampled_from(HOSTILE_INTS)


class ContainerHost(nn.Module):
    """Runs every module of its container in order: a Linear(2, 2) or an activation."""

    def __init__(self, container):
        self.held = container

    def forward(self, x):
        for module in (self.held.values() if isinstance(self.held, nn.ModuleDict)
                       else self.held):
            x = module(x)
        return x


def container_op(draw, container):
    """(what, call()) of one drawn operation on a ModuleList or ModuleDict, its
    arguments hostile or valid."""
    value = draw(CONTAINER_VALUES)
    if isinstance(container, (nn.ModuleList, nn.Sequential)):
        idx = draw(CONTAINER_INDICES)
        values = [draw(CONTAINER_VALUES)() for _ in range(draw(st.integers(0, 3)))]
        ops = {"append": lambda: container.append(value()),
               "extend": lambda: container.extend(draw(st.sampled_from(
                   [values, tuple(values), iter(values), 3, None, nn.ReLU()]))),
               "iadd": lambda: container.__iadd__(values),
               "insert": lambda: container.insert(idx, value()),
               "setitem": lambda: container.__setitem__(idx, value()),
               "getitem": lambda: container[idx], "delitem": lambda: container.__delitem__(idx),
               "pop": lambda: container.pop(idx)}
        if isinstance(container, nn.Sequential):  # torch's + and += take a Sequential
            ops["iadd"] = lambda: container.__iadd__(draw(st.sampled_from(
                [nn.Sequential(*values), values, nn.ReLU()])))
            ops["add_module"] = lambda: container.add_module(draw(CONTAINER_KEYS), value())
    else:
        key = draw(CONTAINER_KEYS)
        pairs = [(draw(CONTAINER_KEYS), draw(CONTAINER_VALUES)())
                 for _ in range(draw(st.integers(0, 3)))]
        ops = {"setitem": lambda: container.__setitem__(key, value()),
               "update": lambda: container.update(draw(st.sampled_from(
                   [pairs, {k: v for k, v in pairs if not isinstance(k, list)},  # hashable
                    [p + (1,) for p in pairs], [key], 3]))),
               "getitem": lambda: container[key], "delitem": lambda: container.__delitem__(key),
               "pop": lambda: container.pop(key), "contains": lambda: key in container,
               "attribute": lambda: getattr(container, str(key)),
               # torch's heads.c = module; names are strings here (else Python's own error)
               "setattr": lambda: setattr(container, str(key), value()),
               "delattr": lambda: delattr(container, str(key)),
               "add_module": lambda: container.add_module(key, value())}
    what = draw(st.sampled_from(sorted(ops)))
    return what, ops[what]


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_container_boundary(data):
    """A few hostile operations on a ModuleList, ModuleDict or Sequential, a model holding
    it called after each: every operation either works or raises ValueError/TypeError
    naming the container (IndexError, KeyError, AttributeError: as torch's, for a missing
    entry), and changes nothing when it raises; the container then holds modules only
    under distinct names, state_dict names them as torch would, and the model runs
    exactly the modules it holds now."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    container = draw(st.sampled_from([nn.ModuleList, nn.ModuleDict, nn.Sequential]))()
    host, x = ContainerHost(container), randn(r, 3, 2)
    for _ in range(draw(st.integers(1, 8))):
        what, op = container_op(draw, container)
        before = list(container.named_children())
        CALLS["containers"] = CALLS.get("containers", 0) + 1
        try:
            op()
        except (ValueError, TypeError) as e:
            if what not in ("getitem", "delitem", "pop", "contains"):  # dict lookups
                check_named(e, {type(container).__name__})
            assert list(container.named_children()) == before, f"a failed {what} changed it"
        except IndexError as e:
            assert what in ("getitem", "setitem", "delitem", "pop", "insert"), (what, e)
            check_named(e, {type(container).__name__})
            assert list(container.named_children()) == before, f"a failed {what} changed it"
        except (KeyError, AttributeError) as e:
            assert what in ("getitem", "delitem", "pop", "attribute", "delattr"), (what, e)
            assert list(container.named_children()) == before, f"a failed {what} changed it"
        modules = list(container.values() if isinstance(container, nn.ModuleDict)
                       else container)
        assert all(isinstance(m, nn.Module) for m in modules)
        names = list(container) if isinstance(container, nn.ModuleDict) else \
            [str(i) for i in range(len(modules))]
        if isinstance(container, nn.Sequential):  # add_module names layers
            names = [k for k, _ in container.named_children()]
            assert len(set(names)) == len(names) == len(modules)
        assert [k for k, _ in container.named_children()] == names
        assert all(isinstance(k, str) and k and "." not in k for k in names)
        own = [k for k, _ in container.named_parameters(recurse=False)]  # heads.p = Parameter
        assert list(container.state_dict()) == own + [f"{name}.{k}" for name, m in zip(
            names, modules) for k in m.state_dict()]
        want = x
        try:
            for m in modules:
                want = m(want)
        except (TypeError, ValueError, NotImplementedError):
            with pytest.raises((TypeError, ValueError, NotImplementedError)):
                host(x)
            continue
        np.testing.assert_array_equal(host(x), want)


# The Module iterators (torch's generators): hostile prefix, recurse, remove_duplicate, memo
class IteratorHost(nn.Module):
    """A layer under three names (an attribute, in a Sequential, in a list), a BatchNorm
    under two and a Parameter tied into a second layer."""

    def __init__(self):
        self.fc = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)
        self.seq = nn.Sequential(self.fc, nn.ReLU(), self.bn)
        self.blocks = [self.fc, nn.Linear(2, 2)]
        self.blocks[1].weight = self.fc.weight
        self.again = self.bn


ITERATORS = ["parameters", "named_parameters", "buffers", "named_buffers", "children",
             "named_children", "modules", "named_modules"]
ITERATOR_ARGS = {  # argument -> (valid values, hostile values); "seq": {host.seq}
    "prefix": (["", "net", "a.b"], [3, None, b"net", ["net"], 1.5]),
    "recurse": ([True, False, np.True_], ["no", None, 1, [], 0.0]),
    "remove_duplicate": ([True, False, np.False_], ["yes", None, 0, (), 1.0]),
    "memo": ([None, set(), "seq"], [[], {}, frozenset(), "x", 0]),
}


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_module_iterator_boundary(data):
    """Each iterator called with its torch arguments drawn valid or hostile (by name or
    all by position) returns a generator, spent after one pass, whose names carry the
    prefix and are distinct, its values each once unless remove_duplicate is False; or
    raises TypeError naming the method and the argument when called (not at the first
    next())."""
    draw = data.draw
    host = IteratorHost()
    method = draw(st.sampled_from(ITERATORS))
    signature = inspect.signature(getattr(host, method)).parameters
    given_args, hostile = {}, []
    for name in signature:
        valid, bad = ITERATOR_ARGS[name]
        if draw(st.booleans()):
            continue  # the default
        is_bad = draw(st.booleans())
        value = draw(st.sampled_from(bad if is_bad else valid))
        given_args[name] = {host.seq} if name == "memo" and value == "seq" else value
        if is_bad:
            hostile.append(name)
    full = {name: given_args.get(name, p.default) for name, p in signature.items()}
    if draw(st.booleans()):
        thunk = lambda: getattr(host, method)(*full.values())  # noqa: E731
    else:
        thunk = lambda: getattr(host, method)(**given_args)  # noqa: E731
    status, got = call("iterators", thunk)
    if hostile:
        assert status == "raised" and isinstance(got, TypeError), (method, given_args, got)
        check_named(got, {method, f"named_{method}"})
        check_named(got, set(hostile))
        return
    assert status == "ok" and inspect.isgenerator(got), (method, given_args, got)
    items = list(got)
    assert list(got) == []
    named = method.startswith("named_")
    names = [k for k, _ in items] if named else []
    values = [v for _, v in items] if named else items
    prefix = full.get("prefix", "")
    assert all(k == prefix or k.startswith(f"{prefix}.") for k in names) or not prefix
    assert len(set(names)) == len(names)
    if full.get("remove_duplicate", True):
        assert len({id(v) for v in values}) == len(values)


# Module registration and lookup (torch's register_buffer, register_parameter, add_module,
# get_submodule, get_parameter, state_dict's prefix and destination, to): hostile names, values
MODULE_NAMES = st.sampled_from(["extra", "b2", "weight"]) | \
    st.sampled_from(["", ".", "a.b", "bias", "train", "forward", 0, None, b"x", 1.5, ("a",)])
MODULE_VALUES = st.sampled_from([lambda: np.zeros(2, np.float32), nn.ReLU, lambda: None,
                                 lambda: nn.Parameter(np.ones(2))]) | \
    st.sampled_from([lambda: 3, lambda: "x", lambda: [1.0], lambda: {}, lambda: np.float32(1),
                     lambda: nn.Parameter, lambda: []])


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_module_registration_boundary(data):
    """Each call works as torch's or raises ValueError/TypeError naming the method
    (AttributeError for a missing path, as torch's), a refused one changing nothing;
    the layer then still runs (or, its weight replaced by another shape, refuses the
    input naming itself; one registered as None is torch's choice, and fails as torch's
    would) and its state_dict loads back."""
    draw = data.draw
    layer = nn.Linear(2, 2)
    name, value = draw(MODULE_NAMES), draw(MODULE_VALUES)()
    ops = {"register_buffer": lambda: layer.register_buffer(name, value,
                                                            persistent=draw(st.booleans())),
           "register_parameter": lambda: layer.register_parameter(name, value),
           "add_module": lambda: layer.add_module(name, value),
           "get_submodule": lambda: layer.get_submodule(name),
           "get_parameter": lambda: layer.get_parameter(name),
           "state_dict": lambda: layer.state_dict(prefix=name),
           "destination": lambda: layer.state_dict(value),
           "to": lambda: layer.to(draw(st.sampled_from([name, value])))}
    what = draw(st.sampled_from(sorted(ops)))

    def tree():
        return (list(layer.state_dict()), [k for k, _ in layer.named_children()],
                [k for k, _ in layer.named_buffers()], dict(vars(layer)))

    before = tree()
    CALLS["registration"] = CALLS.get("registration", 0) + 1
    try:
        ops[what]()
    except (ValueError, TypeError) as e:
        check_named(e, {"state_dict" if what == "destination" else what})
        assert tree() == before, f"a refused {what} changed the layer"
    except AttributeError as e:
        assert what in ("get_submodule", "get_parameter"), (what, e)
        assert "has no attribute" in str(e) or "is not an nn.Parameter" in str(e)
    x = np.ones((3, 2), np.float32)
    if layer.weight is None or layer.bias is None:
        return
    status, got = call("registration", lambda: layer(x))
    if status == "raised":
        check_named(got, {"Linear", "weight", "bias"})
    else:
        np.testing.assert_allclose(got, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)
    layer.load_state_dict({k: np.array(v) for k, v in layer.state_dict().items()})


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_fit_data_boundary(data):
    """fit and evaluate with a NaN, inf or (float64) out-of-float32-range value at a
    drawn place of x or of float targets raise ValueError naming the argument and the
    first such sample, before any step; finite data of any real dtype trains."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 12))
    x = r.standard_normal((n, 3)).astype(draw(st.sampled_from([np.float32, np.float64,
                                                              np.float16])))
    model = nn.Sequential(nn.Linear(3, 2, seed=0), input_shape=(3,))
    loss = draw(st.sampled_from(["cross_entropy", "mse"]))
    y = r.integers(0, 2, n) if loss == "cross_entropy" and draw(st.booleans()) else \
        r.random((n, 2))
    bad = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300, None]))
    target = draw(st.sampled_from(["x", "y"])) if y.dtype.kind == "f" else "x"
    where = draw(st.integers(0, n - 1))
    if bad is not None:
        array = x if target == "x" else y
        if bad == 1e300 and array.dtype != np.float64:
            bad = np.inf  # float16/32 cannot hold it either
        array[where, draw(st.integers(0, array.shape[1] - 1))] = bad
    before = [p.data.copy() for p in model.parameters()]
    what = draw(st.sampled_from(["fit", "evaluate"]))
    run = (lambda: model.fit(x, y, optimizer="sgd", loss=loss, verbose=0)) if what == "fit" \
        else (lambda: model.evaluate(x, y, loss=loss))
    with np.errstate(over="ignore"):  # float64 1e300 -> float32 inf, which is refused
        status, got = call("fit_data", run)
    if bad is None:
        assert status == "ok", got
        return
    first = min(i for i in range(n) if not np.isfinite(
        (x if target == "x" else y)[i].astype(np.float32)).all())
    assert status == "raised" and isinstance(got, ValueError), got
    assert f"{what}: {target} holds NaN or inf as float32 (first in sample {first}, " in str(got)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


@pytest.mark.parametrize("slope", HOSTILE_REALS + [1e39, -1e39, -3e38])
def test_negative_slope_boundary(slope):
    """leaky_relu(_backward) and LeakyReLU: a negative_slope NaN, infinite or beyond
    float32 (the kernels' type) made every negative input's value and gradient NaN or
    inf; it raises naming negative_slope unless a finite real (then as the reference)."""
    x = np.array([[-1.5, 2.0], [0.0, -3.0]], np.float32)
    valid = (isinstance(slope, (int, float, np.floating)) and not isinstance(slope, bool)
             and abs(slope) <= np.finfo(np.float32).max)
    for fn, ref in [(lambda: F.leaky_relu(x, slope), lambda: R.leaky_relu(x, slope)),
                    (lambda: F.leaky_relu_backward(x, x, slope),
                     lambda: R.leaky_relu_backward(x, x, slope)),
                    (lambda: nn.LeakyReLU(slope)(x), lambda: R.leaky_relu(x, slope))]:
        status, got = call("negative_slope", fn)
        if valid:
            assert status == "ok", got
            assert_matches(got, ref())
        else:
            assert status == "raised", f"negative_slope={slope!r} accepted"
            check_named(got, {"negative_slope"})


NEW_LAYER_ARGS = [  # (argument, constructor of a value, the reference layer or None)
    ("approximate", lambda v: nn.GELU(v), {"none": "none", "tanh": "tanh"}),
    ("alpha", lambda v: nn.ELU(v), None),
    ("eps", lambda v: nn.LayerNorm(2, eps=v), None),
    ("normalized_shape", lambda v: nn.LayerNorm(v), None),
    ("elementwise_affine", lambda v: nn.LayerNorm(2, elementwise_affine=v), None),
    ("bias", lambda v: nn.LayerNorm(2, bias=v), None),
    ("inplace", lambda v: nn.SiLU(v), None),
]
STRINGS = ["none", "tanh", "erf", "None", "Tanh", "", "tanh ", b"tanh", None, False]


@pytest.mark.parametrize("arg, make, valid", NEW_LAYER_ARGS, ids=[a[0] for a in NEW_LAYER_ARGS])
@pytest.mark.parametrize("value", LAYER_HOSTILE + STRINGS + [1e39, -1e39], ids=repr)
def test_new_layer_arguments_boundary(arg, make, valid, value):
    """GELU(approximate), ELU(alpha), LayerNorm(normalized_shape, eps, elementwise_affine,
    bias) and SiLU(inplace): each hostile value raises naming the layer and the argument
    (alpha: finite reals; eps: finite and > 0; normalized_shape: positive ints; flags:
    bools; approximate: 'none' or 'tanh' exactly), or builds the layer torch would."""
    status, got = call("new_layer_args", lambda: make(value))
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    flag = isinstance(value, (bool, np.bool_))
    sizes = value if isinstance(value, tuple) else (value,)
    ok = {"approximate": isinstance(value, str) and value in ("none", "tanh"),
          "alpha": real and abs(value) <= np.finfo(np.float32).max,
          "eps": real and 0 < value < np.inf,
          "normalized_shape": len(sizes) > 0 and all(
              fastnn._core.is_int(d) and 1 <= d <= 2**40 for d in sizes),
          "elementwise_affine": flag, "bias": flag, "inplace": flag}[arg]
    if ok:
        assert status == "ok", f"{arg}={value!r} rejected: {got!r}"
        return
    assert status == "raised", f"{arg}={value!r} accepted"
    check_named(got, {arg})


# calls: 38 kernel functions x 175 examples x 2, layers 400 x 1-3, losses and optimizers
# 300 x 1-2
@settings(FUZZ, max_examples=200)
@given(n=st.sampled_from(HOSTILE_INTS + HOSTILE_REALS) | st.integers(-2**70, 2**70),
       isa=st.sampled_from(["avx512", "avx2", "generic", "AVX2", "", "sse9", None, 2, b"avx2"]))
def test_runtime_boundary(n, isa):
    """set_num_threads and set_isa: any argument either takes effect (a matmul then runs
    and matches) or raises a TypeError/ValueError/RuntimeError naming what was expected."""
    CALLS["runtime"] = CALLS.get("runtime", 0) + 1
    threads, before = fastnn.get_num_threads(), fastnn.get_isa()
    try:
        try:
            fastnn.set_num_threads(n)
            assert fastnn.get_num_threads() == (int(n) if fastnn._core.has_openmp() else 1)
        except (TypeError, ValueError) as e:
            assert re.search(r"must be (an int|between 1 and max_threads\(\))", str(e))
        try:
            fastnn.set_isa(isa)
            assert fastnn.get_isa() == isa
        except ValueError as e:
            assert "unknown ISA" in str(e)
        except RuntimeError as e:
            assert "not supported by this CPU" in str(e)
        a = np.ones((40, 70), np.float32)
        assert np.array_equal(fastnn.matmul(a, a.T), np.full((40, 40), 70, np.float32))
    finally:
        fastnn.set_num_threads(threads)
        fastnn.set_isa(before)


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_distributed_boundary(data):
    """fastnn.distributed's helpers in one process (no MPI: the whole job is this rank):
    hostile sizes, values, batches and timeouts raise naming the argument."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = dims(draw, 0, 9)
    fn = draw(st.sampled_from(["shard", "allgather", "gather_rows", "batches", "init"]))
    hostile = draw(st.booleans())
    if fn == "shard":
        arg = draw(st.sampled_from(HOSTILE_INTS)) if hostile else n
        status, got = call("distributed", lambda: dist.shard(arg))
        expect, names = slice(0, n), {"n"}
    elif fn == "allgather":
        arg = (draw(st.sampled_from([randn(r, n, 2), "x", [[1], [2, 3]], {1}, 1j, None, 3.0]))
               if hostile else randn(r, n))
        status, got = call("distributed", lambda: dist.allgather(arg))
        expect, names = None if hostile else arg[None].astype(np.float64), {"values"}
    elif fn == "gather_rows":
        arg = (draw(st.sampled_from([randn(r, n + 1, 2), np.float32(1), [1.0] * n, None]))
               if hostile else randn(r, n, 3))
        status, got = call("distributed", lambda: dist.gather_rows(arg, n))
        expect, names = arg, {"local"}
    elif fn == "batches":
        x, y = randn(r, n, 2), r.integers(0, 3, n)
        size = draw(st.sampled_from(HOSTILE_INTS)) if hostile else dims(draw, 1, 4)
        if hostile and draw(st.booleans()):
            size, y = dims(draw, 1, 4), y[:-1] if n else y[:0].tolist() + [1]
        elif hostile and dist._core.is_int(size) and size > 0:
            hostile = False  # a large batch size (2**31) is valid: one batch of everything
        ddp = object.__new__(dist.DataParallel)  # batches needs no MPI state
        status, got = call("distributed", lambda: list(ddp.batches(x, y, size, seed=0)))
        expect = None if hostile else list(fastnn.datasets.iterate_batches(x, y, size, seed=0))
        names = {"batch_size", "x", "y"}
    else:  # init: only hostile timeouts (a valid one would start MPI in the test process)
        hostile, arg = True, draw(st.sampled_from(HOSTILE_REALS[:5] + ["soon", 1j, (1,)]))
        status, got = call("distributed", lambda: dist.init(arg))
        names = {"timeout"}
    if status == "raised":
        assert hostile, f"valid {fn} arguments rejected: {got!r}"
        check_named(got, names)
        return
    assert not hostile or (fn == "shard" and dist._core.is_int(arg) and arg >= 0), \
        f"{fn} accepted hostile {arg!r}"
    if fn == "batches":
        assert len(got) == len(expect)
        for (gx, gy), (wx, wy) in zip(got, expect):
            np.testing.assert_array_equal(gx, wx)
            np.testing.assert_array_equal(gy, wy)
    elif fn == "shard":
        assert got == slice(0, arg)
    else:
        np.testing.assert_array_equal(got, expect)


@settings(FUZZ, max_examples=200)
@given(name=st.sampled_from(["auto", "direct", "winograd", "winograd4x4", "Winograd", "",
                             "fft", None, 2, b"direct", ("direct",)]),
       x_shape=st.sampled_from([(2, 3, 8, 8), (1, 1, 1, 1), (0, 3, 8, 8), (2, 3, 2**40, 8),
                                (2, 3, 8), (2, -3, 8, 8), (2.5, 3, 8, 8), "x", None]),
       window=st.sampled_from([(3, 1, 1, 1), (3, 1, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2),
                               (5, 1, 2, 1), (1, 1, 0, 1), (3, 1, 2**62, 1), (3, 0, 1, 1)]),
       direction=st.sampled_from([{}, {"input_gradient": True}, {"weight_gradient": True},
                                  {"input_gradient": True, "weight_gradient": True}]))
def test_conv_algorithm_boundary(name, x_shape, window, direction):
    """set_conv_algorithm and conv2d_algorithm: a name either takes effect (a conv2d then
    runs and matches) or raises a ValueError naming the algorithm; shapes and windows a
    conv2d would reject are rejected naming what was wrong."""
    CALLS["conv_algorithm"] = CALLS.get("conv_algorithm", 0) + 1
    k, stride, pad, dil = window
    try:
        fastnn.set_conv_algorithm(name)
        assert fastnn.get_conv_algorithm() == name
        r = np.random.default_rng(0)
        x, w = randn(r, 2, 3, 8, 8), randn(r, 4, 3, 3, 3)
        assert_matches(F.conv2d(x, w, None, 1, 1), R.conv2d(to64(x), to64(w), None, 1, 1))
    except ValueError as e:
        assert "algorithm must be one of" in str(e)
    finally:
        fastnn.set_conv_algorithm("auto")
    status, got = call("conv_algorithm", lambda: fastnn.conv2d_algorithm(
        x_shape, (4, 3, k, k), stride, pad, dil, algorithm=name, **direction))
    if status == "ok":
        assert got in ("direct", "winograd", "winograd4x4")
        assert got == "direct" or (k, stride, dil) == (3, 1, 1)
    else:
        check_named(got, {"algorithm", "x_shape", "weight_shape", "x", "weight", "stride",
                          "padding", "dilation", "kernel", "output", "input_gradient"})


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_window_positions_boundary(data):
    """conv2d_max_pool2d_backward's indices (uint8 window positions, not a float array the
    generic test mutates): any layout of valid positions matches the reference; another
    dtype, shape or a position off its window or in the padding raises, naming them."""
    draw = data.draw
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kwargs = make_conv_pool(r, draw, backward=True)
    pos = kwargs["indices"]
    k = kwargs["kernel_size"]
    kind = draw(st.sampled_from(LAYOUTS + ["dtype", "shape", "past", "padding", "object"]))
    must_raise = kind not in LAYOUTS
    if kind in LAYOUTS:
        pos = relayout(pos, kind)
    elif kind == "dtype":
        pos = pos.astype(draw(st.sampled_from([np.int64, np.int32, np.int8, np.uint16,
                                               np.float32, np.bool_])))
    elif kind == "shape":
        shape = list(pos.shape)
        shape[draw(st.integers(0, 3))] += draw(st.sampled_from([-1, 1]))
        pos = np.zeros(shape, np.uint8)
    elif kind == "past":  # a position past the window
        pos = pos.copy()
        pos.flat[draw(st.integers(0, pos.size - 1))] = draw(st.integers(k * k, 255))
    elif kind == "padding":  # position 0 of the first window, which starts in the padding
        pos = pos.copy()
        pos[..., 0, 0] = 0
        must_raise = kwargs["pool_padding"] > 0
    else:  # a list (of int64 values) or nothing
        pos = pos.tolist() if draw(st.booleans()) else None
    kwargs["indices"] = pos
    status, got = call("window_positions", lambda: F.conv2d_max_pool2d_backward(**kwargs))
    if status == "raised":
        assert must_raise, f"valid {kind} positions rejected: {got!r}"
        check_named(got, {"indices"} if kind != "shape" else {"indices", "grad_out"})
        return
    assert not must_raise, f"{kind} positions accepted"
    want = conv_ref(R.conv2d_max_pool2d_backward, True)(**{k_: to64(v)
                                                           for k_, v in kwargs.items()})
    assert_matches(got, want)


QUOTA = {**{op.name: 2 * FUZZ.max_examples for op in OPS}, "layers": 400, "losses": 300,
         "optimizers": 300, "models": 200, "state_dicts": 150, "runtime": 200,
         "distributed": 200, "to_categorical": 200, "safetensors": 200, "keras_layers": 300,
         "keras_model_files": 100, "flags": 300, "containers": 300, "registration": 200,
         "fit_data": 100,
         "keras_loss_calls": 200, "keras_metrics": 300, "keras_build": 50, "conv_algorithm": 200,
         "window_positions": 200, "new_layer_args": 250, "merge_layers": 200,
         "keras_graphs": 150, "keras_training": 250, "keras_callbacks": 250,
         "iterators": 200, "keras_outputs": 250, "keras_subclass": 100, "keras_weights": 100}


def test_call_count():
    """Runs last in this module: every fuzz test above made its examples' calls (the
    total is printed with -s)."""
    ran = {k: v for k, v in CALLS.items() if k in QUOTA}
    if len(ran) == len(QUOTA):  # the whole module ran (not a -k selection)
        for name, quota in QUOTA.items():
            assert ran[name] >= quota, (name, ran[name])
        assert sum(ran.values()) >= 10_000, sum(ran.values())
        print(f"\nfuzzed calls: {sum(ran.values())}")
    assert sum(QUOTA.values()) >= 10_000
