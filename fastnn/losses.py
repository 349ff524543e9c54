"""Loss functions (mean reduction, PyTorch semantics): `loss_fn(pred, target)` returns
a Python float and `loss_fn.backward()` the gradient w.r.t. pred of that last call,
in a buffer the loss reuses (valid until the next call)."""
import numpy as np

from . import functional as F

__all__ = ["Loss", "CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "get"]


class Loss:
    name = ""
    has_accuracy = False

    def __call__(self, pred, target):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def _grad_buffer(self, shape):
        buf = getattr(self, "_grad", None)
        if buf is None or buf.shape != shape:
            buf = self._grad = np.empty(shape, np.float32)
        return buf

    def correct(self, pred, target):
        """Number of correct predictions in a batch (losses with has_accuracy)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits (N, C) and integer class labels (N,); the loss
    and its gradient come from one fused kernel call."""
    name = "cross_entropy"
    has_accuracy = True

    def __call__(self, logits, labels):
        loss, self._g = F.cross_entropy_with_grad(
            logits, labels, grad=self._grad_buffer(logits.shape))
        return float(loss)

    def backward(self):
        return self._g

    def correct(self, logits, labels):
        return int(np.count_nonzero(logits.argmax(axis=1) == labels))


class _Elementwise(Loss):
    """A loss whose gradient is computed on demand from the saved (pred, target)."""

    _loss = _backward = None

    def __call__(self, pred, target):
        self._saved = pred, target
        return float(self._loss(pred, target))

    def backward(self):
        pred, target = self._saved
        return self._backward(pred, target, out=self._grad_buffer(pred.shape))


class BCEWithLogitsLoss(_Elementwise):
    """Binary cross-entropy on logits and float32 targets in [0, 1] of the same shape."""
    name = "binary_cross_entropy"
    has_accuracy = True
    _loss = staticmethod(F.binary_cross_entropy_with_logits)
    _backward = staticmethod(F.binary_cross_entropy_with_logits_backward)

    def correct(self, logits, targets):
        return int(np.count_nonzero((logits > 0) == (targets > 0.5)))


class MSELoss(_Elementwise):
    """Mean squared error between pred and a float32 target of the same shape."""
    name = "mse"
    _loss = staticmethod(F.mse_loss)
    _backward = staticmethod(F.mse_loss_backward)


_BY_NAME = {"cross_entropy": CrossEntropyLoss, "binary_cross_entropy": BCEWithLogitsLoss,
            "bce": BCEWithLogitsLoss, "mse": MSELoss}


def get(loss):
    """A Loss from a Loss instance or a name ('cross_entropy', 'binary_cross_entropy'/'bce',
    'mse')."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _BY_NAME:
        return _BY_NAME[loss]()
    raise ValueError(f"loss must be a fastnn.losses.Loss or one of {sorted(_BY_NAME)}, "
                     f"got {loss!r}")
