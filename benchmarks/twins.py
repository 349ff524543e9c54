"""One architecture in three libraries: the PyTorch and Keras twins of a fastnn
Sequential, translated layer by layer from its layer list (each layer's config()) and
given its weights, so the benchmarks compare the same network by construction
(benchmarks/test_twins.py checks parameter counts and outputs).

PyTorch takes the NCHW layers and state_dict as they are. Keras gets the layout it runs
fastest on the CPU, channels-last (NHWC), and is written as Keras users write it: an
activation right after a Conv2d or Linear becomes that layer's `activation=`, padding
that keeps the size is `padding="same"` (other padding: ZeroPadding2D, then "valid").
Weights are transposed to Keras' layouts (conv kernel (kh, kw, in, out), dense kernel
(in, out)), and the Linear after a Flatten of a (C, H, W) map gets its rows permuted
from PyTorch's (C, H, W) order to Keras' (H, W, C) one, so both twins compute the same
function as the fastnn model."""
import numpy as np

ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def inputs(model, samples, seed=0):
    """`samples` random images of the model's input shape (NCHW float32 in [0, 1)) and
    class labels: speed does not depend on pixel values."""
    rng = np.random.default_rng(seed)
    x = rng.random((samples,) + tuple(model.input_shape), dtype=np.float32)
    return x, rng.integers(0, 10, samples)


def nhwc(x):
    """An NCHW batch in Keras' channels-last layout (C-contiguous)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def torch_twin(model, classes=None):
    """A torch.nn.Sequential of torch's classes of the fastnn model's layers, built from
    each layer's config() (torch's argument names: groups, padding_mode, ceil_mode,
    count_include_pad, ... carry over), with its state_dict (running statistics too).
    `classes`: torch classes for layer types torch.nn lacks (models.BasicBlock)."""
    import collections

    import torch
    layers = []
    for spec in model.config()["layers"]:
        config = dict(spec["config"])
        if spec["type"] in ("Softmax", "LogSoftmax"):  # torch's default dim is a guess
            config.setdefault("dim", -1)
        cls = (classes or {}).get(spec["type"]) or getattr(torch.nn, spec["type"])
        layers.append(cls(**config))
    names = model.config().get("names")
    twin = (torch.nn.Sequential(collections.OrderedDict(zip(names, layers))) if names
            else torch.nn.Sequential(*layers))
    twin.load_state_dict({k: torch.from_numpy(np.array(v))
                          for k, v in model.state_dict().items()})
    return twin


def keras_twin(model, keras):
    """A keras.Sequential (NHWC input) with the fastnn model's layers and weights."""
    L = keras.layers
    c, h, w = model.input_shape
    layers, weights = [keras.Input((h, w, c))], []
    shape = (1,) + tuple(model.input_shape)  # the fastnn (NCHW) shape before each layer
    flattened = None  # (C, H, W) of the map the last Flatten saw
    specs = model.config()["layers"]
    skip = False
    for i, (layer, spec) in enumerate(zip(model.layers, specs)):
        kind, cfg = spec["type"], spec["config"]
        after = specs[i + 1]["type"] if i + 1 < len(specs) else None
        activation = ACTIVATIONS.get(after) if kind in ("Conv2d", "Linear") else None
        if skip:  # an activation folded into the layer before it
            skip = False
        elif kind == "Conv2d":
            k, pad, stride, dil = cfg["kernel_size"], cfg["padding"], cfg["stride"], cfg["dilation"]
            same = stride == [1, 1] and all(d * (n - 1) == 2 * p for d, n, p in zip(dil, k, pad))
            if any(pad) and not same:
                layers.append(L.ZeroPadding2D(tuple(pad)))
            layers.append(L.Conv2D(cfg["out_channels"], tuple(k), strides=tuple(stride),
                                   padding="same" if same and any(pad) else "valid",
                                   dilation_rate=tuple(dil), use_bias=cfg["bias"],
                                   activation=activation))
            weights.append((layers[-1], [layer.weight.data.transpose(2, 3, 1, 0)]))
        elif kind == "Linear":
            kernel = layer.weight.data.T
            if flattened is not None and shape[1] == int(np.prod(flattened)):
                ch, fh, fw = flattened
                kernel = (layer.weight.data.reshape(-1, ch, fh, fw).transpose(2, 3, 1, 0)
                          .reshape(shape[1], -1))
            layers.append(L.Dense(cfg["out_features"], use_bias=cfg["bias"],
                                  activation=activation))
            weights.append((layers[-1], [kernel]))
        elif kind in ("MaxPool2d", "AvgPool2d"):
            if any(layer.padding):  # (the layer's tuples: its config keeps ints as given)
                raise NotImplementedError(f"keras_twin: {kind} with padding {layer.padding}")
            cls = L.MaxPooling2D if kind == "MaxPool2d" else L.AveragePooling2D
            layers.append(cls(layer.kernel_size, strides=layer.stride))
        elif kind == "Flatten":
            flattened = shape[1:]
            layers.append(L.Flatten())
        elif kind == "Dropout":
            layers.append(L.Dropout(cfg["p"]))
        elif kind == "LeakyReLU":
            layers.append(L.LeakyReLU(negative_slope=cfg["negative_slope"]))
        elif kind == "Softmax" and len(shape) == 2:
            layers.append(L.Softmax(axis=-1))
        elif kind in ACTIVATIONS:
            layers.append(L.Activation(ACTIVATIONS[kind]))
        else:
            raise NotImplementedError(f"keras_twin: {kind} on input of shape {shape}")
        skip = activation is not None
        if kind in ("Conv2d", "Linear") and cfg["bias"]:
            weights[-1][1].append(layer.bias.data)
        shape = layer.output_shape(shape)
    twin = keras.Sequential(layers)
    for keras_layer, arrays in weights:
        keras_layer.set_weights([np.ascontiguousarray(a) for a in arrays])
    return twin
