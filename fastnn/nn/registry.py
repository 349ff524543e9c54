"""The classes a saved architecture may name, and spec/build between a module and its
JSON description {"type": class name, "config": constructor arguments}."""
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .container import Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .model import Model
from .module import Module
from .linear import Linear
from .merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .shape import Flatten, Identity

__all__ = ["LAYERS", "register", "spec", "build"]

LAYERS = {cls.__name__: cls for cls in (
    Linear, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, ReLU, LeakyReLU,
    Sigmoid, Tanh, Softmax, LogSoftmax, GELU, SiLU, ELU, Flatten, Identity, Dropout,
    BatchNorm1d, BatchNorm2d, LayerNorm, Add, Concatenate, Subtract, Multiply, Average, Maximum,
    Minimum, Sequential, Model)}


def _type_name(cls):
    """The name a saved architecture gives cls: its own `saved_type` if it sets one
    (fastnn.keras' Model and Sequential, named as fastnn.nn's are), else its name."""
    return cls.__dict__.get("saved_type", cls.__name__)


def register(cls):
    """Class decorator: let fastnn.save/load write and rebuild modules of this class (a
    Module subclass whose `config()` returns its constructor's keyword arguments). A name
    taken by another class is refused: a user class named Linear replaced fastnn's in every
    file saved or loaded after (saved with no architecture, or loaded as the other class);
    the same class defined again (a notebook cell run twice) replaces its old definition."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register: expected a fastnn.nn.Module subclass, got {cls!r}")
    name, taken = _type_name(cls), LAYERS.get(_type_name(cls), cls)
    if (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"register: the name {name!r} is taken by {taken.__module__}."
                         f"{taken.__qualname__} (saved architectures name classes by name): "
                         f"rename {cls.__qualname__} or give it a saved_type")
    LAYERS[name] = cls
    return cls


def spec(module):
    name = _type_name(type(module))
    if LAYERS.get(name) is not type(module):
        raise TypeError(f"cannot save the architecture of a {name}: its class is not "
                        f"registered (decorate it with fastnn.nn.register and give it a "
                        f"config()), so save its weights only: fastnn.save(model, path) "
                        f"then fastnn.load(path, model={name}(...))")
    return {"type": name, "config": module.config()}


def build(description):
    if description["type"].startswith("keras."):  # registered when fastnn.keras is imported
        from .. import keras  # noqa: F401
    return LAYERS[description["type"]].from_config(description["config"])
