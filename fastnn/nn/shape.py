"""Layers that only reshape or pass values on: Flatten, Identity."""
import math

from .._core import is_int as _is_int
from .module import Module, memo_shape

__all__ = ["Flatten", "Identity"]


class Flatten(Module):
    """Dimensions start_dim to end_dim (inclusive; negative ones count from the end) joined
    into one, the element order of torch.flatten(x, start_dim, end_dim); a view. The
    default (1, -1) gives (N, prod(...)). The batch stays first: start_dim 0 is refused."""

    def __init__(self, start_dim=1, end_dim=-1):
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not _is_int(v):
                raise TypeError(f"Flatten: {name} must be an int, got {v!r}")
        if start_dim == 0:
            raise ValueError("Flatten: start_dim must not be 0: a model's layers keep the "
                             "batch as the first dimension")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    @memo_shape
    def output_shape(self, shape):
        if (self.start_dim, self.end_dim) == (1, -1):
            self._expect(shape, "(N, ...)", len(shape) >= 1)
            return (shape[0], math.prod(shape[1:]))
        n = len(shape)
        start = self.start_dim + n if self.start_dim < 0 else self.start_dim
        end = self.end_dim + n if self.end_dim < 0 else self.end_dim
        self._expect(shape, f"(N, ...) where dimensions start_dim={self.start_dim} to "
                     f"end_dim={self.end_dim} exist, after the batch and in that order",
                     1 <= start <= end < n)
        return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]

    def forward(self, x):
        vars(self)["_shape"] = self._input(x).shape  # (see Module._forwarded)
        return x.reshape(self.output_shape(x.shape))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._forwarded("_shape")
        self._grad(grad_out, self.output_shape(shape))
        return grad_out.reshape(shape) if need_input_grad else None

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def config(self):
        if (self.start_dim, self.end_dim) == (1, -1):
            return {}
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Identity(Module):
    """y = x (the same array), e.g. a placeholder for a removed head. Any constructor
    arguments are ignored, as torch's are."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        self._shape = self._input(x).shape
        return x

    def backward(self, grad_out, need_input_grad=True):
        self._grad(grad_out, self._forwarded("_shape"))
        return grad_out if need_input_grad else None
