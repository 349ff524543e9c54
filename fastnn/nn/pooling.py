"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""
import numpy as np

from .. import functional as F
from .._core import MAX_WINDOW_ARG, as_flag, is_int as _is_int, pool_output_size
from .module import Module, _as_given, _pair, memo_shape

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name)
        self.padding = _pair(padding, "padding", name)
        # for repr and config: torch's repr shows each as given (2, or (2, 2))
        self._given = {"kernel_size": _as_given(kernel_size, self.kernel_size),
                       "stride": _as_given(kernel_size if stride is None else stride,
                                           self.stride),
                       "padding": _as_given(padding, self.padding)}
        self.ceil_mode = as_flag(ceil_mode, "ceil_mode", name)
        if min(*self.kernel_size, *self.stride) <= 0 or min(self.padding) < 0 or any(
                p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be positive "
                             f"and padding at most half the kernel, got {self.config()}")

    @memo_shape
    def output_shape(self, shape):
        self._expect(shape, "(N, C, H, W)", len(shape) == 4)
        # ceil_mode: torch's rounding up, less a window starting in the padding (a
        # window may then fit where the kernel is longer than the padded input)
        oh, ow = (pool_output_size(n, k, s, p, self.ceil_mode) for n, k, s, p in zip(
            shape[2:], self.kernel_size, self.stride, self.padding))
        if oh < 1 or ow < 1:
            raise ValueError(f"{self!r}: input of shape {tuple(shape)} is too small: output "
                             f"size is too small: ({oh}, {ow}) for input {tuple(shape[2:])}")
        return (shape[0], shape[1], oh, ow)

    def _args(self):
        return self.kernel_size, self.stride, self.padding

    def extra_repr(self):
        """torch's AvgPool2d's (MaxPool2d adds dilation and ceil_mode)."""
        return ", ".join(f"{k}={v}" for k, v in self._given.items())

    def config(self):
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in self._given.items()}
        if self.ceil_mode:
            config["ceil_mode"] = True
        return config


class MaxPool2d(_Pool2d):
    """Max pooling; in training mode it saves the argmax indices for backward. An
    eval-mode forward saves none (it runs faster): a backward after it (input gradients
    for a saliency map) finds them then, as torch's would route the gradient, rather than
    reading an older batch's. torch's arguments: dilation must be 1 and return_indices
    False (F.max_pool2d_with_indices returns them)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        if _pair(dilation, "dilation", "MaxPool2d") != (1, 1):
            raise ValueError(f"MaxPool2d: dilation must be 1, got {dilation!r}")
        if as_flag(return_indices, "return_indices", "MaxPool2d"):
            raise ValueError("MaxPool2d: return_indices must be False (a layer returns one "
                             "array; fastnn.functional.max_pool2d_with_indices returns them)")
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def extra_repr(self):
        return f"{super().extra_repr()}, dilation=1, ceil_mode={self.ceil_mode}"

    def forward(self, x):
        kept = vars(self)  # what backward reads (see Module._forwarded)
        kept["_x"] = x
        y = self._buffer("y", self.output_shape(x.shape))
        if not self.training:
            kept["_indices"] = None
            return F.max_pool2d(x, *self._args(), ceil_mode=self.ceil_mode, out=y)
        kept["_indices"] = self._buffer("idx", y.shape, np.int64)
        return F.max_pool2d_with_indices(x, *self._args(), ceil_mode=self.ceil_mode, out=y,
                                         indices=self._indices)[0]

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        x, indices = self._forwarded("_x"), self._indices
        if indices is None:
            indices = self._indices = self._buffer("idx", self.output_shape(x.shape), np.int64)
            F.max_pool2d_with_indices(x, *self._args(), ceil_mode=self.ceil_mode,
                                      indices=indices,
                                      out=self._buffer("argmax_y", indices.shape))
        return F.max_pool2d_backward(grad_out, self._x, *self._args(), ceil_mode=self.ceil_mode,
                                     indices=indices, out=self._buffer("dx", self._x.shape))


class AvgPool2d(_Pool2d):
    """Average pooling, zero padding counted in the divisor (PyTorch's default) unless
    count_include_pad is False; divisor_override (torch's) must be None."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        if divisor_override is not None:
            raise ValueError(f"AvgPool2d: divisor_override must be None, got "
                             f"{divisor_override!r}")
        self.count_include_pad = as_flag(count_include_pad, "count_include_pad", "AvgPool2d")
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def _modes(self):
        return self.ceil_mode, self.count_include_pad

    def forward(self, x):
        self._x = x
        return F.avg_pool2d(x, *self._args(), *self._modes(),
                            out=self._buffer("y", self.output_shape(x.shape)))

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        x = self._forwarded("_x")
        return F.avg_pool2d_backward(grad_out, x, *self._args(), *self._modes(),
                                     out=self._buffer("dx", x.shape))

    def config(self):
        config = super().config()
        if not self.count_include_pad:
            config["count_include_pad"] = False
        return config


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (oh, ow) whatever the input's, windows as
    torch's: rows floor(i*H/oh) to ceil((i+1)*H/oh). output_size: an int, a pair, or a
    pair with None (keep that input dimension). AdaptiveAvgPool2d(1) is global average
    pooling."""

    def __init__(self, output_size):
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (
            output_size, output_size)
        if len(size) != 2 or not all(s is None or (_is_int(s) and 1 <= s <= MAX_WINDOW_ARG)
                                     for s in size):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int or a pair "
                             f"of positive ints or None, got {output_size!r}")
        self.output_size = tuple(None if s is None else int(s) for s in size)
        self._given = _as_given(output_size, self.output_size)  # as torch's repr shows it

    def output_shape(self, shape):
        self._expect(shape, "(N, C, H, W)", len(shape) == 4 and shape[2] != 0 != shape[3])
        oh, ow = (shape[2 + i] if s is None else s for i, s in enumerate(self.output_size))
        return (shape[0], shape[1], oh, ow)

    def forward(self, x):
        self._x = x
        shape = self.output_shape(x.shape)
        return F.adaptive_avg_pool2d(x, shape[2:], out=self._buffer("y", shape))

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        shape = self._forwarded("_x").shape
        return F.adaptive_avg_pool2d_backward(grad_out, shape, out=self._buffer("dx", shape))

    def extra_repr(self):
        return f"output_size={self._given}"

    def config(self):
        given = self._given
        return {"output_size": list(given) if isinstance(given, tuple) else given}
