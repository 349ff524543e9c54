"""keras.optimizers: Adam, SGD, RMSprop, AdamW with Keras' arguments and defaults,
each building the fastnn.optim optimizer (one fused C step) over the model's
parameters when the model is compiled (or fit first runs), with Keras' update rules
(fastnn.optim.KerasAdam, KerasAdamW, KerasRMSprop: epsilon where Keras adds it)."""
import math

import numpy as np

from .. import nn, optim
from .._core import as_flag, as_real

__all__ = ["Optimizer", "Adam", "SGD", "RMSprop", "AdamW", "get"]


class Optimizer:
    """A Keras optimizer: hyperparameters now, the fastnn optimizer at build(params).
    learning_rate is the built optimizer's once there is one, as Keras' is the variable
    its steps read: setting it after compile or fit changes the next steps' rate, and
    it shows what a schedule or callback set."""

    _built = None  # the fastnn optimizer of the last build

    def __init__(self, learning_rate, **hyper):
        self._learning_rate = learning_rate
        vars(self).update(hyper)
        # checked now, on a stand-in parameter: learning_rate=NaN, beta_1=1.5 or
        # nesterov='x' failed only when fit started, naming torch's lr, betas, eps
        try:
            self._make([nn.Parameter(np.zeros(1, np.float32))])
        except (ValueError, TypeError) as e:
            args = ", ".join(f"{k}={v!r}" for k, v in
                             {"learning_rate": learning_rate, **hyper}.items())
            raise type(e)(f"{type(self).__name__}({args}): {e}") from None

    @property
    def learning_rate(self):
        return self._learning_rate if self._built is None else self._built.lr

    @learning_rate.setter
    def learning_rate(self, value):
        what = type(self).__name__
        lr = as_real(value, "learning_rate", what)
        if not 0 <= lr < math.inf:  # else the next step fails, or trains on NaN
            raise ValueError(f"{what}: learning_rate must be finite and >= 0, got {value!r}")
        if self._built is not None:
            self._built.lr = lr
        self._learning_rate = lr

    def build(self, params):
        self._built = self._make(params)
        return self._built


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)

    def _make(self, params):
        return optim.KerasAdam(params, self.learning_rate, (self.beta_1, self.beta_2),
                               self.epsilon)


class AdamW(Optimizer):
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7):
        super().__init__(learning_rate, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon)

    def _make(self, params):
        return optim.KerasAdamW(params, self.learning_rate, (self.beta_1, self.beta_2),
                                self.epsilon, self.weight_decay)


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov)

    def _make(self, params):
        # Keras refuses a momentum above 1 (torch's SGD, underneath, diverges on it)
        if not 0 <= as_real(self.momentum, "momentum", "SGD") <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {self.momentum!r}")
        # Keras' update without momentum is plain SGD, nesterov or not (torch's refuses it)
        nesterov = as_flag(self.nesterov, "nesterov", "SGD") and self.momentum > 0
        return optim.SGD(params, self.learning_rate, self.momentum, nesterov=nesterov)


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False):
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
                         centered=centered)

    def _make(self, params):
        return optim.KerasRMSprop(params, self.learning_rate, alpha=self.rho, eps=self.epsilon,
                                  momentum=self.momentum, centered=self.centered)


class _Ready(Optimizer):
    """A fastnn.optim optimizer passed to compile as it is."""

    def __init__(self, opt):
        self.opt = opt

    def build(self, params):
        return self.opt


class Loaded(Optimizer):
    """The optimizer of a model read by load_model: load() puts it, with its state, in
    model.optimizer; built only if the file had none."""

    def __init__(self):
        pass

    def build(self, params):
        raise RuntimeError("this model was loaded without an optimizer: compile it again "
                           "(model.compile(optimizer=..., loss=...)) before fit")


NAMES = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop, "adamw": AdamW}


def get(identifier):
    """An Optimizer from a name, a Keras optimizer object or a fastnn.optim optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, optim.Optimizer):
        return _Ready(identifier)
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return NAMES[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; known: {sorted(NAMES)} or an optimizer "
                     f"object (fastnn.keras.optimizers / fastnn.optim)")
