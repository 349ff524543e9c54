"""fastnn.functional: stateless ops on NumPy float32 arrays, named and ordered as in
torch.nn.functional, each with its explicit backward. Keyword-only `out=`/`grad_*=`
buffers let layers reuse memory across steps."""
# linear and convolution, and convolution fused with the max pooling after it (fastnn/_conv.pxi)
# (algorithm=: see fastnn.set_conv_algorithm and fastnn.conv2d_algorithm; activation="relu":
# the relu after them, applied in cache)
from ._core import (conv2d, conv2d_backward, conv2d_max_pool2d,  # noqa: F401
                    conv2d_max_pool2d_backward, linear, linear_backward)
# pooling (fastnn/_pool.pxi)
from ._core import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                    avg_pool2d_backward, max_pool2d, max_pool2d_backward,
                    max_pool2d_with_indices)
# batch and layer normalization (fastnn/_norm.pxi)
from ._core import batch_norm, batch_norm_backward, layer_norm, layer_norm_backward
# activations and dropout (fastnn/_activation.pxi)
from ._core import (dropout, elu, elu_backward, gelu, gelu_backward, leaky_relu,
                    leaky_relu_backward, log_softmax, log_softmax_backward, relu, relu_backward,
                    sigmoid, sigmoid_backward, silu, silu_backward, softmax, softmax_backward,
                    tanh, tanh_backward)
# merging: add (residual connections), concatenate (fastnn/_merge.pxi)
from ._core import add, concatenate, concatenate_backward
# losses (fastnn/_loss.pxi)
from ._core import (binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
                    cross_entropy, cross_entropy_backward, cross_entropy_with_grad, mse_loss,
                    mse_loss_backward)
import numpy as np

from ._core import MAX_WINDOW_ARG as _MAX_WINDOW_ARG, as_flag as _as_flag
from ._core import as_ndarray as _as_ndarray, is_int as _is_int


# ---- transposed convolution: the input gradient of conv2d, as a layer of its own ----
# conv_transpose2d(x, W) is the adjoint of conv2d(z, W) (z of the transposed output's
# shape, W as conv2d's weight from z's channels to x's): its forward is conv2d_backward's
# input gradient, its input gradient conv2d, its weight gradient conv2d_backward's with
# the roles of input and output gradient swapped. One call per group.

def _float32(fn, name, a, shape=None):
    """a as a float32 ndarray (a TypeError naming it otherwise, byte-swapped too), of
    `shape` or else 4-D (a ValueError)."""
    a = _as_ndarray(a, name, fn)
    if a.dtype != np.float32:
        raise TypeError(f"{fn}: {name} must be a float32 array, got dtype {a.dtype}")
    if a.shape != shape if shape is not None else a.ndim != 4:
        raise ValueError(f"{fn}: {name} must have shape {shape or '(4-D)'}, got {a.shape}")
    return a


def _transpose_geometry(fn, x, weight, stride, padding, output_padding, groups, dilation):
    """x and weight checked, the windows as pairs, and the output's shape."""
    x, weight = _float32(fn, "x", x), _float32(fn, "weight", weight)
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if x.shape[1] != weight.shape[0] or x.shape[1] % groups:
        raise ValueError(f"{fn}: x (N, C_in, H, W) of shape {x.shape} and weight (C_in, "
                         f"C_out/groups, kh, kw) of shape {weight.shape} must share C_in, "
                         f"divisible by groups ({groups})")
    pairs = {}
    for name, v, low in (("stride", stride, 1), ("padding", padding, 0),
                         ("output_padding", output_padding, 0), ("dilation", dilation, 1)):
        pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        if len(pair) != 2 or not all(map(_is_int, pair)):
            raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
        if not all(low <= p <= _MAX_WINDOW_ARG for p in pair):
            raise ValueError(f"{fn}: {name} must lie in [{low}, 2**40], got {v!r}")
        pairs[name] = tuple(int(p) for p in pair)
    s, p, op, d = (pairs[k] for k in ("stride", "padding", "output_padding", "dilation"))
    if any(o >= max(si, di) for o, si, di in zip(op, s, d)):
        raise ValueError(f"{fn}: output_padding {op} must be smaller than stride {s} or "
                         f"dilation {d} (as torch's)")
    size = [(n - 1) * si - 2 * pi + di * (k - 1) + oi + 1
            for n, k, si, pi, di, oi in zip(x.shape[2:], weight.shape[2:], s, p, d, op)]
    if min(size) < 1 or min(weight.shape[2:]) < 1:
        raise ValueError(f"{fn}: the output of x {x.shape} with kernel {weight.shape[2:]}, "
                         f"stride {s}, padding {p}, dilation {d}, output_padding {op} would "
                         f"be {tuple(size)}")
    shape = (x.shape[0], weight.shape[1] * groups, *size)
    if np.prod(shape, dtype=np.float64) * 4 > 2.0 ** 45:
        raise MemoryError(f"{fn}: an output of shape {shape} is too large")
    # conv2d of the output is larger than x when output_padding >= stride (it may, below
    # the dilation): x then runs zero-padded to that size
    conv = [(m + 2 * pi - di * (k - 1) - 1) // si + 1
            for m, k, si, pi, di in zip(size, weight.shape[2:], s, p, d)]
    return x, weight, (s, p, d), shape, tuple(conv)


def _padded(x, size):
    """x (N, C, H, W) zero-padded at the bottom and right to `size` (x itself if it is)."""
    if x.shape[2:] == size:
        return x
    out = np.zeros(x.shape[:2] + size, np.float32)
    out[:, :, :x.shape[2], :x.shape[3]] = x
    return out


def _group_slices(channels_in, channels_out, groups):
    ci, co = channels_in // groups, channels_out // groups
    return [(slice(k * ci, (k + 1) * ci), slice(k * co, (k + 1) * co)) for k in range(groups)]


def _checked_out(fn, name, a, shape):
    """An output array: a new one for None, else a's own memory, written in place."""
    if a is None:
        return np.empty(shape, np.float32)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a float32 ndarray, got {type(a).__name__}")
    a = _float32(fn, name, a, tuple(shape))
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{fn}: {name} must be a writeable C-contiguous array")
    return a


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, out=None):
    """torch.nn.functional.conv_transpose2d: x (N, C_in, H, W), weight (C_in,
    C_out/groups, kh, kw), bias (C_out,) or None; output (N, C_out, (H-1)*stride -
    2*padding + dilation*(kh-1) + output_padding + 1, ... for W)."""
    fn = "conv_transpose2d"
    x, weight, (s, p, d), shape, conv = _transpose_geometry(fn, x, weight, stride, padding,
                                                            output_padding, groups, dilation)
    x = _padded(x, conv)
    if bias is not None:
        bias = _float32(fn, "bias", bias, (shape[1],))
    out = _checked_out(fn, "out", out, shape)
    if x.size == 0 or out.size == 0:  # (empty groups, maybe 2**40 of them: no loop)
        out.fill(0.0)
    else:
        z = np.empty((shape[0], shape[1] // groups, *shape[2:]), np.float32)  # its shape only
        for ci, co in _group_slices(x.shape[1], shape[1], groups):
            gx = conv2d_backward(x[:, ci], z, weight[ci], s, p, d, bias=False,
                                 need_weight_grad=False,
                                 grad_input=out if groups == 1 else None)[0]
            if groups > 1:
                out[:, co] = gx
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def conv_transpose2d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, *, bias=True, need_input_grad=True,
                              need_weight_grad=True, grad_input=None, grad_weight=None,
                              grad_bias=None):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of
    :func:`conv_transpose2d`, as conv2d_backward's."""
    fn = "conv_transpose2d_backward"
    bias, need_input_grad, need_weight_grad = (_as_flag(v, k, fn) for k, v in (
        ("bias", bias), ("need_input_grad", need_input_grad),
        ("need_weight_grad", need_weight_grad)))
    x, weight, (s, p, d), shape, conv = _transpose_geometry(fn, x, weight, stride, padding,
                                                            output_padding, groups, dilation)
    grad_out = _float32(fn, "grad_out", grad_out, shape)
    gx = _checked_out(fn, "grad_input", grad_input, x.shape) if need_input_grad else None
    gw = _checked_out(fn, "grad_weight", grad_weight, weight.shape) if need_weight_grad \
        else None
    gb = _checked_out(fn, "grad_bias", grad_bias, (shape[1],)) if bias else None
    size, x = x.shape[2:], _padded(x, conv)
    whole = groups == 1 and size == conv  # the kernels write the callers' arrays
    empty = x.size == 0 or grad_out.size == 0  # (maybe 2**40 empty groups: no loop)
    for g in (gx, gw) if empty else ():
        if g is not None:
            g.fill(0.0)
    for ci, co in () if empty else _group_slices(x.shape[1], shape[1], groups):
        g = grad_out[:, co]
        if gx is not None:
            part = conv2d(g, weight[ci], None, s, p, d, out=gx if whole else None)
            if not whole:
                gx[:, ci] = part[:, :, :size[0], :size[1]]
        if gw is not None:
            part = conv2d_backward(x[:, ci], g, weight[ci], s, p, d, bias=False,
                                   need_input_grad=False,
                                   grad_weight=gw if groups == 1 else None)[1]
            if groups > 1:
                gw[ci] = part
    if gb is not None:
        gb[...] = grad_out.sum(axis=(0, 2, 3), dtype=np.float64)
    return gx, gw, gb
