"""Batch normalisation: BatchNorm1d ((N, C) or (N, C, L)) and BatchNorm2d ((N, C, H, W)),
torch 2.13's arguments (bias=False: the weight alone), parameters (weight, bias) and
buffers (running_mean, running_var, num_batches_tracked); layer normalisation:
LayerNorm over each sample's trailing normalized_shape dimensions, in training and eval
mode alike.

Training mode normalises with the batch's statistics (biased variance) and, when
tracking, updates the running estimates (unbiased variance) with `momentum`, or with a
cumulative average when momentum is None; eval mode normalises with the running
estimates (with the batch's when track_running_stats is False)."""
import math

import numpy as np

from .. import functional as F
from .._core import as_flag, as_real as _real, as_sample_shape
from .module import Module, Parameter, _count, _Fused

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    _ndims = ()  # the input ndims accepted
    _expected = ""
    # fastnn.keras' BatchNormalization sets it: Keras' moving variance takes the biased
    # batch variance, torch's (the kernel's) the unbiased one
    _biased_running_var = False
    # and this one for a layer made non-trainable: Keras 3 then runs it in inference mode
    _frozen_stats = False
    # torch's BatchNorm keeps its count when a plain dict lacks it (state_dicts before
    # torch 0.4.1, converted weights)
    _optional_buffers = ("num_batches_tracked",)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True):
        name = type(self).__name__
        self.num_features = _count(num_features, "num_features", name)
        self.eps = _real(eps, "eps", name)
        if not 0 < self.eps < math.inf:
            raise ValueError(f"{name}: eps must be positive and finite, got {eps!r}")
        if momentum is not None:
            momentum = _real(momentum, "momentum", name)
            if not 0 <= momentum <= 1:
                raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.momentum = momentum
        self.affine = as_flag(affine, "affine", name)
        has_bias = as_flag(bias, "bias", name)  # torch 2.x's: False keeps the weight only
        self.track_running_stats = as_flag(track_running_stats, "track_running_stats", name)
        c = self.num_features
        tracking = self.track_running_stats
        try:
            if c > 1 << 40:  # 4 TiB per array: refuse before asking the allocator
                raise MemoryError
            self.weight = Parameter(np.ones(c, np.float32)) if affine else None
            self.bias = Parameter(np.zeros(c, np.float32)) if affine and has_bias else None
            self.register_buffer("running_mean", np.zeros(c, np.float32) if tracking else None)
            self.register_buffer("running_var", np.ones(c, np.float32) if tracking else None)
        except MemoryError:
            raise MemoryError(f"{name}: cannot allocate the state of num_features={c}") from None
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64) if tracking else None)

    def output_shape(self, shape):
        self._expect(shape, self._expected,
                     len(shape) in self._ndims and shape[1] == self.num_features)
        return tuple(shape)

    def _uses_batch_stats(self):
        return (self.training and not self._frozen_stats) or not self.track_running_stats

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, activation=None):
        """forward, its output relu'd in the same pass with activation="relu"
        (_FusedNorm)."""
        self.output_shape(x.shape)
        self._x = x
        batch_stats = self._uses_batch_stats()
        one_value = batch_stats and x.size // self.num_features <= 1
        if one_value and not self._biased_running_var:  # torch's rule; Keras takes it
            raise ValueError(f"{self!r}: expected more than 1 value per channel when "
                             f"training, got input of shape {x.shape}")
        momentum = 0.0
        if batch_stats and self.track_running_stats:
            self.num_batches_tracked += 1
            momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                        else self.momentum)
        self._batch_stats = batch_stats
        if one_value:
            y = self._one_value_forward(x, momentum)
            return y if activation is None else F.relu(y, out=y)
        c = self.num_features
        old_var = self.running_var.copy() if self._biased_running_var and momentum else None
        y, self._mean, self._invstd = F.batch_norm(
            x, self.running_mean, self.running_var,
            None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, training=batch_stats,
            momentum=momentum, eps=self.eps,
            out=self._buffer("y", x.shape), save_mean=self._buffer("mean", (c,)),
            save_invstd=self._buffer("invstd", (c,)), activation=activation)
        if old_var is not None:  # the kernel added momentum * var * m / (m - 1): rescale it
            m = x.size // c
            self.running_var -= (self.running_var - (1.0 - momentum) * old_var) / m
        return y

    def _one_value_forward(self, x, momentum):
        """Keras' batch statistics of a batch with one value per channel (a last batch of
        one sample), which the kernel refuses as torch does: the mean is that value and
        the (biased) variance 0, so the output is beta and the moving variance decays."""
        c = self.num_features
        mean, invstd = self._buffer("mean", (c,)), self._buffer("invstd", (c,))
        np.copyto(mean, x.reshape(c))
        invstd.fill(1.0 / math.sqrt(self.eps))
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        y = np.subtract(x, mean.reshape(per_channel), out=self._buffer("y", x.shape))
        if self.weight is not None:  # 0 (NaN stays NaN) * gamma * invstd + beta
            y *= (self.weight.data * invstd).reshape(per_channel)
        if self.bias is not None:
            y += self.bias.data.reshape(per_channel)
        if momentum:
            self.running_mean += momentum * (mean - self.running_mean)
            self.running_var *= 1.0 - momentum
        self._mean, self._invstd = mean, invstd
        return y

    def backward(self, grad_out, need_input_grad=True):
        return self._backward(grad_out, need_input_grad)

    def _backward(self, grad_out, need_input_grad=True, output=None):
        """backward; with `output` (the relu'd output of _forward(x, "relu")), of the
        relu too."""
        x = self._forwarded("_x")
        weight, bias = self.weight, self.bias
        want_b = bias is not None and bias.requires_grad
        # the kernel computes both or neither: a frozen or absent one into a scratch buffer
        weight_grad = weight is not None and (weight.requires_grad or want_b)
        c = self.num_features
        gx, gw, gb = F.batch_norm_backward(
            grad_out, x, None if weight is None else weight.data, self._mean,
            self._invstd, training=self._batch_stats, need_input_grad=need_input_grad,
            need_weight_grad=weight_grad,
            grad_input=self._buffer("dx", x.shape) if need_input_grad else None,
            grad_weight=(weight._grad_out() if weight.requires_grad else self._buffer("dw", (c,)))
            if weight_grad else None,
            grad_bias=(bias._grad_out() if want_b else self._buffer("db", (c,)))
            if weight_grad else None, activation=None if output is None else "relu",
            output=output)
        return gx

    def extra_repr(self):  # torch's
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "bias": self.bias is not None}


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L), per channel C."""
    _ndims = (2, 3)
    _expected = "(N, C) or (N, C, L) with C = num_features"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W), per channel C."""
    _ndims = (4,)
    _expected = "(N, C, H, W) with C = num_features"


class _FusedNorm(_Fused):
    """A BatchNorm1d or BatchNorm2d with the ReLU after it on one kernel call each way
    (F.batch_norm's activation), in the layers' own parameters and buffers; the graph
    plan runs them so (Graph._rewrite). The ReLU's passes over the activation (its
    forward, and its backward's gating) happen in the norm's: the same bits."""

    def __init__(self, norm, relu):
        self.norm, self.relu = norm, relu
        self.layers = (norm, relu)
        self._y = None

    def forward(self, x):
        self._y = self.norm._forward(x, "relu")
        return self._y

    def backward(self, grad_out, need_input_grad=True):
        return self.norm._backward(grad_out, need_input_grad, self._y)


class LayerNorm(Module):
    """torch.nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * weight + bias, the mean
    and biased variance over each sample's trailing `normalized_shape` dimensions;
    weight (ones) and bias (zeros) of that shape when elementwise_affine (bias=False:
    weight only)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        name = type(self).__name__
        self.normalized_shape = as_sample_shape(normalized_shape, "normalized_shape", name)
        if not self.normalized_shape:
            raise ValueError(f"{name}: normalized_shape must hold at least one dimension, "
                             f"got {normalized_shape!r}")
        self.eps = _real(eps, "eps", name)
        if not 0 < self.eps < math.inf:
            raise ValueError(f"{name}: eps must be positive and finite, got {eps!r}")
        self.elementwise_affine = as_flag(elementwise_affine, "elementwise_affine", name)
        has_bias = as_flag(bias, "bias", name)
        shape = self.normalized_shape
        try:
            if math.prod(shape) > 1 << 40:  # 4 TiB per array: refuse before asking
                raise MemoryError
            affine = self.elementwise_affine
            self.weight = Parameter(np.ones(shape, np.float32)) if affine else None
            self.bias = Parameter(np.zeros(shape, np.float32)) if affine and has_bias else None
        except MemoryError:
            raise MemoryError(f"{name}: cannot allocate the weights of normalized_shape="
                              f"{shape}") from None

    def output_shape(self, shape):
        k = len(self.normalized_shape)
        self._expect(shape, f"(N, *, {', '.join(map(str, self.normalized_shape))})",
                     len(shape) > k and tuple(shape[-k:]) == self.normalized_shape)
        return tuple(shape)

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, activation=None):
        """forward, its output relu'd in the same pass with activation="relu"
        (_FusedNorm)."""
        self.output_shape(x.shape)
        self._x = x
        lead = x.shape[:x.ndim - len(self.normalized_shape)]
        y, self._mean, self._rstd = F.layer_norm(
            x, self.normalized_shape, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, self.eps,
            out=self._buffer("y", x.shape), save_mean=self._buffer("mean", lead),
            save_rstd=self._buffer("rstd", lead))
        return y

    def backward(self, grad_out, need_input_grad=True):
        return self._backward(grad_out, need_input_grad)

    def _backward(self, grad_out, need_input_grad=True, output=None):
        """backward; with `output` (the relu'd output of _forward(x, "relu")), of the
        relu too."""
        x = self._forwarded("_x")
        weight, bias = self.weight, self.bias
        want_w = weight is not None and weight.requires_grad
        want_b = bias is not None and bias.requires_grad
        shape = self.normalized_shape
        # a frozen one of the pair is computed into a scratch buffer (one kernel pass)
        gx, _, _ = F.layer_norm_backward(
            grad_out, x, shape, self._mean, self._rstd,
            None if weight is None else weight.data, None if bias is None else bias.data,
            need_input_grad=need_input_grad, need_weight_grad=want_w or want_b,
            grad_input=self._buffer("dx", x.shape) if need_input_grad else None,
            grad_weight=(weight._grad_out() if want_w else self._buffer("dw", shape))
            if weight is not None and (want_w or want_b) else None,
            grad_bias=(bias._grad_out() if want_b else self._buffer("db", shape))
            if bias is not None and (want_w or want_b) else None)
        return gx

    def config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "bias": self.bias is not None}

    def __repr__(self):  # torch's
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.elementwise_affine}, bias={self.bias is not None})")
