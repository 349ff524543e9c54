"""keras.optimizers: Adam, SGD, RMSprop, AdamW with Keras' arguments and defaults,
each building the fastnn.optim optimizer (one fused C step) over the model's
parameters when the model is compiled (or fit first runs), with Keras' update rules
(fastnn.optim.KerasAdam, KerasAdamW, KerasRMSprop: epsilon where Keras adds it)."""
import math

import numpy as np

from .. import nn, optim
from .._core import as_flag, as_real
from .layers import FromConfig

__all__ = ["Optimizer", "Adam", "SGD", "RMSprop", "AdamW", "get"]


class Optimizer(FromConfig):
    """A Keras optimizer: hyperparameters now, the fastnn optimizer at build(params)
    (once: compiling again with the same object continues its state, as in Keras).
    learning_rate is the built optimizer's once there is one, as Keras' is the variable
    its steps read: setting it after compile or fit changes the next steps' rate, and
    it shows what a schedule or callback set. Gradient clipping as Keras' (one of):
    clipnorm, each gradient rescaled to an L2 norm of at most clipnorm; clipvalue, each
    element clipped to [-clipvalue, clipvalue]; global_clipnorm, all gradients rescaled
    together to a joint L2 norm of at most global_clipnorm."""

    _built = None  # the fastnn optimizer of the build
    is_keras = True  # model.optimizer (else the fastnn optimizer fit steps)
    holds_all = True  # over every weight of the model it is compiled into
    clipnorm = clipvalue = global_clipnorm = None

    def __init__(self, learning_rate, hyper, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        self._learning_rate, self._hyper = learning_rate, hyper
        vars(self).update(hyper)
        self._set_clipping(clipnorm, clipvalue, global_clipnorm)
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

    @property
    def lr(self):
        """tf.keras' name of learning_rate (the callbacks use it for fastnn.optim's too)."""
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = value

    def get_config(self):
        """Keras' get_config: the constructor arguments (learning_rate the current one)."""
        return {"learning_rate": float(self.learning_rate), **self._hyper, **self.clipping()}

    def build(self, params):
        if self._built is None:
            self._built = self._make(params)
        return self._built

    def _set_clipping(self, clipnorm=None, clipvalue=None, global_clipnorm=None):
        what = type(self).__name__
        given = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                 "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in given.values()) > 1:  # Keras' message
            raise ValueError(f"{what}: only one of `clipnorm`, `clipvalue` and "
                             f"`global_clipnorm` can be set. Received: " +
                             ", ".join(f"{k}={v!r}" for k, v in given.items()))
        for name, value in given.items():
            if value is not None:
                value = as_real(value, name, what)
                if not 0 < value < math.inf:  # 0 or NaN: NaN weights after the first step
                    raise ValueError(f"{what}: {name} must be finite and > 0, got "
                                     f"{given[name]!r}")
            setattr(self, name, value)

    def clipping(self):
        """The clipping arguments (saved with the model)."""
        return {"clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    def clip(self, params):
        """Clip the gradients of params in place before a step, as Keras' optimizer does
        (g * c / max(norm, c)); nothing to do (and no pass over them) without clipping."""
        if self.clipvalue is None and self.clipnorm is None and self.global_clipnorm is None:
            return
        grads = [p.grad for p in params if p.grad is not None and p.requires_grad]
        if self.clipvalue is not None:
            for g in grads:
                np.clip(g, -self.clipvalue, self.clipvalue, out=g)
        norms = []
        if self.clipnorm is not None:
            norms = [(g, np.sqrt(np.sum(np.square(g))), self.clipnorm) for g in grads]
        elif self.global_clipnorm is not None and grads:
            norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads))
            norms = [(g, norm, self.global_clipnorm) for g in grads]
        for g, norm, c in norms:
            if norm > c:
                g *= np.float32(c / norm)


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **clipping):
        super().__init__(learning_rate, dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon),
                         **clipping)

    def _make(self, params):
        return optim.KerasAdam(params, self.learning_rate, (self.beta_1, self.beta_2),
                               self.epsilon)


class AdamW(Optimizer):
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, **clipping):
        super().__init__(learning_rate, dict(weight_decay=weight_decay, beta_1=beta_1,
                                             beta_2=beta_2, epsilon=epsilon), **clipping)

    def _make(self, params):
        return optim.KerasAdamW(params, self.learning_rate, (self.beta_1, self.beta_2),
                                self.epsilon, self.weight_decay)


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **clipping):
        super().__init__(learning_rate, dict(momentum=momentum, nesterov=nesterov), **clipping)

    def _make(self, params):
        # Keras refuses a momentum above 1 (torch's SGD, underneath, diverges on it)
        if not 0 <= as_real(self.momentum, "momentum", "SGD") <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {self.momentum!r}")
        # Keras' update without momentum is plain SGD, nesterov or not (torch's refuses it)
        nesterov = as_flag(self.nesterov, "nesterov", "SGD") and self.momentum > 0
        return optim.SGD(params, self.learning_rate, self.momentum, nesterov=nesterov)


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **clipping):
        super().__init__(learning_rate, dict(rho=rho, momentum=momentum, epsilon=epsilon,
                                             centered=centered), **clipping)

    def _make(self, params):
        return optim.KerasRMSprop(params, self.learning_rate, alpha=self.rho, eps=self.epsilon,
                                  momentum=self.momentum, centered=self.centered)


class _Ready(Optimizer):
    """A fastnn.optim optimizer passed to compile as it is (over the parameters it was
    given)."""

    holds_all = is_keras = False

    def __init__(self, opt):
        self.opt = opt

    def build(self, params):
        return self.opt


class Loaded(Optimizer):
    """The optimizer of a model read by load_model: load() puts it, with its state, in
    model.optimizer; built only if the file had none. Its clipping is the saved one."""

    holds_all = is_keras = False  # as saved

    def __init__(self, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self._set_clipping(clipnorm, clipvalue, global_clipnorm)

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
