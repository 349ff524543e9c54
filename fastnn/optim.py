"""Optimizers with torch.optim's update rules (KerasAdam, KerasAdamW, KerasRMSprop: with
Keras' epsilon, for fastnn.keras), each step ONE fused C kernel call over all parameters
(fastnn._core.sgd_step / adam_step / rmsprop_step update the arrays in place), and
epoch-wise learning-rate schedules.

Parameter arrays are updated in place; each step reads every parameter's `.data` afresh,
so load_state_dict(assign=True), which rebinds it (to a float32 array of the same
shape), leaves the optimizer training the new array. A frozen parameter
(requires_grad False) is left untouched, and so is its state: like torch, which skips a
parameter without a gradient, each parameter counts only the steps it took (Adam's bias
correction, SGD's first momentum step), so one unfrozen later starts afresh."""
import collections.abc
import math

import numpy as np

from . import _core
from ._core import as_flag, as_real
from .nn.module import _zero_grads

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "KerasAdam", "KerasAdamW",
           "KerasRMSprop", "StepLR", "CosineAnnealingLR", "get"]


_SQUARES = ("exp_avg_sq", "max_exp_avg_sq", "square_avg")  # state arrays never negative


class Optimizer:
    """Base: holds the parameters, the per-parameter state arrays and the step count."""

    maximize = False  # torch's: ascend the objective (see _ascent)

    def __init__(self, params, lr):
        name = type(self).__name__
        if not hasattr(params, "__iter__") or hasattr(params, "parameters"):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. "
                            f"model.parameters()), got {type(params).__name__}")
        self.params = list(params)
        if self.params and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                               for p in self.params):
            self.params = [p for _, p in self.params]  # model.named_parameters(), as torch
        self._group_options = []
        if self.params and all(isinstance(g, dict) for g in self.params):
            # torch's param groups: one set of hyperparameters here (see _check_groups)
            groups, self.params = self.params, []
            for i, group in enumerate(groups):
                if "params" not in group:
                    raise ValueError(f"{name}: param group {i} has no 'params'")
                self.params += list(group["params"])
                self._group_options.append({k: v for k, v in group.items() if k != "params"})
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        first = {}
        for i, p in enumerate(self.params):
            if not hasattr(p, "data") or not hasattr(p, "grad"):
                raise TypeError(f"{name}: params[{i}] must be a fastnn.nn.Parameter, got "
                                f"{type(p).__name__}")
            j = first.setdefault(id(p), i)
            if j != i:  # each step would update it twice, with its state kept twice
                raise ValueError(f"{name}: params[{i}] is params[{j}] again; list each "
                                 f"parameter once")
        lr = as_real(lr, "lr", name)
        # lr 0 is allowed, as in torch: CosineAnnealingLR with eta_min=0 reaches it at
        # T_max, and the optimizer's state (saved with the model) must load back then
        if not 0 <= lr < math.inf:
            raise ValueError(f"{name}: lr must be finite and >= 0, got {lr!r}")
        self.lr = float(lr)
        self.steps = 0
        self._flags = None
        self._counts = np.zeros(len(self.params), np.int64)  # steps each parameter took
        self._groups = None  # _by_count's groups, found again after a flag or state change

    def _trainable(self, *states):
        """The .data and .grad arrays of the parameters with requires_grad and a .grad
        (torch skips a parameter whose .grad is None: no backward reached it since
        zero_grad), read at each step, then `states` (per-parameter state lists, or
        None) restricted to them, rebuilt only when a flag changes."""
        if len(self.params) != len(self._counts):  # appended to: an IndexError in the state
            raise ValueError(f"{type(self).__name__}: params has {len(self.params)} entries but "
                             f"the optimizer was built over {len(self._counts)} (its state is "
                             f"per parameter); make a new optimizer for other parameters")
        flags = tuple(p.requires_grad and p.grad is not None for p in self.params)
        if flags != self._flags:
            self._keep = [i for i, f in enumerate(flags) if f]
            self._keep_index = np.array(self._keep, np.intp)
            self._groups = None
            self._kept = [None if a is None else [a[i] for i in self._keep] for a in states]
            self._flags = flags
        params = [self.params[i] for i in self._keep]
        return [[p.data for p in params], [p.grad for p in params], *self._kept]

    def _by_count(self, *lists):
        """Count this step for the trainable parameters, then (count, lists) for each
        group of them with one step count, the lists (from _trainable) restricted to the
        group: one group unless some were frozen for some steps."""
        keep = self._keep_index
        self._counts[keep] += 1
        if self._groups is None:  # then fixed, as the counts of the same parameters go on
            counts = self._counts[keep]
            self._groups = [np.flatnonzero(counts == c) for c in np.unique(counts)]
        if len(self._groups) == 1:
            return [(int(self._counts[keep[0]]), lists)]
        return [(int(self._counts[keep[g[0]]]), [None if a is None else [a[i] for i in g]
                                                 for a in lists]) for g in self._groups]

    def zero_grad(self, set_to_none=True):
        """Reset the parameters' gradients, as torch: to None (set_to_none), or else
        fill them with zeros."""
        _zero_grads(self.params, set_to_none)

    def _zeros(self):
        return [np.zeros_like(p.data) for p in self.params]

    def _check_groups(self):
        """Param groups (torch's list of dicts) may repeat the constructor's
        hyperparameters but not change them: every parameter steps in one fused call."""
        name, hyper = type(self).__name__, self.hyperparameters()
        for i, options in enumerate(self._group_options):
            for key, value in options.items():
                if key not in hyper:
                    raise ValueError(f"{name}: param group {i} has an unknown option {key!r}; "
                                     f"known: {sorted(hyper)}")
                mine = hyper[key]
                same = (list(value) == mine if isinstance(mine, list) else value == mine)
                if not same:
                    raise ValueError(f"{name}: param group {i} sets {key}={value!r} but the "
                                     f"optimizer has {key}={mine!r}: fastnn's optimizers take "
                                     f"one set of hyperparameters for all their parameters "
                                     f"(make one optimizer per group)")

    @property
    def param_groups(self):
        """torch's param_groups: one group, a live mapping of 'params' and the
        hyperparameters ({'lr': ...}; setting group['lr'] sets the optimizer's lr)."""
        return [_ParamGroup(self)]

    @property
    def defaults(self):
        return self.hyperparameters()

    def _ascent(self, grads):
        """The gradients the step follows: negated with maximize (torch's argument)."""
        return [np.negative(g) for g in grads] if self.maximize else grads

    def hyperparameters(self):
        """Constructor keyword arguments (JSON-serialisable)."""
        raise NotImplementedError

    def _state_arrays(self):
        """Name -> list of per-parameter state arrays (updated in place by step)."""
        raise NotImplementedError

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        """Set by schedules and callbacks between steps: checked now (a string failed in
        the next step unnamed; NaN trained on NaN), as a step takes it (finite, >= 0)."""
        name = type(self).__name__
        value = as_real(value, "lr", name)
        if not 0 <= value < math.inf:
            raise ValueError(f"{name}: lr must be finite and >= 0, got {value!r}")
        self._lr = value

    # Keras' name: a fastnn.keras callback sets self.model.optimizer.learning_rate
    learning_rate = lr

    def state_dict(self):
        """{"type", "hyperparameters", "steps", "state": {name: [arrays]}} (copies)."""
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "steps": self.steps,
                "state": {k: [a.copy() for a in v] for k, v in self._state_arrays().items()}}

    def load_state_dict(self, state):
        """Take over hyperparameters, step count and state arrays (copied in place). On
        an error the optimizer is left as it was."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{name}.load_state_dict: state must be a dict from state_dict(), "
                            f"got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from a "
                             f"{state.get('type')!r} optimizer")
        hyper, steps, theirs = state.get("hyperparameters"), state.get("steps"), state.get("state")
        if not isinstance(hyper, dict) or not isinstance(theirs, dict):
            raise TypeError(f"{name}.load_state_dict: hyperparameters and state must be dicts, "
                            f"got {type(hyper).__name__} and {type(theirs).__name__}")
        if not _core.is_int(steps) or not 0 <= steps < 2**63:  # 2**70: an int64 overflow
            raise ValueError(f"{name}.load_state_dict: steps must be a non-negative int, got "
                             f"{steps!r}")
        # A new instance with the saved hyperparameters validates them and allocates the
        # state arrays they need (e.g. SGD's momentum buffers); this one changes only once
        # everything fits (re-initialising it in place lost its state on an error).
        try:
            new = type(self)(self.params, **hyper)
        except TypeError as e:  # an unknown key: "__init__() got an unexpected keyword"
            raise TypeError(f"{name}.load_state_dict: hyperparameters {hyper}: {e}") from None
        mine = new._state_arrays()
        # "step" (per-parameter counts) is absent from states saved before it was kept
        if not set(mine) - {"step"} <= set(theirs) <= set(mine):
            raise ValueError(f"{name}.load_state_dict: state has arrays {sorted(theirs)}, "
                             f"expected {sorted(mine)}")
        for key in theirs:
            arrays, srcs = mine[key], [np.asarray(a) for a in theirs[key]]
            shapes = [a.shape for a in srcs]
            if shapes != [a.shape for a in arrays]:
                raise ValueError(f"{name}.load_state_dict: {key!r} shapes {shapes} do not "
                                 f"match the parameters' {[a.shape for a in arrays]}")
            if any(a.dtype.kind not in "biuf" for a in srcs):
                raise TypeError(f"{name}.load_state_dict: {key!r} holds arrays of dtype "
                                f"{[str(a.dtype) for a in srcs]}, expected real numbers")
            if key in _SQUARES and any((a < 0).any() for a in srcs):  # no step makes one:
                # a forged or foreign state, whose square root made the weights NaN
                raise ValueError(f"{name}.load_state_dict: {key!r} holds negative values (a "
                                 f"running average of squares)")
            for dst, src in zip(arrays, srcs):
                np.copyto(dst, src)
        new.steps = int(steps)
        if "step" not in theirs:  # no per-parameter counts saved: each took every step
            new._counts[:] = new.steps
        elif (new._counts < 0).any():
            raise ValueError(f"{name}.load_state_dict: 'step' counts must be non-negative, "
                             f"got {new._counts.tolist()}")
        self.__dict__.update(new.__dict__)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """torch.optim.SGD: optional momentum (with Nesterov) and L2 weight decay, its
    arguments in torch's order; lr 1e-3 by default, as in torch 2. maximize ascends the
    objective (the gradient negated)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, lr)
        self.maximize = as_flag(maximize, "maximize", type(self).__name__)
        momentum, weight_decay, dampening = (as_real(v, k, "SGD") for k, v in (
            ("momentum", momentum), ("weight_decay", weight_decay), ("dampening", dampening)))
        nesterov = as_flag(nesterov, "nesterov", "SGD")
        if not (momentum >= 0 and weight_decay >= 0 and math.isfinite(momentum + weight_decay)
                and math.isfinite(dampening)):
            raise ValueError(f"SGD: momentum and weight_decay must be finite and >= 0 and "
                             f"dampening finite, got {momentum!r}, {weight_decay!r}, "
                             f"{dampening!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening 0")
        self.momentum, self.nesterov = float(momentum), nesterov
        self.weight_decay, self.dampening = float(weight_decay), float(dampening)
        self._bufs = self._zeros() if self.momentum else None
        self._check_groups()

    def step(self):
        data, grads, bufs = self._trainable(self._bufs)
        if data:
            for count, (d, g, b) in self._by_count(data, self._ascent(grads), bufs):
                _core.sgd_step(d, g, b, lr=self.lr,
                               momentum=self.momentum, dampening=self.dampening,
                               nesterov=self.nesterov, weight_decay=self.weight_decay,
                               first_step=count == 1)
        self.steps += 1

    def hyperparameters(self):
        hyper = {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                 "weight_decay": self.weight_decay, "dampening": self.dampening}
        if self.maximize:
            hyper["maximize"] = True
        return hyper

    def _state_arrays(self):
        return {} if self._bufs is None else {"momentum_buffer": self._bufs}


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient; decoupled as AdamW's with
    decoupled_weight_decay). amsgrad (torch's) divides by the running maximum of the
    second moment (a NumPy step, not the fused kernel); maximize ascends the objective.
    params may also be model.named_parameters(), as in torch."""

    _decoupled = False
    _keras_eps = False  # eps added to sqrt(v) before v's bias correction (KerasAdam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        super().__init__(params, lr)
        name = type(self).__name__
        self.amsgrad = as_flag(amsgrad, "amsgrad", name)
        self.maximize = as_flag(maximize, "maximize", name)
        # torch's Adam(decoupled_weight_decay=True) is AdamW
        self._decoupled = self._decoupled or as_flag(decoupled_weight_decay,
                                                     "decoupled_weight_decay", name)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair of floats, got {betas!r}")
        b1, b2 = (as_real(b, "betas", name) for b in betas)
        eps, weight_decay = as_real(eps, "eps", name), as_real(weight_decay, "weight_decay", name)
        # eps > 0, unlike torch's eps >= 0: eps = 0 divides 0 by 0 for any untouched weight.
        if not (0 <= b1 < 1 and 0 <= b2 < 1) or not 0 < eps < math.inf \
                or not 0 <= weight_decay < math.inf:
            raise ValueError(f"{name}: need betas in [0, 1), eps > 0 and "
                             f"weight_decay >= 0, got {betas!r}, {eps!r}, {weight_decay!r}")
        self.betas, self.eps, self.weight_decay = (b1, b2), float(eps), float(weight_decay)
        self._m, self._v = self._zeros(), self._zeros()
        self._vmax = self._zeros() if self.amsgrad else None
        self._check_groups()

    def step(self):
        self.steps += 1
        data, grads, m, v, vmax = self._trainable(self._m, self._v, self._vmax)
        if data:
            for count, (d, g, m, v, vmax) in self._by_count(data, self._ascent(grads), m, v,
                                                            vmax):
                eps = self.eps
                if self._keras_eps:  # the kernel adds eps after the correction: scale it
                    eps /= math.sqrt(1.0 - self.betas[1] ** count)
                if self.amsgrad:
                    self._amsgrad_step(count, eps, d, g, m, v, vmax)
                    continue
                _core.adam_step(d, g, m, v, step=count, lr=self.lr,
                                beta1=self.betas[0], beta2=self.betas[1], eps=eps,
                                weight_decay=self.weight_decay, decoupled=self._decoupled)

    def _amsgrad_step(self, count, eps, data, grads, ms, vs, vmaxes):
        """torch's Adam step with amsgrad, its float32 operations in its order (eps: as the
        kernel takes it)."""
        (b1, b2), f32 = self.betas, np.float32
        step_size = f32(self.lr / (1 - b1 ** count))
        bias_correction2_sqrt = f32(math.sqrt(1 - b2 ** count))
        for p, g, m, v, vmax in zip(data, grads, ms, vs, vmaxes):
            if self._decoupled:
                p *= f32(1 - self.lr * self.weight_decay)
            elif self.weight_decay:
                g = g + f32(self.weight_decay) * p
            m += (g - m) * f32(1 - b1)
            v *= f32(b2)
            v += g * g * f32(1 - b2)
            np.maximum(vmax, v, out=vmax)
            p -= step_size * (m / (np.sqrt(vmax) / bias_correction2_sqrt + f32(eps)))

    def hyperparameters(self):
        hyper = {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                 "weight_decay": self.weight_decay}
        if self.amsgrad:
            hyper["amsgrad"] = True
        if self.maximize:
            hyper["maximize"] = True
        if self._decoupled and not type(self)._decoupled:
            hyper["decoupled_weight_decay"] = True
        return hyper

    def _state_arrays(self):
        # "step": torch's per-parameter step count (0-d views of _counts)
        state = {"exp_avg": self._m, "exp_avg_sq": self._v,
                 "step": [self._counts[i, ...] for i in range(len(self.params))]}
        if self._vmax is not None:
            state["max_exp_avg_sq"] = self._vmax
        return state


class AdamW(Adam):
    """torch.optim.AdamW: weight decay decoupled from the gradient (param *= 1 - lr*wd)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: square_avg = alpha * square_avg + (1 - alpha) * g^2; the step
    divides by sqrt(square_avg) + eps (centered: by the standard deviation, subtracting
    the squared running mean of g), with optional momentum and L2 weight decay."""

    _eps_inside = False  # sqrt(square_avg + eps) (KerasRMSprop)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        super().__init__(params, lr)
        self.maximize = as_flag(maximize, "maximize", type(self).__name__)
        name = type(self).__name__
        alpha, eps, weight_decay, momentum = (as_real(v, k, name) for k, v in (
            ("alpha", alpha), ("eps", eps), ("weight_decay", weight_decay),
            ("momentum", momentum)))
        # eps > 0, unlike torch's eps >= 0: eps = 0 divides 0 by 0 for any untouched weight.
        if not 0 <= alpha <= 1 or not 0 < eps < math.inf or not 0 <= weight_decay < math.inf \
                or not 0 <= momentum < math.inf:
            raise ValueError(f"{name}: need alpha in [0, 1], eps > 0 and finite weight_decay "
                             f"and momentum >= 0, got alpha={alpha!r}, eps={eps!r}, "
                             f"weight_decay={weight_decay!r}, momentum={momentum!r}")
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), as_flag(centered, "centered", name)
        self._square = self._zeros()
        self._grad_avg = self._zeros() if self.centered else None
        self._bufs = self._zeros() if self.momentum else None
        self._check_groups()

    def step(self):
        data, grads, square, grad_avg, bufs = self._trainable(
            self._square, self._grad_avg, self._bufs)
        if data:
            _core.rmsprop_step(data, self._ascent(grads), square, grad_avg, bufs, lr=self.lr,
                               alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
                               momentum=self.momentum, centered=self.centered,
                               eps_inside=self._eps_inside)
        self.steps += 1

    def hyperparameters(self):
        hyper = {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                 "weight_decay": self.weight_decay, "momentum": self.momentum,
                 "centered": self.centered}
        if self.maximize:
            hyper["maximize"] = True
        return hyper

    def _state_arrays(self):
        state = {"square_avg": self._square}
        if self._grad_avg is not None:
            state["grad_avg"] = self._grad_avg
        if self._bufs is not None:
            state["momentum_buffer"] = self._bufs
        return state


class _ParamGroup(collections.abc.MutableMapping):
    """An optimizer's one param group as torch's dict: 'params' and the hyperparameters,
    read from and written to the optimizer. The ones that size its state (momentum,
    centered, amsgrad) cannot change after construction."""

    _FIXED = ("params", "momentum", "centered", "amsgrad")

    def __init__(self, optimizer):
        self._opt = optimizer

    def __getitem__(self, key):
        if key == "params":
            return self._opt.params
        return self._opt.hyperparameters()[key]

    def __setitem__(self, key, value):
        name, hyper = type(self._opt).__name__, self._opt.hyperparameters()
        if key not in hyper or key in self._FIXED:
            raise ValueError(f"{name}.param_groups[0][{key!r}] cannot be set: settable are "
                             f"{sorted(k for k in hyper if k not in self._FIXED)}")
        # validated as the constructor does, on a one-element stand-in parameter
        probe = type(self._opt)([_Probe()], **{**hyper, key: value})
        setattr(self._opt, key, getattr(probe, key))

    def __delitem__(self, key):
        raise KeyError(f"param group entries cannot be removed, got {key!r}")

    def __iter__(self):
        return iter(["params", *self._opt.hyperparameters()])

    def __len__(self):
        return 1 + len(self._opt.hyperparameters())

    def __repr__(self):
        return repr(dict(self))


class _Probe:
    """A one-element parameter for _ParamGroup's validation."""
    data = np.zeros(1, np.float32)
    grad = np.zeros(1, np.float32)
    requires_grad = True




class KerasAdam(Adam):
    """keras.optimizers.Adam's update (fastnn.keras' Adam): torch's, except that eps is
    added to sqrt(v) before v's bias correction, not after."""

    _keras_eps = True


class KerasAdamW(AdamW):
    """keras.optimizers.AdamW's update: AdamW with KerasAdam's eps."""

    _keras_eps = True


class KerasRMSprop(RMSprop):
    """keras.optimizers.RMSprop's update: the step divides by sqrt(square_avg + eps)
    (centered: sqrt(square_avg - grad_avg^2 + eps)), not by sqrt(square_avg) + eps."""

    _eps_inside = True


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, KerasAdam, KerasAdamW,
                                            KerasRMSprop)}


def get(name, params, **kwargs):
    """An optimizer by (case-insensitive) name: 'sgd', 'adam', 'adamw' or 'rmsprop'."""
    by_lower = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop)}
    if not isinstance(name, str) or name.lower() not in by_lower:
        raise ValueError(f"optimizer must be one of {sorted(by_lower)}, got {name!r}")
    return by_lower[name.lower()](params, **kwargs)


class _Scheduler:
    """Sets optimizer.lr once per epoch. Also a fit() callback: pass it in
    `callbacks=[...]` and it steps at the end of every epoch."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be a fastnn.optim "
                            f"optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self):
        epoch = self.epoch + 1
        try:
            lr = self._lr(epoch)
        except OverflowError:  # StepLR's gamma ** k for a gamma > 1 (Python's error)
            lr = math.inf
        if lr == math.inf:
            raise ValueError(f"{type(self).__name__}: the lr of epoch {epoch} overflows a "
                             f"float ({self.state_dict()})")
        self.optimizer.lr = lr
        self.epoch = epoch

    def get_last_lr(self):
        return self.optimizer.lr

    @property
    def last_epoch(self):
        """torch's name for the epochs stepped so far."""
        return self.epoch

    def state_dict(self):
        """Everything but the optimizer, as torch's schedulers save."""
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state):
        """Take over a state_dict() of a scheduler of this type (the optimizer's lr comes
        with the optimizer's own state)."""
        mine = self.state_dict()
        if not isinstance(state, dict) or set(state) != set(mine):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with "
                             f"keys {sorted(mine)}, got "
                             f"{sorted(state) if isinstance(state, dict) else type(state)}")
        # a new instance checks the arguments (a step_size of 0 divided by zero, a string
        # failed, at the next step); then epoch and base_lr
        new = type(self)(self.optimizer, **{k: v for k, v in state.items()
                                            if k not in ("epoch", "base_lr")})
        where = f"{type(self).__name__}.load_state_dict"
        if not _core.is_int(state["epoch"]) or state["epoch"] < 0:
            raise ValueError(f"{where}: epoch must be a non-negative int, got "
                             f"{state['epoch']!r}")
        base_lr = as_real(state["base_lr"], "base_lr", where)
        if not 0 <= base_lr < math.inf:
            raise ValueError(f"{where}: base_lr must be finite and >= 0, got {base_lr!r}")
        new.epoch, new.base_lr = int(state["epoch"]), base_lr
        self.__dict__.update(new.__dict__)

    def on_epoch_end(self, epoch, logs):
        self.step()


class StepLR(_Scheduler):
    """lr = base_lr * gamma ** (epoch // step_size), like torch's StepLR."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not _core.is_int(step_size) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size!r}")
        gamma = as_real(gamma, "gamma", "StepLR")
        if not 0 < gamma < math.inf:  # else the lr turns 0, negative or NaN
            raise ValueError(f"StepLR: gamma must be positive and finite, got {gamma!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), gamma

    def _lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (closed form
    of torch's CosineAnnealingLR within its first period)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if not _core.is_int(T_max) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max!r}")
        eta_min = as_real(eta_min, "eta_min", "CosineAnnealingLR")
        if not 0 <= eta_min < math.inf:  # else the lr turns negative or NaN
            raise ValueError(f"CosineAnnealingLR: eta_min must be finite and >= 0, got "
                             f"{eta_min!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = int(T_max), eta_min

    def _lr(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2
