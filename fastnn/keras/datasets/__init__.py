"""keras.datasets: mnist and fashion_mnist, `load_data()` as in Keras."""
import warnings

from ... import datasets as _datasets
from . import fashion_mnist, mnist  # noqa: F401

__all__ = ["mnist", "fashion_mnist"]


def _load_data(name):
    """((x_train, y_train), (x_test, y_test)) as Keras returns them: uint8 images
    (N, 28, 28) and uint8 labels (N,), found by fastnn.datasets (FASTNN_DATA, the user
    cache, /usr/share/datasets, then a checked download). When only MNIST's test split is
    available locally, its first 8,000 images are returned as the training split and the
    last 2,000 as the test split, with a warning."""
    train, test, note = _datasets.load_splits(name, loader=_datasets.load_raw)
    if note:
        warnings.warn(f"fastnn.keras.datasets.mnist.load_data: {note}", stacklevel=3)
    return train, test
