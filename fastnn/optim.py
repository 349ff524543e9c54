"""Optimizers with torch.optim's update rules (KerasAdam, KerasAdamW, KerasRMSprop: with
Keras' epsilon, for fastnn.keras), each step ONE fused C kernel call over all parameters
of a param group (fastnn._core.sgd_step / adam_step / rmsprop_step update the arrays in
place), and epoch-wise learning-rate schedules.

Parameter arrays are updated in place; each step reads every parameter's `.data` afresh,
so load_state_dict(assign=True), which rebinds it (to a float32 array of the same
shape), leaves the optimizer training the new array. A frozen parameter
(requires_grad False) is left untouched, and so is its state: like torch, which skips a
parameter without a gradient, each parameter counts only the steps it took (Adam's bias
correction, SGD's first momentum step), so one unfrozen later starts afresh."""
import bisect
import collections.abc
import inspect
import math

import numpy as np

from . import _core
from ._core import as_flag, as_real
from .nn.module import _zero_grads

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "KerasAdam", "KerasAdamW",
           "KerasRMSprop", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "LambdaLR", "ReduceLROnPlateau", "get"]


_SQUARES = ("exp_avg_sq", "max_exp_avg_sq", "square_avg")  # state arrays never negative


def _evaluate(closure, name):
    """torch's optimizer.step(closure): closure() (which recomputes the gradients) runs
    before the update and the step returns its loss; None without a closure."""
    if closure is None:
        return None
    if not callable(closure):
        raise TypeError(f"{name}.step: closure must be a function returning the loss, got "
                        f"{type(closure).__name__}")
    return closure()


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
        self._group_options = None  # torch's param groups given: their own options
        group_sizes = None
        if self.params and all(isinstance(g, dict) for g in self.params):
            groups, self.params, self._group_options, group_sizes = self.params, [], [], []
            for i, group in enumerate(groups):
                if "params" not in group:
                    raise ValueError(f"{name}: param group {i} has no 'params'")
                params = group["params"]
                if not hasattr(params, "__iter__") and not hasattr(params, "grad"):
                    raise TypeError(f"{name}: param group {i}'s 'params' must be a Parameter "
                                    f"or an iterable of them, got {type(params).__name__}")
                params = [params] if hasattr(params, "grad") else list(params)  # as torch
                self.params += params
                group_sizes.append(len(params))
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
        self._overrides = [{}]  # per param group: its hyperparameters that are its own
        lr = as_real(lr, "lr", name)
        # lr 0 is allowed, as in torch: CosineAnnealingLR with eta_min=0 reaches it at
        # T_max, and the optimizer's state (saved with the model) must load back then
        if not 0 <= lr < math.inf:
            raise ValueError(f"{name}: lr must be finite and >= 0, got {lr!r}")
        self.lr = float(lr)
        self.steps = 0
        self._flags = None
        self._counts = np.zeros(len(self.params), np.int64)  # steps each parameter took
        group_sizes = group_sizes or [len(self.params)]
        self._group_of = np.repeat(np.arange(len(group_sizes)), group_sizes)
        self._runs = None  # _by_count's runs, found again after a flag or state change

    def _trainable(self, *states):
        """The .data and .grad arrays of the parameters with requires_grad and a .grad
        (torch skips a parameter whose .grad is None: no backward reached it since
        zero_grad), read at each step, then `states` (per-parameter state lists, or
        None) restricted to them, rebuilt only when a flag changes."""
        if len(self.params) != len(self._counts):  # appended to: an IndexError in the state
            raise ValueError(f"{type(self).__name__}: params has {len(self.params)} entries but "
                             f"the optimizer was built over {len(self._counts)} (its state is "
                             f"per parameter); make a new optimizer for other parameters")
        flags = tuple([p.requires_grad and p.grad is not None for p in self.params])
        if flags != self._flags:
            self._keep = [i for i, f in enumerate(flags) if f]
            self._keep_index = np.array(self._keep, np.intp)
            self._runs = None
            self._kept = [None if a is None else [a[i] for i in self._keep] for a in states]
            self._flags = flags
        params = [self.params[i] for i in self._keep]
        return [[p.data for p in params], [p.grad for p in params], *self._kept]

    def _by_count(self, *lists):
        """Count this step for the trainable parameters, then (hyper, count, lists) for
        each run of them in one param group with one step count: hyper reads the group's
        hyperparameters (hyper.lr, ...), the lists (from _trainable) are restricted to the
        run. One run unless there are param groups or some were frozen for some steps."""
        keep = self._keep_index
        self._counts[keep] += 1
        if self._runs is None:  # then fixed, as the counts of the same parameters go on
            runs = np.stack([self._group_of[keep], self._counts[keep]], 1)
            self._runs = [(int(g), np.flatnonzero((runs == (g, c)).all(1)))
                          for g, c in np.unique(runs, axis=0)]
        if len(self._runs) == 1:
            return [(self._hyper(self._runs[0][0]), int(self._counts[keep[0]]), lists)]
        return [(self._hyper(g), int(self._counts[keep[run[0]]]),
                 [None if a is None else [a[i] for i in run] for a in lists])
                for g, run in self._runs]

    def _hyper(self, group):
        """Param group `group`'s hyperparameters as attributes: without param groups the
        optimizer's own, read directly (_Hyper's lookups cost ~0.5 us each per step)."""
        return self if self._group_options is None else _Hyper(self, group)

    def zero_grad(self, set_to_none=True):
        """Reset the parameters' gradients, as torch: to None (set_to_none), or else
        fill them with zeros."""
        _zero_grads(self.params, set_to_none)

    def _zeros(self):
        return [np.zeros_like(p.data) for p in self.params]

    # hyperparameters that size the state (or fix its meaning): one value for all groups
    _SHARED = ("momentum", "centered", "amsgrad", "decoupled_weight_decay")

    def _check_groups(self):
        """torch's param groups: each group's options, validated as the constructor
        validates them, become its own hyperparameters (every group keeps its own lr,
        so setting opt.lr sets them all); the ones in _SHARED must be the optimizer's."""
        if self._group_options is not None:
            self._overrides = [self._validated(i, options)
                               for i, options in enumerate(self._group_options)]

    def _validated(self, i, options):
        """Group i's options {name: value} as the attribute values step reads."""
        name, hyper = type(self).__name__, self.hyperparameters()
        known = sorted(inspect.signature(type(self)).parameters.keys() - {"params"})
        for key in options:
            if key not in known:
                raise ValueError(f"{name}: param group {i} has an unknown option {key!r}; "
                                 f"known: {known}")
        # the constructor checks the group's values (on a one-element stand-in parameter)
        probe = type(self)([_Probe()], **{**hyper, **options})
        theirs = probe.hyperparameters()
        for key in self._SHARED:
            if theirs.get(key, False) != hyper.get(key, False):
                raise ValueError(f"{name}: param group {i} sets {key}={options[key]!r} but "
                                 f"the optimizer has {key}={hyper.get(key, False)!r}: {key} "
                                 f"shapes the optimizer's state, so it is one for all groups")
        own = {key: getattr(probe, key) for key in options if key not in self._SHARED}
        own["lr"] = probe.lr
        return own

    @property
    def param_groups(self):
        """torch's param_groups: live mappings of each group's 'params' and
        hyperparameters ({'lr': ...}; setting group['lr'] sets that group's lr). Without
        groups given, one group whose values are the optimizer's own."""
        return [_ParamGroup(self, i) for i in range(len(self._overrides))]

    def add_param_group(self, group):
        """torch's add_param_group: more parameters, with options of their own (else the
        optimizer's), starting from fresh state."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}.add_param_group: group must be a dict with 'params', "
                            f"got {type(group).__name__}")
        grown = type(self)([{"params": self.params}, group], **self.hyperparameters())
        n = len(grown.params) - len(self.params)
        if self._group_options is None:  # the one group so far: the optimizer's values
            self._group_options, self._overrides = [{}], [{"lr": self._lr}]
        self._group_options.append(grown._group_options[1])
        self._overrides.append(grown._overrides[1])
        self.params = grown.params
        self._group_of = np.concatenate([self._group_of,
                                         np.full(n, len(self._overrides) - 1)])
        self._counts = np.concatenate([self._counts, np.zeros(n, np.int64)])
        for key, arrays in self._state_arrays().items():
            if key != "step":
                arrays += [np.zeros_like(p.data) for p in self.params[-n:]]
        self._flags = None

    @property
    def defaults(self):
        return self.hyperparameters()

    @staticmethod
    def _ascent(grads, hyper):
        """The gradients the step follows: negated with maximize (torch's argument)."""
        return [np.negative(g) for g in grads] if hyper.maximize else grads

    def hyperparameters(self):
        """Constructor keyword arguments (JSON-serialisable)."""
        raise NotImplementedError

    def _state_arrays(self):
        """Name -> list of per-parameter state arrays (updated in place by step)."""
        raise NotImplementedError

    @property
    def lr(self):
        """The first param group's lr (the only one without groups); setting it sets
        every group's."""
        return self._overrides[0].get("lr", self._lr)

    @lr.setter
    def lr(self, value):
        """Set by schedules and callbacks between steps: checked now (a string failed in
        the next step unnamed; NaN trained on NaN), as a step takes it (finite, >= 0)."""
        name = type(self).__name__
        value = as_real(value, "lr", name)
        if not 0 <= value < math.inf:
            raise ValueError(f"{name}: lr must be finite and >= 0, got {value!r}")
        self._lr = value
        for own in self._overrides:
            own["lr"] = value

    # Keras' name: a fastnn.keras callback sets self.model.optimizer.learning_rate
    learning_rate = lr

    def state_dict(self):
        """{"type", "hyperparameters", "steps", "state": {name: [arrays]}} (copies), and
        with param groups "param_groups": [{"params": [indices], their own options}]."""
        state = {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                 "steps": self.steps,
                 "state": {k: [a.copy() for a in v] for k, v in self._state_arrays().items()}}
        if self._group_options is not None:
            state["param_groups"] = [
                {"params": np.flatnonzero(self._group_of == i).tolist(),
                 **{k: v for k, v in group._hyper().items() if k in self._overrides[i]}}
                for i, group in enumerate(self.param_groups)]
        return state

    def _groups_from(self, groups, where):
        """This optimizer's parameters in the param groups of a state_dict (None: no
        groups), each group's "params" the consecutive indices state_dict writes."""
        if groups is None:
            return self.params
        if not isinstance(groups, list) or not all(isinstance(g, dict) and "params" in g
                                                   for g in groups):
            raise TypeError(f"{where}: param_groups must be a list of dicts with 'params'")
        indices = [i for g in groups for i in g["params"]]
        if indices != list(range(len(self.params))):
            raise ValueError(f"{where}: the param groups' params {[g['params'] for g in groups]} "
                             f"must number this optimizer's {len(self.params)} parameters in "
                             f"order")
        return [{**g, "params": [self.params[i] for i in g["params"]]} for g in groups]

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
            new = type(self)(self._groups_from(state.get("param_groups"), name +
                                               ".load_state_dict"), **hyper)
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

    def step(self, closure=None):
        loss = _evaluate(closure, type(self).__name__)
        data, grads, bufs = self._trainable(self._bufs)
        if data:
            for h, count, (d, g, b) in self._by_count(data, grads, bufs):
                _core.sgd_step(d, self._ascent(g, h), b, lr=h.lr, momentum=h.momentum,
                               dampening=h.dampening, nesterov=h.nesterov,
                               weight_decay=h.weight_decay, first_step=count == 1)
        self.steps += 1
        return loss

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

    def step(self, closure=None):
        loss = _evaluate(closure, type(self).__name__)
        self.steps += 1
        data, grads, m, v, vmax = self._trainable(self._m, self._v, self._vmax)
        if data:
            for h, count, (d, g, m, v, vmax) in self._by_count(data, grads, m, v, vmax):
                g, eps = self._ascent(g, h), h.eps
                if self._keras_eps:  # the kernel adds eps after the correction: scale it
                    eps /= math.sqrt(1.0 - h.betas[1] ** count)
                if self.amsgrad:
                    self._amsgrad_step(h, count, eps, d, g, m, v, vmax)
                    continue
                _core.adam_step(d, g, m, v, step=count, lr=h.lr, beta1=h.betas[0],
                                beta2=h.betas[1], eps=eps, weight_decay=h.weight_decay,
                                decoupled=self._decoupled)
        return loss

    def _amsgrad_step(self, h, count, eps, data, grads, ms, vs, vmaxes):
        """torch's Adam step with amsgrad, its float32 operations in its order (h: the
        param group's hyperparameters; eps: as the kernel takes it)."""
        (b1, b2), f32 = h.betas, np.float32
        step_size = f32(h.lr / (1 - b1 ** count))
        bias_correction2_sqrt = f32(math.sqrt(1 - b2 ** count))
        for p, g, m, v, vmax in zip(data, grads, ms, vs, vmaxes):
            if self._decoupled:
                p *= f32(1 - h.lr * h.weight_decay)
            elif h.weight_decay:
                g = g + f32(h.weight_decay) * p
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

    def step(self, closure=None):
        loss = _evaluate(closure, type(self).__name__)
        data, grads, square, grad_avg, bufs = self._trainable(
            self._square, self._grad_avg, self._bufs)
        if data:
            for h, _, (d, g, sq, avg, b) in self._by_count(data, grads, square, grad_avg, bufs):
                _core.rmsprop_step(d, self._ascent(g, h), sq, avg, b, lr=h.lr, alpha=h.alpha,
                                   eps=h.eps, weight_decay=h.weight_decay,
                                   momentum=self.momentum, centered=self.centered,
                                   eps_inside=self._eps_inside)
        self.steps += 1
        return loss

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


class _Hyper:
    """A param group's hyperparameters as attributes (h.lr): the group's own, else the
    optimizer's."""

    __slots__ = ("_opt", "_own")

    def __init__(self, optimizer, group):
        self._opt, self._own = optimizer, optimizer._overrides[group]

    def __getattr__(self, key):
        return self._own[key] if key in self._own else getattr(self._opt, key)


class _ParamGroup(collections.abc.MutableMapping):
    """An optimizer's param group as torch's dict: 'params' and the hyperparameters,
    read from and written to the optimizer. The ones that size its state (momentum,
    centered, amsgrad) cannot change after construction."""

    _FIXED = ("params", "momentum", "centered", "amsgrad", "decoupled_weight_decay")

    def __init__(self, optimizer, group):
        self._opt, self._group = optimizer, group

    def _hyper(self):
        own = {k: list(v) if isinstance(v, tuple) else v
               for k, v in self._opt._overrides[self._group].items()}
        return {**self._opt.hyperparameters(), **own}

    def __getitem__(self, key):
        if key == "params":
            return [p for p, g in zip(self._opt.params, self._opt._group_of) if g == self._group]
        return self._hyper()[key]

    def __setitem__(self, key, value):
        opt, hyper = self._opt, self._hyper()
        name = type(opt).__name__
        if key not in hyper and key != "maximize" or key in self._FIXED:
            raise ValueError(f"{name}.param_groups[{self._group}][{key!r}] cannot be set: "
                             f"settable are "
                             f"{sorted({*hyper, 'maximize'} - set(self._FIXED))}")
        # validated as the constructor does, on a one-element stand-in parameter
        probe = type(opt)([_Probe()], **{**hyper, key: value})
        if opt._group_options is None:  # no groups given: the optimizer's own values
            setattr(opt, key, getattr(probe, key))
        else:
            opt._overrides[self._group][key] = getattr(probe, key)

    def __delitem__(self, key):
        raise KeyError(f"param group entries cannot be removed, got {key!r}")

    def __iter__(self):
        return iter(["params", *self._hyper()])

    def __len__(self):
        return 1 + len(self._hyper())

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


def _positive(value, name, where):
    """value as a positive finite float, else an error naming it (a gamma or factor of 0,
    a negative one or NaN turns the lr 0, negative or NaN)."""
    value = as_real(value, name, where)
    if not 0 < value < math.inf:
        raise ValueError(f"{where}: {name} must be positive and finite, got {value!r}")
    return value


class _Scheduler:
    """Sets each param group's lr to _lr(its base lr, epoch) once per epoch (torch's
    closed forms), epoch 0's at construction as torch does. Also a fit() callback: pass
    it in `callbacks=[...]` and it steps at the end of every epoch."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be a fastnn.optim "
                            f"optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.epoch = 0

    def _start(self):
        """Epoch 0's lrs (a warm-up's first), once the subclass holds its arguments."""
        self._set(0)

    def _set(self, epoch):
        name = type(self).__name__
        try:
            lrs = self._lrs(epoch)
        except OverflowError:  # StepLR's gamma ** k for a gamma > 1 (Python's error)
            lrs = [math.inf]
        for lr in lrs:
            lr = as_real(lr, f"the lr of epoch {epoch}", name)
            if not 0 <= lr < math.inf:
                why = "overflows a float" if lr == math.inf else f"is {lr!r}, not >= 0"
                raise ValueError(f"{name}: the lr of epoch {epoch} {why} ({self.state_dict()})")
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    def _lrs(self, epoch):
        return [self._lr(base, epoch) for base in self.base_lrs]

    def step(self):
        self._set(self.epoch + 1)
        self.epoch += 1

    def get_last_lr(self):
        """Each param group's lr, as torch's."""
        return [group["lr"] for group in self.optimizer.param_groups]

    @property
    def last_epoch(self):
        """torch's name for the epochs stepped so far."""
        return self.epoch

    def state_dict(self):
        """Everything but the optimizer (and functions: private), as torch's schedulers
        save."""
        return {k: v for k, v in vars(self).items()
                if k != "optimizer" and not k.startswith("_")}

    def _rebuilt(self, args):
        """A new scheduler of this type on the same optimizer, with args from a state."""
        return type(self)(self.optimizer, **args)

    def load_state_dict(self, state):
        """Take over a state_dict() of a scheduler of this type (the optimizer's lr comes
        with the optimizer's own state)."""
        mine = self.state_dict()
        if not isinstance(state, dict) or set(state) != set(mine):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with "
                             f"keys {sorted(mine)}, got "
                             f"{sorted(state) if isinstance(state, dict) else type(state)}")
        # a new instance checks the arguments (a step_size of 0 divided by zero, a string
        # failed, at the next step); then epoch and base_lrs. Its epoch-0 lrs are not
        # kept: the optimizer's lrs come with the optimizer's own state.
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        try:
            new = self._rebuilt({k: v for k, v in state.items()
                                 if k not in ("epoch", "base_lrs")})
        finally:
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
        where = f"{type(self).__name__}.load_state_dict"
        if not _core.is_int(state["epoch"]) or state["epoch"] < 0:
            raise ValueError(f"{where}: epoch must be a non-negative int, got "
                             f"{state['epoch']!r}")
        base_lrs = state["base_lrs"]
        if not isinstance(base_lrs, list) or len(base_lrs) != len(new.base_lrs):
            raise ValueError(f"{where}: base_lrs must be a list of {len(new.base_lrs)} lrs "
                             f"(one per param group), got {base_lrs!r}")
        base_lrs = [as_real(lr, "base_lrs", where) for lr in base_lrs]
        if not all(0 <= lr < math.inf for lr in base_lrs):
            raise ValueError(f"{where}: base_lrs must be finite and >= 0, got {base_lrs!r}")
        new.epoch, new.base_lrs = int(state["epoch"]), base_lrs
        self.__dict__.update(new.__dict__)

    def on_epoch_end(self, epoch, logs):
        self.step()


class StepLR(_Scheduler):
    """lr = base_lr * gamma ** (epoch // step_size), like torch's StepLR."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not _core.is_int(step_size) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size!r}")
        gamma = _positive(gamma, "gamma", "StepLR")
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), gamma
        self._start()

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


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
        self._start()

    def _lr(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class MultiStepLR(_Scheduler):
    """lr = base_lr * gamma ** (how many milestones are <= epoch), like torch's (a
    milestone listed twice counts twice)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        if not hasattr(milestones, "__iter__") or isinstance(milestones, (str, bytes)) or \
                not all(_core.is_int(m) and m >= 0 for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be a list of non-negative ints "
                             f"(epochs), got {milestones!r}")
        gamma = _positive(gamma, "gamma", "MultiStepLR")
        super().__init__(optimizer)
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        self._start()

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(_Scheduler):
    """lr = base_lr * gamma ** epoch, like torch's."""

    def __init__(self, optimizer, gamma):
        gamma = _positive(gamma, "gamma", "ExponentialLR")
        super().__init__(optimizer)
        self.gamma = gamma
        self._start()

    def _lr(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class LinearLR(_Scheduler):
    """lr = base_lr * the factor going linearly from start_factor to end_factor over
    total_iters epochs, then staying: torch's warm-up (start_factor 1/3 by default)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        start_factor = as_real(start_factor, "start_factor", "LinearLR")
        end_factor = as_real(end_factor, "end_factor", "LinearLR")
        if not (0 < start_factor <= 1 and 0 <= end_factor <= 1):  # torch's ranges
            raise ValueError(f"LinearLR: start_factor must lie in (0, 1] and end_factor in "
                             f"[0, 1], got {start_factor!r} and {end_factor!r}")
        if not _core.is_int(total_iters) or total_iters < 1:
            raise ValueError(f"LinearLR: total_iters must be an int >= 1, got {total_iters!r}")
        super().__init__(optimizer)
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = int(total_iters)
        self._start()

    def _lr(self, base_lr, epoch):
        done = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class LambdaLR(_Scheduler):
    """lr = base_lr * lr_lambda(epoch), like torch's; lr_lambda is one function or a list
    of one per param group. A value that is not a finite number >= 0 raises, naming
    the epoch."""

    def __init__(self, optimizer, lr_lambda):
        super().__init__(optimizer)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else \
            [lr_lambda] * len(self.base_lrs)
        if len(lambdas) != len(self.base_lrs) or not all(map(callable, lambdas)):
            raise TypeError(f"LambdaLR: lr_lambda must be a function or a list of "
                            f"{len(self.base_lrs)} functions (one per param group), got "
                            f"{lr_lambda!r}")
        self._lr_lambda, self._lambdas = lr_lambda, lambdas
        self._start()

    def _lrs(self, epoch):
        return [base * as_real(f(epoch), f"lr_lambda({epoch})", "LambdaLR")
                for f, base in zip(self._lambdas, self.base_lrs)]

    def _rebuilt(self, args):
        return LambdaLR(self.optimizer, self._lr_lambda, **args)


class ReduceLROnPlateau:
    """torch's ReduceLROnPlateau: step(metric) multiplies each group's lr by factor (not
    below its min_lr) once the metric has not improved by threshold for more than
    patience epochs, then waits cooldown epochs. As a fit() callback it follows
    logs["val_loss"], or logs["loss"] without validation data."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        where = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: optimizer must be a fastnn.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{where}: mode must be 'min' or 'max' and threshold_mode 'rel' "
                             f"or 'abs', got {mode!r} and {threshold_mode!r}")
        factor = as_real(factor, "factor", where)
        if not 0 <= factor < 1:  # torch's: a factor >= 1 would never reduce
            raise ValueError(f"{where}: factor must lie in [0, 1), got {factor!r}")
        for name, v in (("patience", patience), ("cooldown", cooldown)):
            if not _core.is_int(v) or v < 0:
                raise ValueError(f"{where}: {name} must be an int >= 0, got {v!r}")
        threshold, eps = as_real(threshold, "threshold", where), as_real(eps, "eps", where)
        if not (0 <= threshold < math.inf and 0 <= eps < math.inf):
            raise ValueError(f"{where}: threshold and eps must be finite and >= 0, got "
                             f"{threshold!r} and {eps!r}")
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"{where}: min_lr must be one lr or a list of {groups} (one per "
                             f"param group), got {min_lr!r}")
        min_lrs = [as_real(v, "min_lr", where) for v in min_lrs]
        if not all(0 <= v < math.inf for v in min_lrs):
            raise ValueError(f"{where}: min_lr must be finite and >= 0, got {min_lr!r}")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience, self.threshold = mode, factor, int(patience), \
            threshold
        self.threshold_mode, self.cooldown, self.min_lrs, self.eps = threshold_mode, \
            int(cooldown), min_lrs, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = self.last_epoch = 0

    def _better(self, value):
        """torch's comparisons (its relative ones scale best itself, whatever its sign)."""
        t, best = self.threshold, self.best
        if self.mode == "min":
            return value < (best * (1 - t) if self.threshold_mode == "rel" else best - t)
        return value > (best * (1 + t) if self.threshold_mode == "rel" else best + t)

    def step(self, metrics):
        value = as_real(metrics, "metrics", "ReduceLROnPlateau.step")
        self.last_epoch += 1
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:  # NaN too: never an improvement, as in torch
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def on_epoch_end(self, epoch, logs):
        self.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])

    def state_dict(self):
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state):
        """Take over a state_dict() of a ReduceLROnPlateau, checked as the constructor
        checks its arguments."""
        where = "ReduceLROnPlateau.load_state_dict"
        mine = self.state_dict()
        if not isinstance(state, dict) or set(state) != set(mine):
            raise ValueError(f"{where}: expected a dict with keys {sorted(mine)}, got "
                             f"{sorted(state) if isinstance(state, dict) else type(state)}")
        args = {k: state[k] for k in ("mode", "factor", "patience", "threshold",
                                      "threshold_mode", "cooldown", "eps")}
        new = ReduceLROnPlateau(self.optimizer, min_lr=state["min_lrs"], **args)
        for key in ("num_bad_epochs", "cooldown_counter", "last_epoch"):
            if not _core.is_int(state[key]) or state[key] < 0:
                raise ValueError(f"{where}: {key} must be an int >= 0, got {state[key]!r}")
            setattr(new, key, int(state[key]))
        best = as_real(state["best"], "best", where)
        if math.isnan(best):
            raise ValueError(f"{where}: best must be a number, got {best!r}")
        new.best = best
        self.__dict__.update(new.__dict__)
