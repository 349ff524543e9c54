"""Loss functions (mean reduction, PyTorch semantics): `loss_fn(pred, target)` returns
a Python float and `loss_fn.backward()` the gradient w.r.t. pred of that last call,
in a buffer the loss reuses (valid until the next call)."""
import numpy as np

from . import functional as F
from ._core import as_real as _real

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
    """Softmax cross-entropy on logits (N, C), torch's semantics: targets are integer
    class labels (N,) or class probabilities (N, C) as floats (one-hot or soft); with
    label_smoothing e the target becomes (1 - e) * target + e / C. Integer labels without
    smoothing run one fused kernel call (loss and gradient); the other cases run the
    log-softmax kernel, never a softmax followed by a log."""
    name = "cross_entropy"
    has_accuracy = True
    label_smoothing = 0.0  # (subclasses that skip __init__ keep torch's default)

    def __init__(self, label_smoothing=0.0):
        label_smoothing = _real(label_smoothing, "label_smoothing", "CrossEntropyLoss")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits, target):
        target = np.asarray(target)
        if target.dtype.kind in "iu" and not self.label_smoothing:
            loss, self._g = F.cross_entropy_with_grad(
                logits, target, grad=self._grad_buffer(logits.shape))
            return float(loss)
        return self._soft(logits, self._distribution(logits, target))

    def _distribution(self, logits, target):
        """The target as class probabilities (N, C) float32, smoothed."""
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.dtype != np.float32:
            raise ValueError(f"CrossEntropyLoss: logits must be float32 of shape (N, C), got "
                             f"{logits.dtype} of shape {logits.shape}")
        n, c = logits.shape
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ValueError(f"CrossEntropyLoss: class labels must have shape ({n},), got "
                                 f"{target.shape}")
            if target.size and (target.min() < 0 or target.max() >= c):
                raise ValueError(f"CrossEntropyLoss: labels must lie in [0, {c})")
            dist = np.zeros((n, c), np.float32)
            dist[np.arange(n), target] = 1.0
        elif target.dtype.kind == "f":
            if target.shape != (n, c):
                raise ValueError(f"CrossEntropyLoss: class-probability targets must have shape "
                                 f"({n}, {c}) like the logits (one column per class), got "
                                 f"{target.shape}")
            dist = target.astype(np.float32)
        else:
            raise TypeError(f"CrossEntropyLoss: targets must be integer class labels or float "
                            f"class probabilities, got dtype {target.dtype}")
        if self.label_smoothing:
            dist = dist * np.float32(1.0 - self.label_smoothing) + \
                np.float32(self.label_smoothing / c)
        return dist

    def _soft(self, logits, dist):
        """-sum(dist * log_softmax(logits)) / N; gradient (softmax * rowsum(dist) - dist) / N."""
        n = max(len(logits), 1)
        grad = self._grad_buffer(logits.shape)
        logp = F.log_softmax(logits, out=grad)
        if not np.isfinite(logp).all():
            raise ValueError("CrossEntropyLoss: logits contain NaN or infinity")
        loss = -float(np.einsum("ij,ij->", dist, logp, dtype=np.float64)) / n
        np.exp(logp, out=grad)
        grad *= dist.sum(axis=1, keepdims=True)
        grad -= dist
        grad *= np.float32(1.0 / n)
        self._g = grad
        return loss

    def backward(self):
        return self._g

    def correct(self, logits, target):
        target = np.asarray(target)
        if target.ndim == 2:
            target = target.argmax(axis=1)
        return int(np.count_nonzero(logits.argmax(axis=1) == target))

    def __repr__(self):
        smooth = f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"CrossEntropyLoss({smooth})"


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
