"""keras.metrics: metric objects for compile(metrics=[...]) (mixed with metric names as
compile takes them), logged under their `name`, and Keras' stateful API: update_state(
y_true, y_pred, sample_weight=None) adds a batch, result() is the (weighted) mean of the
per-sample values so far (0 before any), reset_state() starts afresh; calling the object
updates it and returns result(). fit computes them with the same per-sample functions
(fastnn.keras.trainer) as the metric names."""
import functools
import math

import numpy as np

from .._core import as_real, is_int
from ..training import _real_array
from . import trainer as _trainer

__all__ = ["Metric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanSquaredError",
           "MeanAbsoluteError", "get"]


class Metric:
    """The mean of a per-sample function `fn(y_true, y_pred)` over the samples seen."""

    default_name = ""
    sparse = False  # y_true holds class labels, one per row of y_pred

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got "
                            f"{type(name).__name__}")
        self.name = name or self.default_name  # Keras: '' is the default name too
        self.reset_state()

    def reset_state(self):
        self._total = self._count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        what = f"{type(self).__name__}.update_state"
        y_true = _real_array(y_true, what, "y_true")
        y_pred = _real_array(y_pred, what, "y_pred")
        if y_pred.ndim < 2:
            raise ValueError(f"{what}: y_pred must have a batch axis and a value (class) "
                             f"axis, shape (N, ...), got shape {y_pred.shape}")
        rank = y_pred.ndim - self.sparse  # y_true's, as Keras squeezes or expands it
        if y_true.ndim == rank + 1 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]  # labels (N, 1), or targets (N, 1) of an output (N,)
        elif not self.sparse and y_true.ndim == rank - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]  # targets (N,) of an output (N, 1)
        want = y_pred.shape[:-1] if self.sparse else y_pred.shape
        if y_true.shape != want:
            raise ValueError(f"{what}: y_true must have shape {want} for y_pred of shape "
                             f"{y_pred.shape}{' (class labels)' if self.sparse else ''}, "
                             f"got {y_true.shape}")
        if self.sparse and not (np.array_equal(y_true, np.round(y_true)) and (
                (y_true >= 0) & (y_true < y_pred.shape[-1])).all()):
            raise ValueError(f"{what}: y_true must hold class labels in [0, "
                             f"{y_pred.shape[-1]})")
        values = self.fn(y_true.astype(np.int64) if self.sparse else y_true, y_pred)
        weights = np.ones(len(values)) if sample_weight is None else \
            _trainer.sample_weights(sample_weight, len(values), what)
        self._total += float((values * weights).sum())
        self._count += float(weights.sum())

    def result(self):
        return np.float32(self._total / self._count if self._count else 0.0)

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict (of "
                            f"get_config()), got {type(config).__name__}")
        try:
            return cls(**config)
        except TypeError as e:  # an argument the class does not take
            raise TypeError(f"{cls.__name__}.from_config: {e}") from None

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class Accuracy(Metric):
    default_name = "accuracy"
    fn = staticmethod(_trainer._accuracy)


class BinaryAccuracy(Metric):
    default_name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = as_real(threshold, "threshold", "BinaryAccuracy")
        if not math.isfinite(self.threshold):
            raise ValueError(f"BinaryAccuracy: threshold must be finite, got {threshold!r}")
        self.fn = functools.partial(_trainer._binary_accuracy, threshold=self.threshold)
        super().__init__(name)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    default_name = "categorical_accuracy"
    fn = staticmethod(_trainer._categorical_accuracy)


class SparseCategoricalAccuracy(Metric):
    default_name, sparse = "sparse_categorical_accuracy", True
    fn = staticmethod(_trainer._categorical_accuracy)


class SparseTopKCategoricalAccuracy(Metric):
    default_name, sparse = "sparse_top_k_categorical_accuracy", True

    def __init__(self, k=5, name=None):
        if not is_int(k) or k < 1:
            raise ValueError(f"SparseTopKCategoricalAccuracy: k must be an integer >= 1, got "
                             f"{k!r}")
        self.k = int(k)
        self.fn = functools.partial(_trainer._top_k, k=self.k)
        super().__init__(name)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class MeanSquaredError(Metric):
    default_name = "mean_squared_error"
    fn = staticmethod(_trainer._mse)


class MeanAbsoluteError(Metric):
    default_name = "mean_absolute_error"
    fn = staticmethod(_trainer._mae)


CLASSES = {cls.__name__: cls for cls in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError)}


def serialize(metric):
    """Keras' serialized form of a metric object (what get takes back)."""
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def get(identifier):
    """A metric object, or one from serialize's dict {'class_name': ..., 'config': ...}."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in CLASSES:
        return CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"unknown metric {identifier!r}; known: the names "
                     f"{list(_trainer.ACCURACY + tuple(_trainer.METRICS))}, "
                     f"{sorted(CLASSES)} objects or their serialize() dicts")
