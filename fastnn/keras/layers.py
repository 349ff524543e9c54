"""Keras' layers (keras.layers names and arguments) over fastnn's layers and kernels.

A Keras layer is a fastnn Module built when it is first called on a symbolic tensor
(a KerasTensor from `Input`, or inside Sequential): it then knows its input shape and
creates the fastnn layers it runs (Dense: a Linear and its activation; Conv2D: a Conv2d
and its activation; ...), which are its children, so state_dict, optimizers and the
graph rewrites (Conv2d fused with its MaxPool2d) see them as usual.

Layout: Keras images are channels-last (N, H, W, C); fastnn's kernels are NCHW. The first
spatial layer on a channels-last tensor transposes it to NCHW once (a `Transpose`
child), and the tensors after it stay NCHW inside while Keras' shapes (`.shape`,
summary) stay channels-last. Flatten on such a tensor transposes back first, so the
flattened order, and so the weights of a Dense after it, are Keras' own.

Weights: Keras' default initialisers (glorot_uniform kernels, zero biases), seeded from
`fastnn.keras.utils.set_random_seed`. `get_weights()` / `set_weights()` use Keras'
layouts (Dense kernel (in, out), Conv2D kernel (kh, kw, in, out), BatchNormalization
[gamma, beta, moving_mean, moving_variance]), so weights move from a real Keras model.
"""
import contextlib
import math
import re

import numpy as np

from .. import nn
from .._core import as_flag, as_real, as_sample_shape, as_slope, is_int
from ..nn import graph as _graph
from ..nn.module import Module

__all__ = ["Input", "KerasTensor", "Variable", "Layer", "Dense", "Conv2D", "MaxPooling2D",
           "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "Dropout",
           "BatchNormalization", "Activation", "Add", "Subtract", "Multiply", "Average",
           "Maximum", "Minimum", "Concatenate", "Identity", "ReLU", "LeakyReLU", "Softmax",
           "ZeroPadding2D", "Reshape", "Rescaling", "Transpose", "Pad2d", "ReshapeTo",
           "ScaleShift"]

_seeds = [np.random.default_rng()]  # utils.set_random_seed replaces it


def _next_seed():
    return int(_seeds[0].integers(1 << 62))


def _moved_back(layer, grad_out, need_input_grad, view):
    """The backward of a layer that only moves elements (a transpose, a padding): the
    input gradient is view(grad_out, the input's shape), copied into a layer buffer."""
    shape = layer._forwarded("_shape")
    layer._grad(grad_out, layer.output_shape(shape))
    if not need_input_grad:
        return None
    dx = layer._buffer("dx", shape)
    np.copyto(dx, view(grad_out, shape))
    return dx


@nn.register
class Transpose(Module):
    """Permute the axes of the batch (axes[0] must be 0): NHWC <-> NCHW between Keras'
    layout and fastnn's kernels. A copy into a layer-owned buffer."""

    def __init__(self, axes):
        axes = tuple(int(a) for a in axes)
        if sorted(axes) != list(range(len(axes))) or axes[0] != 0:
            raise ValueError(f"Transpose: axes must permute 0..{len(axes) - 1} keeping the "
                             f"batch axis 0 first, got {axes!r}")
        self.axes, self._inverse = axes, tuple(int(a) for a in np.argsort(axes))

    def output_shape(self, shape):
        self._expect(shape, f"{len(self.axes)}-D", len(shape) == len(self.axes))
        return tuple(shape[a] for a in self.axes)

    def forward(self, x):
        self._shape = self._input(x).shape  # else the copy below casts any dtype
        y = self._buffer("y", self.output_shape(x.shape))
        np.copyto(y, x.transpose(self.axes))
        return y

    def backward(self, grad_out, need_input_grad=True):
        return _moved_back(self, grad_out, need_input_grad,
                           lambda g, shape: g.transpose(self._inverse))

    def config(self):
        return {"axes": list(self.axes)}


TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


@nn.register
class Pad2d(Module):
    """Pad an NCHW batch's rows and columns by (top, bottom, left, right) with `value`:
    TensorFlow's 'same' padding where it puts one more at the bottom/right, which the
    symmetric padding of fastnn's kernels cannot. A copy into a layer-owned buffer."""

    def __init__(self, padding, value=0.0):
        padding = tuple(padding)
        if len(padding) != 4 or not all(isinstance(p, (int, np.integer)) and
                                        not isinstance(p, bool) and p >= 0 for p in padding):
            raise ValueError(f"Pad2d: padding must be 4 non-negative ints (top, bottom, left, "
                             f"right), got {padding!r}")
        self.padding, self.value = tuple(int(p) for p in padding), as_real(value, "value",
                                                                           "Pad2d")

    def output_shape(self, shape):
        self._expect(shape, "(N, C, H, W)", len(shape) == 4)
        top, bottom, left, right = self.padding
        return (shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right)

    def _inner(self, shape):
        top, _, left, _ = self.padding
        return (slice(None), slice(None), slice(top, top + shape[2]),
                slice(left, left + shape[3]))

    def forward(self, x):
        self._shape = self._input(x).shape
        y = self._buffer("y", self.output_shape(x.shape))
        y.fill(self.value)
        y[self._inner(x.shape)] = x
        return y

    def backward(self, grad_out, need_input_grad=True):
        return _moved_back(self, grad_out, need_input_grad,
                           lambda g, shape: g[self._inner(shape)])

    def config(self):
        return {"padding": list(self.padding), "value": self.value}


def _untraceable(what):
    return _graph.TracingError(
        f"cannot trace {what} on a KerasTensor: a fastnn.keras model is a graph of layers "
        f"recorded once from symbolic tensors (a subclass's call runs once, when the "
        f"model is built), so Python control flow on tensor values, NumPy functions and "
        f"arithmetic but + - * between tensors of one shape cannot be recorded; use "
        f"layers (layers.Rescaling, layers.Average, ...)")


class _Training:
    """The `training` argument a subclassed model's call is traced with: passed on to
    layers (self.dropout(x, training=training)), which follow the model's mode (training
    in fit, inference in evaluate and predict); a Python branch on it cannot be
    recorded."""

    def __bool__(self):
        raise _graph.TracingError(
            "cannot branch on `training` in call: fastnn.keras runs call once to record "
            "the model's graph, whose layers then follow the model's mode (training in "
            "fit, inference in evaluate/predict); pass it on to the layers instead "
            "(self.dropout(x, training=training))")

    def __repr__(self):
        return "<training: the mode fit/evaluate/predict set>"


TRACED_TRAINING = _Training()


def _check_training(training, what):
    """training=None or the traced call's: a per-call mode the graph cannot keep is a
    TypeError naming `what`."""
    if training is not None and training is not TRACED_TRAINING:
        raise TypeError(f"{what}: training={training!r} per call is not supported by "
                        f"fastnn.keras: the layers follow the model's mode (training in fit, "
                        f"inference in evaluate/predict; a layer with trainable=False, e.g. "
                        f"a frozen BatchNormalization, in inference always)")


class KerasTensor(_graph.Symbolic):
    """A symbolic tensor: a fastnn graph Value and whether it holds a channels-last
    Keras tensor in NCHW order (`nchw`). `shape` is Keras' (batch None first); `name`,
    an Input's (the key of its array when a model takes a dict). a + b, a - b and a * b
    of tensors of one shape are the merge layers Add, Subtract and Multiply; what the
    graph cannot record (a truth test, other arithmetic, NumPy) raises a TracingError
    saying so."""

    __slots__ = ("value", "nchw", "name")
    _untraceable = staticmethod(_untraceable)
    _arithmetic = "an arithmetic operator other than + - * between tensors"

    def __init__(self, value, nchw=False, name=None):
        self.value, self.nchw, self.name = value, nchw, name

    @property
    def shape(self):
        shape = self.value.shape
        return tuple(shape[a] for a in TO_NHWC) if self.nchw else shape

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}>"

    def _merged(self, other, layer, op):
        """self op other as the merge layer Keras' operator would compute (tensors of one
        shape; a number or a broadcast cannot be recorded)."""
        if not isinstance(other, KerasTensor):
            raise _untraceable(f"{op} with a {type(other).__name__}")
        return layer()([self, other])

    def __add__(self, other):
        return self._merged(other, Add, "+")

    def __sub__(self, other):
        return self._merged(other, Subtract, "-")

    def __mul__(self, other):
        return self._merged(other, Multiply, "*")


def Input(shape=None, batch_size=None, name=None, dtype=None):
    """A symbolic input of per-sample `shape` (channels-last for images, e.g. (28, 28, 1));
    `name` (default input_layer, input_layer_1, ... as Keras') keys its array when a model
    with several inputs is given a dict."""
    if shape is None:
        raise ValueError("Input: pass shape=(...) (per sample, without the batch dimension)")
    if dtype not in (None, "float32", np.float32):  # else float32 silently
        raise TypeError(f"Input: fastnn.keras computes in float32 only, got dtype={dtype!r}")
    if batch_size is not None:  # else any batch size silently
        raise TypeError("Input: a fixed batch_size is not supported by fastnn.keras (the "
                        "batch dimension is always None)")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"Input: name must be a non-empty string, got {name!r}")
    return KerasTensor(_graph.Input(shape), name=name or _auto_name("input_layer"))


_ACTIVATIONS = {"linear": None, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
                "softmax": lambda: nn.Softmax(-1), "leaky_relu": lambda: nn.LeakyReLU(0.2),
                "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "elu": nn.ELU}


def _activation(name, layer):
    if name is None:
        return None
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(f"{layer}: unknown activation {name!r}; known: "
                         f"{sorted(_ACTIVATIONS)} or None")
    make = _ACTIVATIONS[name]
    return None if make is None else make()


# Keras' initializer names: (distribution, variance scale, fans it divides by)
_VARIANCE_SCALING = {
    "glorot_uniform": ("uniform", 1.0, "avg"), "glorot_normal": ("normal", 1.0, "avg"),
    "he_uniform": ("uniform", 2.0, "in"), "he_normal": ("normal", 2.0, "in"),
    "lecun_uniform": ("uniform", 1.0, "in"), "lecun_normal": ("normal", 1.0, "in")}
INITIALIZERS = sorted(_VARIANCE_SCALING) + ["ones", "random_normal", "random_uniform",
                                            "zeros"]


def _initializer(name, what, layer):
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"{layer}: unknown {what} {name!r}; known: {INITIALIZERS}")
    return name


def _initial(name, shape, fan_in, fan_out, rng):
    """Values of Keras' initializer `name` for a weight of `shape` (fans as Keras counts
    them): VarianceScaling's normal is truncated at two standard deviations."""
    if name in ("zeros", "ones"):
        return np.full(shape, float(name == "ones"), np.float32)
    if name == "random_uniform":
        return rng.uniform(-0.05, 0.05, shape).astype(np.float32)
    if name == "random_normal":
        return rng.normal(0.0, 0.05, shape).astype(np.float32)
    dist, scale, mode = _VARIANCE_SCALING[name]
    variance = scale / (fan_in if mode == "in" else (fan_in + fan_out) / 2)
    if dist == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    std = math.sqrt(variance) / 0.87962566103423978  # the truncated normal's own std
    w = rng.normal(0.0, std, shape)
    while True:
        out = np.abs(w) > 2 * std
        if not out.any():
            return w.astype(np.float32)
        w[out] = rng.normal(0.0, std, int(out.sum()))


class Variable:
    """Keras' weight variable: one of a layer's weights (`layer.weights[k]`, `layer.kernel`)
    in Keras' layout, read and written through get_weights/set_weights, so assign()
    changes the model. np.asarray(v) and v.numpy() give a copy; name is Keras' ('kernel',
    'moving_mean'), path '<layer>/<name>'; trainable follows the layer, as in Keras (a
    BatchNormalization's moving statistics never are)."""

    NON_TRAINABLE = ("moving_mean", "moving_variance")

    def __init__(self, layer, index, name):
        self._layer, self._index, self.name = layer, index, name

    @property
    def path(self):
        return f"{self._layer.name}/{self.name}"

    @property
    def trainable(self):
        return self._layer.trainable and self.name not in self.NON_TRAINABLE

    def numpy(self):
        return self._layer.get_weights()[self._index]

    value = property(numpy)

    def __array__(self, dtype=None, copy=None):
        return self.numpy() if dtype is None else self.numpy().astype(dtype)

    @property
    def shape(self):
        return self.numpy().shape

    @property
    def ndim(self):
        return len(self.shape)

    dtype = "float32"

    def assign(self, value):
        """Set the weight to value (of its shape, real numbers), as Keras' assign."""
        weights = self._layer.get_weights()
        weights[self._index] = value
        self._layer._set(self._layer._checked(weights, f"{self.name}.assign"))
        return self.numpy()

    def assign_add(self, delta):
        return self.assign(self.numpy() + np.asarray(delta, np.float32))

    def assign_sub(self, delta):
        return self.assign(self.numpy() - np.asarray(delta, np.float32))

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32, " \
               f"value={self.numpy()}>"


def _variable(name):
    """A layer's property giving its weight `name` (Dense.kernel, ...): None when the
    layer has no such weight (bias with use_bias=False), as Keras."""
    def get(self):
        if not self.built:
            raise AttributeError(f"{self.name}: you must build the layer (call it on an "
                                 f"Input, or build its model) before accessing `{name}`")
        return next((v for v in self.weights if v.name == name), None)
    return property(get, doc=f"Keras' layer.{name}, a Variable")


class FromConfig:
    """Keras' from_config: a new object (unbuilt, without state) of the arguments its
    get_config gave (layers and optimizers)."""

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict (of "
                            f"get_config()), got {type(config).__name__}")
        return cls(**config)


class HasWeights:
    """Keras' weights, trainable_weights and non_trainable_weights (lists of Variables,
    in get_weights' order) of a layer or model (`weights` defined by each)."""

    @property
    def trainable_weights(self):
        return [v for v in self.weights if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [v for v in self.weights if not v.trainable] if self.trainable else \
            self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    @property
    def variables(self):
        return self.weights


class _Initialized:
    """kernel_initializer / bias_initializer of Dense and Conv2D: the built layer's
    weights redrawn when they are not Keras' defaults (glorot_uniform, zeros)."""

    def _initializers(self, kernel_initializer, bias_initializer):
        kind = type(self).__name__
        self.kernel_initializer = _initializer(kernel_initializer, "kernel_initializer", kind)
        self.bias_initializer = _initializer(bias_initializer, "bias_initializer", kind)

    def _initialize(self, layer, fan_in, fan_out):
        rng = np.random.default_rng(_next_seed())
        if self.kernel_initializer != "glorot_uniform":
            np.copyto(layer.weight.data, _initial(self.kernel_initializer,
                                                  layer.weight.data.shape, fan_in, fan_out, rng))
        if self.use_bias and self.bias_initializer != "zeros":
            n = len(layer.bias.data)  # Keras' fans of a 1-D weight: its length, both
            np.copyto(layer.bias.data, _initial(self.bias_initializer, (n,), n, n, rng))

    def _initializer_config(self):
        return {"kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}

    kernel, bias = _variable("kernel"), _variable("bias")

    @property
    def _weight_names(self):
        return ("kernel", "bias")[:1 + self.use_bias]


def _pair(v, what, layer):
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool)
                                 and p >= 1 for p in pair):
        raise ValueError(f"{layer}: {what} must be a positive int or a pair of them, got {v!r}")
    return int(pair[0]), int(pair[1])


def _same_padding(size, k, s, dilation, value):
    """TensorFlow's 'same' padding: ([], (top, left)) when it is symmetric, else
    ([a Pad2d with `value`], (0, 0)) (TensorFlow puts the odd row/column at the end)."""
    (top, bottom), (left, right) = [
        (total // 2, total - total // 2) for total in
        (max((math.ceil(n / ss) - 1) * ss + d * (kk - 1) + 1 - n, 0)
         for n, kk, ss, d in zip(size, k, s, dilation))]
    if (top, left) == (bottom, right):
        return [], (top, left)
    return [Pad2d((top, bottom, left, right), value)], (0, 0)


_counters = {}


def _auto_name(base):
    """Keras' default name: base, then base_1, base_2, ..."""
    count = _counters[base] = _counters.get(base, -1) + 1
    return base if count == 0 else f"{base}_{count}"


class Layer(FromConfig, HasWeights, Module):
    """Base of the Keras layers: built on the first call on a KerasTensor, when `_build`
    creates its fastnn children; then runs them in order (`_chain`)."""

    def __init__(self, name=None, input_shape=None, input_dim=None, trainable=True, **unknown):
        kind = type(self).__name__
        if unknown:
            raise TypeError(f"{kind}: unsupported argument(s) {sorted(unknown)}")
        if name is None:
            name = _auto_name(re.sub("([a-z])([A-Z])", r"\1_\2",
                                     re.sub("(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower())
        if not isinstance(name, str) or not name or "/" in name:  # as Keras 3 (name=3
            # failed unnamed in a Cython signature, "Argument 'fn' has incorrect type")
            raise ValueError(f"{kind}: name must be a non-empty string without '/', got "
                             f"{name!r}")
        self.name = name
        arg = "input_shape"
        if input_dim is not None:
            input_shape, arg = (input_dim,), "input_dim"
        self.input_shape_arg = None if input_shape is None else as_sample_shape(
            input_shape, arg, kind)
        self._chain = None
        self._inbound = self._outbound = None  # the KerasTensors of its call
        self.trainable = trainable

    @property
    def built(self):
        return self._chain is not None

    @property
    def trainable(self):
        """Keras' layer.trainable: False freezes the layer's weights (fit leaves them as
        they are; a BatchNormalization also runs in inference mode, as in Keras 3)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = as_flag(value, "trainable", self.name)
        if self.built:
            self._freeze()

    def _freeze(self):
        """Apply `trainable` to the built layer."""
        for p in self.parameters():
            p.requires_grad = self._trainable

    def _wants_nchw(self, shape):
        """True: the layer runs on NCHW images; False: on Keras' own order; None: either."""
        return False

    def _keras_inputs(self, x):
        """x as the list of KerasTensors of a call building a graph, or None when the layer
        is called on arrays (or on fastnn's symbolic values, when a model is replayed)."""
        if isinstance(x, (list, tuple, dict)) and any(
                isinstance(v, KerasTensor) for v in (x.values() if isinstance(x, dict) else x)):
            # was "call the layer on a Keras Input first", of a layer called on two Inputs
            raise TypeError(f"{self.name}: a Keras layer takes one input, got a "
                            f"{type(x).__name__} of {len(x)}")
        return [x] if isinstance(x, KerasTensor) else None

    def __call__(self, x, training=None):
        _check_training(training, self.name)
        tensors = self._keras_inputs(x)
        if tensors is None:
            if self._chain is None:
                raise RuntimeError(f"{self.name}: call the layer on a Keras Input first so it "
                                   f"is built for its input shape")
            return super().__call__(x)
        with self._named_errors():
            shapes = [t.shape for t in tensors]
            if self._chain is None:
                self._build_for(tensors)
                self._freeze()
                self._in_shapes = shapes
            elif shapes != self._in_shapes:  # its padding, its weights: built for those
                raise ValueError(f"a shared layer is called on tensors of the shape(s) of "
                                 f"its first call, {self._in_shapes}; got {shapes}")
            if self._in_nchw is not None:  # a shared layer called on another layout
                tensors = [_as_layout(t, self._in_nchw) for t in tensors]
            values = [t.value for t in tensors]
            value = Module.__call__(self, values if self._merges else values[0])
        nchw = tensors[0].nchw if self._out_nchw is None else self._out_nchw
        out = KerasTensor(value, nchw)
        if self._outbound is None:  # a shared layer's are those of its first call
            self._inbound, self._outbound = x, out
        return out

    _merges = False  # takes a list of tensors

    @contextlib.contextmanager
    def _named_errors(self):
        """Errors building or calling the layer, named by the Keras layer."""
        try:
            yield
        except (ValueError, TypeError, MemoryError) as e:
            kind = type(self).__name__
            msg = str(e) if self.name in str(e) else f"{self.name} ({kind}): {e}"
            raise type(e)(msg) from None

    def _build_for(self, tensors):
        """Build the chain for the first call's input; a Transpose first when the layer
        runs on the other layout than its input's. Sets the layout its chain takes
        (_in_nchw) and gives (_out_nchw), None: either (the input's)."""
        x, = tensors
        shape = x.shape[1:]
        wants = self._wants_nchw(shape)
        transpose = None
        if wants and not x.nchw:
            self._image_shape(shape)
            transpose = self.transpose = Transpose(TO_NCHW)
        elif wants is False and x.nchw:
            transpose = self.transpose = Transpose(TO_NHWC)
        chain, nchw = self._build(shape)
        self._chain = ([transpose] if transpose else []) + chain
        self._in_nchw = None if wants is None else x.nchw
        self._out_nchw = None if wants is None else bool(nchw)

    def forward(self, x):
        for module in self._chain:
            x = module(x)
        return x

    def config(self):
        """The Keras constructor arguments (what Model.save writes for the layer)."""
        return {"name": self.name, "trainable": self._trainable}

    def get_config(self):
        """Keras' get_config: the constructor arguments, which from_config takes."""
        return self.config()

    _weight_names = ()  # Keras' names of get_weights' arrays

    @property
    def weights(self):
        """Keras' layer.weights: Variables in get_weights' order (none until built)."""
        if not self.built:
            return []
        if "_variables" not in self.__dict__:
            self.__dict__["_variables"] = [Variable(self, k, name) for k, name in
                                           enumerate(self._weight_names)]
        return list(self.__dict__["_variables"])

    def _build(self, shape):
        """Create the fastnn modules (as attributes) to run on an input of Keras shape
        `shape` (per sample); return them in order and whether the output is NCHW."""
        raise NotImplementedError

    def _with_activation(self, modules, name):
        act = _activation(name, type(self).__name__)
        if act is None:
            return modules
        self.activation = act
        return modules + [act]

    def _image_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"{self.name} ({type(self).__name__}) expects images (N, H, W, C), "
                             f"got input of shape {(None,) + tuple(shape)}")
        return shape

    @property
    def output_shape_keras(self):
        return None if self._outbound is None else self._outbound.shape

    def _tensor(self, which, tensor):
        if tensor is None:  # as Keras: no tensor before the layer is called
            raise AttributeError(f"Layer {self.name} has never been called and thus has no "
                                 f"defined {which}")
        return tensor

    @property
    def input(self):
        """The KerasTensor the layer was called on (Keras' layer.input)."""
        return self._tensor("input", self._inbound)

    @property
    def output(self):
        """The KerasTensor the layer returned (Keras' layer.output)."""
        return self._tensor("output", self._outbound)

    def count_params(self):
        """Keras' count: every weight, the non-trainable ones (moving statistics) too."""
        return sum(w.size for w in self.get_weights())

    def get_weights(self):
        return []

    def set_weights(self, weights):
        self._set(self._checked(weights))

    def _checked(self, weights, what="set_weights"):
        """weights as arrays of this layer's Keras shapes, or an error naming the one that
        does not fit (before any is copied)."""
        mine = self.get_weights()
        what = f"{self.name}.{what}"
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"{what}: weights must be a list of arrays, got "
                            f"{type(weights).__name__}")
        if len(weights) != len(mine):
            raise ValueError(f"{what}: expected {len(mine)} arrays, got {len(weights)}")
        arrays = []
        for k, (w, m) in enumerate(zip(weights, mine)):
            try:
                a = np.asarray(w)
            except ValueError:  # a ragged list
                a = np.asarray(w, dtype=object)
            if a.dtype.kind not in "biuf":  # else NumPy's unnamed cast error, or a lost part
                raise TypeError(f"{what}: weight {k} has dtype {a.dtype}, expected real "
                                f"numbers")
            if a.shape != m.shape:
                raise ValueError(f"{what}: weight {k} has shape {a.shape}, expected "
                                 f"{m.shape}")
            arrays.append(a)
        return arrays

    def _set(self, weights):
        pass


class Dense(_Initialized, Layer):
    """keras.layers.Dense on (N, features) input: a Linear (weight (units, in)) and the
    activation."""

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self._initializers(kernel_initializer, bias_initializer)
        self.units = nn.module._count(units, "units", "Dense")
        self.activation_name = activation
        self.use_bias = as_flag(use_bias, "use_bias", "Dense")
        _activation(activation, "Dense")

    def _build(self, shape):
        if len(shape) != 1:
            raise ValueError(f"{self.name} (Dense) expects input (N, features), got "
                             f"{(None,) + tuple(shape)}: add a Flatten() before it")
        self.linear = nn.Linear(shape[0], self.units, self.use_bias, init="glorot",
                                seed=_next_seed())
        self._initialize(self.linear, shape[0], self.units)
        return self._with_activation([self.linear], self.activation_name), False

    def config(self):
        return {**super().config(), "units": self.units,
                "activation": self.activation_name or "linear", "use_bias": self.use_bias,
                **self._initializer_config()}

    def get_weights(self):
        w = [self.linear.weight.data.T.copy()]
        return w + ([self.linear.bias.data.copy()] if self.use_bias else [])

    def _set(self, weights):
        np.copyto(self.linear.weight.data, np.asarray(weights[0]).T)
        if self.use_bias:
            np.copyto(self.linear.bias.data, weights[1])


class Conv2D(_Initialized, Layer):
    """keras.layers.Conv2D on channels-last images: a Conv2d (weight (filters, C, kh, kw))
    and the activation. padding 'valid' or 'same' (TensorFlow's: a Pad2d before the
    Conv2d where it pads one more row/column at the bottom/right)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self._initializers(kernel_initializer, bias_initializer)
        self.filters = nn.module._count(filters, "filters", "Conv2D")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _pair(strides, "strides", "Conv2D")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", "Conv2D")
        if padding not in ("valid", "same"):
            raise ValueError(f"Conv2D: padding must be 'valid' or 'same', got {padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Conv2D: data_format must be 'channels_last' (Keras' default), "
                             f"got {data_format!r}")
        self.padding, self.activation_name = padding, activation
        self.use_bias = as_flag(use_bias, "use_bias", "Conv2D")
        _activation(activation, "Conv2D")

    def _wants_nchw(self, shape):
        return True

    def _build(self, shape):
        h, w, c = self._image_shape(shape)
        pre, pad = [], 0
        if self.padding == "same":
            pre, pad = _same_padding((h, w), self.kernel_size, self.strides,
                                     self.dilation_rate, 0.0)
            if pre:
                self.pad = pre[0]
        self.conv = nn.Conv2d(c, self.filters, self.kernel_size, self.strides, pad,
                              self.dilation_rate, bias=self.use_bias, init="glorot",
                              seed=_next_seed())
        area = self.kernel_size[0] * self.kernel_size[1]
        self._initialize(self.conv, area * c, area * self.filters)
        return self._with_activation(pre + [self.conv], self.activation_name), True

    def config(self):
        return {**super().config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": self.activation_name or "linear", "use_bias": self.use_bias,
                **self._initializer_config()}

    def get_weights(self):
        w = [self.conv.weight.data.transpose(2, 3, 1, 0).copy()]
        return w + ([self.conv.bias.data.copy()] if self.use_bias else [])

    def _set(self, weights):
        np.copyto(self.conv.weight.data, np.asarray(weights[0]).transpose(3, 2, 0, 1))
        if self.use_bias:
            np.copyto(self.conv.bias.data, weights[1])


class _Pooling2D(Layer):
    _pool = None  # the fastnn class
    _pads_ok = True  # zero-free padding semantics match TensorFlow's 'same'

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.pool_size = _pair(pool_size, "pool_size", kind)
        self.strides = self.pool_size if strides is None else _pair(strides, "strides", kind)
        if padding not in ("valid", "same"):
            raise ValueError(f"{kind}: padding must be 'valid' or 'same', got {padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{kind}: data_format must be 'channels_last', got {data_format!r}")
        self.padding = padding

    def _wants_nchw(self, shape):
        return True

    def _build(self, shape):
        h, w, _ = self._image_shape(shape)
        pre, pad = [], (0, 0)
        if self.padding == "same":  # a Pad2d's -inf never wins a max
            pre, pad = _same_padding((h, w), self.pool_size, self.strides, (1, 1), -math.inf)
            if (pre or pad != (0, 0)) and not self._pads_ok:
                raise ValueError(f"{self.name}: padding='same' that pads is not supported "
                                 f"for average pooling (Keras leaves the padding out of the "
                                 f"mean); use padding='valid'")
            if pre:
                self.pad = pre[0]
        self.pool = self._pool(self.pool_size, self.strides, pad)
        return pre + [self.pool], True

    def config(self):
        return {**super().config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    """keras.layers.MaxPooling2D (pool_size (2, 2), strides = pool_size by default)."""
    _pool = nn.MaxPool2d


class AveragePooling2D(_Pooling2D):
    """keras.layers.AveragePooling2D (pool_size (2, 2), strides = pool_size by default)."""
    _pool = nn.AvgPool2d
    _pads_ok = False


class GlobalAveragePooling2D(Layer):
    """keras.layers.GlobalAveragePooling2D: (N, H, W, C) -> (N, C)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if keepdims or data_format not in (None, "channels_last"):
            raise ValueError("GlobalAveragePooling2D: only data_format='channels_last' and "
                             "keepdims=False are supported")

    def _wants_nchw(self, shape):
        return True

    def _build(self, shape):
        self._image_shape(shape)
        self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
        return [self.pool, self.flatten], False


class Flatten(Layer):
    """keras.layers.Flatten, in Keras' (channels-last) element order."""

    def _build(self, shape):
        self.flatten = nn.Flatten()
        return [self.flatten], False


class _Layout(Layer):
    """A transpose between Keras' NHWC and the NCHW images run inside, which models add
    where a tensor must change layout (after an image output, before a merge of the
    two layouts, a shared layer called on the other one); not among model.layers."""

    _nchw = None  # the layout it gives

    def __init__(self):
        super().__init__(name="channels_first" if self._nchw else "channels_last")

    def _wants_nchw(self, shape):
        return self._nchw

    def _build(self, shape):
        return [], self._nchw


class ChannelsLast(_Layout):
    _nchw = False


class ChannelsFirst(_Layout):
    _nchw = True


def _as_layout(tensor, nchw):
    """tensor in the layout nchw (a ChannelsFirst/ChannelsLast call when it is not)."""
    if tensor.nchw == nchw:
        return tensor
    return (ChannelsFirst if nchw else ChannelsLast)()(tensor)


class Dropout(Layer):
    """keras.layers.Dropout(rate): inverted dropout in training, the identity otherwise."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if noise_shape is not None:
            raise ValueError("Dropout: noise_shape is not supported")
        if seed is not None and not (is_int(seed) and seed >= 0):  # was kept as given:
            # 'x' failed when the model was built, np.int64(3) when it was saved
            raise TypeError(f"Dropout: seed must be None or a non-negative int, got {seed!r}")
        self.rate, self.seed = rate, None if seed is None else int(seed)
        try:
            nn.Dropout(rate)  # validates rate
        except (TypeError, ValueError) as e:  # named as Keras names it
            raise type(e)(str(e).replace("Dropout: p ", "Dropout: rate ", 1)) from None

    def _wants_nchw(self, shape):
        return None

    def _build(self, shape):
        self.dropout = nn.Dropout(self.rate, seed=_next_seed() if self.seed is None
                                  else self.seed)
        return [self.dropout], None

    def config(self):
        return {**super().config(), "rate": float(self.rate), "seed": self.seed}


class Activation(Layer):
    """keras.layers.Activation(name): 'relu', 'sigmoid', 'tanh', 'softmax' (over the last
    axis), 'leaky_relu', 'gelu' (exact, Keras' default), 'silu' / 'swish', 'elu',
    'linear'."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        _activation(activation, "Activation")
        self.activation_name = activation

    def _wants_nchw(self, shape):
        return False if self.activation_name == "softmax" else None

    def _build(self, shape):
        if self.activation_name == "softmax" and len(shape) != 1:
            raise ValueError(f"{self.name}: softmax is supported on (N, features) input, got "
                             f"{(None,) + tuple(shape)}")
        modules = self._with_activation([], self.activation_name)
        if not modules:
            self.identity = nn.Identity()
            modules = [self.identity]
        return modules, None

    def config(self):
        return {**super().config(), "activation": self.activation_name}


class BatchNormalization(Layer):
    """keras.layers.BatchNormalization over the last (channel) axis, Keras' defaults
    (momentum 0.99, i.e. torch's 0.01; epsilon 1e-3) and moving variance (updated with
    the biased batch variance, where torch takes the unbiased one)."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise TypeError(f"BatchNormalization: axis must be an int, got {axis!r}")
        if as_flag(center, "center", "BatchNormalization") != \
                as_flag(scale, "scale", "BatchNormalization"):
            raise ValueError("BatchNormalization: center and scale must be both True or both "
                             "False")
        momentum = as_real(momentum, "momentum", "BatchNormalization")
        epsilon = as_real(epsilon, "epsilon", "BatchNormalization")
        if not (0 <= momentum <= 1 and 0 < epsilon < math.inf):
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1] and epsilon "
                             f"positive and finite, got {momentum!r} and {epsilon!r}")
        self.momentum, self.epsilon, self.affine = momentum, epsilon, bool(center)
        self.axis = int(axis)

    def _wants_nchw(self, shape):
        return True if len(shape) == 3 else None

    def _build(self, shape):
        if self.axis not in (-1, len(shape)):  # the last axis, counted with the batch's
            raise ValueError(f"only axis=-1 (the channels, last: {len(shape)} here) is "
                             f"supported, got axis={self.axis}")
        if len(shape) == 1:
            self.bn = nn.BatchNorm1d(shape[0], self.epsilon, 1.0 - self.momentum, self.affine)
        else:
            h, w, c = self._image_shape(shape)
            self.bn = nn.BatchNorm2d(c, self.epsilon, 1.0 - self.momentum, self.affine)
        self.bn._biased_running_var = True
        return [self.bn], None if len(shape) == 1 else True

    def _freeze(self):
        super()._freeze()
        self.bn._frozen_stats = not self._trainable

    gamma, beta = _variable("gamma"), _variable("beta")
    moving_mean, moving_variance = _variable("moving_mean"), _variable("moving_variance")

    @property
    def _weight_names(self):
        return ("gamma", "beta")[:2 * self.affine] + Variable.NON_TRAINABLE

    def config(self):
        return {**super().config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.affine, "scale": self.affine}

    def get_weights(self):
        bn = self.bn
        affine = [bn.weight.data.copy(), bn.bias.data.copy()] if self.affine else []
        return affine + [bn.running_mean.copy(), bn.running_var.copy()]

    def _set(self, weights):
        bn = self.bn
        targets = ([bn.weight.data, bn.bias.data] if self.affine else []) + \
            [bn.running_mean, bn.running_var]
        for dst, src in zip(targets, weights):
            np.copyto(dst, src)



class _Merge(Layer):
    """Keras' merge layers, called on a list of tensors: Add()([a, b]). Images of both
    layouts are merged in NCHW (the NHWC ones transposed first)."""

    _merges = True
    _nn = None  # the fastnn merge class

    def _keras_inputs(self, x):
        if isinstance(x, KerasTensor):
            raise TypeError(f"{self.name}: a merge layer takes a list of at least two "
                            f"tensors, e.g. {type(self).__name__}()([a, b]); got one tensor")
        if not isinstance(x, (list, tuple)) or not any(isinstance(v, KerasTensor) for v in x):
            return None
        if len(x) < 2 or not all(isinstance(v, KerasTensor) for v in x):
            raise TypeError(f"{self.name}: a merge layer takes a list of at least two "
                            f"KerasTensors, got {[type(v).__name__ for v in x]}")
        return list(x)

    def _merge_module(self, shapes, nchw):
        """The fastnn merge module for inputs of Keras shapes `shapes`, run in NCHW when
        `nchw` (which maps a Concatenate's axis)."""
        return self._nn()

    def _build_for(self, tensors):
        shapes = [t.shape for t in tensors]
        self._merge_module(shapes, False).output_shape(shapes)  # Keras' shapes agree
        nchw = any(t.nchw for t in tensors)
        self.merge = self._merge_module(shapes, nchw)
        self._chain = [self.merge]
        self._in_nchw = self._out_nchw = nchw


class Add(_Merge):
    """keras.layers.Add: the sum of tensors of one shape (fastnn's kernel)."""
    _nn = nn.Add


class Subtract(_Merge):
    """keras.layers.Subtract: inputs[0] - inputs[1]."""
    _nn = nn.Subtract


class Multiply(_Merge):
    """keras.layers.Multiply: the elementwise product."""
    _nn = nn.Multiply


class Average(_Merge):
    """keras.layers.Average: the elementwise mean."""
    _nn = nn.Average


class Maximum(_Merge):
    """keras.layers.Maximum: the elementwise maximum (the gradient to the first input
    holding it where several tie, as TensorFlow's)."""
    _nn = nn.Maximum


class Minimum(_Merge):
    """keras.layers.Minimum: the elementwise minimum."""
    _nn = nn.Minimum


class Concatenate(_Merge):
    """keras.layers.Concatenate(axis=-1): tensors joined along Keras' axis (counted
    with the batch; -1, the channels of images, by default); fastnn's kernel."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _merge_module(self, shapes, nchw):
        if not nchw:
            return nn.Concatenate(self.axis)
        # the axis of Keras' NHWC shape in the NCHW tensor (valid: checked on NHWC first)
        return nn.Concatenate(TO_NHWC[self.axis % len(shapes[0])])

    def config(self):
        return {**super().config(), "axis": self.axis}


class Identity(Layer):
    """keras.layers.Identity: the input, unchanged."""

    def _wants_nchw(self, shape):
        return None

    def _build(self, shape):
        self.identity = nn.Identity()
        return [self.identity], None


class _Rectifier(Layer):
    """ReLU and LeakyReLU: the input where positive, else negative_slope times it."""

    negative_slope = 0.0

    def _wants_nchw(self, shape):
        return None

    def _build(self, shape):
        self.relu = nn.LeakyReLU(self.negative_slope) if self.negative_slope else nn.ReLU()
        return [self.relu], None

    def config(self):
        return {**super().config(), "negative_slope": self.negative_slope}

    def _slope(self, value):
        """negative_slope, >= 0 as Keras requires (torch's LeakyReLU takes any)."""
        what = type(self).__name__
        slope = as_slope(value, what)
        if slope < 0:
            raise ValueError(f"{what}: negative_slope must be >= 0, got {value!r}")
        return slope


class ReLU(_Rectifier):
    """keras.layers.ReLU (max_value None, threshold 0; a negative_slope makes it leaky)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None or as_real(threshold, "threshold", "ReLU") != 0:
            raise ValueError("ReLU: max_value and threshold are not supported by fastnn.keras "
                             "(leave them None and 0)")
        self.negative_slope = self._slope(negative_slope)


class LeakyReLU(_Rectifier):
    """keras.layers.LeakyReLU(negative_slope=0.3) (Keras 3's default slope)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = self._slope(negative_slope)


class Softmax(Layer):
    """keras.layers.Softmax(axis=-1), over Keras' axis (counted with the batch)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise TypeError(f"Softmax: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _build(self, shape):
        ndim = len(shape) + 1
        if not -ndim < self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"axis must be one of the {ndim - 1} axes after the batch of "
                             f"input {(None,) + tuple(shape)}, got axis={self.axis}")
        self.softmax = nn.Softmax(self.axis % ndim)
        return [self.softmax], False

    def config(self):
        return {**super().config(), "axis": self.axis}


def _padding_2d(padding):
    """Keras' ZeroPadding2D padding as (top, bottom, left, right)."""
    if is_int(padding):
        padding = (padding, padding)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        rows, cols = [(p, p) if is_int(p) else p for p in padding]
        if all(isinstance(p, (tuple, list)) and len(p) == 2 for p in (rows, cols)):
            sides = (*rows, *cols)
            if all(is_int(p) and p >= 0 for p in sides):
                return tuple(int(p) for p in sides)
    raise ValueError(f"ZeroPadding2D: padding must be a non-negative int, a pair (rows, "
                     f"columns) or a pair of pairs ((top, bottom), (left, right)), got "
                     f"{padding!r}")


class ZeroPadding2D(Layer):
    """keras.layers.ZeroPadding2D(padding=(1, 1)): zero rows and columns around images."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"ZeroPadding2D: data_format must be 'channels_last', got "
                             f"{data_format!r}")
        self.padding = _padding_2d(padding)

    def _wants_nchw(self, shape):
        return True

    def _build(self, shape):
        self._image_shape(shape)
        self.pad = Pad2d(self.padding)
        return [self.pad], True

    def config(self):
        top, bottom, left, right = self.padding
        return {**super().config(), "padding": [[top, bottom], [left, right]]}


class ReshapeTo(nn.Flatten):
    """Each sample reshaped to `shape` (the batch first kept): a view, as Flatten's."""

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)

    def output_shape(self, shape):
        self._expect(shape, f"(N, ...) of {math.prod(self.shape)} values per sample",
                     len(shape) >= 1 and math.prod(shape[1:]) == math.prod(self.shape))
        return (shape[0],) + self.shape

    def config(self):
        return {"shape": list(self.shape)}


class Reshape(Layer):
    """keras.layers.Reshape(target_shape): each sample reshaped in Keras' (channels-last)
    element order; one dimension may be -1 (inferred)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if not dims or not all(is_int(d) and (d >= 1 or d == -1) for d in dims) or \
                list(dims).count(-1) > 1:
            raise ValueError(f"Reshape: target_shape must be a tuple of positive ints (one "
                             f"may be -1), got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in dims)

    def _build(self, shape):
        size, known = math.prod(shape), -math.prod(self.target_shape)
        dims = self.target_shape
        if -1 in dims:
            if known == 0 or size % known:
                raise ValueError(f"cannot reshape input {(None,) + tuple(shape)} to "
                                 f"{self.target_shape}")
            dims = tuple(size // known if d == -1 else d for d in dims)
        if math.prod(dims) != size:
            raise ValueError(f"cannot reshape input {(None,) + tuple(shape)} ({size} values "
                             f"per sample) to {self.target_shape}")
        self.reshape = ReshapeTo(dims)
        return [self.reshape], False

    def config(self):
        return {**super().config(), "target_shape": list(self.target_shape)}


class ScaleShift(Module):
    """y = x * scale + offset (scalars), into a layer-owned buffer."""

    def __init__(self, scale, offset=0.0):
        self.scale = as_real(scale, "scale", "ScaleShift")
        self.offset = as_real(offset, "offset", "ScaleShift")

    def forward(self, x):
        self._shape = self._input(x).shape
        y = self._buffer("y", x.shape)
        np.multiply(x, np.float32(self.scale), out=y)
        return np.add(y, np.float32(self.offset), out=y)

    def backward(self, grad_out, need_input_grad=True):
        shape = self._forwarded("_shape")
        self._grad(grad_out, shape)
        if not need_input_grad:
            return None
        return np.multiply(grad_out, np.float32(self.scale), out=self._buffer("dx", shape))

    def config(self):
        return {"scale": self.scale, "offset": self.offset}


class Rescaling(Layer):
    """keras.layers.Rescaling(scale, offset=0.0): x * scale + offset (scalars)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = as_real(scale, "scale", "Rescaling")
        self.offset = as_real(offset, "offset", "Rescaling")
        if not (np.isfinite(np.float32(self.scale)) and np.isfinite(np.float32(self.offset))):
            raise ValueError(f"Rescaling: scale and offset must be finite (in float32), got "
                             f"{scale!r} and {offset!r}")

    def _wants_nchw(self, shape):
        return None

    def _build(self, shape):
        self.rescale = ScaleShift(self.scale, self.offset)
        return [self.rescale], None

    def config(self):
        return {**super().config(), "scale": self.scale, "offset": self.offset}
