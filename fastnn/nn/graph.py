"""The graph engine every model (fastnn/nn/model.py, container.py) runs on.

Building: calling a layer on a symbolic `Value` (from `Input(shape=...)`, or the
arguments a model's `forward` is traced with) adds a `Node` and returns its output
Value; `a + b` on Values adds an `Add`. A model that is not a layer (Sequential,
fastnn.Model, a Module subclass defining only `forward`) called on Values inlines its
forward into the caller's graph, so a graph is always a DAG of layers.

Running: `Graph` orders the nodes (depth first from the outputs; a cycle or an output
that does not come from the model's inputs is an error), plans the steps (two exact
rewrites, below) and runs them on arrays: forward in order, backward in reverse, the
gradients of a value that feeds several layers summed in a buffer the graph owns.
Only the steps upstream of a trainable parameter or of a needed input gradient run
backward. Every array lives in a layer's or the graph's buffers, reused while the batch
shape stays the same.

A traced graph remembers the module tree it was traced from (every public attribute
holding a module or a parameter, lists and dicts of modules such as Sequential.layers,
and what each ModuleList and ModuleDict holds): when a call finds one replaced, added to
or removed, the model is traced again, so a new head assigned after the first call is
the one that runs and trains.
"""
import copy
import operator
import time

import numpy as np

from .activation import ReLU
from .conv import Conv2d, _FusedConv
from .merge import Add
from .._core import as_sample_shape
from .module import Module, Parameter, _held, _what
from .normalization import BatchNorm1d, BatchNorm2d, _FusedNorm
from .pooling import MaxPool2d

__all__ = ["Value", "Input", "TracingError", "Graph", "call", "trace", "output_shape"]

_calling = []  # the models whose forward is being traced, outermost first


class TracingError(TypeError):
    """An operation a graph cannot record was applied to a symbolic value."""


def _untraceable(what):
    return TracingError(
        f"cannot trace {what} on a symbolic value: a model's forward is recorded once as a "
        f"graph of fastnn layers, so it may only call layers (and sub-modules) on its inputs "
        f"and add values with +; Python control flow or NumPy operations on the data cannot "
        f"be traced (use a layer, e.g. nn.Flatten() instead of x.reshape)")


class Symbolic:
    """What a symbolic value refuses: a truth test, NumPy, comparisons, conversions and
    the arithmetic a graph of layers cannot record raise the TracingError of the
    subclass's `_untraceable(what)`; `_arithmetic` names what it does record."""

    __slots__ = ()
    _untraceable = staticmethod(_untraceable)
    _arithmetic = "an arithmetic operation other than +"

    def __bool__(self):
        raise self._untraceable("a truth test (if/while/and/or)")

    def __array__(self, *args, **kwargs):
        raise self._untraceable("a NumPy conversion")

    def __array_ufunc__(self, ufunc, method, *args, **kwargs):
        raise self._untraceable(f"the NumPy function {ufunc.__name__}")

    def __eq__(self, other):
        raise self._untraceable("a comparison")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__

    def _op(self, *args):
        raise self._untraceable(self._arithmetic)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
    __truediv__ = __rtruediv__ = __matmul__ = __neg__ = __pow__ = __abs__ = _op

    def _convert(self, *args):
        raise self._untraceable("a conversion to a Python number, index or sequence")

    __float__ = __int__ = __index__ = __len__ = __iter__ = __getitem__ = _convert


class Value(Symbolic):
    """A symbolic value: a model input or the output of a layer call; `shape` is batch
    first (the batch None when unknown), or None when not known at all."""

    __slots__ = ("shape", "node", "call")

    def __init__(self, shape, node=None):
        self.shape, self.node, self.call = shape, node, None

    def __add__(self, other):
        if not isinstance(other, Value):
            raise _untraceable(f"+ with a {type(other).__name__}")
        return Add()([self, other])

    def __radd__(self, other):
        raise _untraceable(f"+ with a {type(other).__name__}")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _untraceable(f"the attribute .{name}")

    def __repr__(self):
        return f"<symbolic value of shape {_shape_text(self.shape)}>"


def Input(shape):
    """A symbolic model input of per-sample `shape` (e.g. (1, 28, 28)); the batch
    dimension comes first and is left open."""
    return Value((None,) + as_sample_shape(shape, "shape", "Input"))


def _shape_text(shape):
    if shape is None:
        return "(unknown)"
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


class _Node:
    """A layer called on input Values, producing `output`."""

    __slots__ = ("module", "inputs", "output", "merge")

    def __init__(self, module, inputs, merge):
        self.module, self.inputs, self.merge = module, inputs, merge


class _Call:
    """A call of a module at the top level of a graph being built (a functional
    Model's layer, kept for its children, its config and its replay)."""

    __slots__ = ("module", "args", "outputs")

    def __init__(self, module, args, outputs):
        self.module, self.args, self.outputs = module, args, outputs


def _symbolic(args):
    for a in args:
        if type(a) is np.ndarray:  # the common case, first
            continue
        if isinstance(a, Value) or (isinstance(a, (list, tuple)) and
                                    any(isinstance(v, Value) for v in a)):
            return True
    return False


def call(module, args):
    """module(*args): a node on symbolic values; on arrays, a layer's forward or a
    model's graph run, returned as arrays of the caller's own (as torch's and Keras'
    calls return new tensors): the layers write into buffers they reuse at the next
    call, and keep for their backward."""
    if _symbolic(args):
        return _call_symbolic(module, args)
    if module._is_layer():
        if len(args) == 1 and not isinstance(args[0], np.ndarray) and \
                not getattr(module, "_merge", False):
            # else the layer's shape check fails on it with an AttributeError
            raise TypeError(f"{module!r}: input x must be a float32 ndarray, got "
                            f"{_what(args[0])}")
        return _own(module.forward(*args), args)
    return _own(_run(module, args), args)


def _own(out, args):
    """The output array (or each of several, a tuple) as the caller's own: a copy of a
    buffer the module keeps; a view of an input (Flatten, Identity, Dropout in eval) as
    it is, as torch returns views."""
    if len(args) == 1 and type(out) is np.ndarray and type(args[0]) is np.ndarray:
        # the common case (one array in, one out), without building lists; an array
        # owning its memory (a layer's buffer) is copied without asking may_share_memory
        # (~0.6 us, a tenth of a batch-1 MLP's call)
        if out.base is None and out is not args[0]:
            return out.copy()
        return out if np.may_share_memory(out, args[0]) else out.copy()
    inputs = [a for x in args for a in (x if isinstance(x, (list, tuple)) else (x,))
              if isinstance(a, np.ndarray)]

    def own(o):
        if not isinstance(o, np.ndarray) or any(np.may_share_memory(o, a) for a in inputs):
            return o
        return o.copy()
    return own(out) if isinstance(out, np.ndarray) else tuple(own(o) for o in out)


def _call_symbolic(module, args):
    if not module._is_layer() and any(m is module for m in _calling):
        raise TracingError(f"{type(module).__name__}.forward calls the model itself "
                           f"(recursion cannot be traced into a graph)")
    top = not _calling
    _calling.append(module)
    try:
        out = _add_node(module, args) if module._is_layer() else module.forward(*args)
    finally:
        _calling.pop()
    if top:
        outputs = list(out) if isinstance(out, (tuple, list)) else [out]
        record = _Call(module, args, outputs)
        for value in outputs:
            if isinstance(value, Value):
                value.call = record
    return out


def _add_node(module, args):
    name = type(module).__name__
    merge = getattr(module, "_merge", False)
    if merge:
        if len(args) != 1 or not isinstance(args[0], (list, tuple)) or len(args[0]) < 2:
            raise TypeError(f"{name} is called on a list of at least two values, e.g. "
                            f"{name}()([a, b])")
        inputs = list(args[0])
    else:
        if len(args) != 1:
            raise TypeError(f"{module!r} takes one input, got {len(args)}")
        inputs = [args[0]]
    for v in inputs:
        if not isinstance(v, Value):
            raise TypeError(f"{module!r}: cannot mix symbolic values and {type(v).__name__} "
                            f"in one call")
    shapes = [v.shape for v in inputs]
    shape = None
    if all(s is not None for s in shapes):
        shape = module.output_shape(shapes if merge else shapes[0])
    node = _Node(module, inputs, merge)
    node.output = Value(shape, node)
    return node.output


def _as_array(x, owner, k):
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"{owner}: input {k} must be a float32 ndarray, got {_what(x)}; "
                        f"use x.astype(np.float32)")
    return x


def _run(model, args):
    owner = type(model).__name__
    if not args:
        raise TypeError(f"{owner}: called without an input")
    if len(args) == 1:  # the common case, without building lists
        xs = (_as_array(args[0], owner, 0),)
        shapes = (xs[0].shape,)
    else:
        xs = tuple(_as_array(x, owner, k) for k, x in enumerate(args))
        shapes = tuple(x.shape for x in xs)
    graph = model._graph_for(shapes)
    model.__dict__["_graph"] = graph
    return graph.forward(xs)


_FLAGS = (bool, int, float, str, type(None))


def _plain(value):
    """Whether value is a plain value a forward may read: a flag, number or string, or a
    list or tuple of them (nested too: self.sizes = [3, 4], self.order = ("fc", "act"))."""
    if type(value) in _FLAGS:
        return True
    return type(value) in (list, tuple) and all(map(_plain, value))


def _contents(held):
    """A list's items, or a dict's keys then values: compared by identity, any entry
    replaced, added, removed or moved changes them."""
    return (*held, *held.values()) if isinstance(held, dict) else tuple(held)


def _structure(modules, shared=()):
    """What a traced graph depends on in its owner's module tree (`modules`): the places
    (attribute dict, name) of every public attribute holding a module, a parameter, a
    buffer (the copy of a layer called twice holds the one it was traced with), a list,
    tuple or dict of modules or an empty list or dict, and what each held; (list
    or dict, its _contents) for those and for the list or dict a ModuleList or ModuleDict
    keeps in `_modules` (an entry replaced or appended in place); and (attribute dict,
    name, value) of the plain values (flags, numbers, strings, lists and tuples of them,
    a list as a copy: changed in place it differs) of the modules whose
    forward was traced, which `if self.use_aux:` in a forward reads, and of the layers
    called twice (ids in `shared`: their copies hold the values traced); and [attribute dict,
    its length, public names] of those modules: an attribute set later (`sub.eval()` on
    a module whose `training` was the class default, a flag read with getattr) traces
    again. A functional Model's `_calls` is a place too (a nested keras Sequential
    rebuilt by add). The places come as two parallel lists, their dicts and their names
    (stale() reads them with one map); the flags of the layers called twice come first
    (but their `training`, which the copies follow), their count last."""
    places, seen, held, flags, names, shared_flags = [], [], [], [], [], 0
    for module in modules:
        attrs, traced = vars(module), not module._is_layer()
        if traced:
            names.append([attrs, len(attrs), _public(attrs)])
        own = attrs.get("_modules")  # a ModuleList's list, a ModuleDict's dict
        if own is not None:
            held.append((own, _contents(own)))
        if "_calls" in attrs:  # a functional Model's calls: a new list when it is rebuilt
            places.append((attrs, "_calls"))
            seen.append(attrs["_calls"])
        buffers = attrs.get("_buffer_names", ())
        for name, value in attrs.items():
            if name.startswith("_"):
                continue
            # an empty list or dict too: a module appended later (an empty Sequential's
            # layers, self.blocks = [] filled after a call) must trace again
            tracked = _held(value) is not None or (type(value) in (list, dict) and not value)
            if tracked or isinstance(value, (Module, Parameter)) or name in buffers:
                places.append((attrs, name))
                seen.append(value)
            if tracked:
                held.append((value, _contents(value)))
            elif (traced or id(module) in shared) and _plain(value):
                # a list's copy: stale() compares it with the list, changed in place too;
                # a shared layer's first (a functional Model's graph checks those only)
                entry = (attrs, name, copy.deepcopy(value))
                if traced:
                    flags.append(entry)
                elif name != "training":  # a copy's mode follows its layer's (_followers)
                    flags.insert(shared_flags, entry)
                    shared_flags += 1
    return [attrs for attrs, _ in places], [name for _, name in places], seen, held, flags, \
        names, shared_flags


def _public(attrs):
    return [name for name in attrs if not name.startswith("_")]


def output_shape(model, shape):
    """The output shape (batch first) of a model for an input of `shape`."""
    return model._graph_for((tuple(shape),)).output_shapes((tuple(shape),))[0]


def trace(model, shapes):
    """The Graph of `model.forward` run on symbolic inputs of these shapes (batch first;
    None: unknown)."""
    inputs = [Value(s) for s in shapes]
    _calling.append(model)
    try:
        out = model.forward(*inputs)
    finally:
        _calling.pop()
    single = not isinstance(out, (tuple, list))
    outputs = [out] if single else list(out)
    for k, v in enumerate(outputs):
        if not isinstance(v, Value):
            raise TracingError(f"{type(model).__name__}.forward returned {type(v).__name__} "
                               f"(output {k}), not a value computed from its inputs by "
                               f"fastnn layers")
    return Graph(model, inputs, outputs, single)


class _Step:
    """One call of the plan: `runner` (a layer, or _FusedConv for fused layers) from
    input slots to an output slot; `index` is the position of its first node in the
    node order, `name` its layer's name in the model."""

    __slots__ = ("index", "name", "runner", "layers", "inputs", "output", "merge", "args",
                 "position", "params")

    def __init__(self, index, name, runner, layers, inputs, output, merge):
        self.index, self.name, self.runner, self.layers = index, name, runner, layers
        self.inputs, self.output, self.merge = inputs, output, merge
        self.args = [None] * len(inputs)  # the merge layers' input list, reused

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]


class Graph:
    """The runnable form of a DAG of layer nodes between input and output Values."""

    def __init__(self, owner, inputs, outputs, single=True):
        self.owner, self.single = owner, single
        self.nodes = self._order(inputs, outputs)
        self.input_values, self.output_values = list(inputs), list(outputs)
        slot = {id(v): k for k, v in enumerate(inputs)}
        for node in self.nodes:
            slot[id(node.output)] = len(slot)
        self.slots = len(slot)
        self.input_slots = [slot[id(v)] for v in inputs]
        self.output_slots = [slot[id(v)] for v in outputs]
        self._runners = self._runners_of(self.nodes)
        self.names = names = self._names()
        steps = [_Step(i, names[i], self._runners[i], (self._runners[i],),
                       [slot[id(v)] for v in node.inputs], slot[id(node.output)], node.merge)
                 for i, node in enumerate(self.nodes)]
        self.steps = self._rewrite(steps)
        for k, step in enumerate(self.steps):
            step.position = k
            step.params = step.parameters()
        self._params = [p for step in self.steps for p in step.params]
        # (module whose train/eval mode it follows, runner): copies follow their
        # original; layers created inside forward (not held by the owner) the owner
        self.modules = list(owner.modules())  # the tree traced (stale() says if it changed)
        held = {id(m) for m in self.modules}
        self._followers = [(node.module if id(node.module) in held else owner, runner)
                           for node, runner in zip(self.nodes, self._runners)
                           if runner is not node.module or id(node.module) not in held]
        self._structure = _structure(self.modules, {
            id(node.module) for node, runner in zip(self.nodes, self._runners)
            if runner is not node.module})
        self._env = [None] * self.slots
        self._last_shapes = (None, None)
        self._grads = [None] * self.slots
        self._sums = {}
        self._held = {}  # id(parameter) -> a copy of its .grad, to add the new one to
        self._plans = {}

    # ---- building ----

    def _order(self, inputs, outputs):
        """The nodes the outputs depend on, each after its inputs (depth first from the
        outputs); errors for a cycle and for values not computed from `inputs`."""
        owner = type(self.owner).__name__
        known = {id(v) for v in inputs}
        state, order = {}, []  # id(node) -> 1 while on the stack, 2 when done
        for k, out in enumerate(outputs):
            if not isinstance(out, Value):
                raise TypeError(f"{owner}: output {k} is {type(out).__name__}, not a symbolic "
                                f"value")
            stack = [(out, False)]
            while stack:
                value, leaving = stack.pop()
                if id(value) in known and not leaving:
                    continue
                node = value.node
                if node is None:
                    raise ValueError(f"{owner}: output {k} is disconnected from the model's "
                                     f"inputs: it depends on an input value of shape "
                                     f"{_shape_text(value.shape)} that is not among them")
                if leaving:
                    state[id(node)] = 2
                    order.append(node)
                    continue
                if state.get(id(node)) == 2:
                    continue
                if state.get(id(node)) == 1:
                    raise ValueError(f"{owner}: the graph has a cycle through "
                                     f"{node.module!r}")
                state[id(node)] = 1
                stack.append((value, True))
                stack.extend((v, False) for v in reversed(node.inputs))
        return order

    def _runners_of(self, nodes):
        """The module each node runs: its own, or for a layer called again a copy with
        its own scratch buffers and saved inputs, sharing its parameters and buffers
        (weight sharing: the backward adds each call's gradient, as torch's)."""
        seen, runners = set(), []
        for node in nodes:
            module = node.module
            if id(module) in seen:
                module = copy.copy(module)
                module.__dict__.pop("_buffers", None)
            seen.add(id(node.module))
            runners.append(module)
        return runners

    def _names(self):
        """Each node's name: its module's dotted name in the owner ("3", "layer1.0.bn1"),
        "+" for the Adds of a + b; a layer the owner does not hold is an error when it
        has parameters (they would not be trained or saved)."""
        known = {id(m): name for name, m in self.owner.named_modules()}
        calls, names = {}, []
        for node in self.nodes:
            module = node.module
            name = known.get(id(module))
            if name is None:
                if next(module.parameters(), None) is not None:
                    raise ValueError(f"{type(self.owner).__name__}: {module!r} is called in "
                                     f"forward but is not an attribute of the model: assign "
                                     f"it in __init__ so its parameters are trained and saved")
                name = "+" if isinstance(module, Add) else type(module).__name__
            calls[name] = calls.get(name, 0) + 1
            names.append(name if calls[name] == 1 else f"{name} (call {calls[name]})")
        return names

    def _rewrite(self, steps):
        """Exact rewrites wherever the pattern occurs:
        - a ReLU whose output feeds only a MaxPool2d runs after it: the two commute
          (max(relu(x)) == relu(max(x)); a window whose maximum is not positive passes
          no gradient either way), and the ReLU then touches a quarter of the elements;
        - a Conv2d whose output feeds only a MaxPool2d, a ReLU, or a MaxPool2d feeding
          only a ReLU, runs with them as one kernel call (_FusedConv): the convolution's
          output is pooled and relu'd in cache, never stored whole, its gradient
          unpooled and gated there too (a pool whose window is too large for its byte
          positions stays apart);
        - two such fused steps, the second reading the first's output alone, are linked
          (_FusedConv.next / prev): their activation may go channels-last between them;
        - a BatchNorm1d or BatchNorm2d whose output feeds only a ReLU runs with it as one
          kernel call each way (_FusedNorm)."""
        def only_consumer(step):
            """The one step reading step's output, if it is no graph output."""
            if step.output in self.output_slots:
                return None
            users = [s for s in steps if s is not None and step.output in s.inputs]
            return users[0] if len(users) == 1 and len(users[0].inputs) == 1 else None

        for k, step in enumerate(steps):
            pool = only_consumer(step)
            if type(step.runner) is ReLU and isinstance(getattr(pool, "runner", None),
                                                        MaxPool2d):
                j = steps.index(pool)
                steps[k] = _Step(pool.index, pool.name, pool.runner, pool.layers, step.inputs,
                                 step.output, False)
                steps[j] = _Step(step.index, step.name, step.runner, step.layers,
                                 [step.output], pool.output, False)
        for k, step in enumerate(steps):
            if step is None or not (isinstance(step.runner, Conv2d) and
                                    step.runner._extra == (0, 0) and step.runner.groups == 1
                                    and step.runner.padding_mode == "zeros"):
                continue
            pool = relu = None
            last = step
            after = only_consumer(last)
            if isinstance(getattr(after, "runner", None), MaxPool2d) and \
                    _FusedConv.fits(after.runner):
                pool, last = after.runner, after
                steps[steps.index(after)] = None
                after = only_consumer(last)
            if type(getattr(after, "runner", None)) is ReLU:
                relu, last = after.runner, after
                steps[steps.index(after)] = None
            if last is not step:
                runner = _FusedConv(step.runner, pool, relu)
                steps[k] = _Step(step.index, step.name, runner, runner.layers, step.inputs,
                                 last.output, False)
        for k, step in enumerate(steps):
            after = only_consumer(step) if step is not None else None
            if step is not None and type(step.runner) in (BatchNorm1d, BatchNorm2d) and \
                    type(getattr(after, "runner", None)) is ReLU:
                runner = _FusedNorm(step.runner, after.runner)
                steps[steps.index(after)] = None
                steps[k] = _Step(step.index, step.name, runner, runner.layers, step.inputs,
                                 after.output, False)
        for step in steps:  # fused convolutions feeding one another (channels-last)
            after = only_consumer(step) if step is not None else None
            if isinstance(getattr(step, "runner", None), _FusedConv) and \
                    isinstance(getattr(after, "runner", None), _FusedConv):
                step.runner.next, after.runner.prev = after.runner, step.runner
        return [step for step in steps if step is not None]

    def stale(self, values=True):
        """Whether the owner's module tree differs from the one this graph was traced
        from (see _structure); values=False: its modules, parameters and buffers and
        the values of the layers called twice (their copies hold the traced ones), not
        the plain values a traced forward may read (a functional Model's graph runs in
        both modes and replays calls that read none)."""
        dicts, keys, seen, held, flags, names, shared_flags = self._structure
        if not all(map(operator.is_, map(dict.get, dicts, keys), seen)):
            return True
        for container, snapshot in held:
            now = _contents(container)
            if len(now) != len(snapshot) or not all(map(operator.is_, now, snapshot)):
                return True
        for attrs, name, value in flags if values else flags[:shared_flags]:
            now = attrs.get(name)
            if now is not value and (type(now) is not type(value) or now != value):
                return True
        if not values:
            return False
        for record in names:
            attrs, length, public = record
            if len(attrs) != length:  # names added or removed: public ones trace again
                if _public(attrs) != public:
                    return True
                record[1] = len(attrs)
        return False

    # ---- running ----

    def output_shapes(self, shapes):
        """The output shapes for inputs of `shapes` (batch first), checking each layer;
        the last answer is kept (predict asks for every call)."""
        shapes = [None if s is None else tuple(s) for s in shapes]
        if self._last_shapes[0] != shapes:
            self._last_shapes = (shapes, self._output_shapes(shapes))
        return self._last_shapes[1]

    def _output_shapes(self, shapes):
        known = dict(zip(self.input_slots, shapes))
        for step in self.steps:
            shape = known[step.inputs[0]] if not step.merge else [known[i] for i in step.inputs]
            for layer in step.layers:
                shape = self._at(step, layer.output_shape, shape)
            known[step.output] = shape
        return [known[s] for s in self.output_slots]

    def _error(self, step, e):
        """The ValueError e, naming the step's layer."""
        return ValueError(f"{type(self.owner).__name__}: layer {step.name}: {e}")

    def _at(self, step, method, value):
        """method(value), a ValueError naming the step's layer."""
        try:
            return method(value)
        except ValueError as e:
            raise self._error(step, e) from None

    def _sync_modes(self):
        for module, runner in self._followers:
            runner.training = module.training

    def forward(self, xs, times=None):
        """The outputs for input arrays xs; times (profile): each step's seconds."""
        env, guard = self._env, self.owner._guard
        for slot, x in zip(self.input_slots, xs):
            env[slot] = x
        self._sync_modes()
        try:  # one handler for the run: a call through _at per step cost ~0.3 us
            for step in self.steps:
                if step.merge:
                    args = step.args
                    for k, slot in enumerate(step.inputs):
                        args[k] = env[slot]
                else:
                    args = env[step.inputs[0]]
                if times is not None:
                    start = time.perf_counter()
                value = env[step.output] = step.runner.forward(args)
                if times is not None:
                    times[step.position] = time.perf_counter() - start
                if guard is not None:
                    guard(value, f"the forward output of layer {step.name} ({step.runner!r})")
        except ValueError as e:
            raise self._error(step, e) from None
        if self.single:
            return env[self.output_slots[0]]
        return tuple(env[s] for s in self.output_slots)

    def backward_plan(self, need_input_grad):
        """(step, need_input_grad) of each backward call, in order: the steps with a
        trainable parameter or downstream of one (or of an input whose gradient is
        needed), the first of them computing no input gradient unless needed."""
        flags = tuple([p.requires_grad for p in self._params])
        key = (bool(need_input_grad), flags)
        plan = self._plans.get(key)
        if plan is None:
            needs = [False] * self.slots
            for slot in self.input_slots:
                needs[slot] = bool(need_input_grad)
            plan = []
            for step in self.steps:
                need = any(needs[s] for s in step.inputs)
                if need or any(p.requires_grad for p in step.params):
                    needs[step.output] = True
                    plan.append((step, need))
            plan.reverse()
            self._plans = {key: plan}
        return plan

    def _accumulate(self, slot, grad):
        if grad is None:
            return
        grads = self._grads
        held = grads[slot]
        if held is None:
            grads[slot] = grad
            return
        total = self._sums.get(slot)
        if total is None or total.shape != grad.shape:
            total = self._sums[slot] = np.empty(grad.shape, np.float32)
        np.add(held, grad, out=total)
        grads[slot] = total

    def _hold(self, step):
        """(parameter, copy of its .grad) for the step's trainable parameters that hold a
        gradient already (no zero_grad since the last backward, or a layer called twice):
        the layers write their gradient, and torch adds it to the one there."""
        held = ()
        for p in step.params:
            if p.requires_grad and p.grad is not None:
                kept = self._held.get(id(p))
                if kept is None or kept.shape != p.grad.shape:
                    kept = self._held[id(p)] = np.empty_like(p.data)
                np.copyto(kept, p.grad)
                held += ((p, kept),)
        return held

    def _implicit_grad(self):
        """grad_out for backward(None): ones for an output of one element, as torch's
        out.backward() creates it; a RuntimeError with torch's words for any other (a
        gradient of None computed nothing, silently)."""
        out = self._env[self.output_slots[0]]
        if out is None or out.size != 1:
            shape = "" if out is None else f" {out.shape}"
            raise RuntimeError(f"{type(self.owner).__name__}.backward: grad_out is None, and "
                               f"grad can be implicitly created only for scalar outputs: pass "
                               f"grad_out, a float32 array of the output's shape{shape} "
                               f"(e.g. loss_fn.backward())")
        return np.ones(out.shape, np.float32)

    def backward(self, grad_outs, need_input_grad=False, times=None):
        """Gradients through the steps in reverse, writing every trainable parameter's
        .grad; returns the input gradient(s) if need_input_grad (else None). grad_outs:
        one array per output (a list or tuple for several); times as in forward."""
        grads, guard = self._grads, self.owner._guard
        for k in range(self.slots):
            grads[k] = None
        if self.single:
            if grad_outs is None:  # torch's out.backward(): ones for a scalar output only
                grad_outs = self._implicit_grad()
            grad_outs = (grad_outs,)
        elif grad_outs is None or isinstance(grad_outs, (list, tuple)) and \
                all(g is None for g in grad_outs):
            raise RuntimeError(f"{type(self.owner).__name__}.backward: grad_out is None for "
                               f"every output: nothing would be computed; pass a float32 "
                               f"array for at least one output (None for an output without "
                               f"a loss)")
        elif not isinstance(grad_outs, (list, tuple)) or len(grad_outs) != len(
                self.output_slots):
            raise ValueError(f"{type(self.owner).__name__}.backward: pass one gradient per "
                             f"output ({len(self.output_slots)}), as a list")
        for k, (slot, g) in enumerate(zip(self.output_slots, grad_outs)):
            out = self._env[slot]
            if g is not None and (not isinstance(g, np.ndarray) or g.dtype != np.float32 or
                                  g.shape != out.shape):
                raise ValueError(f"{type(self.owner).__name__}.backward: grad_out {k} must be a "
                                 f"float32 array of the output's shape {out.shape}, got "
                                 f"{getattr(g, 'dtype', type(g).__name__)} "
                                 f"{getattr(g, 'shape', '')}")
            self._accumulate(slot, g)
        for step, need in self.backward_plan(need_input_grad):
            grad = grads[step.output]
            if grad is None:  # an output without a gradient: nothing flows from here
                continue
            held = self._hold(step) if step.params else ()
            if times is not None:
                start = time.perf_counter()
            result = step.runner.backward(grad, need)
            if times is not None:
                times[step.position] = time.perf_counter() - start
            for p, kept in held:
                p.grad += kept
            if step.merge:
                for slot, g in zip(step.inputs, result):
                    self._accumulate(slot, g)
            else:
                self._accumulate(step.inputs[0], result)
            if guard is not None:
                for name, p in step.runner.named_parameters():
                    if p.grad is not None:  # None: frozen, no gradient computed
                        guard(p.grad, f"the backward gradient of {step.name}.{name} "
                                      f"({step.runner!r})")
                if result is not None and not step.merge:
                    guard(result, f"the backward input gradient of layer {step.name} "
                                  f"({step.runner!r})")
        if not need_input_grad:
            return None
        if len(self.input_slots) == 1:
            return grads[self.input_slots[0]]
        return tuple(grads[s] for s in self.input_slots)
