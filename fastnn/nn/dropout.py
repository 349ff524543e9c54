"""Dropout."""
import numpy as np

from .._core import as_real as _real
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability p in training mode and scales the rest by
    1/(1-p) (inverted dropout, like torch); the identity in eval mode."""

    def __init__(self, p=0.5, *, seed=None):
        p = _real(p, "p", "Dropout")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"{self!r}: input x must be a float32 ndarray, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        mask = self._buffer("mask", x.shape)
        self._rng.random(out=mask, dtype=np.float32)
        # mask = (u >= p) / (1 - p), built in place
        np.greater_equal(mask, self.p, out=mask)
        mask *= np.float32(1.0 / (1.0 - self.p))
        self._mask = mask
        return np.multiply(x, mask, out=self._buffer("y", x.shape))

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        if self._mask is None:
            return grad_out
        return np.multiply(grad_out, self._mask, out=self._buffer("dx", grad_out.shape))

    def config(self):
        return {"p": self.p}
