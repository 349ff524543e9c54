"""keras.datasets.mnist."""


def load_data():
    """((x_train, y_train), (x_test, y_test)): uint8 (N, 28, 28) images and uint8 labels
    (see fastnn.keras.datasets for where they come from)."""
    from . import _load_data
    return _load_data("mnist")
