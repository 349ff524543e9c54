"""Elementwise activations: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax (over the last axis)."""
from .. import functional as F
from .._core import as_real as _real
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]


class _Elementwise(Module):
    """An activation y = f(x); backward uses x or y, as the kernel's contract says."""

    _forward = _backward = None  # staticmethods: the kernel pair
    _backward_uses_output = False

    def _extra(self):
        return ()

    def forward(self, x):
        y = self._forward(x, *self._extra(), out=self._buffer("y", x.shape))
        self._saved = y if self._backward_uses_output else x
        return y

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        return self._backward(grad_out, self._forwarded("_saved"), *self._extra(),
                              out=self._buffer("dx", grad_out.shape))


class ReLU(_Elementwise):
    _forward, _backward = staticmethod(F.relu), staticmethod(F.relu_backward)


class LeakyReLU(_Elementwise):
    _forward, _backward = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope=0.01):
        self.negative_slope = _real(negative_slope, "negative_slope", "LeakyReLU")

    def _extra(self):
        return (self.negative_slope,)

    def config(self):
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise):
    _forward, _backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)
    _backward_uses_output = True


class Tanh(_Elementwise):
    _forward, _backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)
    _backward_uses_output = True


class Softmax(_Elementwise):
    """Softmax over the last axis (torch.nn.Softmax(dim=-1))."""
    _forward, _backward = staticmethod(F.softmax), staticmethod(F.softmax_backward)
    _backward_uses_output = True
