"""Keras' Model and Sequential (compile, fit, evaluate, predict, summary, get_weights,
set_weights, save) and load_model on fastnn's graph engine.

A Keras model is a fastnn functional Model (fastnn.nn.graph) over the Keras layers'
fastnn children (a subclass's made by running its call once on symbolic inputs).
compile() picks each output's loss: a softmax output trained with
(sparse_)categorical_crossentropy, or a sigmoid output with binary_crossentropy, trains
and evaluates through a second graph of the same layers that stops before that
activation, with the fused, numerically stable loss on logits (CrossEntropyLoss /
BCEWithLogitsLoss); predict runs the whole graph and returns probabilities. Several
outputs are a flat list inside (Keras' order: a dict's sorted by key), in the model's
structure (list, tuple or dict) outside.
"""
import collections
import contextlib
import inspect
import math
import os
import re

import numpy as np

from .. import losses as _losses
from ..datasets import as_batch_size
from .. import nn
from ..nn.graph import Graph
from .._core import as_flag, as_real, as_sample_shape, is_int
from ..training import ModelAPI, _check_finite_data, _float32, _real_array, _targets_for
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _klosses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import trainer as _trainer

__all__ = ["Model", "Sequential", "load_model", "clone_model"]

METRICS = _trainer.ACCURACY + tuple(_trainer.METRICS)


def _unwrap(tensors, what):
    single = not isinstance(tensors, (list, tuple))
    items = [tensors] if single else list(tensors)
    for k, t in enumerate(items):
        if not isinstance(t, _layers.KerasTensor):
            raise TypeError(f"Model: {what} {k} must be a KerasTensor (from keras Input or a "
                            f"layer call), got {type(t).__name__}")
    values = [t.value for t in items]
    return (values[0] if single else values), items


_Compiled = collections.namedtuple("_Compiled", "optimizer losses metrics loss_weights loss_order")
_Compiled.__doc__ = """compile's settings, per output in Keras' flat order: the loss specs, the
metric names, the loss weights; loss_order, the outputs in the order Keras logs their
losses (a loss dict's order)."""


def _fused_loss(spec, out_value):
    """(fastnn loss, the value it trains on) of a loss spec for an output: the logits
    before a softmax (sigmoid) output trained with categorical (binary) cross-entropy, with
    the fused, numerically stable loss."""
    last = out_value.node.module if out_value.node is not None else None
    fused = {"categorical_crossentropy": nn.Softmax,
             "sparse_categorical_crossentropy": nn.Softmax,
             "binary_crossentropy": nn.Sigmoid}.get(spec.kind)
    train_value = out_value
    if fused is not None and not spec.from_logits:
        if type(last) is not fused:
            act = "softmax" if fused is nn.Softmax else "sigmoid"
            raise ValueError(f"compile: loss {spec.kind!r} on probabilities needs a {act} "
                             f"output layer (fastnn fuses it with the loss, on the logits); "
                             f"for a model that outputs logits pass "
                             f"fastnn.keras.losses.{spec.cls_name}(from_logits=True)")
        train_value = out_value.node.inputs[0]
    if spec.kind in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        return _losses.CrossEntropyLoss(label_smoothing=spec.label_smoothing), train_value
    if spec.kind == "binary_crossentropy":
        return _losses.BCEWithLogitsLoss(), train_value
    if spec.kind == "huber":
        return _losses.HuberLoss(delta=spec.delta), train_value
    return {"mse": _losses.MSELoss, "mae": _losses.L1Loss}[spec.kind](), train_value


def _output_structure(outputs):
    """(form, keys, tensors) of a model's outputs: form 'single' (one tensor, or a list of
    one, which Keras treats as one), 'list', 'tuple' or 'dict' (keys in the user's order;
    the tensors in Keras' flat order, a dict's sorted by key)."""
    if isinstance(outputs, dict):
        keys = list(outputs)
        for key in keys:
            if not isinstance(key, str) or not key:
                raise TypeError(f"Model: the keys of a dict of outputs name them and must be "
                                f"non-empty strings, got {key!r}")
        if not keys:
            raise ValueError("Model: outputs is an empty dict")
        return "dict", keys, [outputs[key] for key in sorted(keys)]
    if isinstance(outputs, (list, tuple)) and len(outputs) != 1:
        if not outputs:
            raise ValueError(f"Model: outputs is an empty {type(outputs).__name__}")
        return type(outputs).__name__, None, list(outputs)
    return "single", None, list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@nn.register
class Model(_layers.HasWeights, nn.Model):
    """keras.Model(inputs, outputs) from KerasTensors: one or several inputs (fit,
    evaluate and predict take a list of arrays, or a dict by Input name); one output, or
    several as a list, tuple or dict of them (y, the losses, metrics and weights then per
    output, predict returning that structure, as Keras). A model called on KerasTensors
    is a layer of another model (its weights shared with it)."""

    saved_type = "keras.Model"  # fastnn.nn's Model is "Model"
    _output_form = "single"  # a Sequential's

    def __init__(self, inputs=None, outputs=None, name=None):
        self._compiled = None
        # Keras' default names: functional, functional_1, ... (a subclass's by its class)
        self.name = name or _layers._auto_name(_snake_case(type(self).__name__)
                                               if self._subclassed() else "functional")
        if inputs is None and outputs is None:  # Sequential, a subclass: built later
            super().__init__()
            return
        values_in, self._keras_inputs = _unwrap(inputs, "input")
        self.__dict__["_keras_structure"] = [  # Keras' model.input, model.output
            type(t)(t) if isinstance(t, (list, tuple, dict)) else t
            for t in (inputs, outputs)]
        names = [t.name for t in self._keras_inputs]
        for name in names:
            if name is not None and names.count(name) > 1:  # as Keras; dicts need them
                raise ValueError(f"Model: the input name {name!r} is used "
                                 f"{names.count(name)} times; give each Input its own name")
        self._output_form, self._output_keys, flat = _output_structure(outputs)
        _, self._keras_outputs = _unwrap(flat, "output")
        # images run NCHW inside; the model returns Keras' NHWC
        values_out = [_layers.ChannelsLast()(t).value if t.nchw else t.value
                      for t in self._keras_outputs]
        if self._output_form == "single":
            values_out = values_out[0]
        super().__init__(values_in, values_out)
        for layer in self._layers:
            if not isinstance(layer, (_layers.Layer, Model)):
                raise TypeError(f"Model: {layer!r} is not a fastnn.keras layer")
        self._keras_layers = self._keras_order()
        names = [layer.name for layer in self._keras_layers]
        for name in names:
            if names.count(name) > 1:  # as Keras; get_layer(name) found the first only
                raise ValueError(f"Model: the layer name {name!r} is used {names.count(name)} "
                                 f"times; give each layer its own name")

    def call(self, inputs, training=None):
        """Keras' call, defined by a subclass: the model's outputs from its inputs by its
        layers (assigned as attributes in __init__). It runs once, on a KerasTensor of
        the data's shape, when the model is built (build(input_shape), the first call,
        fit, evaluate or predict), recording the graph the model then runs, as Keras'
        functional models; `training` is passed on to layers, which follow the model's
        mode."""
        raise NotImplementedError(f"{type(self).__name__} defines no call")

    @classmethod
    def _subclassed(cls):
        """Whether the model is a subclass defining call, built from it."""
        return cls.call is not Model.call

    def _build_from_call(self, shapes):
        """The graph of a subclass: call run on Inputs of per-sample `shapes` (a tuple for
        one input; a list, or a dict by name, of them for several: call gets the Inputs
        so, as Keras passes the data); the layers (Keras' order: the attributes', as
        assigned) those it called."""
        if isinstance(shapes, dict):
            inputs = {name: _layers.Input(s, name=name) for name, s in shapes.items()}
            flat = list(inputs.values())
        else:
            inputs = [_layers.Input(s) for s in shapes] if isinstance(shapes, list) else \
                _layers.Input(shapes)
            flat = inputs
        kwargs = {}
        if "training" in inspect.signature(self.call).parameters:
            kwargs["training"] = _layers.TRACED_TRAINING
        outputs = self.call(inputs, **kwargs)
        Model.__init__(self, flat, outputs, self.name)
        pending = self.__dict__.pop("_compile_args", None)
        self._keras_layers = [m for _, m in nn.Module.named_children(self)
                              if any(m is layer for layer in self._layers)]
        if pending is not None:  # compiled before the outputs were known
            self.compile(**pending)

    def _keras_order(self):
        """The layers in Keras' order (keras.Functional's): by depth, the longest path to
        an output, deepest first; ties in the order a depth-first walk from the outputs
        first meets them. The layout transposes are left out (Keras has none)."""
        producer = {id(v): c for c in self._calls for v in c.outputs}
        index, seen = {}, set()

        def hidden(call):
            return isinstance(call.module, _layers._Layout)

        def parents(call):
            return [producer[id(v)] for v in _arg_values(call) if id(v) in producer]

        stack = list(reversed(self._out_values))
        while stack:  # pre-order, as Keras' _build_map
            call = producer.get(id(stack.pop()))
            if call is None or id(call) in seen:
                continue
            seen.add(id(call))
            if not hidden(call):
                index.setdefault(id(call.module), (len(index), call.module))
            stack.extend(reversed(_arg_values(call)))
        depth, layer_depth = {}, {}
        for call in reversed(self._calls):  # each after those reading it
            d = max(depth.get(id(call), 0), layer_depth.get(id(call.module), 0))
            layer_depth[id(call.module)] = depth[id(call)] = d
            for p in parents(call):
                depth[id(p)] = max(depth.get(id(p), 0), d + (0 if hidden(call) else 1))
        return [m for _, m in sorted(index.values(), key=lambda im: (
            -layer_depth[id(im[1])], im[0]))]

    _trainable = True

    @property
    def trainable(self):
        """Keras' model.trainable: setting it sets every layer's trainable."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = as_flag(value, "trainable", "Model")
        for layer in self.layers:
            layer.trainable = value

    def _freeze_weights(self, trainable=True):
        """Keras' trainable weights: none while model.trainable is False (or that of a
        model it is a layer of), whatever the layers' own flags (a layer set trainable
        again after model.trainable = False trained), else those of the trainable
        layers. A BatchNormalization's mode follows its own flag, as in Keras."""
        trainable = trainable and self._trainable
        for layer in self.layers:
            if isinstance(layer, Model):
                layer._freeze_weights(trainable)
                continue
            for p in layer.parameters():
                p.requires_grad = trainable and layer.trainable

    @property
    def input_shape(self):
        """Keras' input shape, batch None first: (None, 28, 28, 1); a list of them for
        several inputs."""
        return self._keras_shapes("_keras_inputs")

    @property
    def output_shape(self):
        """Keras' output shape, batch None first: (None, 10); a list of them for several
        outputs (in Keras' flat order). fastnn's output_shape(shape) method is not needed:
        a Keras model used as a layer of another one is inlined into that one's graph."""
        return self._keras_shapes("_keras_outputs")

    @property
    def inputs(self):
        """Keras' model.inputs: the KerasTensors (Inputs) the model is built on, a list."""
        return list(self._symbolic("_keras_inputs", "inputs"))

    @property
    def outputs(self):
        """Keras' model.outputs: the KerasTensors of the outputs, a list in Keras' flat
        order (a dict's sorted by key)."""
        return list(self._symbolic("_keras_outputs", "outputs"))

    @property
    def input(self):
        """Keras' model.input: the inputs as the model was made of them (a KerasTensor, or
        a list)."""
        return self._symbolic("_keras_structure", "input")[0]

    @property
    def output(self):
        """Keras' model.output: the outputs as the model was made of them (a KerasTensor,
        or a list, tuple or dict)."""
        return self._symbolic("_keras_structure", "output")[1]

    def _symbolic(self, attr, what):
        """The KerasTensors in attribute `attr`, or Keras' AttributeError: a subclassed
        model has none, an unbuilt Sequential none yet."""
        if self._subclassed() or attr not in self.__dict__:
            why = "a subclassed model has none" if self._subclassed() else "not built yet"
            raise AttributeError(f"{type(self).__name__} {self.name!r} has no {what} ({why}; "
                                 f"a functional model and a built Sequential have)")
        return self.__dict__[attr]

    def _keras_shapes(self, tensors):
        """The shapes of the KerasTensors in attribute `tensors`: one, or a list."""
        if not self._functional:
            return None
        shapes = [t.shape for t in getattr(self, tensors)]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self):
        """Keras' output names, in its flat order: a dict's keys (sorted), else the names
        of the layers (or Inputs) the outputs come from; logs prefix them ('out_loss')."""
        if not self._functional:
            return [self._pending[-1].name] if getattr(self, "_pending", None) else []
        if self._output_form == "dict":
            return sorted(self._output_keys)
        return [t.name if t.value.call is None else t.value.call.module.name
                for t in self._keras_outputs]

    def _structured(self, flat):
        """The outputs (a list in flat order) in the model's structure, as Keras returns
        them: one array, or a list, tuple or dict (in the user's key order)."""
        if self._output_form == "single":
            return flat[0]
        if self._output_form == "dict":
            by_name = dict(zip(sorted(self._output_keys), flat))
            return {key: by_name[key] for key in self._output_keys}
        return tuple(flat) if self._output_form == "tuple" else list(flat)

    def _per_output(self, value, what, name):
        """value's entry for each output, in flat order, from a list or tuple in the
        outputs' order or a dict by output name (a dict-output model takes a dict only:
        Keras reads its lists in orders that differ between arguments)."""
        names = self.output_names
        if isinstance(value, dict):
            if sorted(map(str, value)) != sorted(names):
                raise ValueError(f"{what}: a dict {name} must have one entry per output, keyed "
                                 f"by the output names {names}, got the keys {list(value)}")
            return [value[n] for n in names]
        if self._output_form == "dict":
            raise ValueError(f"{what}: the model's outputs are a dict: pass {name} as a dict "
                             f"by output name {names}, got {type(value).__name__}")
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            got = f"{len(value)} entries" if isinstance(value, (list, tuple)) else \
                type(value).__name__
            raise ValueError(f"{what}: the model has {len(names)} outputs {names}: pass {name} "
                             f"as a list of {len(names)} or a dict by output name, got {got}")
        return list(value)

    @property
    def output_shape_keras(self):
        """The output shape, as a layer of another model shows it."""
        return self.output_shape

    @property
    def layers(self):
        return list(self._keras_layers) if self._functional else []

    # ---- compile ----

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                **unsupported):
        """optimizer: 'adam', 'sgd', 'rmsprop', 'adamw' or an optimizer object
        (fastnn.keras.optimizers or fastnn.optim); loss: 'categorical_crossentropy',
        'sparse_categorical_crossentropy', 'binary_crossentropy', 'mse', 'mae', 'huber' (or a
        fastnn.keras.losses object); metrics: None or a list of Keras' names ('accuracy'
        or 'acc', 'binary_accuracy', 'categorical_accuracy', 'sparse_categorical_accuracy',
        '(sparse_)top_k_categorical_accuracy' (k=5), 'mae', 'mse' and their long names)
        or fastnn.keras.metrics objects, logged under the name given (an object's `name`),
        as in Keras. With several outputs, as Keras: one loss
        for all or one per output (a list, or a dict by output name), loss_weights per
        output (the loss is sum(weight * output loss)) and metrics per output (a list of
        lists, or a dict by output name), logged as '<output>_loss', '<output>_<metric>'.
        Compiled again, as Keras: the same optimizer object continues its state, a new
        one starts afresh; metrics=None keeps the metrics compiled before ([] drops them)."""
        if unsupported:
            raise TypeError(f"compile: unsupported argument(s) {sorted(unsupported)}")
        if loss is None:
            raise ValueError(f"compile: pass a loss, one of {sorted(_klosses.NAMES)}")
        opt = _optimizers.get(optimizer)
        if self._subclassed() and not self._functional:  # its outputs come with call
            self.__dict__["_compile_args"] = dict(optimizer=opt, loss=loss, metrics=metrics,
                                                  loss_weights=loss_weights)
            return
        n = len(self._keras_outputs) if self._functional else 1
        several = n > 1
        if several and isinstance(loss, (list, tuple, dict)):
            losses = self._per_output(loss, "compile", "loss")
        else:
            losses = [loss] * n
        for k, spec in enumerate(losses):
            if spec is None:  # Keras leaves that output untrained; its logs differ then
                raise ValueError(f"compile: every output needs a loss (fastnn.keras does not "
                                 f"support None for output {self.output_names[k]!r})")
        specs = [_klosses.get(spec) for spec in losses]
        order = list(range(n))
        if several and isinstance(loss, dict):  # Keras logs the losses in the dict's order
            order = [self.output_names.index(str(key)) for key in loss]
        if metrics is None and self._compiled is not None and len(self._compiled.metrics) == n:
            metric_names = self._compiled.metrics  # compiled again: Keras keeps them
        else:
            metric_names = self._metric_names(metrics, n)
        self._compiled = _Compiled(opt, specs, metric_names,
                                   self._loss_weights(loss_weights, n), order)
        if several:
            losses, metrics = self._log_keys()
            keys = [key for key, *_ in losses + metrics]
            if len(set(keys)) != len(keys):
                raise ValueError(f"compile: the outputs {self.output_names} give the log "
                                 f"keys {keys}, some twice (two outputs of one layer?)")
        self._stepped = None  # built now if the model is, else by the next fit
        self._loss_fns = self._train_graph = None
        if self._functional:
            self._plan_loss()
            self._optimizer()  # Keras' model.optimizer is there after compile

    def _metric_names(self, metrics, n):
        """compile's metrics as a tuple of names per output: one list for one output;
        for several a list with an entry per output (a name, a list of names or None) or
        a dict by output name (outputs left out get none), as Keras."""
        if metrics is None:
            return [()] * n
        if not isinstance(metrics, (list, tuple, dict)) or (n == 1 and isinstance(metrics,
                                                                                   dict)):
            # as Keras: 'accuracy' was read as the metrics 'a', 'c', ... ("unknown metric 'a'")
            raise TypeError(f"compile: metrics must be a list such as ['accuracy'] or None"
                            f"{' (or a dict by output name)' if n > 1 else ''}, got "
                            f"{metrics!r}")
        if n == 1:
            per_output = [metrics]
        elif isinstance(metrics, dict):
            unknown = [key for key in metrics if key not in self.output_names]
            if unknown:
                raise ValueError(f"compile: metrics has the key(s) {unknown}, which name no "
                                 f"output; the outputs are {self.output_names}")
            per_output = [metrics.get(name) for name in self.output_names]
        else:
            per_output = self._per_output(metrics, "compile", "metrics")
        result = []
        for k, entries in enumerate(per_output):
            entries = [] if entries is None else [entries] if isinstance(
                entries, (str, _metrics.Metric)) else entries
            if not isinstance(entries, (list, tuple)):
                raise TypeError(f"compile: the metrics of output {k} must be a metric or a "
                                f"list of them, got {entries!r}")
            entries = tuple(m if isinstance(m, str) else self._metric_object(m)
                            for m in entries)
            for m in entries:
                if isinstance(m, str) and m not in METRICS:
                    raise ValueError(f"compile: unknown metric {m!r}; known: {list(METRICS)} "
                                     f"or fastnn.keras.metrics objects")
            names = [m if isinstance(m, str) else m.name for m in entries]
            if len(set(names)) != len(names):  # one History key for two metrics
                raise ValueError(f"compile: metrics {list(names)} name one metric twice")
            result.append(entries)
        return result

    @staticmethod
    def _metric_object(m):
        """compile's metric m that is not a name: an object (or a saved one, as
        fastnn.keras.metrics.serialize wrote it)."""
        try:
            return _metrics.get(m)
        except (TypeError, ValueError) as e:
            raise type(e)(f"compile: {e}") from None

    def _loss_weights(self, loss_weights, n):
        """compile's loss_weights as a float per output (1 without): a number for one
        output, a list or a dict by output name for several."""
        if loss_weights is None:
            return [1.0] * n
        weights = self._per_output(loss_weights, "compile", "loss_weights") if n > 1 else \
            [loss_weights]
        for k, w in enumerate(weights):
            w = as_real(w, f"loss_weights[{k}]", "compile")
            if not math.isfinite(w):
                raise ValueError(f"compile: loss_weights must be finite, got {w!r} for output "
                                 f"{k}")
            weights[k] = w
        return weights

    def _plan_loss(self):
        """Each output's fastnn loss, and the graph training runs: the outputs, or for
        those whose activation fuses with their loss the logits before it."""
        graph = self._graph_fixed  # its values: a sub-model changed traces it again
        train_values, self._loss_fns = [], []
        for out_value, spec in zip(graph.output_values, self._compiled.losses):
            fn, value = _fused_loss(spec, out_value)
            self._loss_fns.append(fn)
            train_values.append(value)
        same = all(a is b for a, b in zip(train_values, graph.output_values))
        self._train_graph = graph if same else Graph(
            self, graph.input_values, train_values, len(train_values) == 1)
        self.__dict__["_planned_from"] = graph

    def _log_keys(self):
        """The keys of the logs but 'loss': [(key, output)] of the output losses (none for
        one output) in Keras' order, and [(key, output, fn)] of the metrics."""
        names = self.output_names if self._functional else [""]
        several = len(names) > 1
        losses = [(f"{names[k]}_loss", k) for k in self._compiled.loss_order] if several \
            else []
        metrics = [(f"{names[k]}_{name}" if several else name, k, fn)
                   for k, metric_names in enumerate(self._compiled.metrics)
                   for name, fn in _trainer.metric_functions(metric_names,
                                                             self._out_values[k].shape[-1])]
        return losses, metrics

    def _graph_for(self, shapes):
        graph = super()._graph_for(self._unpacked_shapes(shapes))
        if not self.__dict__.get("_training_loss"):
            return graph
        if self.__dict__.get("_planned_from") is not graph:  # traced again: a sub-model
            self._plan_loss()                                # changed since compile
            optimizer = self._stepped
            held = {id(p) for p in getattr(optimizer, "params", ())}
            new = [p for p in self.parameters() if id(p) not in held]
            if new and hasattr(optimizer, "add_param_group"):  # its layers train too
                optimizer.add_param_group({"params": new})
        return self._train_graph

    # ---- fit / evaluate / predict ----

    def _ensure_built(self, sample_shape=None):
        """A subclass built by running call on inputs of per-sample `sample_shape` (the
        data's), if not yet."""
        if self._functional or not self._subclassed():
            return
        if sample_shape is None:
            raise ValueError(f"{type(self).__name__}: the model is not built yet (call "
                             f"build(input_shape), or fit/predict/the model on data first)")
        self._build_from_call(sample_shape)

    def build(self, input_shape):
        """Keras' build: make the layers' weights for inputs of `input_shape` (batch
        first: (None, 784)); a model built already must have been for that shape."""
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
            raise ValueError(f"build: input_shape must be a tuple (batch, ...) such as "
                             f"(None, 784), got {input_shape!r}")
        sample = as_sample_shape(input_shape[1:], "input_shape", "build")
        built = self.input_shape
        if built is not None and built != (None,) + sample:
            raise ValueError(f"build: the model is built for inputs of shape {built}, not "
                             f"{tuple(input_shape)}")
        self._ensure_built(sample)

    @property
    def compiled(self):
        """Keras' model.compiled: whether compile was called (or load_model read it)."""
        return self._compiled is not None or "_compile_args" in self.__dict__

    @property
    def built(self):
        """Keras' model.built: whether the model has its graph and weights."""
        return self._functional

    def _require_compiled(self, what):
        if self._compiled is None and "_compile_args" not in self.__dict__:
            raise RuntimeError(f"{what}: call model.compile(optimizer=..., loss=...) first")

    def _target(self, k, y, what, name):
        """The targets y (called `name`) of output k in the form fastnn's loss takes,
        checked against the output."""
        kind = self._compiled.losses[k].kind
        y = _real_array(y, what, name)
        classes = self._out_values[k].shape[-1]
        if kind == "sparse_categorical_crossentropy":
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1 or y.dtype.kind not in "iuf" or (
                    y.dtype.kind == "f" and not np.array_equal(y, np.round(y))):
                raise ValueError(f"{what}: sparse_categorical_crossentropy needs {name} as "
                                 f"integer class labels of shape (N,) or (N, 1), got {y.dtype} "
                                 f"of shape {y.shape}")
            return y.astype(np.int64)
        if kind == "categorical_crossentropy":
            if y.ndim != 2 or y.dtype.kind not in "iuf":
                raise ValueError(f"{what}: categorical_crossentropy needs {name} as one-hot "
                                 f"targets of shape (N, {classes}), got {y.dtype} of shape "
                                 f"{y.shape}; "
                                 f"use to_categorical(y, {classes}) or "
                                 f"loss='sparse_categorical_crossentropy'")
            if y.shape[1] != classes:
                raise ValueError(f"{what}: one-hot targets must have {classes} columns (the "
                                 f"model's outputs), got shape {y.shape}")
            return y.astype(np.float32)
        out_shape = tuple(self._out_values[k].shape[1:])
        if y.ndim == 1 and out_shape == (1,):
            y = y[:, None]
        return y.astype(np.float32)

    def _outputs_of(self, outs):
        """The model's outputs (what predict returns, a list) from those of the graph a
        step ran: the probabilities of the logits where the training graph stops before
        an output's activation (the compiled metrics are computed on them, as in Keras)."""
        if not self.__dict__.get("_training_loss") or self._train_graph is self._graph_fixed:
            return outs
        probs = []
        for out, value, train_value, spec in zip(outs, self._graph_fixed.output_values,
                                                 self._train_graph.output_values,
                                                 self._compiled.losses):
            if train_value is value:
                probs.append(out)
            elif spec.kind == "binary_crossentropy":
                probs.append(1 / (1 + np.exp(-out)))
            else:
                e = np.exp(out - out.max(-1, keepdims=True))
                probs.append(e / e.sum(-1, keepdims=True))
        return probs

    @contextlib.contextmanager
    def _training_graph(self):
        """A context in which the model runs its training graph (logits when fused), on
        packed inputs."""
        self.__dict__["_training_loss"] = True
        try:
            with self._packed():
                yield
        finally:
            self.__dict__["_training_loss"] = False

    # ---- several inputs ----

    def _model_input(self, x, what):
        """x as one array of real numbers: the input of a one-input model; the arrays of
        several inputs (a list in the inputs' order, or a dict by Input name, as Keras)
        flattened and side by side, as float32, which the model splits again when it
        runs inside _packed() (fastnn's fit, evaluate and predict take one array)."""
        if not self._functional and self._subclassed() and isinstance(x, (list, tuple, dict)) \
                and any(isinstance(a, np.ndarray) for a in (x.values() if isinstance(
                    x, dict) else x)):  # several inputs (np.asarray would stack them)
            self._build_from_call({str(k): _real_array(a, what, f"x[{k!r}]").shape[1:]
                                   for k, a in x.items()} if isinstance(x, dict) else
                                  [_real_array(a, what, f"x[{k}]").shape[1:]
                                   for k, a in enumerate(x)])
        inputs = self._keras_inputs if self._functional else []
        if len(inputs) <= 1:
            if isinstance(x, dict) and len(x) == 1 and inputs and inputs[0].name in x:
                x = x[inputs[0].name]
            # np.asarray's errors (a ragged list) named nothing
            x = _real_array(_single(x), what, "x")
            shape = self.input_shape  # None: not built, x's shape builds the model
            return x if shape is None else _ranked(x, shape)
        names = [t.name for t in inputs]
        if isinstance(x, dict):
            if sorted(map(str, x)) != sorted(names):
                raise ValueError(f"{what}: a dict x must have one array per input, keyed by "
                                 f"the Inputs' names {names}, got the keys {list(x)}")
            x = [x[name] for name in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(inputs):
            got = f"{len(x)} arrays" if isinstance(x, (list, tuple)) else type(x).__name__
            raise ValueError(f"{what}: the model has {len(inputs)} inputs {names}: pass x as a "
                             f"list of {len(inputs)} arrays or a dict by input name, got {got}")
        arrays = []
        for k, (a, t) in enumerate(zip(x, inputs)):
            a = _ranked(_real_array(a, what, f"x[{k}]"), t.shape)
            if a.shape[1:] != tuple(t.shape[1:]):
                raise ValueError(f"{what}: x[{k}] (input {t.name!r}) must have shape "
                                 f"{t.shape}, got {a.shape}")
            arrays.append(a)
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"{what}: the inputs' arrays must have the same length, got "
                             f"{[len(a) for a in arrays]}")
        packed = np.empty((len(arrays[0]), sum(math.prod(a.shape[1:]) for a in arrays)),
                          np.float32)
        start = 0
        for a in arrays:
            size = math.prod(a.shape[1:])
            packed[:, start:start + size] = a.reshape(len(a), size)
            start += size
        return packed

    @contextlib.contextmanager
    def _packed(self):
        """A context in which a model with several inputs takes them packed by
        _model_input."""
        self.__dict__["_packed_inputs"] = True
        try:
            yield
        finally:
            self.__dict__["_packed_inputs"] = False

    def _is_packed(self, arrays):
        return len(arrays) == 1 and self.__dict__.get("_packed_inputs") and \
            self._functional and len(self._keras_inputs) > 1

    def _unpack(self, packed):
        """The inputs' arrays (C-contiguous, for the kernels) of a packed batch."""
        arrays, start = [], 0
        for t in self._keras_inputs:
            size = math.prod(t.shape[1:])
            arrays.append(np.ascontiguousarray(packed[:, start:start + size]).reshape(
                (len(packed),) + tuple(t.shape[1:])))
            start += size
        return arrays

    def _unpacked_shapes(self, shapes):
        if not self._is_packed(shapes):
            return shapes
        return tuple((shapes[0][0],) + tuple(t.shape[1:]) for t in self._keras_inputs)

    def _single_output_shape(self, shape, what):
        shapes = self._unpacked_shapes((tuple(shape),))
        if len(shapes) == 1 and len(self._out_values) == 1:
            return super()._single_output_shape(shape, what)
        return self._graph_for(shapes).output_shapes(shapes)[0]

    def _output_shapes(self, shape):
        """The outputs' shapes for a (packed) input batch of `shape`."""
        shapes = self._unpacked_shapes((tuple(shape),))
        return self._graph_for(shapes).output_shapes(shapes)

    def _optimizer(self, what=None):
        """The fastnn optimizer fit steps: built from the compiled one by
        compile (or the first fit, for a model built then), or loaded with the model; the
        compiled optimizer object's own when it was built before (compile again with it
        continues its state, as Keras'). Before a step (`what` says which), a Keras
        optimizer must hold every weight, as Keras requires: one built for another model,
        or before Sequential.pop/add changed this one, would leave weights untrained."""
        if self._stepped is None:
            self._stepped = self._compiled.optimizer.build(self.parameters())
        if what is not None and self._compiled.optimizer.holds_all:
            held = {id(p) for p in self._stepped.params}
            if not all(id(p) in held for p in self.parameters()):
                raise ValueError(f"{what}: the optimizer was built for other weights (another "
                                 f"model's, or before layers were added or removed); compile "
                                 f"the model again with a new optimizer instance (as Keras "
                                 f"requires)")
        return self._stepped

    @property
    def optimizer(self):
        """Keras' model.optimizer: the optimizer object compile was given (or made of a
        name), whose learning_rate is the one fit steps with; a fastnn.optim optimizer
        given to compile, or one loaded with the model, is the fastnn one fit steps."""
        compiled = self.__dict__.get("_compiled")
        if compiled is not None and compiled.optimizer.is_keras:
            return compiled.optimizer
        return self._stepped

    @optimizer.setter
    def optimizer(self, opt):  # the fastnn optimizer (fastnn.nn.Model's; load puts it)
        self.__dict__["_stepped"] = opt

    def _data(self, x, y, sample_weight, what, name=""):
        """(x float32, y as the losses take it, sample weights), checked against the model
        and each other; y and the weights are lists, one entry per output (a weight None
        where not weighted); `name` says which data (' (validation_data)')."""
        what += name
        if x is None or y is None:
            raise ValueError(f"{what}: pass x and y as arrays")
        x = _float32(self._model_input(x, what), what)
        self._ensure_built(x.shape[1:])
        if len(x) == 0:
            raise ValueError(f"{what}: x is empty")
        with self._packed():
            try:  # on one sample: the layer's message alone said "got (1, ...)"
                shapes = self._output_shapes((1,) + x.shape[1:])
            except ValueError as e:
                raise ValueError(f"{what}: x of shape {x.shape} does not fit the model: "
                                 f"{e}") from None
        _check_finite_data(x, what, "x")
        several = len(shapes) > 1
        names = self.output_names
        if several:
            ys = self._per_output(y, what, "y")
        elif isinstance(y, dict) and list(y) == names:  # {name: y}, as Keras takes it
            ys = list(y.values())
        else:
            ys = [_single(y)]
        targets = []
        for k, (yk, shape, loss_fn) in enumerate(zip(ys, shapes, self._loss_fns)):
            label, at = (f"y[{names[k]!r}]", f"{what} (output {names[k]!r})") if several \
                else ("y", what)
            yk = self._target(k, yk, at, label)
            if len(yk) != len(x):
                raise ValueError(f"{what}: x and {label} must have the same length, got "
                                 f"len(x)={len(x)} and len({label})={len(yk)}")
            yk = _targets_for(yk, shape, loss_fn, at)
            _check_finite_data(yk, what, label)
            targets.append(yk)
        if several and isinstance(sample_weight, (list, tuple, dict)):  # per output
            weights = [None if w is None else _trainer.sample_weights(
                w, len(x), what, f"sample_weight[{n!r}]") for w, n in zip(
                self._per_output(sample_weight, what, "sample_weight"), names)]
        else:  # one array weights every output
            weights = [None if sample_weight is None else _trainer.sample_weights(
                sample_weight, len(x), what)] * len(shapes)
        return x, targets, weights

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None):
        """Keras' fit: returns a History (also model.history) whose .history has Keras'
        keys sorted (the metrics as compile named them, loss), then val_* with validation
        data (validation_split, or validation_data (x, y) or (x, y, sample_weight)).
        sample_weight (N,) or class_weight {class: weight} weight each sample's loss:
        sum(w * loss) / N per batch, as Keras. Epochs run from initial_epoch to epochs."""
        self._require_compiled("fit")
        if steps_per_epoch is not None:
            raise TypeError("fit: steps_per_epoch is not supported by fastnn.keras (x and y "
                            "are arrays: an epoch is one pass over them)")
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if not is_int(value) or value < 0:
                raise ValueError(f"fit: {name} must be a non-negative int, got {value!r}")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: pass class_weight or sample_weight, not both (Keras "
                             "refuses both too)")
        x, y, sample_weight = self._data(x, y, sample_weight, "fit")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight_val)")
            val = self._data(*validation_data, *[None][len(validation_data) - 2:], "fit",
                             " (validation_data)")
        validation_split = as_real(validation_split, "validation_split", "fit")
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
        if validation_split and val is None:
            # Keras' split, before shuffling: the training part is floor(n * (1 - split))
            n = math.floor(len(x) * (1 - validation_split))
            if n in (0, len(x)):
                raise ValueError(f"fit: validation_split={validation_split} leaves "
                                 f"{len(x) - n} of {len(x)} samples for validation")
            val = (x[n:], *[[None if a is None else a[n:] for a in arrays]
                            for arrays in (y, sample_weight)])
            x, y, sample_weight = (x[:n], *[[None if a is None else a[:n] for a in arrays]
                                            for arrays in (y, sample_weight)])
        if class_weight is not None:  # the training data's only, as Keras
            sample_weight = self._class_weights(class_weight, y, "fit")
        verbose = 1 if _verbose(verbose, "fit") == "auto" else verbose
        batch_size = as_batch_size(batch_size, "fit", 32)
        shuffle = as_flag(shuffle, "shuffle", "fit")
        callbacks = _trainer.check_callbacks(callbacks, "fit")
        self._optimizer("fit")
        self.history = _trainer.fit(self, x, y, sample_weight, val, batch_size, epochs,
                                    initial_epoch, shuffle, _layers._next_seed(), verbose,
                                    callbacks, _callbacks.History())
        return self.history

    def _class_weights(self, class_weight, y, what):
        """Keras' class_weight as the sample weights of the one output."""
        if len(y) > 1:
            raise ValueError(f"{what}: class_weight is only supported for models with one "
                             f"output (as in Keras); pass sample_weight per output")
        return [_trainer.class_weights(class_weight, y[0], self._out_values[0].shape[-1],
                                       what)]

    def _result(self, logs, return_dict):
        """evaluate's and *_on_batch's result as Keras gives it: the logs, or a list in
        Keras' order, the loss, the output losses in the loss's order, the metrics in
        compile's order (one output) else sorted; the loss alone without metrics."""
        if return_dict:
            return logs
        values = [logs[k] for k in self.metrics_names]
        return values if len(values) > 1 else values[0]

    @property
    def metrics_names(self):
        """The names of evaluate's list, in its order ([] before compile): 'loss' (alone
        without metrics, as Keras'), then with several outputs their losses (in the
        loss's order) and the metrics sorted, else the metrics in compile's order, so
        dict(zip(model.metrics_names, model.evaluate(x, y))) pairs them (as tf.keras';
        Keras 3 lists its metric trackers, 'compile_metrics' for all the metrics)."""
        if self._compiled is None:
            return []
        losses, metrics = self._log_keys()
        keys = [key for key, *_ in metrics]
        return ["loss"] + [key for key, _ in losses] + (sorted(keys) if losses else keys)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 callbacks=None, return_dict=False):
        """[loss, *metrics] (the loss alone without metrics; a dict with
        return_dict=True); sample_weight weights the loss as in fit."""
        self._require_compiled("evaluate")
        _verbose(verbose, "evaluate")
        return_dict = as_flag(return_dict, "return_dict", "evaluate")
        x, y, sample_weight = self._data(x, y, sample_weight, "evaluate")
        batch_size = as_batch_size(batch_size, "evaluate", 32)
        callbacks = _trainer.CallbackList(
            _trainer.check_callbacks(callbacks, "evaluate"), self,
            {"verbose": verbose, "epochs": 1, "steps": -(-len(x) // batch_size)})
        result = _trainer.evaluate(self, x, y, sample_weight, batch_size, callbacks)
        if verbose not in (0, "auto"):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()), flush=True)
        return self._result(result, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """The model's outputs (probabilities for a softmax/sigmoid output) for x."""
        _verbose(verbose, "predict")
        x = self._model_input(x, "predict")
        if len(x) == 0:
            raise ValueError("predict: x is empty")
        self._ensure_built(x.shape[1:])
        batch_size = as_batch_size(batch_size, "predict", 32)
        callbacks = _trainer.check_callbacks(callbacks, "predict")
        with self._packed():
            if not callbacks and len(self._out_values) == 1:
                # the batch-size hint only: a larger batch runs faster
                return self._structured([ModelAPI.predict(self, x,
                                                          batch_size=max(batch_size, 256))])
            return _trainer.predict(self, x, batch_size, _trainer.CallbackList(
                callbacks, self, {"verbose": verbose, "epochs": 1,
                                  "steps": -(-len(x) // batch_size)}))

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on the batch (x, y): its loss and metrics, as evaluate
        returns them (computed before the step)."""
        return self._on_batch("train_on_batch", x, y, sample_weight, class_weight,
                              return_dict, True)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss and metrics of the batch (x, y) in inference mode, as evaluate."""
        return self._on_batch("test_on_batch", x, y, sample_weight, None, return_dict, False)

    def _on_batch(self, what, x, y, sample_weight, class_weight, return_dict, train):
        self._require_compiled(what)
        return_dict = as_flag(return_dict, "return_dict", what)
        if class_weight is not None and sample_weight is not None:
            raise ValueError(f"{what}: pass class_weight or sample_weight, not both")
        x, y, w = self._data(x, y, sample_weight, what)
        if class_weight is not None:
            w = self._class_weights(class_weight, y, what)
        means = _trainer._Means(*self._log_keys())
        if train:
            self._optimizer(what)
            self._freeze_weights()
            self.train()
            with self._training_graph():
                result = _trainer.step(self, x, y, w, True)
        else:
            with self._training_graph(), self._mode(False, x.shape):  # packed inputs first
                result = _trainer.step(self, x, y, w, False)
        means.update(*result, y)
        return self._result(means.logs(), return_dict)

    def predict_on_batch(self, x):
        """The outputs for one batch x, in inference mode."""
        x = self._model_input(x, "predict_on_batch")
        if len(x) == 0:
            raise ValueError("predict_on_batch: x is empty")
        self._ensure_built(x.shape[1:])
        with self._packed():
            return _trainer.predict(self, x, len(x), _trainer.CallbackList([], self, {}))

    def __call__(self, *args, training=None):
        """The model on an array, as Keras' model(x, training=...): built from x's shape on
        the first call, and run in inference mode (Dropout off, BatchNormalization on its
        moving statistics) unless training=True, except inside fit, which runs its
        batches in training mode. A model with several inputs takes a list of arrays
        (or a dict by Input name). On KerasTensors, the model is a layer of the model
        being built."""
        if len(args) == 1 and _keras_tensors(args[0]):
            return self._as_layer(args[0], training)
        if training is not None:
            training = as_flag(training, "training", type(self).__name__)
        elif self.__dict__.get("_training_loss"):  # fit's own steps: the mode fit set
            return self._run(args)
        if len(args) == 1 and isinstance(args[0], (list, tuple, dict)) and \
                self._functional and len(self._keras_inputs) > 1:
            args = (self._model_input(args[0], type(self).__name__),)
            with self._packed(), self._mode(bool(training), args[0].shape):
                return self._structured(self._flat_run(args))
        if len(args) == 1 and isinstance(args[0], np.ndarray) and \
                isinstance(self.input_shape, tuple):  # one input, of a known shape
            args = (_ranked(args[0], self.input_shape),)
        if len(args) != 1 or not isinstance(args[0], np.ndarray) or args[0].ndim < 2:
            return super().__call__(*args)  # which says what it takes
        self._ensure_built(args[0].shape[1:])
        with self._mode(bool(training), args[0].shape):
            return self._structured(self._flat_run(args))

    def _run(self, args):
        """The graph run on args (a packed batch split into the inputs' arrays): an
        array, or a tuple of them for several outputs."""
        return super().__call__(*(self._unpack(args[0]) if self._is_packed(args) else args))

    def _flat_run(self, args):
        """_run's outputs as a list."""
        out = self._run(args)
        return list(out) if isinstance(out, tuple) else [out]

    def _as_layer(self, x, training):
        """The model called on KerasTensors: its layers' calls replayed on them into the
        graph being built (its weights shared with this model, as Keras')."""
        what = f"{self.name} ({type(self).__name__})"
        _layers._check_training(training, what)
        tensors = [x] if isinstance(x, _layers.KerasTensor) else list(x)
        if not all(isinstance(t, _layers.KerasTensor) for t in tensors):
            raise TypeError(f"{what}: takes KerasTensors, got "
                            f"{[type(t).__name__ for t in tensors]}")
        self._ensure_built(tensors[0].shape[1:])
        inputs = self._keras_inputs
        if len(tensors) != len(inputs):
            raise ValueError(f"{what}: takes {len(inputs)} input(s), got {len(tensors)}")
        for k, (t, i) in enumerate(zip(tensors, inputs)):
            if t.shape[1:] != i.shape[1:]:
                raise ValueError(f"{what}: input {k} must have shape {i.shape}, got {t.shape}")
        tensors = [_layers._as_layout(t, False) for t in tensors]  # its inputs are Keras'
        out = nn.Module.__call__(self, *[t.value for t in tensors])
        return self._structured([_layers.KerasTensor(v) for v in
                                 (out if isinstance(out, list) else [out])])

    # ---- weights and summary ----

    def get_layer(self, name=None, index=None):
        """The layer called `name`, or at position `index` of model.layers (Keras'
        get_layer); ValueError if there is none."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: pass either name or index")
        layers = self.layers
        if index is not None:
            if not is_int(index) or not -len(layers) <= index < len(layers):
                raise ValueError(f"get_layer: index must be an int in [0, {len(layers)}) (the "
                                 f"model has {len(layers)} layers), got {index!r}")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are "
                         f"{[layer.name for layer in layers]}")

    def get_weights(self):
        """Every layer's weights in Keras' layouts and order."""
        return [w for layer in self.layers for w in layer.get_weights()]

    @property
    def weights(self):
        """Keras' model.weights: every layer's Variables, in get_weights' order."""
        return [v for layer in self.layers for v in layer.weights]

    def set_weights(self, weights):
        self._set(self._checked(weights))

    def _checked(self, weights):
        """Each layer's part of weights, checked (every layer's before any is set)."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: weights must be a list of arrays, got "
                            f"{type(weights).__name__}")
        want = sum(len(layer.get_weights()) for layer in self.layers)
        if len(weights) != want:
            raise ValueError(f"set_weights: the model has {want} weight arrays, got "
                             f"{len(weights)}")
        checked, k = [], 0
        for layer in self.layers:
            n = len(layer.get_weights())
            checked.append(layer._checked(list(weights[k:k + n])))
            k += n
        return checked

    def _set(self, checked):
        for layer, arrays in zip(self.layers, checked):
            layer._set(arrays)

    def save(self, filepath, overwrite=True):
        """The whole model as one fastnn file (architecture, weights, compile settings and
        optimizer state), atomically; read it back with load_model(filepath)."""
        from ..serialization import save
        # Keras would ask on the terminal
        if not as_flag(overwrite, "overwrite", "save") and os.path.exists(filepath):
            raise FileExistsError(f"save: {os.fspath(filepath)!r} exists and overwrite=False")
        save(self, filepath, optimizer=self._optimizer() if self._compiled else None)

    def config(self):
        """The architecture (the layers with their Keras arguments, a model used as a
        layer with its own config; a chain of layers on one input as the list of them in
        the order they run, any other graph with its inputs and the calls between the
        layers) and the compile settings; the optimizer is saved with its state."""
        self._ensure_built()
        compiled = None
        if self._compiled is not None:
            c = self._compiled
            compiled = {"losses": [{"loss": spec.kind, "from_logits": spec.from_logits,
                                    "label_smoothing": spec.label_smoothing,
                                    "delta": getattr(spec, "delta", None)}
                                   for spec in c.losses],
                        "metrics": [[m if isinstance(m, str) else _metrics.serialize(m)
                                     for m in ms] for ms in c.metrics],
                        "loss_weights": list(c.loss_weights), "loss_order": list(c.loss_order),
                        "clipping": c.optimizer.clipping()}
        config = {"name": self.name, "layers": self._layer_configs(), "compile": compiled}
        inputs = self._keras_inputs
        if len(inputs) == 1 and (isinstance(self, Sequential) or self._is_chain()):
            return {**config, "input_shape": list(inputs[0].shape[1:])}
        index = {id(layer): k for k, layer in enumerate(self.layers)}
        refs = {id(t.value): {"input": k} for k, t in enumerate(inputs)}
        calls = []
        for c in self._calls:
            args = [refs[id(v)] for v in _arg_values(c)]
            if isinstance(c.module, _layers._Layout):  # made again by the calls it serves
                refs[id(c.outputs[0])] = args[0]
                continue
            for j, v in enumerate(c.outputs):  # a model with several outputs as a layer
                refs[id(v)] = {"call": len(calls), **({"output": j} if j else {})}
            calls.append({"layer": index[id(c.module)], "args": args})
        config = {**config, "inputs": [{"shape": list(t.shape[1:]), "name": t.name}
                                       for t in inputs], "calls": calls}
        if self._output_form == "single":
            return {**config, "output": refs[id(self._out_values[0])]}
        return {**config, "outputs": [refs[id(v)] for v in self._out_values],
                "output_form": self._output_form, "output_keys": self._output_keys}

    def _layer_configs(self):
        return [{"class": type(layer).__name__, "config": layer.config()}
                for layer in self.layers]

    def get_config(self):
        """Keras' get_config: the architecture (layers with their arguments, the graph
        between them), which from_config rebuilds; without compile's settings, as Keras."""
        config = self.config()
        del config["compile"]
        return config

    def _is_chain(self):
        """Whether each layer is a Layer called once, on the output of the one before:
        what config() writes as a list of layers (a Sequential's always is)."""
        if self._output_form != "single":
            return False
        last = self._in_values[0]
        for c in self._calls:
            if not isinstance(c.module, _layers.Layer) or c.module._merges or \
                    c.args[0] is not last or c.module.output.value is not c.outputs[0]:
                return False
            last = c.outputs[0]
        return True

    @classmethod
    def from_config(cls, config):
        """Keras' from_config: a new model (new weights) of get_config's architecture; in
        a saved file's config, the compile settings too (checked here)."""
        what = f"{cls.__name__}.from_config"
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or \
                "name" not in config:
            raise ValueError(f"{what}: config must be a dict of get_config() with 'name' and "
                             f"a list 'layers', got {type(config).__name__}")
        try:
            return cls._from_config(config)
        except (KeyError, IndexError, AttributeError) as e:
            raise ValueError(f"{what}: malformed config ({type(e).__name__}: {e})") from None

    @classmethod
    def _from_config(cls, config):
        layers = []
        for spec in config["layers"]:
            model = {"Model": Model, "Sequential": Sequential}.get(spec["class"])
            if model is not None:  # a model used as a layer
                layers.append(model.from_config(spec["config"]))
                continue
            kind = getattr(_layers, spec["class"], None)
            if spec["class"] not in _layers.__all__ or not issubclass(kind, _layers.Layer):
                raise ValueError(f"unknown fastnn.keras layer class {spec['class']!r}")
            layers.append(kind(**spec["config"]))
        if "calls" in config:
            model = cls._graph_from_config(config, layers)
        elif cls is Sequential:
            model = Sequential(([_layers.Input(tuple(config["input_shape"]))] if
                                "input_shape" in config else []) + layers, name=config["name"])
            if model._output is None:  # a deferred Sequential's config: built by the data
                return model
        else:
            x = inputs = _layers.Input(tuple(config["input_shape"]))
            for layer in layers:
                x = layer(x)
            model = cls(inputs, x, name=config["name"])
        model._ensure_built()  # a Sequential was built only by compile: load found no weights
        compiled = config.get("compile")
        if compiled is not None:  # the optimizer comes with the state load() reads
            model._compile_from_config(compiled)
        return model

    def _compile_from_config(self, compiled):
        """The compile settings of a saved config, checked as compile checks its
        arguments (a forged name or value is a ValueError naming the field now, not a
        KeyError or TypeError in fit)."""
        if "losses" not in compiled:  # one output, in files of older fastnn versions
            # "metric": one name or None, in files older still
            metrics = compiled.get("metrics", [compiled.get("metric")] if
                                   compiled.get("metric") else [])
            compiled = {"losses": [compiled], "metrics": [metrics], "loss_weights": [1.0],
                        "loss_order": [0]}
        n = len(self._out_values)
        fields = {k: compiled[k] for k in ("losses", "metrics", "loss_weights", "loss_order")}
        for field, value in fields.items():
            if not isinstance(value, list) or len(value) != n:
                raise ValueError(f"compile settings: {field} must be a list of one entry per "
                                 f"output ({n}), got {value!r}")
        if sorted(fields["loss_order"]) != list(range(n)):
            raise ValueError(f"compile settings: loss_order must order the outputs "
                             f"{list(range(n))}, got {fields['loss_order']!r}")
        def per_output(field):  # as compile takes it
            return dict(zip(self.output_names, fields[field])) if n > 1 else fields[field][0]

        try:
            self._compiled = _Compiled(
                _optimizers.Loaded(**compiled.get("clipping", {})),
                [_spec_of(spec) for spec in fields["losses"]],
                self._metric_names(per_output("metrics"), n),
                self._loss_weights(per_output("loss_weights"), n), fields["loss_order"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"compile settings: {e}") from None
        self._plan_loss()

    @classmethod
    def _graph_from_config(cls, config, layers):
        """The model of a graph config: its layers called again as the calls say."""
        inputs = [_layers.Input(tuple(i["shape"]), name=i["name"]) for i in config["inputs"]]
        results = []

        def get(ref):
            try:
                k, j = (ref["input"], 0) if "input" in ref else (ref["call"], ref.get("output", 0))
                if not (is_int(k) and is_int(j) and k >= 0 and j >= 0):  # -1 read from the
                    raise IndexError  # end: another graph than the saved one, silently
                if "input" in ref:
                    return inputs[k]
                return _flat(results[k])[j]
            except (IndexError, KeyError, TypeError):  # a reference to nothing
                raise ValueError(f"a call of the saved graph reads {ref!r}, which is no "
                                 f"input and no earlier call") from None

        for call in config["calls"]:
            tensors = [get(ref) for ref in call["args"]]
            k = call["layer"]  # save writes an index into layers and one argument or more
            if not is_int(k) or not 0 <= k < len(layers) or not tensors:
                raise ValueError(f"a call of the saved graph runs layer {k!r} (of "
                                 f"{len(layers)}) on {len(tensors)} tensors")
            results.append(layers[k](tensors[0] if len(tensors) == 1 else tensors))
        if "output" in config:
            outputs = get(config["output"])
        else:  # several, in Keras' flat order
            flat = [get(ref) for ref in config["outputs"]]
            form, keys = config["output_form"], config["output_keys"]
            by_name = dict(zip(sorted(keys or ()), flat))
            outputs = {key: by_name[key] for key in keys} if form == "dict" else \
                tuple(flat) if form == "tuple" else flat
        return cls(inputs[0] if len(inputs) == 1 else inputs, outputs, name=config["name"])

    def save_weights(self, filepath):
        """The weights as a safetensors file (fastnn.save_weights: torch's key names)."""
        from ..weights import save_weights
        self._ensure_built()
        save_weights(self, filepath)

    def load_weights(self, filepath):
        from ..weights import load_weights
        self._ensure_built()
        load_weights(self, filepath)

    def count_params(self):
        """Keras' count: every weight, the non-trainable ones (moving statistics) too."""
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=None):
        """Print Keras' summary table: each layer, its output shape (channels-last) and
        parameter count."""
        if not self._functional:
            raise ValueError("summary: the model is not built yet (give the first layer an "
                             "input_shape or call fit/predict first)")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            rows.append((f"{layer.name} ({type(layer).__name__})", str(layer.output_shape_keras),
                         f"{layer.count_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        rule = "-" * (sum(widths) + 4)
        lines = [f'Model: "{self.name}"', rule]
        for j, (a, b, c) in enumerate(rows):
            lines.append(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}")
            if j == 0:
                lines.append(rule)
        total = self.count_params()
        self._freeze_weights()
        trainable = sum(p.data.size for p in self.parameters() if p.requires_grad)
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}"]
        text = "\n".join(lines)
        (print_fn or print)(text)
        return None


def _snake_case(name):
    """Keras' default name of a subclass: MyModel -> my_model."""
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _spec_of(config):
    """The loss spec (a fastnn.keras.losses object) of a saved one, made by its
    constructor, which checks the arguments it takes (Huber's delta, from_logits,
    label_smoothing)."""
    kind = _klosses.NAMES.get(config["loss"]) if isinstance(config["loss"], str) else None
    if kind is None:
        raise ValueError(f"unknown loss {config['loss']!r}; known: {sorted(_klosses.NAMES)}")
    return kind(**{k: config[k] for k in inspect.signature(kind).parameters
                   if config.get(k) is not None})


def _single(data):
    """The array of a list (or tuple) of one array, the data of a model's one input or
    output as Keras also takes it (np.asarray made it one sample: "len(y)=1"); else
    data (a list of samples stays one)."""
    if isinstance(data, (list, tuple)) and len(data) == 1 and isinstance(data[0], np.ndarray):
        return data[0]
    return data


def _ranked(x, shape):
    """x with Keras' rank adjustment for an Input of Keras shape `shape`: a trailing axis
    of 1 added where the Input ends with one that x lacks ((N,) for Input((1,)), MNIST's
    (N, 28, 28) for (28, 28, 1)), or dropped where x has one more; else x as it is."""
    rank = len(shape)
    if x.ndim == rank - 1 and shape[-1] == 1:
        return x[..., None]
    if x.ndim == rank + 1 and x.shape[-1] == 1:
        return x[..., 0]
    return x


def _flat(outputs):
    """A model's outputs (one, or a list, tuple or dict) as a list in Keras' flat order."""
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _arg_values(call):
    """The values a top-level call read: its arguments, a merge's list flattened."""
    return [v for a in call.args for v in (a if isinstance(a, (list, tuple)) else [a])]


def _keras_tensors(x):
    """Whether x is a KerasTensor or a list holding one."""
    return isinstance(x, _layers.KerasTensor) or (isinstance(x, (list, tuple)) and any(
        isinstance(v, _layers.KerasTensor) for v in x))


def _verbose(verbose, what):
    """verbose if it is one Keras takes, else a ValueError naming `what`."""
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"{what}: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


@nn.register
class Sequential(Model):
    """keras.Sequential: layers (or models) added in order (a list, or `.add`), each built
    as it is added once the input shape is known (the first layer's input_shape, a first
    model's input shape or an Input added first), else at the first
    fit/predict/evaluate from the data's shape."""

    saved_type = "keras.Sequential"  # fastnn.nn's Sequential is "Sequential"

    def __init__(self, layers=None, name=None):
        super().__init__(name=name or _layers._auto_name("sequential"))
        self._pending = []
        self._input = self._output = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, _layers.KerasTensor):
            if self._pending or self._input is not None:
                raise ValueError("Sequential.add: an Input must come first")
            self._input = self._output = layer
            return
        if not isinstance(layer, (_layers.Layer, Model)):
            raise TypeError(f"Sequential.add: expected a fastnn.keras layer or model, got "
                            f"{type(layer).__name__}")
        shape = layer.input_shape if isinstance(layer, Model) else None  # a model's own
        first = shape[1:] if isinstance(shape, tuple) else getattr(layer, "input_shape_arg",
                                                                    None)
        if self._input is None and not self._pending and first is not None:
            self._input = self._output = _layers.Input(first)
        self._pending.append(layer)
        if self._output is not None:
            self._output = layer(self._output)
            if self._functional:  # built: rebuilt now, as Keras', so a model holding it
                self._ensure_built()  # (which watches its calls) runs the new layer too

    def pop(self, rebuild=True):
        """Keras' pop: remove the last layer and return it; the model then ends at the
        layer before (add puts new layers after it). A compiled model needs compiling
        again, with a new optimizer, before it trains a layer added after pop, as in
        Keras."""
        as_flag(rebuild, "rebuild", "Sequential.pop")  # the graph is remade when next used
        if not self._pending:
            raise IndexError("Sequential.pop: the model has no layers to pop")
        layer = self._pending.pop()
        if self._output is not None:  # the layers called again, from the input
            self._output = self._input
            for kept in self._pending:
                self._output = kept(self._output)
        return layer

    @property
    def built(self):
        """Whether the layers are built (an input shape known: their weights exist)."""
        return self._output is not None and self._output is not self._input

    def get_config(self):
        if self._output is None:  # not built: the layers alone, as Keras gives them
            return {"name": self.name, "layers": self._layer_configs()}
        return super().get_config()

    @property
    def layers(self):
        return list(self._pending)

    @property
    def inputs(self):
        return [self._built_tensor("_input", "inputs")]

    @property
    def outputs(self):
        return [self._built_tensor("_output", "outputs")]

    @property
    def input(self):
        """The Input the layers run on once built (Keras 3 raises an AttributeError;
        tf.keras gave it, as here)."""
        return self._built_tensor("_input", "input")

    @property
    def output(self):
        """The last layer's output once built (as tf.keras; Keras 3 raises)."""
        return self._built_tensor("_output", "output")

    def _built_tensor(self, attr, what):
        if not self.built:  # as Keras
            raise AttributeError(f"Sequential {self.name!r} has no {what} yet: it is not built "
                                 f"(give it an Input, call build, or fit/predict)")
        return getattr(self, attr)

    @property
    def input_shape(self):
        return None if self._input is None else self._input.shape

    @property
    def output_shape(self):
        return None if self._output is None else self._output.shape

    def _ensure_built(self, sample_shape=None):
        """Make the model's graph from the layers added so far (on inputs of per-sample
        `sample_shape`, the data's, when no layer gave one)."""
        if self._output is None:
            if sample_shape is None:
                raise ValueError("Sequential: the model is not built yet (give the first layer "
                                 "an input_shape, add an Input, call build or fit/predict "
                                 "first)")
            if not self._pending:
                raise ValueError("Sequential: the model has no layers")
            self._input = self._output = _layers.Input(sample_shape)
            for layer in self._pending:
                self._output = layer(self._output)
        if self._functional and self._keras_outputs[0] is self._output:
            return
        if self._output is self._input:
            raise ValueError("Sequential: the model has no layers")
        compiled = self._compiled
        Model.__init__(self, self._input, self._output, self.name)
        self._compiled = compiled
        if compiled is not None:
            self._plan_loss()

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        if self._output is not None:
            self._ensure_built()
            self._optimizer()

    def summary(self, print_fn=None):
        self._ensure_built()
        return super().summary(print_fn)

    def get_weights(self):
        self._ensure_built()
        return super().get_weights()

    def set_weights(self, weights):
        self._ensure_built()
        super().set_weights(weights)


def clone_model(model, input_tensors=None, clone_function=None):
    """keras.models.clone_model: a new model of model's architecture (its layers' names
    and arguments) with new weights; compiled alike, with a new optimizer of the same
    arguments, when model is compiled with a Keras optimizer, as Keras'."""
    if input_tensors is not None or clone_function is not None:
        raise TypeError("clone_model: input_tensors and clone_function are not supported by "
                        "fastnn.keras")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: model must be a fastnn.keras Model or Sequential, got "
                        f"{type(model).__name__}")
    if model._subclassed():
        raise TypeError(f"clone_model: {type(model).__name__} is a subclassed model; build a "
                        f"new instance of it instead (its __init__ takes its arguments)")
    clone = (Sequential if isinstance(model, Sequential) else Model).from_config(
        model.get_config())
    c = model._compiled
    if c is not None and c.optimizer.holds_all:
        names = clone.output_names

        def per_output(values, order=range(len(names))):  # as compile takes them
            return {names[k]: values[k] for k in order} if len(names) > 1 else values[0]

        clone.compile(type(c.optimizer).from_config(c.optimizer.get_config()),
                      per_output(c.losses, c.loss_order), per_output([list(m) for m in c.metrics]),
                      per_output(c.loss_weights))
    return clone


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """keras.models.load_model for a file written by a fastnn.keras model's save: the
    model, compiled as it was (with its optimizer's state) unless compile=False."""
    from ..serialization import load
    if custom_objects is not None:
        raise TypeError("load_model: custom_objects is not supported by fastnn.keras")
    compile = as_flag(compile, "compile", "load_model")
    as_flag(safe_mode, "safe_mode", "load_model")  # nothing unsafe to load; "no" was kept
    model = load(filepath)
    if not isinstance(model, Model):
        raise ValueError(f"load_model: {os.fspath(filepath)!r} holds a fastnn "
                         f"{type(model).__name__}, not a fastnn.keras model; read it with "
                         f"fastnn.load")
    if not compile:
        model._compiled = model.optimizer = None
    return model
