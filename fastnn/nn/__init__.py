"""Layers and models on float32 NumPy arrays, with PyTorch's names, arguments, weight
layouts (Linear weight (out, in), Conv2d weight (out, in, kh, kw), NCHW activations) and
state_dict keys, so a state dict moves between fastnn and torch unchanged.

One family per file:
    module.py         Parameter, Module (sub-modules, parameters, buffers, state_dict)
    graph.py          Input, symbolic values, tracing, the graph engine (plan, forward, backward)
    model.py          Model: functional (Keras) or subclassed (PyTorch)
    container.py      Sequential, ModuleList, ModuleDict
    linear.py         Linear (and the weighted-layer base Conv2d shares)
    conv.py           Conv2d, ConvTranspose2d, and Conv2d fused with a MaxPool2d and/or a ReLU
    pooling.py        MaxPool2d, AvgPool2d, AdaptiveAvgPool2d
    activation.py     ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, ELU, Softmax, LogSoftmax
    normalization.py  BatchNorm1d, BatchNorm2d, LayerNorm
    merge.py          Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate
    dropout.py        Dropout
    shape.py          Flatten, Identity
    registry.py       the classes saved architectures may name

Memory: each layer keeps its outputs and gradients in buffers it owns and reuses
them while the batch shape stays the same, so a steady-state training step
allocates nothing. The array a forward or backward call returns is such a buffer:
the next call with the same shape overwrites it (copy it to keep it).

Gradients, as torch's: a trainable Parameter's `.grad` is None until a backward reaches
it and after `zero_grad()`; `backward` adds to a `.grad` already there (two calls
accumulate), and optimizers skip a parameter whose `.grad` is None.

The explicit training loop::

    model = fastnn.models.mlp(seed=0)
    loss_fn = fastnn.losses.CrossEntropyLoss()
    opt = fastnn.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in fastnn.datasets.iterate_batches(x, y, 128, seed=0):
        opt.zero_grad()
        out = model(xb)
        loss = loss_fn(out, yb)
        model.backward(loss_fn.backward())
        opt.step()
"""
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d, _FusedConv  # noqa: F401 (_FusedConv: for tests)
from .dropout import Dropout
from .graph import Input, TracingError, Value
from .model import Model
from .linear import Linear
from .merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .module import Module, Parameter, StateDictError
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .registry import LAYERS, register
from .shape import Flatten, Identity

__all__ = ["Parameter", "Module", "StateDictError", "Input", "Value", "Model", "TracingError", "Sequential",
           "ModuleList", "ModuleDict",
           "Linear", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "GELU", "SiLU", "ELU",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Add", "Subtract", "Multiply", "Average",
           "Maximum", "Minimum", "Concatenate", "Dropout", "Flatten", "Identity", "register",
           "LAYERS"]
