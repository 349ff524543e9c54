"""Layers with explicit forward/backward on float32 NumPy arrays, PyTorch spelling and
weight layouts (Linear weight (out, in), Conv2d weight (out, in, kh, kw), NCHW
activations), so a state dict moves between fastnn and torch unchanged.

Memory: each layer keeps its outputs and gradients in buffers it owns and reuses
them while the batch shape stays the same, so a steady-state training step
allocates nothing. The array a forward or backward call returns is such a buffer:
the next call with the same shape overwrites it (copy it to keep it).

Gradients: `backward` writes (does not add to) each Parameter's `.grad`, so one
backward per step needs no `zero_grad`; `zero_grad` exists for PyTorch-style loops.

The explicit training loop::

    model = fastnn.models.mlp(seed=0)
    loss_fn = fastnn.losses.CrossEntropyLoss()
    opt = fastnn.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in fastnn.datasets.iterate_batches(x, y, 128, seed=0):
        out = model(xb)
        loss = loss_fn(out, yb)
        model.backward(loss_fn.backward())
        opt.step()
"""
import math

import numpy as np

from . import functional as F, profiling
from ._core import MAX_WINDOW_ARG, as_real as _real, conv2d_algorithm, is_int as _is_int
from .reference import conv2d_output_shape
from .training import Model

__all__ = ["Parameter", "Module", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten", "Dropout", "Sequential"]


class Parameter:
    """A trainable float32 array `.data` and its gradient `.grad` (same shape)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        kind = np.asarray(data).dtype.kind
        if kind not in "biuf":
            raise TypeError(f"Parameter: data must be a real-valued array, got dtype "
                            f"{np.asarray(data).dtype}")
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape})"


def _pair(v, name, layer):
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or not all(map(_is_int, pair)):
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {v!r}")
    if max(pair) > MAX_WINDOW_ARG:
        raise ValueError(f"{layer}: {name} must be <= 2**40, got {v!r}")
    return int(pair[0]), int(pair[1])


def _count(v, name, layer):
    """A positive int size argument (features, channels), or an error naming it."""
    if not _is_int(v):
        raise TypeError(f"{layer}: {name} must be an int, got {v!r}")
    if v <= 0:
        raise ValueError(f"{layer}: {name} must be positive, got {v!r}")
    return int(v)


def _weights(init, seed, shape, fan_in, fan_out, layer):
    """_init_weights, with a MemoryError naming the layer when the weight cannot exist."""
    if math.prod(shape) > 1 << 40:  # 4 TiB of float32: refuse before asking the allocator
        raise MemoryError(f"{layer}: a weight of shape {shape} is too large")
    try:
        return _init_weights(np.random.default_rng(seed), shape, fan_in, fan_out, init)
    except MemoryError:
        raise MemoryError(f"{layer}: cannot allocate a weight of shape {shape}") from None


def _init_weights(rng, shape, fan_in, fan_out, init):
    """Weight and bias values for a layer with the given fans.

    "torch": PyTorch's default, kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), +...)
    for the weight and the same range for the bias; "he": He-normal N(0, 2/fan_in)
    (for ReLU nets), zero bias; "glorot": Glorot-uniform U(+-sqrt(6/(fan_in+fan_out))),
    zero bias."""
    if init == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        return (rng.uniform(-bound, bound, shape).astype(np.float32),
                rng.uniform(-bound, bound, shape[0]).astype(np.float32))
    if init == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif init == "glorot":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-bound, bound, shape)
    else:
        raise ValueError(f"init must be 'torch', 'he' or 'glorot', got {init!r}")
    return w.astype(np.float32), np.zeros(shape[0], np.float32)


class Module:
    """Base layer: `forward(x)` / `backward(grad_out)`, parameters, train/eval mode,
    and `_buffer`, the per-layer memory reused across steps."""

    training = True

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out, need_input_grad=True):
        """Gradient w.r.t. the input of the last forward (None if not needed);
        writes the parameters' `.grad`."""
        raise NotImplementedError

    def parameters(self):
        return [v for v in vars(self).values() if isinstance(v, Parameter)]

    def named_parameters(self):
        """(name, Parameter) pairs; names match torch's state_dict keys."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]

    def zero_grad(self):
        for p in self.parameters():
            p.grad.fill(0.0)

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def output_shape(self, shape):
        """Shape of the output for an input of `shape` (batch first); validates it.
        This default suits the shape-preserving layers."""
        return tuple(shape)

    def config(self):
        """Constructor arguments, JSON-serialisable (the architecture in saved files)."""
        return {}

    def macs(self, output_shape):
        """Multiply-adds of the forward pass's matrix products for a batch with this
        output shape (0 for layers without any); the profile's FLOP count."""
        return 0

    def _expect(self, shape, expected, ok):
        if not ok:
            raise ValueError(f"{self!r} expects input of shape {expected}, got {tuple(shape)}")

    def _buffer(self, key, shape, dtype=np.float32):
        """A layer-owned array of this shape, reused while the shape stays the same."""
        bufs = self.__dict__.setdefault("_buffers", {})
        buf = bufs.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            try:
                buf = bufs[key] = np.empty(shape, dtype)
            except (MemoryError, ValueError):  # ValueError: the byte count overflows
                raise MemoryError(f"{self!r}: cannot allocate its {key!r} buffer of shape "
                                  f"{shape}") from None
        return buf

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class _Weighted(Module):
    """Forward and backward of a layer with a weight and an optional bias, on its
    kernel pair `_forward` / `_backward` (extra kernel arguments from `_args`)."""

    def _args(self):
        return ()

    def macs(self, output_shape):
        # every output element is a dot product over one output channel's weights
        return self.weight.data[0].size * math.prod(output_shape)

    def forward(self, x):
        self._x = x
        bias = None if self.bias is None else self.bias.data
        return self._forward(x, self.weight.data, bias, *self._args(),
                             out=self._buffer("y", self.output_shape(x.shape)))

    def backward(self, grad_out, need_input_grad=True):
        x = self._x
        return self._backward(
            grad_out, x, self.weight.data, *self._args(), bias=self.bias is not None,
            need_input_grad=need_input_grad,
            grad_input=self._buffer("dx", x.shape) if need_input_grad else None,
            grad_weight=self.weight.grad,
            grad_bias=None if self.bias is None else self.bias.grad)[0]


class Linear(_Weighted):
    """y = x @ weight.T + bias for x of shape (N, in_features)."""

    _forward = staticmethod(F.linear)
    _backward = staticmethod(F.linear_backward)

    def __init__(self, in_features, out_features, bias=True, *, seed=None, init="torch"):
        self.in_features = _count(in_features, "in_features", "Linear")
        self.out_features = _count(out_features, "out_features", "Linear")
        w, b = _weights(init, seed, (self.out_features, self.in_features), self.in_features,
                        self.out_features, "Linear")
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None

    def output_shape(self, shape):
        self._expect(shape, f"(N, {self.in_features})",
                     len(shape) == 2 and shape[1] == self.in_features)
        return (shape[0], self.out_features)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}


class Conv2d(_Weighted):
    """2-D cross-correlation over NCHW input, weight (out, in, kh, kw). algorithm: "auto",
    "direct", "winograd" or "winograd4x4" (see fastnn.set_conv_algorithm); None follows
    the global default."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True, *, seed=None, init="torch", algorithm=None):
        self.in_channels = _count(in_channels, "in_channels", "Conv2d")
        self.out_channels = _count(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.padding = _pair(padding, "padding", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        kh, kw = self.kernel_size
        if min(kh, kw, *self.stride, *self.dilation) <= 0 or min(self.padding) < 0:
            raise ValueError(f"Conv2d: kernel_size, stride and dilation must be positive and "
                             f"padding non-negative, got kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, padding={self.padding}, "
                             f"dilation={self.dilation}")
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        w, b = _weights(init, seed, (self.out_channels, self.in_channels, kh, kw), fan_in,
                        fan_out, "Conv2d")
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None
        self.algorithm = algorithm
        if algorithm is not None:  # checked against this layer's window now, not at the call
            try:
                conv2d_algorithm((1, self.in_channels, kh + 2, kw + 2), self.weight.data.shape,
                                   self.stride, 0, self.dilation, algorithm)
            except ValueError as e:
                raise ValueError(f"Conv2d: {e}") from None

    def output_shape(self, shape):
        self._expect(shape, f"(N, {self.in_channels}, H, W)",
                     len(shape) == 4 and shape[1] == self.in_channels)
        try:
            oh, ow = conv2d_output_shape(shape[2], shape[3], self.kernel_size, self.stride,
                                         self.padding, self.dilation)
        except ValueError as e:
            raise ValueError(f"{self!r}: input of shape {tuple(shape)} is too small: {e}") from None
        return (shape[0], self.out_channels, oh, ow)

    def _forward(self, *args, **kwargs):
        return F.conv2d(*args, algorithm=self.algorithm, **kwargs)

    def _backward(self, *args, **kwargs):
        return F.conv2d_backward(*args, algorithm=self.algorithm, **kwargs)

    def _args(self):
        return self.stride, self.padding, self.dilation

    def config(self):
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": list(self.padding), "dilation": list(self.dilation),
                  "bias": self.bias is not None}
        if self.algorithm is not None:
            config["algorithm"] = self.algorithm
        return config


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name)
        self.padding = _pair(padding, "padding", name)
        if min(*self.kernel_size, *self.stride) <= 0 or min(self.padding) < 0 or any(
                p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be positive "
                             f"and padding at most half the kernel, got {self.config()}")

    def output_shape(self, shape):
        self._expect(shape, "(N, C, H, W)", len(shape) == 4)
        try:
            oh, ow = conv2d_output_shape(shape[2], shape[3], self.kernel_size, self.stride,
                                         self.padding, 1)
        except ValueError as e:
            raise ValueError(f"{self!r}: input of shape {tuple(shape)} is too small: {e}") from None
        return (shape[0], shape[1], oh, ow)

    def _args(self):
        return self.kernel_size, self.stride, self.padding

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


class MaxPool2d(_Pool2d):
    """Max pooling; in training mode it saves the argmax indices for backward."""

    def forward(self, x):
        self._x = x
        y = self._buffer("y", self.output_shape(x.shape))
        if not self.training:
            return F.max_pool2d(x, *self._args(), out=y)
        return F.max_pool2d_with_indices(
            x, *self._args(), out=y, indices=self._buffer("idx", y.shape, np.int64))[0]

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        return F.max_pool2d_backward(grad_out, self._x, *self._args(),
                                     indices=self._buffers["idx"],
                                     out=self._buffer("dx", self._x.shape))


class AvgPool2d(_Pool2d):
    """Average pooling, zero padding counted in the divisor (PyTorch's default)."""

    def forward(self, x):
        self._x = x
        return F.avg_pool2d(x, *self._args(), out=self._buffer("y", self.output_shape(x.shape)))

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        return F.avg_pool2d_backward(grad_out, self._x, *self._args(),
                                     out=self._buffer("dx", self._x.shape))


class _Elementwise(Module):
    """An activation y = f(x); backward uses x or y, as the kernel's contract says."""

    _forward = _backward = None  # staticmethods: the kernel pair
    _backward_uses_output = False

    def _extra(self):
        return ()

    def forward(self, x):
        y = self._forward(x, *self._extra(), out=self._buffer("y", x.shape))
        self._saved = y if self._backward_uses_output else x
        return y

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        return self._backward(grad_out, self._saved, *self._extra(),
                              out=self._buffer("dx", grad_out.shape))


class ReLU(_Elementwise):
    _forward, _backward = staticmethod(F.relu), staticmethod(F.relu_backward)


class LeakyReLU(_Elementwise):
    _forward, _backward = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope=0.01):
        self.negative_slope = _real(negative_slope, "negative_slope", "LeakyReLU")

    def _extra(self):
        return (self.negative_slope,)

    def config(self):
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise):
    _forward, _backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)
    _backward_uses_output = True


class Tanh(_Elementwise):
    _forward, _backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)
    _backward_uses_output = True


class Softmax(_Elementwise):
    """Softmax over the last axis (torch.nn.Softmax(dim=-1))."""
    _forward, _backward = staticmethod(F.softmax), staticmethod(F.softmax_backward)
    _backward_uses_output = True


class Flatten(Module):
    """(N, ...) -> (N, prod(...)), the element order of torch.flatten(x, 1); a view."""

    def output_shape(self, shape):
        self._expect(shape, "(N, ...)", len(shape) >= 1)
        return (shape[0], math.prod(shape[1:]))

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(self.output_shape(x.shape))

    def backward(self, grad_out, need_input_grad=True):
        return grad_out.reshape(self._shape) if need_input_grad else None


class Dropout(Module):
    """Zeroes each element with probability p in training mode and scales the rest by
    1/(1-p) (inverted dropout, like torch); the identity in eval mode."""

    def __init__(self, p=0.5, *, seed=None):
        p = _real(p, "p", "Dropout")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"{self!r}: input x must be a float32 ndarray, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        mask = self._buffer("mask", x.shape)
        self._rng.random(out=mask, dtype=np.float32)
        # mask = (u >= p) / (1 - p), built in place
        np.greater_equal(mask, self.p, out=mask)
        mask *= np.float32(1.0 / (1.0 - self.p))
        self._mask = mask
        return np.multiply(x, mask, out=self._buffer("y", x.shape))

    def backward(self, grad_out, need_input_grad=True):
        if not need_input_grad:
            return None
        if self._mask is None:
            return grad_out
        return np.multiply(grad_out, self._mask, out=self._buffer("dx", grad_out.shape))

    def config(self):
        return {"p": self.p}


class _ConvMaxPool:
    """A Conv2d and the MaxPool2d after it on one kernel pair (F.conv2d_max_pool2d), in
    the layers' own parameters and buffers; Sequential runs them so."""

    def __init__(self, conv, pool):
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)

    def forward(self, x):
        conv, pool = self.conv, self.pool
        conv._x = x
        shape = pool.output_shape(conv.output_shape(x.shape))
        args = (x, conv.weight.data, None if conv.bias is None else conv.bias.data,
                *conv._args(), *pool._args())
        y = pool._buffer("y", shape)
        if not pool.training:
            return F.conv2d_max_pool2d(*args, out=y, return_indices=False,
                                       algorithm=conv.algorithm)
        return F.conv2d_max_pool2d(*args, out=y, indices=pool._buffer("idx", shape, np.int64),
                                   algorithm=conv.algorithm)[0]

    def backward(self, grad_out, need_input_grad=True):
        conv, x = self.conv, self.conv._x
        return F.conv2d_max_pool2d_backward(
            grad_out, self.pool._buffers["idx"], x, conv.weight.data, *conv._args(),
            *self.pool._args(), bias=conv.bias is not None, need_input_grad=need_input_grad,
            grad_input=conv._buffer("dx", x.shape) if need_input_grad else None,
            grad_weight=conv.weight.grad,
            grad_bias=None if conv.bias is None else conv.bias.grad, algorithm=conv.algorithm)[0]

    def named_parameters(self):
        return self.conv.named_parameters()

    def __repr__(self):
        return f"{self.conv!r} with the {self.pool!r} after it"


class Sequential(Model, Module):
    """Layers applied in order. `input_shape` (per sample, e.g. (1, 28, 28)) is
    optional: with it, inputs are checked up front and `summary()` needs no argument.

    The Keras-style API (`fit`, `evaluate`, `predict`, `summary`, `save`) comes from
    fastnn.training.Model."""

    def __init__(self, *layers, input_shape=None):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, "
                                f"not a fastnn.nn.Module")
        self.layers = list(layers)
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if not all(_is_int(d) and 1 <= d <= MAX_WINDOW_ARG for d in input_shape):
                raise ValueError(f"Sequential: input_shape must hold positive ints (per "
                                 f"sample, e.g. (1, 28, 28)), got {input_shape!r}")
            input_shape = tuple(map(int, input_shape))
        self.input_shape = input_shape
        self.optimizer = None

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        """Names like torch.nn.Sequential's state_dict: "0.weight", "0.bias", ..."""
        return [(f"{i}.{name}", p) for i, layer in enumerate(self.layers)
                for name, p in layer.named_parameters()]

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def _check_shape(self, shape):
        if self.input_shape is not None and tuple(shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, ("N",) + self.input_shape))
            raise ValueError(f"Sequential: layer 0 ({self.layers[0]!r}) expects input of shape "
                             f"({expected}) (the model's input_shape), got {tuple(shape)}")

    def _through_layers(self, method, value, steps=None):
        """value = runner.<method>(value) for each (index, runner) step (default: each
        layer as listed); errors name the layer's index."""
        for i, runner in enumerate(self.layers) if steps is None else steps:
            try:
                value = getattr(runner, method)(value)
            except ValueError as e:
                raise ValueError(f"Sequential: layer {i}: {e}") from None
            if self._guard is not None and method == "forward":
                self._guard(value, f"the forward output of layer {i} ({runner!r})")
        return value

    def _plan(self):
        """How forward runs the layers: (index, runner) steps; backward runs them in
        reverse. Two rewrites keep every output and gradient bit the same:
        - a ReLU just before a MaxPool2d runs after it: the two commute
          (max(relu(x)) == relu(max(x)); a window whose maximum is not positive passes
          no gradient either way), and the ReLU then touches a quarter of the elements;
        - a Conv2d then a MaxPool2d run as one kernel (_ConvMaxPool), so the
          convolution's output and its gradient are never stored whole."""
        order = list(range(len(self.layers)))
        for k in range(len(order) - 1):
            if (type(self.layers[order[k]]) is ReLU and
                    isinstance(self.layers[order[k + 1]], MaxPool2d)):
                order[k], order[k + 1] = order[k + 1], order[k]
        steps, k = [], 0
        while k < len(order):
            layer = self.layers[order[k]]
            if (isinstance(layer, Conv2d) and k + 1 < len(order) and
                    isinstance(self.layers[order[k + 1]], MaxPool2d)):
                steps.append((order[k], _ConvMaxPool(layer, self.layers[order[k + 1]])))
                k += 2
            else:
                steps.append((order[k], layer))
                k += 1
        return steps

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise TypeError(f"Sequential: input must be a float32 ndarray, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}; use x.astype(np.float32)")
        self._check_shape(x.shape)
        return self._through_layers("forward", x, self._plan())

    def output_shape(self, shape):
        self._check_shape(shape)
        return self._through_layers("output_shape", tuple(shape))

    def backward(self, grad_out, need_input_grad=False):
        """Backpropagate through all layers, writing every parameter's `.grad`.

        The model's input needs no gradient by default, so the layers before the first
        one with parameters are skipped and that one runs with need_input_grad=False;
        returns the input gradient only if need_input_grad is True (else None)."""
        for i, runner, need in self._backward_plan(need_input_grad):
            grad_out = runner.backward(grad_out, need)
            if self._guard is not None:
                for name, p in runner.named_parameters():
                    self._guard(p.grad, f"the backward gradient of {i}.{name} ({runner!r})")
                if grad_out is not None:
                    self._guard(grad_out, f"the backward input gradient of layer {i} "
                                          f"({runner!r})")
        return grad_out if need_input_grad else None

    def _backward_plan(self, need_input_grad):
        """(layer index, runner, need_input_grad) of each backward call: the forward
        plan's steps in reverse, down to the first layer with parameters unless the
        input gradient is needed."""
        first = 0 if need_input_grad else next(
            (i for i, layer in enumerate(self.layers) if layer.parameters()), len(self.layers))
        return [(i, runner, need_input_grad or i > first)
                for i, runner in reversed(self._plan()) if i >= first]

    def profile(self, x, y, *, loss="cross_entropy", optimizer="adam", repeat=10, file=None):
        """Time training steps on the batch (x, y) step by step of the plan Sequential
        runs, forward and backward, with GFLOP/s and % of the machine's FMA peak; prints
        the table and returns its rows (see fastnn.profiling.profile). Weights are left
        unchanged."""
        return profiling.profile(self, x, y, loss=loss, optimizer=optimizer, repeat=repeat,
                                 file=file)

    def config(self):
        return {"layers": [{"type": type(layer).__name__, "config": layer.config()}
                           for layer in self.layers],
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


LAYERS = {cls.__name__: cls for cls in (Linear, Conv2d, MaxPool2d, AvgPool2d, ReLU, LeakyReLU,
                                        Sigmoid, Tanh, Softmax, Flatten, Dropout)}
