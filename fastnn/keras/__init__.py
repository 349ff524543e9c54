"""fastnn.keras: Keras' API over fastnn, laid out like Keras' own package, so that a
Keras script runs on fastnn by changing `keras` to `fastnn.keras` in its imports:

    from fastnn.keras.models import Sequential
    from fastnn.keras.layers import Dense
    from fastnn.keras.utils import to_categorical

Modules: models (Sequential, Model, load_model), layers, optimizers, losses, metrics,
callbacks, utils, saving (load_model), datasets (mnist, fashion_mnist). Images are channels-last
(N, H, W, C), as in Keras.
"""
from . import callbacks, datasets, layers, losses, metrics, models, optimizers, saving, utils
from .layers import Input
from .models import Model, Sequential

__all__ = ["callbacks", "datasets", "layers", "losses", "metrics", "models", "optimizers",
           "saving", "utils", "Input", "Model", "Sequential"]
