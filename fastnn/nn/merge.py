"""Layers that merge several values, called on a list as in Keras: Add()([a, b]) (also
written a + b on symbolic values), Concatenate(axis=1)([a, b]), and Keras' other
elementwise merges: Subtract, Multiply, Average, Maximum, Minimum (NumPy: Add and
Concatenate have kernels)."""
import numpy as np

from .. import functional as F
from .._core import is_int as _is_int
from .module import Module

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]


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


class _SameShape(_Merge):
    """A merge of inputs of one shape, elementwise."""

    _arity = None  # the number of inputs when fixed (Subtract: 2)

    def output_shape(self, shapes):
        shapes = [None if s is None else tuple(s) for s in shapes]
        kind = type(self).__name__
        if self._arity is not None and len(shapes) != self._arity:
            raise ValueError(f"{kind}: takes exactly {self._arity} inputs, got {len(shapes)}")
        if any(s != shapes[0] for s in shapes[1:]) or shapes[0] is None:
            raise ValueError(f"{kind}: inputs must all have the same shape, got "
                             f"{', '.join(map(str, shapes))}")
        return shapes[0]

    def _same(self, grad, k):
        """[grad] * k in a list kept for it (d(output)/d(input) the same for each)."""
        grads = self.__dict__.get("_same_grads")
        if grads is None or len(grads) != k:
            grads = self._same_grads = [None] * k
        for i in range(k):
            grads[i] = grad
        return grads


class Add(_SameShape):
    """The elementwise sum of inputs of one shape."""

    def forward(self, xs):
        xs = self._inputs(xs)
        self._k, self._shape = len(xs), xs[0].shape
        return F.add(xs, out=self._buffer("y", xs[0].shape))

    def backward(self, grad_out, need_input_grad=True):
        k = self._forwarded("_k")
        self._grad(grad_out, self._shape)
        if not need_input_grad:
            return self._none(k)
        return self._same(grad_out, k)  # d(sum)/d(input) is the identity


class _NumpyMerge(_SameShape):
    """An elementwise merge computed with NumPy: forward keeps the inputs (the arrays
    the layers before wrote, valid until their next forward) for backward."""

    def forward(self, xs):
        xs = self._xs = tuple(self._inputs(xs))
        return self._combine(xs, self._buffer("y", xs[0].shape))

    def backward(self, grad_out, need_input_grad=True):
        xs = self._forwarded("_xs")
        self._grad(grad_out, xs[0].shape)
        if not need_input_grad:
            return self._none(len(xs))
        return self._input_grads(xs, grad_out)

    def _dx(self, k, shape):
        return self._buffer(f"dx{k}", shape)


class Subtract(_NumpyMerge):
    """inputs[0] - inputs[1] (exactly two, as Keras' Subtract)."""

    _arity = 2

    def _combine(self, xs, y):
        return np.subtract(xs[0], xs[1], out=y)

    def _input_grads(self, xs, g):
        return [g, np.negative(g, out=self._dx(1, g.shape))]


class Multiply(_NumpyMerge):
    """The elementwise product of inputs of one shape."""

    def _combine(self, xs, y):
        np.multiply(xs[0], xs[1], out=y)
        for x in xs[2:]:
            np.multiply(y, x, out=y)
        return y

    def _input_grads(self, xs, g):
        grads = []
        for k in range(len(xs)):  # the product of the others (no division: a 0 input)
            dx = self._dx(k, g.shape)
            np.copyto(dx, g)
            for j, x in enumerate(xs):
                if j != k:
                    np.multiply(dx, x, out=dx)
            grads.append(dx)
        return grads


class Average(_NumpyMerge):
    """The elementwise mean of inputs of one shape."""

    def _combine(self, xs, y):
        F.add(list(xs), out=y)
        return np.multiply(y, np.float32(1 / len(xs)), out=y)

    def _input_grads(self, xs, g):
        return self._same(np.multiply(g, np.float32(1 / len(xs)), out=self._dx(0, g.shape)),
                          len(xs))


class _Extremum(_NumpyMerge):
    """The elementwise maximum (minimum) of inputs of one shape; the gradient goes to
    the first input holding it where several tie, as TensorFlow's (Keras')."""

    _better = None  # np.greater or np.less

    def _combine(self, xs, y):
        np.copyto(y, xs[0])
        which = self._which = self._buffer("which", y.shape, np.intp)
        which.fill(0)
        better = self._buffer("better", y.shape, np.bool_)
        for k, x in enumerate(xs[1:], 1):
            self._better(x, y, out=better)
            np.copyto(y, x, where=better)
            which[better] = k
        return y

    def _input_grads(self, xs, g):
        grads = []
        for k in range(len(xs)):
            dx = self._dx(k, g.shape)
            np.multiply(g, self._which == k, out=dx)
            grads.append(dx)
        return grads


class Maximum(_Extremum):
    """The elementwise maximum of inputs of one shape."""

    _better = staticmethod(np.greater)


class Minimum(_Extremum):
    """The elementwise minimum of inputs of one shape."""

    _better = staticmethod(np.less)


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
