"""keras.losses: the loss names compile takes, and loss objects for the options
(from_logits, label_smoothing). fastnn.keras.models picks the fused fastnn loss."""
from .._core import as_flag, as_real

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "get", "NAMES"]


class Loss:
    kind = cls_name = ""

    def __init__(self, from_logits=False, label_smoothing=0.0):
        self.from_logits = as_flag(from_logits, "from_logits", type(self).__name__)
        self.label_smoothing = as_real(label_smoothing, "label_smoothing", type(self).__name__)


class CategoricalCrossentropy(Loss):
    kind, cls_name = "categorical_crossentropy", "CategoricalCrossentropy"


class SparseCategoricalCrossentropy(Loss):
    kind, cls_name = "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"

    def __init__(self, from_logits=False):
        super().__init__(from_logits)


class BinaryCrossentropy(Loss):
    kind, cls_name = "binary_crossentropy", "BinaryCrossentropy"

    def __init__(self, from_logits=False):
        super().__init__(from_logits)


class MeanSquaredError(Loss):
    kind, cls_name = "mse", "MeanSquaredError"

    def __init__(self):
        super().__init__()


NAMES = {"categorical_crossentropy": CategoricalCrossentropy,
         "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
         "binary_crossentropy": BinaryCrossentropy, "mse": MeanSquaredError,
         "mean_squared_error": MeanSquaredError}


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in NAMES:
        return NAMES[identifier]()
    raise ValueError(f"unknown loss {identifier!r}; known: {sorted(NAMES)} or a "
                     f"fastnn.keras.losses object")
