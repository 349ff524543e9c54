"""Sequential: layers applied in order, one case of the graph models (fastnn.nn.graph)."""
from .._core import as_sample_shape
from .model import Model
from .module import Module

__all__ = ["Sequential"]


class Sequential(Model):
    """Layers (or models) applied in order; children named "0", "1", ... as in torch, or
    by the keys of one dict (an OrderedDict) of layers, as torch's Sequential(OrderedDict)
    (state_dict keys "conv.weight", attribute model.conv). `input_shape` (per sample, e.g.
    (1, 28, 28)) is optional: with it, inputs are checked up front and `summary()` needs
    no argument."""

    input_shape = None  # a plain attribute here (fastnn.Model has a property)
    _names = None  # the dict's keys, when built from one

    def __init__(self, *layers, input_shape=None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            names = list(layers[0])
            if not all(isinstance(k, str) and k and "." not in k for k in names):
                raise TypeError(f"Sequential: the dict's keys must be non-empty names "
                                f"without '.', got {names}")
            self._names, layers = names, tuple(layers[0].values())
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, "
                                f"not a fastnn.nn.Module")
        self.layers = list(layers)
        if input_shape is not None:  # an int for one dimension, as fastnn.Input takes
            input_shape = as_sample_shape(input_shape, "input_shape", "Sequential")
        self.input_shape = input_shape
        if input_shape is not None and self.layers:  # one its layers refuse was kept, and
            self.output_shape((None,) + input_shape)  # every call failed naming layer 0

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        if isinstance(i, slice):  # a Sequential of the same layers (and names), as torch's
            if self._names:
                return Sequential(dict(zip(self._names[i], self.layers[i])))
            return Sequential(*self.layers[i])
        return self.layers[i]

    def append(self, module):
        """Add a layer at the end (torch's Sequential.append); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: module must be a fastnn.nn.Module, got "
                            f"{type(module).__name__}")
        if self._names:  # torch names it by its position
            self._names.append(str(len(self.layers)))
        self.layers.append(module)  # a changed layer list: traced again at the next call
        return self

    def named_children(self):
        names = self._names or [str(i) for i in range(len(self.layers))]
        return list(zip(names, self.layers))

    def __getattr__(self, name):
        """A layer by its dict key (model.conv), as torch's."""
        names = self.__dict__.get("_names")
        if names and name in names:
            return self.__dict__["layers"][names.index(name)]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            try:
                x = layer(x)
            except ValueError as e:
                raise ValueError(f"Sequential: layer {i}: {e}") from None
        return x

    def _check_inputs(self, shapes):
        shape = shapes[0]
        if self.input_shape is not None and shape is not None and \
                tuple(shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, ("N",) + self.input_shape))
            raise ValueError(f"Sequential: layer 0 ({self.layers[0]!r}) expects input of shape "
                             f"({expected}) (the model's input_shape), got {tuple(shape)}")

    def _plan(self):
        """(layer index, runner) of each step forward runs (see Graph._rewrite)."""
        shape = None if self.input_shape is None else (None,) + self.input_shape
        return [(step.index, step.runner) for step in self._graph_for((shape,)).steps]

    def config(self):
        from . import registry
        config = {"layers": [registry.spec(layer) for layer in self.layers],
                  "input_shape": None if self.input_shape is None else list(self.input_shape)}
        if self._names:
            config["names"] = list(self._names)
        return config

    @classmethod
    def from_config(cls, config):
        from . import registry
        layers = [registry.build(spec) for spec in config["layers"]]
        if config.get("names"):
            return cls(dict(zip(config["names"], layers)), input_shape=config["input_shape"])
        return cls(*layers, input_shape=config["input_shape"])

    def __repr__(self):
        inner = "".join(f"\n  ({name}): " + repr(layer).replace("\n", "\n  ")
                        for name, layer in self.named_children())
        return f"Sequential({inner}\n)"
