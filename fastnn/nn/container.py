"""Sequential: layers applied in order, one case of the graph models (fastnn.nn.graph)."""
from .._core import as_sample_shape
from .model import Model
from .module import Module

__all__ = ["Sequential"]


class Sequential(Model):
    """Layers (or models) applied in order; children named "0", "1", ... as in torch.
    `input_shape` (per sample, e.g. (1, 28, 28)) is optional: with it, inputs are
    checked up front and `summary()` needs no argument."""

    input_shape = None  # a plain attribute here (fastnn.Model has a property)

    def __init__(self, *layers, input_shape=None):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, "
                                f"not a fastnn.nn.Module")
        self.layers = list(layers)
        if input_shape is not None:  # an int for one dimension, as fastnn.Input takes
            input_shape = as_sample_shape(input_shape, "input_shape", "Sequential")
        self.input_shape = input_shape

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        if isinstance(i, slice):  # a Sequential of the same layers, as torch's
            return Sequential(*self.layers[i])
        return self.layers[i]

    def append(self, module):
        """Add a layer at the end (torch's Sequential.append); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: module must be a fastnn.nn.Module, got "
                            f"{type(module).__name__}")
        self.layers.append(module)  # a changed layer list: traced again at the next call
        return self

    def named_children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

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
        return {"layers": [registry.spec(layer) for layer in self.layers],
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    @classmethod
    def from_config(cls, config):
        from . import registry
        return cls(*[registry.build(spec) for spec in config["layers"]],
                   input_shape=config["input_shape"])

    def __repr__(self):
        inner = "".join(f"\n  ({i}): " + repr(layer).replace("\n", "\n  ")
                        for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
