"""Packaging users expect: py.typed, stubs for every public function of the extension (a
new kernel without a stub fails here), stubs that parse and agree with the signatures."""
import ast
import inspect
import os

import pytest

from fastnn import _core

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(HERE, "fastnn", "_core.pyi")


def stub_functions():
    tree = ast.parse(open(STUB).read())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_py_typed_marker_exists():
    assert os.path.isfile(os.path.join(HERE, "fastnn", "py.typed"))


def test_every_public_function_of_the_extension_has_a_stub():
    public = {name for name, v in vars(_core).items()
              if not name.startswith("_") and callable(v) and not isinstance(v, type)}
    missing = public - set(stub_functions())
    assert not missing, f"fastnn/_core.pyi lacks stubs for {sorted(missing)}"


def test_stub_parameters_match_the_functions():
    for name, node in stub_functions().items():
        fn = getattr(_core, name)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # a cpdef without a signature: nothing to compare
            continue
        want = [(p.name, p.kind == p.KEYWORD_ONLY) for p in sig.parameters.values()]
        args = node.args
        got = [(a.arg, False) for a in args.posonlyargs + args.args] + \
            [(a.arg, True) for a in args.kwonlyargs]
        assert got == want, (name, got, want)


def test_cibuildwheel_configuration():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        config = tomllib.load(f)
    cibw = config["tool"]["cibuildwheel"]
    assert cibw["test-command"] and cibw["build"]
    assert {"onnx", "safetensors"} <= set(config["project"]["optional-dependencies"])
