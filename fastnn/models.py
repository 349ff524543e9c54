"""Reference models for 28x28 grey images (MNIST, Fashion-MNIST), the same layers as
the PyTorch examples they are benchmarked against. Weights use PyTorch's default
initialisation, drawn from one np.random.Generator seeded by `seed`."""
import numpy as np

from .nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["mlp", "cnn"]


def mlp(seed=None):
    """Flatten, Linear(784, 64), ReLU, Linear(64, 64), ReLU, Linear(64, 10)."""
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Linear(784, 64, seed=rng), ReLU(),
                      Linear(64, 64, seed=rng), ReLU(), Linear(64, 10, seed=rng),
                      input_shape=(1, 28, 28))


def cnn(seed=None):
    """Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2),
    Flatten, Linear(1600, 128), ReLU, Linear(128, 10)."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2d(1, 32, 3, seed=rng), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, seed=rng), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(1600, 128, seed=rng), ReLU(), Linear(128, 10, seed=rng),
                      input_shape=(1, 28, 28))
