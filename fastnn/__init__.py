"""fastnn: neural-network kernels for the CPU (multithreaded C behind Cython) and a small
Keras/PyTorch-style API on top."""
from importlib.metadata import PackageNotFoundError, version as _version

from . import _core
from ._core import (conv2d_algorithm, get_conv_algorithm, get_isa, get_num_threads, matmul,
                    set_conv_algorithm, set_isa, set_num_threads, supported_isas)

try:
    __version__ = _version("fastnn")
except PackageNotFoundError:  # running from a source tree that was built in place
    __version__ = "0+unknown"


def show_config(file=None):
    """Print and return the build and runtime configuration."""
    config = {
        "version": __version__,
        "compiler": _core.compiler(),
        "openmp": _core.has_openmp(),
        "isa": get_isa(),
        "default_isa": _core.default_isa() + " (the best this CPU runs; FASTNN_ISA "
                       "overrides)",
        "supported_isas": supported_isas(),
        "zmm_width": f"{_core.zmm_width()} (AVX-512's FMA width, measured: 512 takes the wide "
                     f"tiles more readily)" if _core.zmm_width() else "no AVX-512",
        "threads": get_num_threads(),
        "max_threads": _core.max_threads(),
    }
    width = max(map(len, config))
    for key, value in config.items():
        if isinstance(value, tuple):
            value = ", ".join(value)
        print(f"{key:<{width}} : {value}", file=file)
    return config


# The training API: layers, losses, optimizers and the model API, in Python on the kernels.
from . import functional, losses, models, nn, optim  # noqa: E402
from .nn import Input, Model, Sequential  # noqa: E402
from .serialization import load, save  # noqa: E402
from .training import EarlyStopping, History  # noqa: E402
from .weights import load_weights, save_weights  # noqa: E402

__all__ = ["matmul", "show_config", "get_isa", "set_isa", "supported_isas",
           "get_num_threads", "set_num_threads", "get_conv_algorithm", "set_conv_algorithm",
           "conv2d_algorithm", "__version__", "functional", "losses", "models", "nn", "optim",
           "Input", "Model", "Sequential", "load", "save", "EarlyStopping", "History",
           "save_weights", "load_weights"]
