"""fastnn.Model: a model as a graph of layers, functional (Keras) or subclassed
(PyTorch); both run on the graph engine of fastnn/nn/graph.py."""
from .._core import is_int
from .graph import Graph, Input, Value, _shape_text, _symbolic, trace
from .module import Module

__all__ = ["Model"]


class Model(Module):
    """A model as a graph of layers, in either style:

    functional (Keras): `x = fastnn.Input(shape=(1, 28, 28)); y = nn.Linear(...)(...);
    model = fastnn.Model(x, y)`; inputs and outputs may be lists. Its children are the
    layers (and models) called at the top level, named "0", "1", ... in call order.

    subclassed (PyTorch): define `__init__` (assigning sub-modules) and `forward(self, x)`;
    a plain `fastnn.nn.Module` subclass works the same. forward is traced once per input
    shape into a graph (Python control flow on data values cannot be traced)."""

    _functional = False

    def __init__(self, inputs=None, outputs=None):
        self.optimizer = None
        if inputs is None and outputs is None:
            return
        if inputs is None or outputs is None:
            raise TypeError("Model: pass both inputs and outputs (or neither, in a subclass)")
        self._functional = True
        self._single_in = not isinstance(inputs, (list, tuple))
        self._single_out = not isinstance(outputs, (list, tuple))
        self._in_values = [inputs] if self._single_in else list(inputs)
        self._out_values = [outputs] if self._single_out else list(outputs)
        for k, v in enumerate(self._in_values):
            if not isinstance(v, Value) or v.node is not None:
                raise TypeError(f"Model: input {k} must be a fastnn.Input(...), got {v!r}")
            j = next(j for j, u in enumerate(self._in_values) if u is v)
            if j != k:  # one of the two arrays a call passes for it was ignored, as Keras
                raise ValueError(f"Model: input {k} is input {j} again; list each Input once")
        for k, v in enumerate(self._out_values):
            if not isinstance(v, Value):
                raise TypeError(f"Model: output {k} must be a value computed from the inputs "
                                f"by fastnn layers, got {type(v).__name__}")
        if not self._in_values or not self._out_values:
            raise ValueError(f"Model: needs at least one input and one output, got "
                             f"{len(self._in_values)} and {len(self._out_values)}")
        self._calls = self._top_calls()
        layers = []
        for c in self._calls:
            if all(c.module is not m for m in layers):
                layers.append(c.module)
        self._layers = layers
        self._graph_fixed = Graph(self, self._in_values, self._out_values, self._single_out)
        self.__dict__["_graphs"] = {None: self._graph_fixed}

    @property
    def inputs(self):
        """A functional model's inputs (the fastnn.Input values), a list."""
        return list(self._values("_in_values", "inputs"))

    @property
    def outputs(self):
        """A functional model's outputs (the values its layers compute), a list."""
        return list(self._values("_out_values", "outputs"))

    def _values(self, attr, what):
        if attr not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} is not a functional model (of "
                                 f"inputs and outputs): it has no {what}")
        return self.__dict__[attr]

    def _top_calls(self):
        """The top-level calls the outputs come from, each after those it reads."""
        known = {id(v) for v in self._in_values}
        done, order = set(), []

        def visit(value):
            if id(value) in known:
                return
            record = value.call
            if record is None and value.node is None:
                raise ValueError(f"Model: an output is disconnected from the model's inputs: "
                                 f"it depends on an input value of shape "
                                 f"{_shape_text(value.shape)} that is not among them")
            if record is None:
                raise ValueError(f"Model: {value!r} was not produced by a layer call made "
                                 f"while building this model")
            if id(record) in done:
                return
            done.add(id(record))
            for arg in record.args:
                for v in (arg if isinstance(arg, (list, tuple)) else [arg]):
                    visit(v)
            order.append(record)

        for v in self._out_values:
            visit(v)
        return order

    @property
    def input_shape(self):
        """The per-sample input shape of a single-input functional model (else None)."""
        single = self._functional and len(self._in_values) == 1
        return self._in_values[0].shape[1:] if single else None

    def _child_items(self):
        if self._functional:
            return [(str(i), m) for i, m in enumerate(self._layers)]
        return super()._child_items()

    def forward(self, *xs):
        if not self._functional:
            raise NotImplementedError(f"{type(self).__name__} defines no forward")
        if not _symbolic(xs):
            return self(*xs)
        if len(xs) != len(self._in_values):
            raise TypeError(f"Model: takes {len(self._in_values)} inputs, got {len(xs)}")
        mapped = {id(v): x for v, x in zip(self._in_values, xs)}

        def get(arg):
            if isinstance(arg, (list, tuple)):
                return [mapped[id(v)] for v in arg]
            return mapped[id(arg)]

        for c in self._calls:
            out = c.module(*[get(a) for a in c.args])
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            for v, o in zip(c.outputs, outs):
                mapped[id(v)] = o
        outs = [mapped[id(v)] for v in self._out_values]
        return outs[0] if self._single_out else outs

    def _graph_for(self, shapes):
        if not self._functional:
            return super()._graph_for(shapes)
        if len(shapes) != len(self._in_values):
            raise TypeError(f"Model: takes {len(self._in_values)} inputs, got {len(shapes)}")
        for k, (v, shape) in enumerate(zip(self._in_values, shapes)):
            if tuple(shape[1:]) != v.shape[1:]:
                raise ValueError(f"Model: input {k} must have shape {_shape_text(v.shape)}, "
                                 f"got {tuple(shape)}")
        if self._graph_fixed.stale(False):  # a sub-model's layer replaced: replay the calls
            self._graph_fixed = trace(self, [v.shape for v in self._in_values])
        return self._graph_fixed

    def config(self):
        """The architecture: the layers' specs and the calls between them."""
        if not self._functional:
            return super().config()
        from . import registry
        index = {id(c): i for i, c in enumerate(self._calls)}
        refs = {id(v): {"input": k} for k, v in enumerate(self._in_values)}
        for c in self._calls:
            for j, v in enumerate(c.outputs):
                refs[id(v)] = {"call": index[id(c)], "output": j}

        def ref(arg):
            if isinstance(arg, (list, tuple)):
                return {"list": [refs[id(v)] for v in arg]}
            return refs[id(arg)]

        layer_of = {id(m): i for i, m in enumerate(self._layers)}
        return {"inputs": [list(v.shape[1:]) for v in self._in_values],
                "layers": [registry.spec(m) for m in self._layers],
                "calls": [{"layer": layer_of[id(c.module)], "args": [ref(a) for a in c.args]}
                          for c in self._calls],
                "outputs": [ref(v) for v in self._out_values],
                "single_input": self._single_in, "single_output": self._single_out}

    @classmethod
    def from_config(cls, config):
        from . import registry
        layers = [registry.build(s) for s in config["layers"]]
        inputs = [Input(s) for s in config["inputs"]]
        results = []

        def at(items, k, what):  # a negative k read from the end: another graph, silently
            if not is_int(k) or not 0 <= k < len(items):
                raise ValueError(f"the saved graph refers to {what} {k!r} (of {len(items)})")
            return items[k]

        def get(r):
            if "list" in r:
                return [get(x) for x in r["list"]]
            if "input" in r:
                return at(inputs, r["input"], "input")
            return at(at(results, r["call"], "call"), r["output"], "output")

        for c in config["calls"]:
            out = at(layers, c["layer"], "layer")(*[get(a) for a in c["args"]])
            results.append(list(out) if isinstance(out, (tuple, list)) else [out])
        outputs = [get(r) for r in config["outputs"]]
        return cls(inputs[0] if config["single_input"] else inputs,
                   outputs[0] if config["single_output"] else outputs)

    def __repr__(self):
        if not self._functional:
            return super().__repr__()
        inner = "".join(f"\n  ({k}): " + repr(m).replace("\n", "\n  ")
                        for k, m in self._child_items())
        return f"Model(inputs={[_shape_text(v.shape) for v in self._in_values]}{inner}\n)"
