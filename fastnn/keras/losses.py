"""keras.losses: the loss names compile takes, and loss objects for the options
(from_logits, label_smoothing). fastnn.keras.models picks the fused fastnn loss; called
as loss(y_true, y_pred), an object gives Keras' mean loss (in float64 NumPy)."""
import numpy as np

from .._core import as_flag, as_real
from ..training import _real_array

# Keras' clip of probabilities, at float32: 1 - 1e-7 rounds to 1 - 1.19e-7
CLIP = (float(np.float32(1e-7)), float(np.float32(1 - 1e-7)))

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "Huber", "get",
           "NAMES"]


class Loss:
    kind = cls_name = ""

    def __init__(self, from_logits=False, label_smoothing=0.0):
        self.from_logits = as_flag(from_logits, "from_logits", type(self).__name__)
        self.label_smoothing = as_real(label_smoothing, "label_smoothing", type(self).__name__)
        if not 0 <= self.label_smoothing <= 1:  # NaN gave NaN losses; 1.5 failed in compile
            raise ValueError(f"{type(self).__name__}: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing!r}")

    def __call__(self, y_true, y_pred):
        """Keras' loss(y_true, y_pred): the mean over the samples of the loss over the
        last axis, a float32 scalar."""
        what = type(self).__name__
        y_true = _real_array(y_true, what, "y_true").astype(np.float64)
        y_pred = _real_array(y_pred, what, "y_pred").astype(np.float64)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{what}: y_true has shape {y_true.shape}, y_pred "
                             f"{y_pred.shape}; they must be the same")
        return np.float32(self._per_sample(y_true, y_pred).mean())

    def _log_probs(self, y_pred, sparse):
        """log of the class probabilities as Keras takes them: log_softmax of logits,
        else of the probabilities rescaled to sum to 1 and clipped (sparse: clipped, then
        rescaled)."""
        if not self.from_logits:
            if not sparse:
                return np.log(np.clip(y_pred / y_pred.sum(-1, keepdims=True), *CLIP))
            y_pred = np.log(np.clip(y_pred, *CLIP))
        shifted = y_pred - y_pred.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class CategoricalCrossentropy(Loss):
    kind, cls_name = "categorical_crossentropy", "CategoricalCrossentropy"

    def _per_sample(self, y_true, y_pred):
        y_true = y_true * (1 - self.label_smoothing) + self.label_smoothing / y_true.shape[-1]
        return -(y_true * self._log_probs(y_pred, False)).sum(-1)


class SparseCategoricalCrossentropy(Loss):
    kind, cls_name = "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"

    def __init__(self, from_logits=False):
        super().__init__(from_logits)

    def __call__(self, y_true, y_pred):
        """Keras' loss(labels, y_pred): labels (N,) or (N, 1) integer classes, y_pred
        (N, classes)."""
        what = type(self).__name__
        labels = _real_array(y_true, what, "y_true")
        y_pred = _real_array(y_pred, what, "y_pred").astype(np.float64)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if y_pred.ndim != 2 or labels.shape != y_pred.shape[:1]:
            raise ValueError(f"{what}: y_true must hold one label per row of y_pred (N, "
                             f"classes), got shapes {labels.shape} and {y_pred.shape}")
        if not (np.array_equal(labels, np.round(labels)) and ((labels >= 0) & (
                labels < y_pred.shape[1])).all()):
            raise ValueError(f"{what}: y_true must hold class labels in [0, "
                             f"{y_pred.shape[1]})")
        rows = np.arange(len(labels))
        return np.float32(-self._log_probs(y_pred, True)[rows, labels.astype(np.int64)].mean())


class BinaryCrossentropy(Loss):
    kind, cls_name = "binary_crossentropy", "BinaryCrossentropy"

    def __init__(self, from_logits=False):
        super().__init__(from_logits)

    def _per_sample(self, y_true, y_pred):
        if self.from_logits:
            loss = np.maximum(y_pred, 0) - y_pred * y_true + np.log1p(np.exp(-abs(y_pred)))
        else:
            p = np.clip(y_pred, *CLIP)
            loss = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
        return loss.mean(-1)


class MeanSquaredError(Loss):
    kind, cls_name = "mse", "MeanSquaredError"

    def __init__(self):
        super().__init__()

    def _per_sample(self, y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean(-1)


class MeanAbsoluteError(Loss):
    kind, cls_name = "mae", "MeanAbsoluteError"

    def __init__(self):
        super().__init__()

    def _per_sample(self, y_true, y_pred):
        return abs(y_true - y_pred).mean(-1)


class Huber(Loss):
    """keras.losses.Huber(delta=1.0): 0.5 d**2 where |d| <= delta, else
    delta * (|d| - 0.5 delta), averaged over the last axis."""
    kind, cls_name = "huber", "Huber"

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = as_real(delta, "delta", "Huber")
        if not 0 < self.delta < np.inf:
            raise ValueError(f"Huber: delta must be finite and > 0, got {delta!r}")

    def _per_sample(self, y_true, y_pred):
        d = abs(y_true - y_pred)
        return np.where(d <= self.delta, 0.5 * d ** 2,
                        self.delta * (d - 0.5 * self.delta)).mean(-1)


NAMES = {"categorical_crossentropy": CategoricalCrossentropy,
         "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
         "binary_crossentropy": BinaryCrossentropy, "mse": MeanSquaredError,
         "mean_squared_error": MeanSquaredError, "mae": MeanAbsoluteError,
         "mean_absolute_error": MeanAbsoluteError, "huber": Huber}


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in NAMES:
        return NAMES[identifier]()
    raise ValueError(f"unknown loss {identifier!r}; known: {sorted(NAMES)} or a "
                     f"fastnn.keras.losses object")
