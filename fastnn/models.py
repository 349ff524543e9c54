"""Reference models for 28x28 grey images (MNIST, Fashion-MNIST), the same layers as
the PyTorch examples they are benchmarked against. Weights are He-normal (N(0, 2/fan_in),
zero biases: the init for ReLU nets), drawn from one np.random.Generator seeded by
`seed`. In PyTorch runs of the accuracy tests' recipes (seeds 0-2) it scored about 1 point
above PyTorch's default init (kaiming-uniform, a=sqrt(5)) for the MLPs and the
Fashion-MNIST CNN, and the same for the MNIST CNN."""
import numpy as np

from .nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["mlp", "cnn"]


def mlp(seed=None):
    """Flatten, Linear(784, 64), ReLU, Linear(64, 64), ReLU, Linear(64, 10)."""
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Linear(784, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


def cnn(seed=None):
    """Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2),
    Flatten, Linear(1600, 128), ReLU, Linear(128, 10)."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2d(1, 32, 3, seed=rng, init="he"), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, seed=rng, init="he"), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(1600, 128, seed=rng, init="he"), ReLU(),
                      Linear(128, 10, seed=rng, init="he"), input_shape=(1, 28, 28))
