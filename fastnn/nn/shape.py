"""Layers that only reshape or pass values on: Flatten, Identity."""
import math

from .module import Module

__all__ = ["Flatten", "Identity"]


class Flatten(Module):
    """(N, ...) -> (N, prod(...)), the element order of torch.flatten(x, 1); a view."""

    def output_shape(self, shape):
        self._expect(shape, "(N, ...)", len(shape) >= 1)
        return (shape[0], math.prod(shape[1:]))

    def forward(self, x):
        self._shape = self._input(x).shape
        return x.reshape(self.output_shape(x.shape))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._forwarded("_shape")
        self._grad(grad_out, self.output_shape(shape))
        return grad_out.reshape(shape) if need_input_grad else None


class Identity(Module):
    """y = x (the same array), e.g. a placeholder for a removed head."""

    def forward(self, x):
        self._shape = self._input(x).shape
        return x

    def backward(self, grad_out, need_input_grad=True):
        self._grad(grad_out, self._forwarded("_shape"))
        return grad_out if need_input_grad else None
