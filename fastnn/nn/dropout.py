"""Dropout."""
import numpy as np

from .. import functional as F
from .._core import as_flag, as_real as _real, as_rng
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability p in training mode and scales the rest by
    1/(1-p) (inverted dropout, like torch); the identity in eval mode. Each training call
    draws a mask seed from the layer's generator (`seed`); the mask is a hash of that seed
    and the element's index (F.dropout), so it does not depend on the thread count, and
    the backward pass recomputes it instead of storing it. `inplace` (torch's argument)
    is accepted; the output goes to the layer's own buffer either way."""

    def __init__(self, p=0.5, inplace=False, *, seed=None):
        p = _real(p, "p", "Dropout")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.inplace = as_flag(inplace, "inplace", "Dropout")
        self._rng = as_rng(seed, "Dropout")
        self._seed = None  # the last training call's mask seed

    def forward(self, x):
        kept = vars(self)  # what backward reads (see Module._forwarded)
        kept["_shape"] = self._input(x).shape
        if not self.training or self.p == 0.0:
            kept["_seed"] = None
            return x
        kept["_seed"] = int(self._rng.bit_generator.random_raw())
        if self.p == 1.0:  # torch's: every element dropped (x * 0: a NaN stays NaN)
            return np.multiply(x, np.float32(0.0), out=self._buffer("y", x.shape))
        return F.dropout(x, self.p, self._seed, out=self._buffer("y", x.shape))

    def backward(self, grad_out, need_input_grad=True):
        self._grad(grad_out, self._forwarded("_shape"))
        if not need_input_grad:
            return None
        if self._seed is None:
            return grad_out
        if self.p == 1.0:
            return np.multiply(grad_out, np.float32(0.0), out=self._buffer("dx", grad_out.shape))
        return F.dropout(grad_out, self.p, self._seed, out=self._buffer("dx", grad_out.shape))

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

    def config(self):
        return {"p": self.p, **({"inplace": True} if self.inplace else {})}
