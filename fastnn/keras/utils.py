"""keras.utils: to_categorical, set_random_seed."""
import random

import numpy as np

from .._core import as_ndarray, as_rng, is_int
from . import layers as _layers

__all__ = ["to_categorical", "set_random_seed"]


def to_categorical(x, num_classes=None):
    """One-hot float32 rows for integer class labels (a trailing axis of size 1 is
    dropped, as Keras does); num_classes defaults to max(x) + 1."""
    x = as_ndarray(x, "x", "to_categorical")
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and not (
            np.isfinite(x).all() and np.array_equal(x, np.round(x)))):  # inf: garbage ints
        raise ValueError(f"to_categorical: x must hold integer class labels, got {x.dtype}")
    x = x.astype(np.int64)
    shape = x.shape[:-1] if x.ndim > 1 and x.shape[-1] == 1 else x.shape
    x = x.reshape(-1)
    if num_classes is None:
        if x.size == 0:
            raise ValueError("to_categorical: x is empty; pass num_classes")
        num_classes = int(x.max()) + 1
    if not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got "
                         f"{num_classes!r}")
    num_classes = int(num_classes)
    if max(x.size, 1) * num_classes > 1 << 34:  # (0, 2**63) is beyond NumPy's shapes too
        raise MemoryError(f"to_categorical: {x.size} labels x {num_classes} classes is too "
                          f"large")
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in [0, {num_classes}), got "
                         f"[{x.min()}, {x.max()}]")
    out = np.zeros((x.size, num_classes), np.float32)
    out[np.arange(x.size), x] = 1.0
    return out.reshape(shape + (num_classes,))


def set_random_seed(seed):
    """Seed Python's, NumPy's and fastnn.keras' generators (weight initialisation,
    dropout, shuffling), as keras.utils.set_random_seed does."""
    # checked before any generator is seeded; NumPy's legacy one takes 32 bits
    if not is_int(seed) or not 0 <= seed < 2**32:
        raise (ValueError if is_int(seed) else TypeError)(
            f"set_random_seed: seed must be an int in [0, 2**32), got {seed!r}")
    rng = as_rng(seed, "set_random_seed")
    random.seed(seed)
    np.random.seed(seed)
    _layers._seeds[0] = rng
