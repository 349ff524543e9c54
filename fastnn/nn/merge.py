"""Layers that merge several values, called on a list as in Keras: Add()([a, b]) (also
written a + b on symbolic values) and Concatenate(axis=1)([a, b])."""
from .. import functional as F
from .._core import is_int as _is_int
from .module import Module

__all__ = ["Add", "Concatenate"]


class _Merge(Module):
    """forward(list of arrays) -> array; backward(grad) -> list of gradients, one per
    input (None each when need_input_grad is False)."""

    _merge = True

    def _inputs(self, xs):
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            raise TypeError(f"{self!r} takes a list of at least two arrays, got "
                            f"{type(xs).__name__}")
        for x in xs:
            self._input(x)
        self.output_shape([x.shape for x in xs])
        return xs

    def _none(self, k):
        grads = self.__dict__.get("_nones")
        if grads is None or len(grads) != k:
            grads = self._nones = [None] * k
        return grads


class Add(_Merge):
    """The elementwise sum of inputs of one shape."""

    def output_shape(self, shapes):
        shapes = [None if s is None else tuple(s) for s in shapes]
        if any(s != shapes[0] for s in shapes[1:]) or shapes[0] is None:
            raise ValueError(f"Add: inputs must all have the same shape, got "
                             f"{', '.join(map(str, shapes))}")
        return shapes[0]

    def forward(self, xs):
        xs = self._inputs(xs)
        self._k, self._shape = len(xs), xs[0].shape
        return F.add(xs, out=self._buffer("y", xs[0].shape))

    def backward(self, grad_out, need_input_grad=True):
        k = self._forwarded("_k")
        self._grad(grad_out, self._shape)
        if not need_input_grad:
            return self._none(k)
        grads = self.__dict__.get("_same")
        if grads is None or len(grads) != k:
            grads = self._same = [None] * k
        for i in range(k):  # d(sum)/d(input) is the identity: the same array
            grads[i] = grad_out
        return grads


class Concatenate(_Merge):
    """Inputs joined along `axis` (default 1: channels of NCHW, features of (N, F)); the
    other dimensions must agree."""

    def __init__(self, axis=1):
        if not _is_int(axis) or axis == 0:
            raise ValueError(f"Concatenate: axis must be a non-zero int (0 is the batch), "
                             f"got {axis!r}")
        self.axis = int(axis)

    def output_shape(self, shapes):
        shapes = [None if s is None else tuple(s) for s in shapes]
        ndim = None if shapes[0] is None else len(shapes[0])
        axis = self.axis if ndim is None or self.axis > 0 else self.axis + ndim
        if ndim is not None and not 0 < axis < ndim:  # was "must have the same shape"
            raise ValueError(f"{self!r}: axis {self.axis} is the batch or out of range for "
                             f"inputs of {ndim} dimensions, got {', '.join(map(str, shapes))}")
        ok = ndim is not None and all(
            s is not None and len(s) == ndim and s[:axis] + s[axis + 1:] ==
            shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes)
        if not ok:
            raise ValueError(f"{self!r}: inputs must have the same shape except along axis "
                             f"{self.axis}, got {', '.join(map(str, shapes))}")
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def forward(self, xs):
        xs = self._inputs(xs)
        shape = self.output_shape([x.shape for x in xs])
        self._shapes = [x.shape for x in xs]
        return F.concatenate(xs, self.axis, out=self._buffer("y", shape))

    def backward(self, grad_out, need_input_grad=True):
        shapes = self._forwarded("_shapes")
        if not need_input_grad:
            return self._none(len(shapes))
        axis = self.axis % grad_out.ndim
        return F.concatenate_backward(
            grad_out, [s[axis] for s in shapes], axis,
            out=[self._buffer(f"dx{k}", s) for k, s in enumerate(shapes)])

    def config(self):
        return {"axis": self.axis}
