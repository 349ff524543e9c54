"""Sequential: layers applied in order, one case of the graph models (fastnn.nn.graph);
ModuleList and ModuleDict: modules held for a model's forward to call, as torch's."""
import operator

from .._core import as_sample_shape
from .model import Model
from .module import Module, _check_key, _layout, _what

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


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

    def _index(self, idx):
        """idx (an int, negative from the end) as a position among the layers."""
        i, n = _integer(idx, "Sequential"), len(self.layers)
        if not -n <= i < n:
            raise IndexError(f"Sequential index {i} is out of range for {n} layers")
        return i % n

    def __getitem__(self, i):
        if isinstance(i, slice):  # the same layers under the same names, as torch's: the
            # keys of model[2:] are 2.weight, ...
            return Sequential(dict(zip((self._names or self._numbers())[i], self.layers[i])))
        return self.layers[self._index(i)]

    def _numbers(self):
        return [str(i) for i in range(len(self.layers))]

    def __setitem__(self, idx, module):
        """Replace the layer at idx (its name kept), as torch's."""
        i = self._index(idx)
        self.layers[i] = _module(module, f"Sequential[{i}]")

    def __delitem__(self, idx):
        """Remove the layer(s) at idx; the rest are numbered 0, 1, ... again (a dict's
        names are dropped), as torch's."""
        del self.layers[idx if isinstance(idx, slice) else self._index(idx)]
        self._names = None

    def __iter__(self):
        return iter(self.layers)

    def __add__(self, other):
        """A new Sequential of both's layers, numbered, as torch's."""
        return Sequential(*self.layers).extend(_sequential(other, "+"))

    def __iadd__(self, other):
        return self.extend(_sequential(other, "+="))

    def append(self, module):
        """Add a layer named str(len(self)), as torch's Sequential.append (which replaces
        the layer of that name in a slice such as model[1:]); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: module must be a fastnn.nn.Module, got "
                            f"{type(module).__name__}")
        self.add_module(str(len(self.layers)), module)
        return self

    def extend(self, modules):
        """Append each module of an iterable (all or, on an error, none); returns self."""
        for m in _modules_of(modules, "Sequential", len(self.layers)):
            self.append(m)
        return self

    def insert(self, index, module):
        """Insert a layer before position `index` (-len..len, as torch's; the layers are
        numbered again); returns self."""
        n, i = len(self.layers), _integer(index, "Sequential")
        if not -n <= i <= n:
            raise IndexError(f"Sequential.insert: index {i} is out of range for {n} layers")
        self.layers.insert(i + n if i < 0 else i, _module(module, f"Sequential[{i}]"))
        self._names = None
        return self

    def pop(self, idx):
        """Remove the layer at `idx` and return it, as torch's."""
        module = self[idx]
        del self[idx]
        return module

    def add_module(self, name, module):
        """Add a layer named `name` at the end, or replace the one named so, as torch's
        (Sequential.add_module("fc", layer) names the state_dict keys fc.*)."""
        names = self._names or self._numbers()
        _check_key(name, "Sequential.add_module")
        _module(module, f"Sequential.add_module({name!r})")
        if name in names:
            self.layers[names.index(name)] = module
            return
        self.layers.append(module)  # a changed layer list: traced again at the next call
        if self._names or name != str(len(names)):
            self._names = names + [name]

    def _child_items(self):
        return list(zip(self._names or self._numbers(), self.layers))

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
        first = {}  # a layer held again (weight sharing): {"same_as": its first index}
        for i, layer in enumerate(self.layers):
            first.setdefault(id(layer), i)
        config = {"layers": [registry.spec(layer) if first[id(layer)] == i else
                             {"same_as": first[id(layer)]} for i, layer in enumerate(self.layers)],
                  "input_shape": None if self.input_shape is None else list(self.input_shape)}
        if self._names:
            config["names"] = list(self._names)
        return config

    @classmethod
    def from_config(cls, config):
        from . import registry
        layers = []
        for spec in config["layers"]:
            layers.append(layers[spec["same_as"]] if "same_as" in spec else registry.build(spec))
        if config.get("names"):
            return cls(dict(zip(config["names"], layers)), input_shape=config["input_shape"])
        return cls(*layers, input_shape=config["input_shape"])


def _module(value, where):
    """value if it is a Module, else TypeError naming where it was to go."""
    if not isinstance(value, Module):
        raise TypeError(f"{where} must be a fastnn.nn.Module, got {_what(value)}")
    return value


def _modules_of(modules, owner, start):
    """The modules of an iterable as a list, each checked before any is taken (an error
    names owner[start + k], where it was to go)."""
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError(f"{owner}.extend: modules must be an iterable of modules, got "
                        f"{_what(modules)}") from None
    return [_module(m, f"{owner}[{start + k}]") for k, m in enumerate(modules)]


def _integer(idx, container="ModuleList"):
    """idx as an int (NumPy's too), or TypeError: a position in the container."""
    try:
        return operator.index(idx)
    except TypeError:
        raise TypeError(f"{container} index must be an integer (or a slice, to read or "
                        f"delete), got {_what(idx)}") from None


def _sequential(other, op):
    """other, if it is a Sequential (torch's + and += take only one), else TypeError."""
    if not isinstance(other, Sequential):
        raise TypeError(f"Sequential {op}: takes a Sequential, got {_what(other)}")
    return other


def _no_forward(self, *args):
    raise NotImplementedError(f"{type(self).__name__} has no forward (as torch's): it holds "
                              f"modules for a model's forward to call, e.g. "
                              f"`for block in self.blocks: x = block(x)`")


class ModuleList(Module):
    """Modules in a list, as torch.nn.ModuleList: indexing (a slice is a ModuleList), len,
    iteration, append, extend, insert, pop, +=, item assignment and deletion; state_dict
    keys "blocks.0.weight", ... A model's forward calls them; a change after a call (a
    block appended, one replaced) is traced again at the next call."""

    forward = _no_forward

    def __init__(self, modules=None):
        self._modules = []  # changed in place only: a traced graph watches this list
        if modules is not None:
            self.extend(modules)

    def _index(self, idx):
        """idx (an int, negative from the end) as a position in the list."""
        i = _integer(idx)
        n = len(self._modules)
        if not -n <= i < n:
            raise IndexError(f"ModuleList index {i} is out of range for {n} modules")
        return i % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(self._modules[idx])
        return self._modules[self._index(idx)]

    def __setitem__(self, idx, module):
        i = self._index(idx)
        self._modules[i] = _module(module, f"ModuleList[{i}]")

    def __delitem__(self, idx):
        del self._modules[idx if isinstance(idx, slice) else self._index(idx)]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(self._modules).extend(other)

    def append(self, module):
        """Add a module at the end; returns self."""
        self._modules.append(_module(module, f"ModuleList[{len(self._modules)}]"))
        return self

    def extend(self, modules):
        """Add the modules of an iterable at the end (all or, on an error, none); returns
        self."""
        self._modules.extend(_modules_of(modules, "ModuleList", len(self._modules)))
        return self

    def insert(self, index, module):
        """Insert a module before position `index`, as list.insert (a position past
        either end inserts at that end)."""
        n, i = len(self._modules), _integer(index)
        i = min(max(i + n if i < 0 else i, 0), n)  # in range: list.insert takes no 2**64
        self._modules.insert(i, _module(module, f"ModuleList[{i}]"))

    def pop(self, idx=-1):
        """Remove the module at `idx` and return it."""
        module = self[idx]
        del self[idx]
        return module

    def add_module(self, name, module):
        """torch's: add_module(str(len(blocks)), m) appends; str(i) replaces entry i."""
        if name == str(len(self._modules)):
            self.append(module)
        elif isinstance(name, str) and name.isdecimal() and int(name) < len(self._modules):
            self[int(name)] = module
        else:
            raise ValueError(f"ModuleList.add_module: name must be the position of an "
                             f"entry or len(list) (use append or insert), got {name!r}")

    def _child_items(self):
        return [(str(i), m) for i, m in enumerate(self._modules)]

    def __repr__(self):
        """torch's: a run of equal entries as one line, "(0-2): 3 x Linear(...)"."""
        runs = []  # [first, last, repr]
        for i, m in enumerate(self._modules):
            text = repr(m)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [(f"({a}): " if a == b else f"({a}-{b}): {b - a + 1} x ") +
                 text.replace("\n", "\n  ") for a, b, text in runs]
        return _layout(type(self).__name__, lines)


class ModuleDict(Module):
    """Modules by name in insertion order, as torch.nn.ModuleDict: [], `in`, len,
    iteration over the keys, keys/values/items, update, pop, clear, and the modules as
    attributes (heads.a); state_dict keys "heads.a.weight". Keys are strings without '.'.
    A model's forward calls them; a change after a call is traced again at the next call."""

    forward = _no_forward

    def __init__(self, modules=None):
        self._modules = {}  # changed in place only: a traced graph watches this dict
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.update([(key, module)])

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def __getattr__(self, name):
        """A module by its key (heads.a), as torch's."""
        modules = self.__dict__.get("_modules")
        if modules and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        """heads.c = module adds (or replaces) key 'c', as torch's; other values, and
        names starting with '_', are plain attributes."""
        if not name.startswith("_") and (isinstance(value, Module) or
                                         name in self.__dict__.get("_modules", ())):
            self[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name):
        """del heads.c removes key 'c', as torch's."""
        if name in self.__dict__.get("_modules", ()):
            del self._modules[name]
        else:
            super().__delattr__(name)

    def add_module(self, name, module):
        self[name] = module

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        """Add or replace modules from a mapping or an iterable of (key, module) pairs
        (all or, on an error, none)."""
        if hasattr(modules, "keys") and hasattr(modules, "__getitem__"):  # a mapping
            pairs = [(key, modules[key]) for key in modules.keys()]
        else:
            try:
                pairs = list(modules)
            except TypeError:
                raise TypeError(f"ModuleDict: modules must be a mapping or an iterable of "
                                f"(key, module) pairs, got {_what(modules)}") from None
            for k, pair in enumerate(pairs):
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise TypeError(f"ModuleDict: element {k} must be a (key, module) "
                                    f"pair, got {_what(pair)}")
        for key, module in pairs:
            _check_key(key, "ModuleDict")
            _module(module, f"ModuleDict[{key!r}]")
        self._modules.update(pairs)

    def pop(self, key):
        """Remove the module under `key` and return it."""
        return self._modules.pop(key)

    def clear(self):
        self._modules.clear()

    def _child_items(self):
        return list(self._modules.items())
