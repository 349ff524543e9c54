"""Conv2d, ConvTranspose2d, and Conv2d fused with the MaxPool2d and/or ReLU after it
(_FusedConv, which the graph plan runs in place of the layers)."""
import numpy as np

from .. import functional as F
from .._core import POOL_POSITIONS, as_flag, conv2d_algorithm, get_conv_algorithm
from ..reference import conv2d_output_shape
from .linear import _Weighted, _weights
from .module import Parameter, _count, _Fused, _pair, memo_shape

__all__ = ["Conv2d", "ConvTranspose2d"]

# torch's padding modes other than zeros, as NumPy's np.pad names them
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Conv2d(_Weighted):
    """2-D cross-correlation over NCHW input, weight (out, in, kh, kw).

    padding: an int, a pair, "valid" (no padding) or "same" (stride 1; the output has
    the input's size; when the kernel's extent dilation*(k-1) is odd, the extra zero row
    and column go at the bottom and right, as in torch). groups: torch's grouped
    convolution (weight (out, in/groups, kh, kw)), one kernel call per group.
    padding_mode: "zeros", or torch's "reflect", "replicate", "circular" (the input padded
    by NumPy, its gradient folded back onto the elements the padding copies). algorithm: "auto", "direct", "winograd" or
    "winograd4x4" (see fastnn.set_conv_algorithm); None follows the global default."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, seed=None,
                 init="torch", algorithm=None):
        self.in_channels = _count(in_channels, "in_channels", "Conv2d")
        self.out_channels = _count(out_channels, "out_channels", "Conv2d")
        self.groups = _count(groups, "groups", "Conv2d")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode != "zeros" and padding_mode not in _PAD_MODES:
            raise ValueError(f"Conv2d: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride "
                                 f"{self.stride}")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", "Conv2d")
        kh, kw = self.kernel_size
        if min(kh, kw, *self.stride, *self.dilation) <= 0 or min(self._pad) < 0:
            raise ValueError(f"Conv2d: kernel_size, stride and dilation must be positive and "
                             f"padding non-negative, got kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, padding={self.padding}, "
                             f"dilation={self.dilation}")
        group_in = self.in_channels // self.groups
        fan_in, fan_out = group_in * kh * kw, self.out_channels // self.groups * kh * kw
        w, b = _weights(init, seed, (self.out_channels, group_in, kh, kw), fan_in,
                        fan_out, "Conv2d")
        self.weight = Parameter(w)
        self.bias = Parameter(b) if as_flag(bias, "bias", "Conv2d") else None
        self.algorithm = algorithm
        if algorithm is not None:  # checked against this layer's window now, not at the call
            try:
                # an input two rows and columns wider than the dilated kernel's extent
                dh, dw = self.dilation
                conv2d_algorithm((1, group_in, dh * (kh - 1) + 3, dw * (kw - 1) + 3),
                                 self.weight.data.shape, self.stride, 0, self.dilation,
                                 algorithm)
            except ValueError as e:
                raise ValueError(f"Conv2d: {e}") from None

    @property
    def _pad(self):
        """The kernel's symmetric padding (top/bottom, left/right)."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size))
        return self.padding

    @property
    def _extra(self):
        """Zero rows and columns added at the bottom and right beyond _pad ("same" with
        an odd kernel extent)."""
        if self.padding != "same":
            return (0, 0)
        return tuple(d * (k - 1) % 2 for d, k in zip(self.dilation, self.kernel_size))

    @memo_shape
    def output_shape(self, shape):
        self._expect(shape, f"(N, {self.in_channels}, H, W)",
                     len(shape) == 4 and shape[1] == self.in_channels)
        eh, ew = self._extra
        try:
            oh, ow = conv2d_output_shape(shape[2] + eh, shape[3] + ew, self.kernel_size,
                                         self.stride, self._pad, self.dilation)
        except ValueError as e:
            raise ValueError(f"{self!r}: input of shape {tuple(shape)} is too small: {e}") from None
        return (shape[0], self.out_channels, oh, ow)

    def _groups(self):
        """(input channels, output channels) slices of each group."""
        ci, co = self.in_channels // self.groups, self.out_channels // self.groups
        return [(slice(k * ci, (k + 1) * ci), slice(k * co, (k + 1) * co))
                for k in range(self.groups)]

    def _forward(self, x, weight, bias, *args, out):
        if self.groups == 1:
            return F.conv2d(x, weight, bias, *args, out=out, algorithm=self.algorithm)
        for ci, co in self._groups():
            out[:, co] = F.conv2d(x[:, ci], weight[co], None if bias is None else bias[co],
                                  *args, algorithm=self.algorithm)
        return out

    def _backward(self, grad_out, x, weight, *args, grad_input=None, grad_weight=None,
                  grad_bias=None, **kwargs):
        if self.groups == 1:
            return F.conv2d_backward(grad_out, x, weight, *args, grad_input=grad_input,
                                     grad_weight=grad_weight, grad_bias=grad_bias,
                                     algorithm=self.algorithm, **kwargs)
        for ci, co in self._groups():
            gx, gw, gb = F.conv2d_backward(grad_out[:, co], x[:, ci], weight[co], *args,
                                           algorithm=self.algorithm, **kwargs)
            if grad_input is not None:
                grad_input[:, ci] = gx
            if grad_weight is not None:
                grad_weight[co] = gw
            if grad_bias is not None:
                grad_bias[co] = gb
        return grad_input, grad_weight, grad_bias

    def _args(self):
        # another padding mode pads the input itself: the kernel then pads nothing
        pad = self._pad if self.padding_mode == "zeros" else (0, 0)
        return self.stride, pad, self.dilation

    def _mode_pads(self, h, w):
        """np.pad's widths for padding_mode (the "same" extra at the bottom and right),
        checked as torch checks them."""
        (ph, pw), (eh, ew) = self._pad, self._extra
        limit = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(self.padding_mode)
        if limit and (max(ph + eh, 0) > limit[0] or max(pw + ew, 0) > limit[1]):
            raise ValueError(f"{self!r}: padding {(ph + eh, pw + ew)} is too large for "
                             f"padding_mode={self.padding_mode!r} on an input of size "
                             f"{(h, w)} (at most {limit})")
        return ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew))

    def forward(self, x):
        if self.padding_mode != "zeros":
            shape = self.output_shape(self._input(x).shape)
            self._x_shape = x.shape
            padded = self._x = np.pad(x, self._mode_pads(*x.shape[2:]),
                                      mode=_PAD_MODES[self.padding_mode])
            return self._forward(padded, self.weight.data,
                                 None if self.bias is None else self.bias.data, *self._args(),
                                 out=self._buffer("y", shape))
        if self._extra == (0, 0):
            return super().forward(x)
        # checked here: the copy into the padded buffer below would cast any dtype silently
        shape = self.output_shape(self._input(x).shape)
        n, c, h, w = x.shape
        eh, ew = self._extra
        padded = self._x = self._buffer("padded", (n, c, h + eh, w + ew))
        padded[:, :, h:] = 0.0
        padded[:, :, :, w:] = 0.0
        padded[:, :, :h, :w] = x
        return self._forward(padded, self.weight.data,
                             None if self.bias is None else self.bias.data, *self._args(),
                             out=self._buffer("y", shape))

    def backward(self, grad_out, need_input_grad=True):
        dx = super().backward(grad_out, need_input_grad)
        if dx is not None and self.padding_mode != "zeros":
            return self._fold(dx)
        if dx is None or self._extra == (0, 0):
            return dx
        n, c, h, w = dx.shape
        eh, ew = self._extra
        inner = self._buffer("dx_inner", (n, c, h - eh, w - ew))
        np.copyto(inner, dx[:, :, :h - eh, :w - ew])
        return inner

    def _fold(self, dx):
        """The padded input's gradient summed onto the input elements its padding
        copies (the adjoint of np.pad's mode)."""
        n, c, h, w = self._x_shape
        source = np.pad(np.arange(h * w).reshape(1, 1, h, w), self._mode_pads(h, w),
                        mode=_PAD_MODES[self.padding_mode])
        out = self._buffer("dx_folded", (n, c, h, w))
        out.fill(0.0)
        np.add.at(out.reshape(n * c, h * w), (slice(None), source.ravel()),
                  dx.reshape(n * c, -1))
        return out

    def extra_repr(self):
        """torch's (its _ConvNd's, ConvTranspose2d's too): the defaults left out,
        "same"/"valid" unquoted."""
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": padding, "dilation": list(self.dilation),
                  "bias": self.bias is not None}
        if self.groups != 1:
            config["groups"] = self.groups
        if self.padding_mode != "zeros":
            config["padding_mode"] = self.padding_mode
        if self.algorithm is not None:
            config["algorithm"] = self.algorithm
        return config


class ConvTranspose2d(_Weighted):
    """torch's ConvTranspose2d (the adjoint of a Conv2d: upsampling in decoders and
    autoencoders) over NCHW input, weight (in, out/groups, kh, kw). Output size per
    dimension: (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1.
    Runs on the Conv2d kernels (see F.conv_transpose2d)."""

    _forward = staticmethod(F.conv_transpose2d)
    _backward = staticmethod(F.conv_transpose2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros", *,
                 seed=None, init="torch"):
        name = "ConvTranspose2d"
        self.in_channels = _count(in_channels, "in_channels", name)
        self.out_channels = _count(out_channels, "out_channels", name)
        self.groups = _count(groups, "groups", name)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode != "zeros":  # torch's only one
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride, "stride", name)
        self.padding = _pair(padding, "padding", name)
        self.output_padding = _pair(output_padding, "output_padding", name)
        self.dilation = _pair(dilation, "dilation", name)
        if min(*self.kernel_size, *self.stride, *self.dilation) <= 0 or \
                min(*self.padding, *self.output_padding) < 0:
            raise ValueError(f"{name}: kernel_size, stride and dilation must be positive and "
                             f"padding and output_padding non-negative, got "
                             f"kernel_size={self.kernel_size}, stride={self.stride}, "
                             f"padding={self.padding}, output_padding={self.output_padding}, "
                             f"dilation={self.dilation}")
        if any(o >= max(s, d) for o, s, d in zip(self.output_padding, self.stride,
                                                  self.dilation)):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride} or dilation {self.dilation}")
        kh, kw = self.kernel_size
        group_out = self.out_channels // self.groups
        # torch's fans: the weight's dimension 1 is the fan-in
        fan_in, fan_out = group_out * kh * kw, self.in_channels // self.groups * kh * kw
        w, b = _weights(init, seed, (self.in_channels, group_out, kh, kw), fan_in, fan_out,
                        name, self.out_channels)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if as_flag(bias, "bias", name) else None

    def _args(self):
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation

    extra_repr = Conv2d.extra_repr

    @memo_shape
    def output_shape(self, shape):
        self._expect(shape, f"(N, {self.in_channels}, H, W)",
                     len(shape) == 4 and shape[1] == self.in_channels)
        size = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, k, s, p, d, o in zip(
            shape[2:], self.kernel_size, self.stride, self.padding, self.dilation,
            self.output_padding)]
        if min(size) < 1:
            raise ValueError(f"{self!r}: input of shape {tuple(shape)} is too small: the "
                             f"output would be {tuple(size)}")
        return (shape[0], self.out_channels, *size)

    def macs(self, output_shape):
        # every input element meets one input channel's weights (out/groups * kh * kw)
        h, w = ((n - 1 - o - d * (k - 1) + 2 * p) // s + 1 for n, k, s, p, d, o in zip(
            output_shape[2:], self.kernel_size, self.stride, self.padding, self.dilation,
            self.output_padding))
        return output_shape[0] * h * w * self.weight.data.size

    def config(self):
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": list(self.padding), "output_padding": list(self.output_padding),
                  "dilation": list(self.dilation), "bias": self.bias is not None}
        if self.groups != 1:
            config["groups"] = self.groups
        return config


def _winograd_throughout(conv, shape):
    """Whether conv runs a Winograd algorithm in every direction on NCHW input `shape`."""
    args = (shape, conv.weight.data.shape, *conv._args(), conv.algorithm)
    return all(conv2d_algorithm(*args, **kw) != "direct"
               for kw in ({}, {"input_gradient": True}, {"weight_gradient": True}))


class _FusedConv(_Fused):
    """A Conv2d with the MaxPool2d and/or the ReLU after it on one kernel call
    (F.conv2d_max_pool2d, or F.conv2d; activation="relu"), in the layers' own parameters
    and buffers; the graph plan runs them so (Graph._rewrite). Each image's convolution
    output is pooled and relu'd while in cache; the pool's argmax, where it fits in a byte
    (`fits`), is saved as a uint8 window position, an eighth of the MaxPool2d's int64
    index, and the relu's backward reads the fused output.

    Between two of them (`next`, `prev`: the one reading this one's output alone, linked by
    the plan) the activation and its gradient go channels-last (NHWC) when both run Winograd
    in every direction at the batch's shape: it reads and writes NHWC as it is, and the
    layout copies each would make of it are spared. The values are the same bits either
    way; the layers' outputs seen outside the pair stay NCHW."""

    def __init__(self, conv, pool=None, relu=None):
        self.conv, self.pool, self.relu = conv, pool, relu
        self.layers = tuple(layer for layer in (conv, pool, relu) if layer is not None)
        self._activation = None if relu is None else "relu"
        self.next = self.prev = None
        self.y_hwc = False  # the last forward's output went to `next` channels-last
        self._layout = "NCHW"  # the last forward's (x's, the output's)
        self._edges = {}  # (input shape, algorithms) -> y_hwc
        self._x = None

    @staticmethod
    def fits(pool):
        kh, kw = pool.kernel_size  # (the fused kernels pool in floor mode only)
        return kh * kw <= POOL_POSITIONS and not pool.ceil_mode

    def _to_next_hwc(self, x_shape, y_shape):
        """Whether the output (NCHW shape y_shape, from input x_shape) goes to `next`
        channels-last (see the class)."""
        key = (x_shape, get_conv_algorithm(), self.conv.algorithm, self.next.conv.algorithm)
        hwc = self._edges.get(key)
        if hwc is None:
            hwc = self._edges[key] = _winograd_throughout(self.conv, x_shape) and \
                _winograd_throughout(self.next.conv, y_shape)
        return hwc

    def forward(self, x):
        conv, pool = self.conv, self.pool
        x_hwc = self.prev is not None and self.prev.y_hwc
        self._x = x  # what backward reads
        vars(conv)["_x"] = None if x_hwc else x  # the layer's, as its own forward keeps it
        # (an NHWC x is not: the layer's backward would read it as NCHW)
        x_shape = (x.shape[0], x.shape[3], x.shape[1], x.shape[2]) if x_hwc else x.shape
        shape = conv.output_shape(x_shape)
        if pool is not None:
            shape = pool.output_shape(shape)
        self.y_hwc = self.next is not None and self._to_next_hwc(x_shape, shape)
        self._layout = ("NHWC" if x_hwc else "NCHW", "NHWC" if self.y_hwc else "NCHW")
        if self.y_hwc:
            shape = (shape[0], shape[2], shape[3], shape[1])
        y = self._y = self.layers[-1]._buffer("y", shape)
        args = (x, conv.weight.data, None if conv.bias is None else conv.bias.data,
                *conv._args())
        options = {"algorithm": conv.algorithm, "activation": self._activation,
                   "layout": self._layout}
        if pool is None:
            return F.conv2d(*args, out=y, **options)
        if not pool.training:
            vars(pool)["_pos"] = None
            return F.conv2d_max_pool2d(*args, *pool._args(), out=y, return_indices=False,
                                       **options)
        vars(pool)["_pos"] = pool._buffer("pos", shape, np.uint8)
        return F.conv2d_max_pool2d(*args, *pool._args(), out=y, indices=pool._pos,
                                   **options)[0]

    def backward(self, grad_out, need_input_grad=True):
        conv, pool, x = self.conv, self.pool, self._x
        options = dict(need_input_grad=need_input_grad,
                       grad_input=conv._buffer("dx", x.shape) if need_input_grad else None,
                       algorithm=conv.algorithm, activation=self._activation,
                       output=None if self.relu is None else self._y, layout=self._layout,
                       **conv._grad_args())
        args = (x, conv.weight.data, *conv._args())
        if pool is None:
            return F.conv2d_backward(grad_out, *args, **options)[0]
        return F.conv2d_max_pool2d_backward(grad_out, self._positions(), *args, *pool._args(),
                                            **options)[0]

    def _positions(self):
        """The pool's window positions from the last forward. An eval-mode one keeps none:
        they are found then (see MaxPool2d), from the same input and weights."""
        conv, pool = self.conv, self.pool
        if pool._pos is None:
            pool._pos = pool._buffer("pos", self._y.shape, np.uint8)
            F.conv2d_max_pool2d(self._x, conv.weight.data,
                                None if conv.bias is None else conv.bias.data, *conv._args(),
                                *pool._args(), out=pool._buffer("argmax_y", self._y.shape),
                                indices=pool._pos, algorithm=conv.algorithm,
                                activation=self._activation, layout=self._layout)
        return pool._pos
