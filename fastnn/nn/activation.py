"""Elementwise activations: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, ELU, and Softmax /
LogSoftmax over a dimension (dim=None: torch's legacy implicit choice)."""
import warnings

from .. import functional as F
from .._core import as_alpha, as_approximate, as_flag, as_slope, is_int as _is_int
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "GELU", "SiLU",
           "ELU"]


class _Elementwise(Module):
    """An activation y = f(x); backward uses x or y, as the kernel's contract says.
    `inplace` (torch's argument, on ReLU, LeakyReLU, SiLU and ELU) is accepted and shown
    as torch shows it: the output goes to the layer's own buffer either way, the input
    being what backward reads."""

    _forward = _backward = None  # staticmethods: the kernel pair
    _backward_uses_output = False

    def config(self):
        """torch's inplace=True when it was given (kept in files; repr shows it last)."""
        return {"inplace": True} if getattr(self, "inplace", False) else {}

    def _extra(self):
        return ()

    def forward(self, x):
        y = self._forward(x, *self._extra(), out=self._buffer("y", x.shape))
        vars(self)["_saved"] = y if self._backward_uses_output else x  # (Module._forwarded)
        return y

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        # a grad_out that is no array (None) gets the kernel's TypeError naming it
        return self._backward(grad_out, self._forwarded("_saved"), *self._extra(),
                              out=self._buffer("dx", getattr(grad_out, "shape", ())))


class ReLU(_Elementwise):
    _forward, _backward = staticmethod(F.relu), staticmethod(F.relu_backward)

    def __init__(self, inplace=False):
        self.inplace = as_flag(inplace, "inplace", "ReLU")


class LeakyReLU(_Elementwise):
    _forward, _backward = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope=0.01, inplace=False):
        self.negative_slope = as_slope(negative_slope, "LeakyReLU")
        self.inplace = as_flag(inplace, "inplace", "LeakyReLU")

    def _extra(self):
        return (self.negative_slope,)

    def config(self):
        return {"negative_slope": self.negative_slope, **super().config()}


class Sigmoid(_Elementwise):
    _forward, _backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)
    _backward_uses_output = True


class Tanh(_Elementwise):
    _forward, _backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)
    _backward_uses_output = True


class _OverDim(_Elementwise):
    """An activation over dimension `dim` (torch's argument; negative counts from the
    end), the kernels' own argument. dim=None (torch's default) is torch's legacy
    implicit choice, with its UserWarning: 0 for an input of 0, 1 or 3 dimensions, else
    1 (the channels of (N, C, H, W); the features of (N, C))."""

    _backward_uses_output = True
    _name = None  # torch's function name in the warning

    def __init__(self, dim=None):
        if dim is not None and not _is_int(dim):
            raise TypeError(f"{type(self).__name__}: dim must be an int or None, got {dim!r}")
        self.dim = None if dim is None else int(dim)

    def _dim_for(self, ndim):
        """The dimension the layer works over for an input of `ndim` dimensions."""
        if self.dim is not None:
            return self.dim
        warnings.warn(f"Implicit dimension choice for {self._name} has been deprecated. "
                      f"Change the call to include dim=X as an argument.", UserWarning,
                      stacklevel=4)
        return 0 if ndim in (0, 1, 3) else 1

    def forward(self, x):
        self._dim = self._dim_for(x.ndim)  # backward works over the same one
        return super().forward(x)

    def _extra(self):
        return (self._dim,)

    def extra_repr(self):
        return f"dim={self.dim}"

    def config(self):
        return {"dim": self.dim}

    @classmethod
    def from_config(cls, config):
        return cls(**{"dim": -1, **config})  # files saved before dim=None meant the last


class Softmax(_OverDim):
    """Softmax over dimension `dim` (torch's nn.Softmax: dim=None picks one from the
    input's ndim, with a deprecation warning: name it)."""
    _forward, _backward = staticmethod(F.softmax), staticmethod(F.softmax_backward)
    _name = "softmax"


class LogSoftmax(_OverDim):
    """log(softmax(x)) over dimension `dim` (dim=None as Softmax's), computed stably."""
    _forward, _backward = staticmethod(F.log_softmax), staticmethod(F.log_softmax_backward)
    _name = "log_softmax"


class GELU(_Elementwise):
    """x * Phi(x) (Phi the standard normal CDF), by erf (approximate='none') or torch's
    tanh form (approximate='tanh')."""
    _forward, _backward = staticmethod(F.gelu), staticmethod(F.gelu_backward)

    def __init__(self, approximate="none"):
        self.approximate = as_approximate(approximate, "GELU")

    def _extra(self):
        return (self.approximate,)

    def config(self):
        return {"approximate": self.approximate}


class SiLU(_Elementwise):
    """x * sigmoid(x) (swish); `inplace` as ReLU's."""
    _forward, _backward = staticmethod(F.silu), staticmethod(F.silu_backward)

    def __init__(self, inplace=False):
        self.inplace = as_flag(inplace, "inplace", "SiLU")


class ELU(_Elementwise):
    """x for x > 0, else alpha * (exp(x) - 1); the backward is torch's from the input
    (alpha * exp(x) for x <= 0), so a negative alpha works as in torch."""
    _forward, _backward = staticmethod(F.elu), staticmethod(F.elu_backward)

    def __init__(self, alpha=1.0, inplace=False):
        self.alpha = as_alpha(alpha, "ELU")
        self.inplace = as_flag(inplace, "inplace", "ELU")

    def _extra(self):
        return (self.alpha,)

    def config(self):
        return {"alpha": self.alpha, **super().config()}
