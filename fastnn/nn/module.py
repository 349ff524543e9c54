"""Parameter and Module: the state every layer and model shares.

A Module holds Parameters (trainable arrays), buffers (non-trainable state such as
BatchNorm's running statistics, registered with `register_buffer`) and sub-modules, all
found from its attributes in assignment order, as in torch.nn.Module; `state_dict()` keys
are torch's (`0.weight`, `layer1.0.bn1.running_mean`, ...).

Two kinds of Module:
- a layer (Linear, Conv2d, ...) defines `forward(x)` and `backward(grad_out)` on arrays;
- a model (Sequential, fastnn.Model, or any subclass defining only `forward`) is traced:
  its `forward` runs once on symbolic values into a graph of layers (fastnn.nn.graph),
  which then runs forward and backward on arrays. Call it as `model(x)`.
"""
import collections
import collections.abc
import functools
import warnings

import numpy as np

from .. import training
from .._core import MAX_WINDOW_ARG, as_flag, is_int as _is_int

_engine = None  # fastnn.nn.graph: it imports the layers, which import this module


def _graph_engine():
    """fastnn.nn.graph, imported on first use (an import in every call costs more than
    a batch-1 kernel)."""
    global _engine
    if _engine is None:
        from . import graph
        _engine = graph
    return _engine

__all__ = ["Parameter", "Module", "StateDictError"]

class StateDictError(ValueError, RuntimeError):
    """load_state_dict's missing, unexpected or mis-shaped entries: a ValueError, as
    fastnn raises for bad arguments, and a RuntimeError, as torch's load_state_dict
    raises (code ported from torch catches it)."""


class _IncompatibleKeys(collections.namedtuple("IncompatibleKeys",
                                               ["missing_keys", "unexpected_keys"])):
    """load_state_dict's result, torch's named tuple (unpacks as (missing, unexpected)
    too), printed as torch's: "<All keys matched successfully>" when both are empty."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__

_FLOAT32 = np.dtype(np.float32)  # compared with != (~40 ns less than with np.float32)


def _what(x):
    """x's kind for an error that wants a float32 ndarray: 'a float64 array', 'list',
    'numpy.float32' (a NumPy scalar, which a bare 'float32' would hide)."""
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array"
    kind = type(x)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def _numpy(value):
    """A state_dict value as a NumPy array; a Parameter (state_dict(keep_vars=True)) as
    its data, a torch tensor detached (a Parameter requires grad) and bfloat16 as float32
    (NumPy has no bfloat16), as torch's copy converts it."""
    if isinstance(value, Parameter):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
    return np.asarray(value)


def _held(value):
    """The (key, module) pairs of an attribute value that is a list, tuple or dict of
    modules (tracked as Keras tracks them: keys 0, 1, ... or the dict's); None for any
    other value, an empty one included."""
    is_dict = isinstance(value, dict)
    if not (is_dict or isinstance(value, (list, tuple))) or not value or \
            not all(isinstance(m, Module) for m in (value.values() if is_dict else value)):
        return None  # checked first: a long list of numbers is not copied
    return list(value.items()) if is_dict else list(enumerate(value))


def _check_key(key, where):
    """An error saying `where` unless key can name a module in a dotted state_dict key
    (torch's rule for ModuleDict: a non-empty string without '.')."""
    if not isinstance(key, str):
        raise TypeError(f"{where}: keys must be strings (they name the modules in "
                        f"state_dict), got {_what(key)} {key!r}")
    if not key or "." in key:
        raise ValueError(f"{where}: keys must be non-empty and contain no '.' (they name "
                         f"the modules in state_dict), got {key!r}")


def _check_prefix(prefix, where):
    if not isinstance(prefix, str):
        raise TypeError(f"{where}: prefix must be a string, got {_what(prefix)}")


def _unique(pairs):
    """The (name, value) pairs whose value (a module, parameter or array, by identity)
    no earlier pair had, lazily: torch's duplicate removal in its iterators."""
    seen = set()
    for name, value in pairs:
        if id(value) not in seen:
            seen.add(id(value))
            yield name, value


class Parameter:
    """A float32 array `.data`, its gradient `.grad` and `requires_grad`: False freezes
    it (its gradient is not computed and optimizers skip it).

    `.grad` follows torch: None until a backward reaches the parameter and after
    `zero_grad()` (set_to_none); a model's backward adds to a gradient already there,
    so two backward calls accumulate (a layer's own backward, called by hand, writes
    it); optimizers skip a parameter whose .grad is None."""

    __slots__ = ("data", "grad", "_requires_grad", "_grad_buffer")

    def __init__(self, data, requires_grad=True):
        kind = np.asarray(data).dtype.kind
        if kind not in "biuf":
            raise TypeError(f"Parameter: data must be a real-valued array, got dtype "
                            f"{np.asarray(data).dtype}")
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = None
        self._grad_buffer = None
        self.requires_grad = requires_grad

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        """A bool, as torch checks: requires_grad = "False" (truthy) left it trainable."""
        self._requires_grad = as_flag(value, "requires_grad", "Parameter")

    def _grad_out(self):
        """The array a layer's backward writes this gradient into: .grad, or when that is
        None an array kept for it (reused after each zero_grad: a step allocates
        nothing), which becomes .grad."""
        grad = self.grad
        if grad is None:
            grad = self._grad_buffer
            if grad is None or grad.shape != self.data.shape:
                grad = self._grad_buffer = np.zeros_like(self.data)
            self.grad = grad
        return grad

    @property
    def shape(self):
        return self.data.shape

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze this parameter, as torch's Tensor.requires_grad_;
        returns self."""
        self.requires_grad = requires_grad
        return self

    def numel(self):
        return self.data.size

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}{frozen})"


def _zero_grads(params, set_to_none):
    """zero_grad of Module and of the optimizers: each .grad to None (set_to_none,
    torch's default: the next backward writes it afresh) or its zeros."""
    set_to_none = as_flag(set_to_none, "set_to_none", "zero_grad")
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.fill(0.0)


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


def memo_shape(output_shape):
    """Keep a layer's last output_shape result: its window arithmetic costs more than the
    kernel itself on a batch of one (predict, model(x) in eval mode)."""
    @functools.wraps(output_shape)
    def cached(self, shape):
        shape = tuple(shape)
        last = self.__dict__.get("_shape_memo")
        if last is None or last[0] != shape:
            last = self.__dict__["_shape_memo"] = (shape, output_shape(self, shape))
        return last[1]
    return cached


class _Fused:
    """Layers a graph plan runs as one kernel call (conv._FusedConv,
    normalization._FusedNorm): `layers`, the first of them holding the parameters."""

    layers = ()

    def named_parameters(self):
        return self.layers[0].named_parameters()

    def train(self, mode=True):
        for layer in self.layers:
            layer.train(mode)

    def __repr__(self):
        return " with ".join(f"{layer!r}" for layer in self.layers)


class Module(training.ModelAPI):
    """Base of layers and models: parameters, buffers, sub-modules, state_dict,
    train/eval mode, `_buffer` (per-layer scratch memory reused across steps), and the
    Keras-style API of fastnn.training.ModelAPI (fit, evaluate, predict, summary, save)."""

    training = True
    _optional_buffers = ()  # the names load_state_dict lets a plain dict lack

    def __call__(self, *args):
        return (_engine or _graph_engine()).call(self, args)

    def __setattr__(self, name, value):
        """torch's check: a Parameter replaced by an array (layer.weight = w where
        np.copyto(layer.weight.data, w) was meant) was computed with, but never trained,
        saved or counted among the parameters."""
        held = self.__dict__.get(name)
        if isinstance(held, Parameter) and value is not None and \
                not isinstance(value, Parameter):
            raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                            f"to the parameter {name!r} (a fastnn.nn.Parameter or None); to "
                            f"set its values, copy into it: np.copyto(module.{name}.data, "
                            f"values)")
        if isinstance(held, Module) and value is not None and not isinstance(value, Module):
            # torch's check too: model.fc = 3 left a model that fails at its next call
            raise TypeError(f"{type(self).__name__}: cannot assign {_what(value)} as the "
                            f"child module {name!r} (a fastnn.nn.Module or None)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        """del module.name, as torch's: a buffer leaves the buffers (and state_dict) too."""
        object.__delattr__(self, name)
        names = self.__dict__.get("_buffer_names")
        if names and name in names:
            names.remove(name)
            self.__dict__.get("_nonpersistent", set()).discard(name)

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    def backward(self, grad_out=None, need_input_grad=False):
        """Backpropagate through the graph of the last call, writing every trainable
        parameter's `.grad`; returns the input gradient if need_input_grad (else None).
        grad_out None (torch's out.backward()): 1 for an output of one element, else a
        RuntimeError.
        Layers override this with their own backward on arrays."""
        need_input_grad = as_flag(need_input_grad, "need_input_grad",
                                  f"{type(self).__name__}.backward")
        return self._active_graph("backward").backward(grad_out, need_input_grad)

    def _is_layer(self):
        """A layer has its own backward; anything else is a model run as a graph."""
        return type(self).backward is not Module.backward

    # ---- sub-modules, parameters and buffers ----

    def _child_items(self):
        """(attribute name, Module) of the direct sub-modules, in assignment order, one
        held under two names under both (torch's _modules.items(): what named_modules,
        state_dict, get_submodule and repr walk); a list, tuple or dict of modules is
        tracked as Keras tracks it, its items named "blocks.0", "blocks.1", ... or
        "heads.a" (torch's ModuleList and ModuleDict keys). A list, so a walk reads each
        module's children once, before its caller changes anything."""
        out = []
        for k, v in vars(self).items():
            if k.startswith("_"):
                continue
            if isinstance(v, Module):
                out.append((k, v))
            elif held := _held(v):
                if isinstance(v, dict):
                    for key, _ in held:
                        _check_key(key, f"{type(self).__name__}.{k}, a dict of modules")
                out.extend((f"{k}.{key}", m) for key, m in held)
        return out

    def named_children(self):
        """A generator of (name, Module) of the direct sub-modules, each once (one held
        under two names under the first), as torch's."""
        return _unique(self._child_items())

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """A generator of (dotted name after `prefix`, Module) of this module and every
        sub-module, depth first, with torch's arguments: each once, and added to `memo`
        (a set of modules left out), unless not remove_duplicate (a module reachable by
        two names then comes under both)."""
        where = f"{type(self).__name__}.named_modules"
        if memo is not None and not isinstance(memo, set):
            raise TypeError(f"{where}: memo must be a set of modules or None, got "
                            f"{_what(memo)}")
        _check_prefix(prefix, where)
        remove_duplicate = as_flag(remove_duplicate, "remove_duplicate", where)
        return self._walk(set() if memo is None else memo, prefix, remove_duplicate, set())

    def _walk(self, memo, prefix, remove_duplicate, above):
        """named_modules' generator; `above`: the ids of the modules on the path here (a
        module holding its ancestor ends there, where torch's recursion never ends)."""
        if self in memo or id(self) in above:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        above.add(id(self))
        for name, child in self._child_items():
            yield from child._walk(memo, f"{prefix}.{name}" if prefix else name,
                                   remove_duplicate, above)
        above.discard(id(self))

    def modules(self, remove_duplicate=True):
        return (m for _, m in self.named_modules(remove_duplicate=remove_duplicate))

    def _named(self, own, prefix, recurse, remove_duplicate, what):
        """A generator of (dotted name after `prefix`, value) of `own(module)` over every
        module (this one alone unless recurse), each value once unless not
        remove_duplicate (torch's arguments of method `what`); the arguments are checked
        here, not at the first next()."""
        where = f"{type(self).__name__}.{what}"
        _check_prefix(prefix, where)
        remove_duplicate = as_flag(remove_duplicate, "remove_duplicate", where)
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if as_flag(recurse, "recurse", where) else [(prefix, self)]
        values = ((f"{path}.{name}" if path else name, value)
                  for path, module in modules for name, value in own(module))
        return _unique(values) if remove_duplicate else values

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """A generator of (name, Parameter); names match torch's state_dict keys (after
        `prefix`); recurse=False: this module's own only; remove_duplicate=False: a
        shared one under each of its names."""
        return self._named(lambda m: [(k, v) for k, v in vars(m).items()
                                      if isinstance(v, Parameter)],
                           prefix, recurse, remove_duplicate, "named_parameters")

    def parameters(self, recurse=True):
        """A generator of the Parameters (torch's: list(model.parameters()) to keep them)."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def apply(self, fn):
        """Call fn on every sub-module (depth first, children before their parent) and on
        this module, as torch's apply (e.g. to initialise weights); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _check_name(self, name, kind, where):
        """torch's rule for a name register_buffer, register_parameter or add_module
        adds: a non-empty string without '.', not an attribute of another kind."""
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}.{where}: name must be a string, got "
                            f"{_what(name)}")
        if not name or "." in name:
            raise ValueError(f"{type(self).__name__}.{where}: name must be non-empty and "
                             f"contain no '.' (it is a state_dict key), got {name!r}")
        if hasattr(self, name) and not kind(self.__dict__.get(name, ...)):  # ...: a class
            # attribute (a method, training), which an instance attribute would hide
            raise ValueError(f"{type(self).__name__}.{where}: attribute {name!r} already "
                             f"exists")

    def register_buffer(self, name, array, persistent=True):
        """Set attribute `name` to `array` (an ndarray, or None) and list it among the
        buffers: state not trained, saved in state_dict unless persistent=False (torch's
        argument: a cache or a constant rebuilt by __init__)."""
        persistent = as_flag(persistent, "persistent", f"{type(self).__name__}.register_buffer")
        self._check_name(name, lambda v: name in self.__dict__.get("_buffer_names", ()),
                         "register_buffer")
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"{type(self).__name__}.register_buffer: buffer {name!r} must be "
                            f"a NumPy array or None, got {_what(array)}")
        names = self.__dict__.setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)
        nonpersistent = self.__dict__.setdefault("_nonpersistent", set())
        (nonpersistent.discard if persistent else nonpersistent.add)(name)
        object.__setattr__(self, name, array)

    def _register(self, name, value, cls, where, arg):
        """Check `name` and that value is a `cls` or None (torch's register_parameter
        and add_module)."""
        self._check_name(name, lambda v: v is None or isinstance(v, cls), where)
        if value is not None and not isinstance(value, cls):
            raise TypeError(f"{type(self).__name__}.{where}: {arg} must be a "
                            f"fastnn.nn.{cls.__name__} or None, got {_what(value)}")

    def register_parameter(self, name, param):
        """Set attribute `name` to a Parameter (or None), as torch's register_parameter."""
        self._register(name, param, Parameter, "register_parameter", "param")
        object.__setattr__(self, name, param)

    def add_module(self, name, module):
        """Set attribute `name` to a sub-module (or None), as torch's add_module."""
        self._register(name, module, Module, "add_module", "module")
        setattr(self, name, module)

    def register_module(self, name, module):
        """add_module under torch's other name."""
        self.add_module(name, module)

    def get_submodule(self, target):
        """The sub-module at dotted path `target` ("" is this module), as torch's."""
        if not isinstance(target, str):
            raise TypeError(f"{type(self).__name__}.get_submodule: target must be a string, "
                            f"got {_what(target)}")
        module = self
        for name in target.split(".") if target else ():
            child = dict(module._child_items()).get(name)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
            module = child
        return module

    def get_parameter(self, target):
        """The Parameter at dotted path `target` ("layer1.0.conv1.weight"), as torch's."""
        if not isinstance(target, str):
            raise TypeError(f"{type(self).__name__}.get_parameter: target must be a string, "
                            f"got {_what(target)}")
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        param = getattr(module, name)
        if not isinstance(param, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return param

    def _own_buffers(self, persistent_only=False):
        skip = self.__dict__.get("_nonpersistent", ()) if persistent_only else ()
        return [(k, getattr(self, k)) for k in self.__dict__.get("_buffer_names", ())
                if k not in skip and getattr(self, k) is not None]

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """A generator of (name, array) of the buffers (persistent or not), with
        named_parameters' arguments."""
        return self._named(Module._own_buffers, prefix, recurse, remove_duplicate,
                           "named_buffers")

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter of this module; returns self."""
        requires_grad = as_flag(requires_grad, "requires_grad", f"{type(self).__name__}"
                                                                 f".requires_grad_")
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient, as torch: to None (set_to_none), or else
        fill it with zeros."""
        _zero_grads(self.parameters(), set_to_none)

    def train(self, mode=True):
        """Set training mode (False: eval) on this module and every sub-module; returns
        self. mode must be a bool, as torch checks: train("False") trained."""
        mode = as_flag(mode, "mode", f"{type(self).__name__}.train")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, *args, **kwargs):
        """torch's model.to(device, dtype) for the one device and dtype fastnn has: "cpu"
        (or torch.device("cpu")) and float32 (torch's or NumPy's) return this module, as
        torch's does when nothing moves; any other raises ValueError naming it (torch's
        model.to(device) in a training script runs unchanged)."""
        name = f"{type(self).__name__}.to"
        unknown = sorted(set(kwargs) - {"device", "dtype", "non_blocking"})
        if unknown:
            raise TypeError(f"{name}: unexpected keyword argument(s) {unknown}")
        for value in (*args, kwargs.get("device", "cpu"), kwargs.get("dtype", "float32")):
            if value is None or isinstance(value, bool):  # nothing; non_blocking
                continue
            text = str(np.dtype(value)) if isinstance(value, type) and \
                issubclass(value, np.generic) else str(value)
            if text not in ("cpu", "cpu:0", "float32", "torch.float32"):
                raise ValueError(f"{name}: fastnn runs on the CPU in float32, got {value!r}")
        return self

    def cpu(self):
        """This module: it is on the CPU (torch's model.cpu())."""
        return self

    def float(self):
        """This module: its parameters are float32 (torch's model.float())."""
        return self

    # ---- state_dict ----

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """{name: array} of every parameter's data and persistent buffer, torch's keys and
        shapes, in an OrderedDict (or added to `destination`, which is returned); each key
        after `prefix`. The arrays are the module's own (as torch's tensors are): copy
        them to keep a snapshot. keep_vars=True: the Parameter objects instead of their
        arrays. A module reachable by two names is under both, as in torch's."""
        name = type(self).__name__
        _check_prefix(prefix, f"{name}.state_dict")
        keep_vars = as_flag(keep_vars, "keep_vars", f"{name}.state_dict")
        state = collections.OrderedDict() if destination is None else destination
        if not isinstance(state, collections.abc.MutableMapping):
            raise TypeError(f"{name}.state_dict: destination must be a dict, got "
                            f"{_what(destination)}")
        for key, module, k in self._state_entries(prefix):
            value = getattr(module, k)
            state[key] = value.data if isinstance(value, Parameter) and not keep_vars else value
        return state

    def _state_entries(self, prefix=""):
        """(key, module, attribute) of every parameter and persistent buffer, torch's keys
        (after `prefix`) and order; a module reachable by two names under both."""
        seen, out = set(), []
        for path, module in self.named_modules(remove_duplicate=False):
            dot = prefix + path + "." if path else prefix
            for k in [k for k, v in vars(module).items() if isinstance(v, Parameter)] + \
                    [k for k, _ in module._own_buffers(persistent_only=True)]:
                if dot + k not in seen:
                    seen.add(dot + k)
                    out.append((dot + k, module, k))
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy `state_dict` (name -> array-like: NumPy arrays, torch tensors, lists,
        Parameters) into the parameters and buffers in place. With strict, missing and
        unexpected keys raise StateDictError (a ValueError and, as torch's, a RuntimeError)
        naming them; a shape mismatch raises it naming the key and both shapes; nothing is copied unless every entry fits. Returns
        torch's _IncompatibleKeys: a named tuple (missing_keys, unexpected_keys), lists in
        torch's order, printed "<All keys matched successfully>" when both are empty.

        assign=True (torch's): the given arrays become the parameters' `.data` and the
        buffers (a float32 torch tensor's memory is then shared, as torch's assign shares
        it); the Parameter objects stay (an optimizer over them goes on) with their
        requires_grad. The kernels need C-contiguous, writable arrays of the module's
        dtype (float32 for parameters): an entry that is not one is copied instead, with
        a UserWarning naming it (torch would change the parameter's dtype; fastnn's
        layers compute in float32 only)."""
        name = type(self).__name__
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{name}.load_state_dict: state_dict must be a mapping of names "
                            f"to arrays, got {type(state_dict).__name__}")
        strict = as_flag(strict, "strict", f"{name}.load_state_dict")
        assign = as_flag(assign, "assign", f"{name}.load_state_dict")
        modules = list(self.named_modules(remove_duplicate=False))
        owners = {key: (module, k) for key, module, k in self._state_entries()}
        own = {key: _numpy(getattr(module, k)) for key, (module, k) in owners.items()}
        # torch fills in the buffers a plain dict may lack (one without torch's _metadata:
        # an older checkpoint, converted weights, a safetensors file) and keeps their values
        optional = () if hasattr(state_dict, "_metadata") else {
            f"{prefix}.{k}" if prefix else k
            for prefix, module in modules for k in module._optional_buffers}
        missing = [k for k in own if k not in state_dict and k not in optional]
        order = {prefix: i for i, (prefix, _) in enumerate(modules)}

        def reported_at(key):  # torch's order: the deepest module on the key's path
            parts = key.split(".") if isinstance(key, str) else []
            return next((order[p] for p in (".".join(parts[:n])
                                            for n in range(len(parts) - 1, 0, -1))
                         if p in order), 0)

        unexpected = sorted((k for k in state_dict if k not in own), key=reported_at)
        if strict and (missing or unexpected):
            raise StateDictError(f"{name}.load_state_dict: missing keys {missing}, "
                                 f"unexpected keys {unexpected}")
        values = []
        for key, dst in own.items():
            if key not in state_dict:
                continue
            try:
                src = _numpy(state_dict[key])
            except (TypeError, ValueError, RuntimeError) as e:
                raise TypeError(f"{name}.load_state_dict: {key} is not an array ({e})") from None
            if src.dtype.kind not in "iuf":
                raise TypeError(f"{name}.load_state_dict: {key} has dtype {src.dtype}, "
                                f"expected a real dtype")
            # a count stored as a float (converted checkpoints) casts, as in torch, but
            # only when nothing is cut off (no fraction, no inf or nan, none out of range)
            if dst.dtype.kind in "iu" and src.dtype.kind == "f" and not (
                    np.all(np.abs(src) < 2.0 ** 63) and np.array_equal(src, np.trunc(src))):
                raise TypeError(f"{name}.load_state_dict: {key} has dtype {src.dtype} with "
                                f"values an integer buffer cannot hold (a fraction, inf, nan "
                                f"or out of range)")
            if dst.ndim == 0 and src.shape == (1,):  # torch takes it (0.3's scalars)
                src = src.reshape(())
            if src.shape != dst.shape:
                raise StateDictError(f"{name}.load_state_dict: shape mismatch for {key}: the "
                                 f"state_dict has {src.shape}, the model {dst.shape}")
            values.append((key, dst, src))
        copied = []
        for key, dst, src in values:
            if assign and src.dtype == dst.dtype and src.flags.c_contiguous and \
                    src.flags.writeable and src.flags.aligned:
                module, k = owners[key]
                if isinstance(getattr(module, k), Parameter):
                    getattr(module, k).data = src
                else:
                    object.__setattr__(module, k, src)
                continue
            if assign:
                layout = ("" if src.flags.c_contiguous else ", strided") + \
                    ("" if src.flags.writeable else ", read-only")
                copied.append(f"{key} ({src.dtype}{layout})")
            np.copyto(dst, src, casting="unsafe")
        if copied:
            warnings.warn(f"{name}.load_state_dict(assign=True): copied {', '.join(copied)} "
                          f"instead of assigning: fastnn's parameters and buffers are "
                          f"C-contiguous, writable arrays of their own dtype (float32 for "
                          f"parameters)", UserWarning, stacklevel=2)
        return _IncompatibleKeys(missing, unexpected)

    # ---- layer protocol ----

    def output_shape(self, shape):
        """Shape of the output for an input of `shape` (batch first); validates it.
        This default suits the shape-preserving layers; models infer it from their graph."""
        if self._is_layer():
            return tuple(shape)
        return _graph_engine().output_shape(self, shape)

    def config(self):
        """Constructor arguments, JSON-serialisable (the architecture in saved files)."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def macs(self, output_shape):
        """Multiply-adds of the forward pass's matrix products for a batch with this
        output shape (0 for layers without any); the profile's FLOP count."""
        return 0

    def _expect(self, shape, expected, ok):
        if not ok:
            raise ValueError(f"{self!r} expects input of shape {expected}, got {tuple(shape)}")

    def _input(self, x):
        """x, if it is what the layers' kernels take (a float32 ndarray); else TypeError."""
        if not isinstance(x, np.ndarray) or x.dtype != _FLOAT32:
            raise TypeError(f"{self!r}: input x must be a float32 ndarray, got {_what(x)}")
        return x

    def _grad(self, grad_out, shape):
        """grad_out, if it is a float32 array of `shape` (the last forward's output's):
        what the layers without a kernel in backward check (Dropout would mask another
        layout, Flatten and Add pass any array on)."""
        if not isinstance(grad_out, np.ndarray) or grad_out.dtype != _FLOAT32 or \
                grad_out.shape != shape:
            raise ValueError(f"{self!r}.backward: grad_out must be a float32 array of the "
                             f"output's shape {shape}, got {_what(grad_out)} "
                             f"{getattr(grad_out, 'shape', '')}")
        return grad_out

    # What a forward keeps for its backward (the input, argmax positions, ...) is stored
    # as vars(self)[name] = value: __setattr__'s check (~0.4 us a call, a dozen per step)
    # guards parameters and sub-modules, never these.

    def _forwarded(self, name, why="call the layer on a batch first"):
        """What the last forward kept for backward in attribute `name` (the input, the
        argmax, ...); a RuntimeError saying `why` when none did (no forward yet)."""
        value = self.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{self!r}.backward: {why}")
        return value

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

    def _graph_for(self, shapes):
        """The graph of this model for inputs of these shapes (batch first): traced once
        per per-sample shape and train/eval mode (a forward may branch on
        self.training), and kept."""
        if len(shapes) == 1 and shapes[0] is not None:  # the common case, without a list
            key = (bool(self.training), shapes[0][1:])
        else:
            key = (bool(self.training),) + tuple([None if s is None else s[1:] for s in shapes])
        graphs = self.__dict__.setdefault("_graphs", {})
        found = graphs.get(key)
        if found is not None and found.stale():  # the tree changed since the trace
            graphs.clear()
            found = None
        if found is None:
            self._check_inputs(shapes)
            found = graphs[key] = _graph_engine().trace(self, shapes)
        return found

    def __getstate__(self):
        """Copies and pickles leave the traced graphs out: they watch this instance's own
        attributes (see Graph.stale), so a copy traces its own on its first call."""
        state = self.__dict__.copy()
        state.pop("_graphs", None)
        state.pop("_graph", None)
        return state

    def _check_inputs(self, shapes):
        """Hook: validate the input shapes before tracing (Sequential's input_shape)."""

    def _active_graph(self, what):
        graph = self.__dict__.get("_graph")
        if graph is None:
            raise RuntimeError(f"{type(self).__name__}.{what}: call the model on a batch first")
        return graph

    def extra_repr(self):
        """The arguments shown inside the repr's parentheses (torch's hook; a subclass
        may override it): a layer's config() by default."""
        if not self._is_layer():
            return ""
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self):
        """torch's layout: `Name(extra_repr)`, or with children the extra_repr lines and
        the children one per line, `(name): child`, indented by two spaces."""
        extra = self.extra_repr()
        lines = (extra.split("\n") if extra else []) + [
            f"({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._child_items()]
        return _layout(type(self).__name__, lines, single=bool(extra) and len(lines) == 1)


def _layout(name, lines, single=False):
    """torch's repr of a module: name(the one line) when single, else each line on its
    own, indented."""
    if single:
        return f"{name}({lines[0]})"
    return f"{name}(" + "".join(f"\n  {line}" for line in lines) + ("\n)" if lines else ")")


def _as_given(value, pair):
    """A (h, w) argument of a pooling layer in the form it was given, as torch's repr
    shows it: 2, or (2, 2) for a pair (a list too), of Python ints."""
    return tuple(pair) if isinstance(value, (tuple, list)) else pair[0]
