"""Pure-NumPy reference ops, forward and backward, with PyTorch's semantics.

The ground truth the C kernels are tested against. Layouts are PyTorch's
(NCHW activations, (out, in, kh, kw) conv and (out, in) linear weights), every
function computes in the dtype of its inputs, losses use mean reduction, and
the optimizer steps update their arrays in place like torch.optim.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(v):
    """Return ``v`` as a (rows, cols) tuple of ints; ``v`` is an int or a pair."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    rows, cols = v
    return int(rows), int(cols)


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


def linear(x, weight, bias=None):
    """Affine map ``x @ weight.T + bias`` over the last axis of ``x``."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def linear_backward(grad_out, x, weight):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`linear`."""
    g2 = grad_out.reshape(-1, weight.shape[0])
    x2 = x.reshape(-1, weight.shape[1])
    grad_x = grad_out @ weight
    grad_weight = g2.T @ x2
    grad_bias = g2.sum(axis=0)
    return grad_x, grad_weight, grad_bias


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


def conv2d_output_shape(h, w, kernel_size, stride, padding, dilation):
    """Output (oh, ow) of a 2-D sliding window; raises ValueError if invalid."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    if min(kh, kw) <= 0:
        raise ValueError(f"kernel_size must be positive, got {(kh, kw)}")
    if min(sh, sw) <= 0:
        raise ValueError(f"stride must be positive, got {(sh, sw)}")
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    if min(dh, dw) <= 0:
        raise ValueError(f"dilation must be positive, got {(dh, dw)}")
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output size is too small: ({oh}, {ow}) for input ({h}, {w})")
    return oh, ow


def _windows(xp, kernel_size, stride, dilation):
    """View of the (N, C, OH, OW, kh, kw) windows of an already padded array."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = sliding_window_view(xp, span, axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def im2col(x, kernel_size, stride, padding, dilation):
    """Unfold NCHW ``x`` into columns of shape (N, C*kh*kw, OH*OW), zero-padded."""
    n, c, h, w = x.shape
    kh, kw = _pair(kernel_size)
    ph, pw = _pair(padding)
    oh, ow = conv2d_output_shape(h, w, kernel_size, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = _windows(xp, kernel_size, stride, dilation)
    # (N, C, OH, OW, kh, kw) -> (N, C, kh, kw, OH, OW): rows ordered like weight.
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """Adjoint of :func:`im2col`: scatter-add (N, C*kh*kw, OH*OW) columns into NCHW."""
    n, c, h, w = x_shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    oh, ow = conv2d_output_shape(h, w, kernel_size, stride, padding, dilation)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            hs = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            ws = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            xp[:, :, hs, ws] += cols[:, :, i, j]
    return xp[:, :, ph:ph + h, pw:pw + w]


def _check_conv_args(x, weight):
    """Raise ValueError unless x is NCHW and weight matches its channels."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"expected 4-D x and weight, got {x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {weight.shape[1]}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation with zero padding, like torch.nn.functional.conv2d."""
    _check_conv_args(x, weight)
    n, _, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    oh, ow = conv2d_output_shape(h, w, (kh, kw), stride, padding, dilation)
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    y = weight.reshape(out_c, -1) @ cols  # (N, O, OH*OW)
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape(n, out_c, oh, ow)


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`conv2d`."""
    _check_conv_args(x, weight)
    n = x.shape[0]
    out_c, _, kh, kw = weight.shape
    g = grad_out.reshape(n, out_c, -1)  # (N, O, OH*OW)
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    grad_weight = np.tensordot(g, cols, axes=([0, 2], [0, 2])).reshape(weight.shape)
    grad_cols = weight.reshape(out_c, -1).T @ g  # (N, C*kh*kw, OH*OW)
    grad_x = col2im(grad_cols, x.shape, (kh, kw), stride, padding, dilation)
    grad_bias = grad_out.sum(axis=(0, 2, 3))
    return grad_x, grad_weight, grad_bias


def _conv_sized(x, z, weight, stride, padding, dilation):
    """x zero-padded at the bottom and right to the size of conv2d's output on z (larger
    than x when output_padding >= stride)."""
    size = conv2d_output_shape(*z.shape[2:], weight.shape[2:], stride, padding, dilation)
    out = np.zeros(x.shape[:2] + tuple(size))
    out[:, :, :x.shape[2], :x.shape[3]] = x
    return out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """torch.nn.functional.conv_transpose2d, by definition the adjoint of conv2d: per
    group, conv2d_backward's input gradient for an input of the output's size."""
    out_shape = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, k, s, p, d, o in zip(
        x.shape[2:], weight.shape[2:], _pair(stride), _pair(padding), _pair(dilation),
        _pair(output_padding))]
    ci, co = x.shape[1] // groups, weight.shape[1]
    z = np.zeros((x.shape[0], co, *out_shape))
    if x.size == 0 or z.size == 0:  # nothing to sum (and maybe 2**40 empty groups)
        y = np.zeros((x.shape[0], co * groups, *out_shape))
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)
    x = _conv_sized(x, z, weight, stride, padding, dilation)
    y = np.concatenate([conv2d_backward(x[:, k * ci:(k + 1) * ci], z, weight[k * ci:(k + 1) * ci],
                                        stride, padding, dilation)[0] for k in range(groups)], 1)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def conv_transpose2d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`conv_transpose2d`: conv2d of
    grad_out, and conv2d_backward's weight gradient with x as its output gradient."""
    ci, co = x.shape[1] // groups, weight.shape[1]
    if x.size == 0 or grad_out.size == 0:
        return np.zeros(x.shape), np.zeros(weight.shape), grad_out.sum(axis=(0, 2, 3))
    h, w = x.shape[2:]
    x = _conv_sized(x, grad_out, weight, stride, padding, dilation)
    parts = [(grad_out[:, k * co:(k + 1) * co], x[:, k * ci:(k + 1) * ci],
              weight[k * ci:(k + 1) * ci]) for k in range(groups)]
    grad_x = np.concatenate([conv2d(g, wk, None, stride, padding, dilation)[:, :, :h, :w]
                             for g, _, wk in parts], 1)
    grad_w = np.concatenate([conv2d_backward(xk, g, wk, stride, padding, dilation)[1]
                             for g, xk, wk in parts], 0)
    return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


def _pool_args(x, kernel_size, stride, padding, ceil_mode=False):
    """Normalise pooling arguments to pairs and check them like PyTorch does."""
    if x.ndim != 4:
        raise ValueError(f"expected 4-D NCHW input, got shape {x.shape}")
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    padding = _pair(padding)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding {padding} must be at most half of kernel_size {kernel}")
    if not ceil_mode:
        oh, ow = conv2d_output_shape(x.shape[2], x.shape[3], kernel, stride, padding, 1)
        return kernel, stride, padding, oh, ow
    # rounded up, less a last window that would start in the padding (a window may run
    # past the padding even when the kernel is longer than the padded input)
    sizes = [-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(x.shape[2:], kernel,
                                                                stride, padding)]
    oh, ow = (o - 1 if (o - 1) * s >= n + p else o for o, n, s, p in zip(
        sizes, x.shape[2:], stride, padding))
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output size is too small: ({oh}, {ow}) for input {x.shape[2:]}")
    return kernel, stride, padding, oh, ow


def _past_padding(x_shape, kernel, stride, padding, oh, ow):
    """Rows and columns a ceil_mode pool's last windows run past the bottom and right
    padding (0, 0 in floor mode): padded on for the windows, cut off after."""
    return tuple(max(0, (o - 1) * s + k - (n + 2 * p)) for o, n, k, s, p in zip(
        (oh, ow), x_shape[2:], kernel, stride, padding))


def max_pool2d_with_indices(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling returning (y, int64 indices h*W + w into each input plane)."""
    y, arg = _max_pool_positions(x, kernel_size, stride, padding, ceil_mode)
    rows, cols = _window_rows_cols(arg, x.shape, kernel_size, stride, padding, ceil_mode)
    return y, (rows * x.shape[3] + cols).astype(np.int64)


def _window_rows_cols(arg, x_shape, kernel_size, stride, padding, ceil_mode=False):
    """The plane rows and columns of window positions `arg` (see max_pool2d_window_positions)."""
    (_, kw), (sh, sw), (ph, pw), oh, ow = _pool_args(np.broadcast_to(0.0, x_shape), kernel_size,
                                                     stride, padding, ceil_mode)
    rows = np.arange(oh)[:, None] * sh - ph + arg // kw
    cols = np.arange(ow)[None, :] * sw - pw + arg % kw
    return rows, cols


def max_pool2d_window_positions(x, kernel_size, stride=None, padding=0):
    """Max pooling returning (y, uint8 positions of the maxima in their windows): window
    (i, j) starts at row top = i*stride - padding, column left likewise, and its element
    (row, column) is position (row - top) * kw + column - left (fastnn's conv2d_max_pool2d
    indices). The same maxima as max_pool2d_with_indices; kh * kw <= 256."""
    kh, kw = _pair(kernel_size)
    if kh * kw > 256:
        raise ValueError(f"kernel_size {(kh, kw)} has more than 256 window positions")
    y, arg = _max_pool_positions(x, kernel_size, stride, padding)
    return y, arg.astype(np.uint8)


def _max_pool_positions(x, kernel_size, stride, padding, ceil_mode=False):
    (kh, kw), (sh, sw), (ph, pw), oh, ow = _pool_args(x, kernel_size, stride, padding,
                                                      ceil_mode)
    h, w = x.shape[2:]
    eh, ew = _past_padding(x.shape, (kh, kw), (sh, sw), (ph, pw), oh, ow)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=-np.inf)
    win = _windows(xp, (kh, kw), (sh, sw), 1).reshape(*x.shape[:2], oh, ow, kh * kw)
    arg = win.argmax(axis=-1)  # ties: the first maximum in row-major window order
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]

    # Like PyTorch's CPU kernel, padding never wins: a window of all -inf reports
    # its first in-bounds position; and a window with NaNs reports its last NaN.
    inside = np.pad(np.ones((h, w), dtype=bool), ((ph, ph + eh), (pw, pw + ew)))
    first_inside = _windows(inside[None, None], (kh, kw), (sh, sw), 1)
    first_inside = first_inside.reshape(1, 1, oh, ow, kh * kw).argmax(axis=-1)
    last_nan = kh * kw - 1 - np.isnan(win)[..., ::-1].argmax(axis=-1)
    arg = np.where(y == -np.inf, first_inside, arg)
    arg = np.where(np.isnan(y), last_nan, arg)
    return y, arg


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling (padding counts as -inf), like torch.nn.functional.max_pool2d."""
    return max_pool2d_with_indices(x, kernel_size, stride, padding, ceil_mode)[0]


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Gradient of :func:`max_pool2d`: scatter-add grad_out through the argmax."""
    _, indices = max_pool2d_with_indices(x, kernel_size, stride, padding, ceil_mode)
    n, c, h, w = x.shape
    grad_x = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    plane = np.arange(n * c)[:, None]
    np.add.at(grad_x, (plane, indices.reshape(n * c, -1)), grad_out.reshape(n * c, -1))
    return grad_x.reshape(x.shape)


def conv2d_max_pool2d(x, weight, bias, stride, padding, dilation, kernel_size, pool_stride,
                      pool_padding):
    """max_pool2d_window_positions of conv2d: (y, uint8 window positions)."""
    return max_pool2d_window_positions(conv2d(x, weight, bias, stride, padding, dilation),
                                       kernel_size, pool_stride, pool_padding)


def conv2d_max_pool2d_backward(grad_out, indices, x, weight, stride, padding, dilation,
                               kernel_size, pool_stride, pool_padding):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`conv2d_max_pool2d`: grad_out
    scattered to the convolution output through the window positions `indices`, then
    :func:`conv2d_backward`."""
    _check_conv_args(x, weight)
    n, c = x.shape[0], weight.shape[0]
    h, w = conv2d_output_shape(x.shape[2], x.shape[3], weight.shape[2:], stride, padding,
                               dilation)
    kh, kw = _pair(kernel_size)
    if indices.shape != grad_out.shape:
        raise ValueError(f"indices {indices.shape} and grad_out {grad_out.shape} differ")
    rows, cols = _window_rows_cols(indices.astype(np.int64), (n, c, h, w), kernel_size,
                                   pool_stride, pool_padding)
    if grad_out.shape != (n, c) + rows.shape[2:] or (indices >= kh * kw).any() or (
            (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)).any():
        raise ValueError("grad_out and indices must be the pooled output and its positions")
    g = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    np.add.at(g, (np.arange(n * c)[:, None], (rows * w + cols).reshape(n * c, -1)),
              grad_out.reshape(n * c, -1))
    return conv2d_backward(g.reshape(n, c, h, w), x, weight, stride, padding, dilation)


def _avg_pool_divisors(x_shape, kernel, stride, padding, oh, ow, count_include_pad):
    """(oh, ow) divisors: each window's part inside the padded plane (kh*kw in floor
    mode), or with count_include_pad False its input elements; and the pads used."""
    (ph, pw), (h, w) = padding, x_shape[2:]
    eh, ew = _past_padding(x_shape, kernel, stride, padding, oh, ow)
    counted = (np.ones((h + 2 * ph, w + 2 * pw)) if count_include_pad else
               np.pad(np.ones((h, w)), ((ph, ph), (pw, pw))))
    counted = np.pad(counted, ((0, eh), (0, ew)))[None, None]
    return _windows(counted, kernel, stride, 1).sum(axis=(-2, -1))[0, 0], (eh, ew)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Average pooling with zero padding counted in the divisor (PyTorch defaults) unless
    count_include_pad is False; ceil_mode rounds the output size up."""
    kernel, stride, (ph, pw), oh, ow = _pool_args(x, kernel_size, stride, padding, ceil_mode)
    div, (eh, ew) = _avg_pool_divisors(x.shape, kernel, stride, (ph, pw), oh, ow,
                                       count_include_pad)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)))
    return _windows(xp, kernel, stride, 1).sum(axis=(-2, -1)) / div.astype(x.dtype)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d`: spread grad_out / divisor evenly over each window."""
    (kh, kw), stride, padding, oh, ow = _pool_args(x, kernel_size, stride, padding, ceil_mode)
    div, (eh, ew) = _avg_pool_divisors(x.shape, (kh, kw), stride, padding, oh, ow,
                                       count_include_pad)
    n, c, h, w = x.shape
    # Every window position receives grad_out / divisor: the columns of col2im, on the
    # input extended by the rows and columns past the padding (cut off after).
    cols = np.broadcast_to((grad_out / div.astype(grad_out.dtype))[:, :, None, None],
                           (n, c, kh, kw, oh, ow))
    return col2im(cols.reshape(n, c * kh * kw, oh * ow), (n, c, h + eh, w + ew), (kh, kw),
                  stride, padding, 1)[:, :, :h, :w]


def _adaptive_windows(n, out):
    """torch's adaptive windows: [floor(i*n/out), ceil((i+1)*n/out)) for i < out."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def _adaptive_size(output_size, x_shape):
    """(oh, ow) from an int or a pair whose None entries keep the input's size."""
    pair = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    sizes = tuple(x_shape[2 + k] if pair[k] is None else int(pair[k]) for k in range(2))
    if len(pair) != 2 or min(sizes) < 1:
        raise ValueError(f"output_size must be positive, got {output_size!r}")
    return sizes


def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling, like torch.nn.functional.adaptive_avg_pool2d."""
    if x.ndim != 4:
        raise ValueError(f"expected 4-D NCHW input, got shape {x.shape}")
    oh, ow = _adaptive_size(output_size, x.shape)
    y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(_adaptive_windows(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(_adaptive_windows(x.shape[3], ow)):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(grad_y, input_shape):
    """Gradient of :func:`adaptive_avg_pool2d` w.r.t. its input of shape input_shape."""
    grad_x = np.zeros(input_shape, dtype=grad_y.dtype)
    for i, (h0, h1) in enumerate(_adaptive_windows(input_shape[2], grad_y.shape[2])):
        for j, (w0, w1) in enumerate(_adaptive_windows(input_shape[3], grad_y.shape[3])):
            grad_x[:, :, h0:h1, w0:w1] += grad_y[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return grad_x


# ---------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------


def _bn_layout(x):
    """The axes a channel's statistics run over, the (1, C, 1, ...) shape of per-channel
    values, and the count m of values per channel, for x (N, C, *spatial)."""
    if x.ndim < 2:
        raise ValueError(f"expected x (N, C) or (N, C, *spatial), got shape {x.shape}")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return axes, shape, x.size // x.shape[1] if x.shape[1] else 0


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, activation=None):
    """Batch normalization per channel, like torch.nn.functional.batch_norm; returns
    (y, save_mean, save_invstd) with invstd = 1/sqrt(var + eps). Training uses the batch
    mean and biased variance and updates the running statistics in place (the unbiased
    variance for running_var); otherwise the running statistics normalise.
    activation="relu": y relu'd."""
    if activation not in (None, "relu"):
        raise ValueError("activation must be None or 'relu'")
    axes, shape, m = _bn_layout(x)
    if training:
        if m == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        with np.errstate(invalid="ignore", divide="ignore"):  # m == 0: NaN statistics
            mean = x.sum(axis=axes) / m
            var = ((x - mean.reshape(shape)) ** 2).sum(axis=axes) / m
        if m > 0 and running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if m > 0 and running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required when not training")
        mean, var = running_mean, running_var
    invstd = 1 / np.sqrt(var + eps)
    y = (x - mean.reshape(shape)) * invstd.reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return (y if activation is None else relu(y)), mean, invstd


def batch_norm_backward(grad_y, x, weight, save_mean, save_invstd, *, training,
                        need_input_grad=True, need_weight_grad=True, activation=None,
                        output=None):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`batch_norm` from its saved
    statistics, in torch's form; grad_weight and grad_bias are None without weight or
    need_weight_grad, grad_x None without need_input_grad. activation="relu": of the
    relu'd forward, whose output gates grad_y (relu_backward's rule)."""
    if activation not in (None, "relu") or (output is None) != (activation is None):
        raise ValueError("output goes with activation='relu' only")
    axes, shape, m = _bn_layout(x)
    _check_same_shape(grad_y, x)
    if output is not None:
        _check_same_shape(output, x)
        grad_y = relu_backward(grad_y, output)
    invstd = save_invstd.reshape(shape)
    centred = x - save_mean.reshape(shape)
    w = 1 if weight is None else weight.reshape(shape)
    grad_bias = grad_y.sum(axis=axes)
    dot = (grad_y * centred).sum(axis=axes)  # grad_weight = dot * invstd = sum(grad_y * xhat)
    if training:  # grad_y minus its mean and its projection on xhat, times weight * invstd
        k = (dot / max(m, 1) * save_invstd ** 2).reshape(shape)
        grad_x = (grad_y - grad_bias.reshape(shape) / max(m, 1) - centred * k) * w * invstd
    else:
        grad_x = grad_y * w * invstd
    affine = weight is not None and need_weight_grad
    return (grad_x if need_input_grad else None, dot * save_invstd if affine else None,
            grad_bias if affine else None)


def _ln_axes(x, normalized_shape):
    """The trailing axes layer_norm normalises over, checked against x's shape."""
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (
        normalized_shape,)
    k = len(shape)
    if not shape or x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"normalized_shape {shape} is not the trailing shape of {x.shape}")
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the trailing normalized_shape dimensions, like
    torch.nn.functional.layer_norm; returns (y, mean, rstd), the statistics of shape
    x.shape[:-len(normalized_shape)], rstd = 1/sqrt(biased var + eps)."""
    axes = _ln_axes(x, normalized_shape)
    with np.errstate(invalid="ignore", divide="ignore"):  # no values: NaN statistics
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean.reshape(mean.shape[:x.ndim - len(axes)]), rstd.reshape(mean.shape[
        :x.ndim - len(axes)])


def layer_norm_backward(grad_y, x, normalized_shape, save_mean, save_rstd, weight=None,
                        bias=None):
    """Gradients (grad_x, grad_weight, grad_bias) of :func:`layer_norm` from its saved
    statistics; grad_weight is None without weight, grad_bias None without bias."""
    axes = _ln_axes(x, normalized_shape)
    _check_same_shape(grad_y, x)
    keep = save_mean.shape + (1,) * len(axes)
    rstd = save_rstd.reshape(keep)
    xhat = (x - save_mean.reshape(keep)) * rstd
    g = grad_y if weight is None else grad_y * weight
    grad_x = rstd * (g - g.mean(axis=axes, keepdims=True) -
                     xhat * (g * xhat).mean(axis=axes, keepdims=True))
    lead = tuple(range(x.ndim - len(axes)))
    return (grad_x, None if weight is None else (grad_y * xhat).sum(axis=lead),
            None if bias is None else grad_y.sum(axis=lead))


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------


def add(inputs):
    """The elementwise sum of the arrays in `inputs`, in list order; its backward is the
    identity for every input."""
    shape = inputs[0].shape
    if any(a.shape != shape for a in inputs):
        raise ValueError(f"shape mismatch: {[a.shape for a in inputs]}")
    y = inputs[0].copy()
    for a in inputs[1:]:
        y = y + a
    return y


def concatenate(inputs, axis=1):
    """The arrays joined along `axis`, like torch.cat."""
    return np.concatenate(inputs, axis=axis)


def concatenate_backward(grad_y, sizes, axis=1):
    """grad_y split along `axis` into parts of the inputs' `sizes`."""
    if sum(sizes) != grad_y.shape[axis] or min(sizes) < 0:
        raise ValueError(f"sizes {sizes} do not split axis {axis} of {grad_y.shape}")
    return tuple(np.split(grad_y, np.cumsum(sizes)[:-1], axis=axis))


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


def relu(x):
    """Rectified linear unit max(x, 0); NaN propagates."""
    return np.maximum(x, 0)


def relu_backward(grad_out, x):
    """Gradient of :func:`relu`: zero where x <= 0 (also at 0), grad_out elsewhere (at
    NaN too, as torch's threshold_backward)."""
    return np.where(x <= 0, 0, grad_out)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, negative_slope * x elsewhere."""
    return np.where(x > 0, x, x * negative_slope)


def leaky_relu_backward(grad_out, x, negative_slope=0.01):
    """Gradient of :func:`leaky_relu` (slope negative_slope at x == 0, like PyTorch)."""
    return np.where(x > 0, grad_out, grad_out * negative_slope)


def sigmoid(x):
    """Logistic 1 / (1 + exp(-x)), evaluated without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_out, y):
    """Gradient of :func:`sigmoid` given its output y: grad_out * y * (1 - y)."""
    return grad_out * y * (1 - y)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_backward(grad_out, y):
    """Gradient of :func:`tanh` given its output y: grad_out * (1 - y**2)."""
    return grad_out * (1 - y * y)


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _phi(x):
    """The standard normal CDF as erfc(-x/sqrt2)/2: 1 + erf(x/sqrt2) without its
    cancellation for x < 0."""
    return 0.5 * np.asarray(_erfc(-x / math.sqrt(2)), dtype=np.result_type(x))


def gelu(x, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF (_phi), or torch's tanh form, 0.5 (1 + tanh(u)) = sigmoid(2u) with u = sqrt(2/pi)
    (x + 0.044715 x^3)."""
    if approximate == "tanh":
        return x * _gelu_tanh_s(x)
    return x * _phi(x)


def _gelu_tanh_s(x):
    return sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))


def gelu_backward(grad_out, x, approximate="none"):
    """Gradient of :func:`gelu` from its input x, torch's formulas: Phi(x) + x phi(x), or
    s + 0.5 x (1 - tanh(u)^2) u'(x) with 1 - tanh^2 = 4 s (1 - s), s = sigmoid(2u)."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0: NaN, as torch's
        if approximate == "tanh":
            s = _gelu_tanh_s(x)
            beta = math.sqrt(2 / math.pi)
            return grad_out * (s + 0.5 * x * (4 * s * (1 - s)) *
                               (beta * (1 + 3 * 0.044715 * x * x)))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad_out * (_phi(x) + x * pdf)


def silu(x):
    """x * sigmoid(x)."""
    return x * sigmoid(x)


def silu_backward(grad_out, x):
    """Gradient of :func:`silu` from its input x: s (1 + x (1 - s)), s = sigmoid(x)."""
    s = sigmoid(x)
    return grad_out * (s * (1 + x * (1 - s)))


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * expm1(x); NaN propagates."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_backward(grad_out, x, alpha=1.0):
    """Gradient of :func:`elu` from its input x, torch's: grad_out * alpha * exp(x) where
    x <= 0, else grad_out (NaN included)."""
    return np.where(x <= 0, grad_out * alpha * np.exp(np.minimum(x, 0)), grad_out)


def softmax(x):
    """Softmax over the last axis, shifted by the row maximum for stability."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(grad_out, y):
    """Gradient of :func:`softmax` given its output y."""
    return y * (grad_out - (grad_out * y).sum(axis=-1, keepdims=True))


def log_softmax(x):
    """Log of softmax over the last axis: z - log(sum(exp(z))), z = x - max."""
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def log_softmax_backward(grad_out, y):
    """Gradient of :func:`log_softmax` given its output y."""
    return grad_out - np.exp(y) * grad_out.sum(axis=-1, keepdims=True)


def _mix32(h):
    """csrc's FNN_MIX32 (internal.h) on a uint32 array (wrapping multiplies)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> 16)


def dropout_mask(shape, p, seed):
    """Which elements dropout(x, p, seed) keeps: element i (flat index) when two keyed
    rounds of the mixer, on i's low word with the seed's low word and then on the seed's
    high word xor the mixed high word of i, give bits >= floor(p * 2**32)."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    lo, hi = (i & np.uint64(0xFFFFFFFF)).astype(np.uint32), (i >> np.uint64(32)).astype(np.uint32)
    k1 = np.uint32(seed >> 32) ^ _mix32(hi)
    bits = _mix32(_mix32(lo ^ np.uint32(seed & 0xFFFFFFFF)) ^ k1)
    return (bits >= np.uint32(int(np.ldexp(p, 32)))).reshape(shape)


def dropout(x, p, seed):
    """Inverted dropout: x / (1 - p) where dropout_mask keeps, x * 0 elsewhere (NaN stays
    NaN). Its gradient is dropout(grad_out, p, seed)."""
    return x * np.where(dropout_mask(x.shape, p, seed), 1 / (1 - p), 0).astype(x.dtype)


def flatten(x):
    """Reshape (N, ...) to (N, -1), same element order as torch.flatten(x, 1)."""
    return x.reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------
# Losses (mean reduction)
# ---------------------------------------------------------------------------


def _check_labels(logits, labels):
    """Raise ValueError unless labels are N integer class indices in [0, C)."""
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]})")


def _check_same_shape(a, b):
    """Raise ValueError unless a and b have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def cross_entropy(logits, labels):
    """Mean over rows of -log_softmax(logits)[i, labels[i]]."""
    _check_labels(logits, labels)
    n = logits.shape[0]
    return -log_softmax(logits)[np.arange(n), labels].mean()


def cross_entropy_probs(logits, probs):
    """Mean over rows of -sum(probs * log_softmax(logits)): class-probability targets."""
    return -(probs * log_softmax(logits)).sum() / logits.shape[0]


def cross_entropy_probs_backward(logits, probs):
    """Gradient of :func:`cross_entropy_probs`: (softmax * rowsum(probs) - probs) / N."""
    return (softmax(logits) * probs.sum(axis=1, keepdims=True) - probs) / logits.shape[0]


def cross_entropy_backward(logits, labels):
    """Gradient of :func:`cross_entropy` w.r.t. logits: (softmax - onehot) / N."""
    _check_labels(logits, labels)
    n = logits.shape[0]
    grad = softmax(logits)
    grad[np.arange(n), labels] -= 1
    return grad / n


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of max(x, 0) - x*t + log1p(exp(-|x|)), stable for any x."""
    _check_same_shape(logits, targets)
    x, t = logits, targets
    return (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean()


def binary_cross_entropy_with_logits_backward(logits, targets):
    """Gradient of :func:`binary_cross_entropy_with_logits`: (sigmoid(x) - t) / numel."""
    _check_same_shape(logits, targets)
    return (sigmoid(logits) - targets) / logits.size


def mse_loss(pred, target):
    """Mean squared error mean((pred - target)**2)."""
    _check_same_shape(pred, target)
    return ((pred - target) ** 2).mean()


def mse_loss_backward(pred, target):
    """Gradient of :func:`mse_loss` w.r.t. pred: 2 (pred - target) / numel."""
    _check_same_shape(pred, target)
    return 2 * (pred - target) / pred.size


# ---------------------------------------------------------------------------
# Optimizer steps (in place)
# ---------------------------------------------------------------------------


def sgd_step(param, grad, buf, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, first_step):
    """One torch.optim.SGD step on param and momentum buffer buf (unused if momentum == 0)."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if first_step:
            buf[...] = grad
        else:
            buf *= momentum
            buf += (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad


def rmsprop_step(param, grad, square_avg, grad_avg, buf, *, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, centered=False, eps_inside=False):
    """One torch.optim.RMSprop step on param and its state (grad_avg used if centered,
    buf if momentum); eps_inside: Keras' sqrt(square_avg + eps)."""
    inside, outside = (eps, 0.0) if eps_inside else (0.0, eps)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        grad_avg += (1 - alpha) * (grad - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg + inside) + outside
    else:
        avg = np.sqrt(square_avg + inside) + outside
    if momentum > 0:
        buf *= momentum
        buf += grad / avg
        param -= lr * buf
    else:
        param -= lr * grad / avg


def adam_step(param, grad, m, v, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False):
    """One torch.optim.Adam step (AdamW if decoupled) on param, m, v; step counts from 1."""
    if step < 1:
        raise ValueError(f"step counts from 1, got {step}")
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = np.sqrt(v) / np.sqrt(bias_correction2) + eps
    param -= lr / bias_correction1 * m / denom
