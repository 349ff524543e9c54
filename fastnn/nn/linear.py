"""Linear, and what it shares with Conv2d: weight initialisation and the forward and
backward of a layer with a weight and an optional bias."""
import math

import numpy as np

from .. import functional as F
from .._core import as_flag, as_rng
from .module import Module, Parameter, _count, memo_shape

__all__ = ["Linear"]


def _weights(init, seed, shape, fan_in, fan_out, layer, biases=None):
    """_init_weights, with a MemoryError naming the layer when the weight cannot exist;
    `biases` (the bias's length) defaults to shape[0]."""
    if math.prod(shape) > 1 << 40:  # 4 TiB of float32: refuse before asking the allocator
        raise MemoryError(f"{layer}: a weight of shape {shape} is too large")
    try:
        return _init_weights(as_rng(seed, layer), shape, fan_in, fan_out, init,
                             shape[0] if biases is None else biases)
    except MemoryError:
        raise MemoryError(f"{layer}: cannot allocate a weight of shape {shape}") from None


def _init_weights(rng, shape, fan_in, fan_out, init, biases):
    """Weight and bias values for a layer with the given fans.

    "torch": PyTorch's default, kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), +...)
    for the weight and the same range for the bias; "he": He-normal N(0, 2/fan_in)
    (for ReLU nets), zero bias; "glorot": Glorot-uniform U(+-sqrt(6/(fan_in+fan_out))),
    zero bias."""
    if init == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        return (rng.uniform(-bound, bound, shape).astype(np.float32),
                rng.uniform(-bound, bound, biases).astype(np.float32))
    if init == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif init == "glorot":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-bound, bound, shape)
    else:
        raise ValueError(f"init must be 'torch', 'he' or 'glorot', got {init!r}")
    return w.astype(np.float32), np.zeros(biases, np.float32)


class _Weighted(Module):
    """Forward and backward of a layer with a weight and an optional bias, on its
    kernel pair `_forward` / `_backward` (extra kernel arguments from `_args`). A frozen
    weight or bias (requires_grad False) gets no gradient: its GEMM is skipped."""

    def _args(self):
        return ()

    def macs(self, output_shape):
        # every output element is a dot product over one output channel's weights
        return self.weight.data[0].size * math.prod(output_shape)

    def forward(self, x):
        vars(self)["_x"] = x  # (see Module._forwarded)
        bias = None if self.bias is None else self.bias.data
        return self._forward(x, self.weight.data, bias, *self._args(),
                             out=self._buffer("y", self.output_shape(x.shape)))

    def _grad_args(self):
        """The backward's keyword arguments for the parameter gradients."""
        weight, bias = self.weight, self.bias
        bias_grad = bias is not None and bias.requires_grad
        return {"bias": bias_grad, "need_weight_grad": weight.requires_grad,
                "grad_weight": weight._grad_out() if weight.requires_grad else None,
                "grad_bias": bias._grad_out() if bias_grad else None}

    def backward(self, grad_out, need_input_grad=True):
        x = self._forwarded("_x")
        return self._backward(
            grad_out, x, self.weight.data, *self._args(), need_input_grad=need_input_grad,
            grad_input=self._buffer("dx", x.shape) if need_input_grad else None,
            **self._grad_args())[0]


class Linear(_Weighted):
    """y = x @ weight.T + bias over the last dimension of x: (N, in_features), or
    (N, *, in_features) as torch's (the leading dimensions run as one batch)."""

    _forward = staticmethod(F.linear)
    _backward = staticmethod(F.linear_backward)

    def __init__(self, in_features, out_features, bias=True, *, seed=None, init="torch"):
        self.in_features = _count(in_features, "in_features", "Linear")
        self.out_features = _count(out_features, "out_features", "Linear")
        w, b = _weights(init, seed, (self.out_features, self.in_features), self.in_features,
                        self.out_features, "Linear")
        self.weight = Parameter(w)
        self.bias = Parameter(b) if as_flag(bias, "bias", "Linear") else None

    @memo_shape
    def output_shape(self, shape):
        self._expect(shape, f"(N, {self.in_features}) or (N, *, {self.in_features})",
                     len(shape) >= 2 and shape[-1] == self.in_features)
        return tuple(shape[:-1]) + (self.out_features,)

    def forward(self, x):
        if getattr(x, "ndim", 2) == 2:  # (a non-array is the kernel's to refuse)
            vars(self)["_nd_shape"] = None  # (see Module._forwarded)
            return super().forward(x)
        shape = self.output_shape(self._input(x).shape)
        vars(self)["_nd_shape"] = x.shape
        return super().forward(x.reshape(-1, self.in_features)).reshape(shape)

    def backward(self, grad_out, need_input_grad=True):
        shape = self.__dict__.get("_nd_shape")
        if shape is None:
            return super().backward(grad_out, need_input_grad)
        grad_out = self._grad(grad_out, self.output_shape(shape))
        dx = super().backward(grad_out.reshape(-1, self.out_features), need_input_grad)
        return None if dx is None else dx.reshape(shape)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}
