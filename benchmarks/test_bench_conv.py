"""conv2d and linear: fastnn (every ISA variant) vs PyTorch vs the NumPy reference run in
float32 (fastnn.reference: im2col + matmul), 1..N threads, at the MNIST CNN/MLP shapes.

Forward+backward skips the input gradient where a network would (the first layer's),
in fastnn and PyTorch; the NumPy reference always computes it. Flops per pass:
2*N*C_out*OH*OW*C_in*kh*kw (conv) or 2*N*in*out (linear); x3 for forward+backward with
the input gradient, x2 without. fastnn's variants and PyTorch, on every thread count, take
turns block by block (conftest.op_candidates); the NumPy reference runs on its own."""
import numpy as np
import pytest

from fastnn import functional as F
from fastnn import reference as R

from .conftest import THREADS, library_threads, op_candidates, op_runs, run_ids, time_op

N = 128
# name: (c_in, hw, c_out, k, need_input_grad)
CONVS = {"conv1 1->32 28x28 k3": (1, 28, 32, 3, False),
         "conv2 32->64 13x13 k3": (32, 13, 64, 3, True)}
# name: (in, out, need_input_grad)
LINEARS = {f"{i}->{o}": (i, o, i != 784)
           for i, o in [(784, 64), (64, 64), (64, 10), (1600, 128), (128, 10)]}
PASSES = ["fwd", "fwd+bwd"]


def conv_case(name):
    c, hw, o, k, nig = CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((o, c, k, k), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    g = rng.standard_normal((N, o, hw - k + 1, hw - k + 1), dtype=np.float32)
    flops = 2 * g.size * c * k * k
    return x, w, b, g, nig, flops


def conv_flops(flops, mode, nig):
    return flops * (1 if mode == "fwd" else 3 if nig else 2)


def linear_case(name):
    i, o, nig = LINEARS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, i), dtype=np.float32)
    w = rng.standard_normal((o, i), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    g = rng.standard_normal((N, o), dtype=np.float32)
    return x, w, b, g, nig, 2 * N * i * o


# layer: (benchmark group, case names, case builder, fastnn forward, backward, NumPy
# reference forward, backward), for the fastnn and NumPy benchmarks below
LAYERS = {"conv2d": ("conv", CONVS, conv_case, F.conv2d, F.conv2d_backward,
                     R.conv2d, R.conv2d_backward),
          "linear": ("linear", LINEARS, linear_case, F.linear, F.linear_backward,
                     R.linear, R.linear_backward)}
LAYER_CASES = [(layer, case) for layer, spec in LAYERS.items() for case in spec[1]]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("mode", PASSES)
@pytest.mark.parametrize("layer,case", LAYER_CASES)
def test_layer_numpy_reference(benchmark, record, layer, case, mode, threads):
    pytest.importorskip("threadpoolctl")
    group, _, make, _, _, forward, backward = LAYERS[layer]
    x, w, b, g, nig, flops = make(case)

    def step():
        forward(x, w, b)
        if mode != "fwd":
            backward(g, x, w)

    benchmark.group = group
    with library_threads("numpy", threads):
        benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    record(benchmark, op=f"{layer} {mode}", shape=case, library="numpy-ref", threads=threads,
           flops=conv_flops(flops, mode, nig))


def torch_step(layer, case, mode):
    """PyTorch's pass, under torch.no_grad: the layer's functional form and its backward."""
    import torch
    x, w, b, g, nig, _ = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                          for a in LAYERS[layer][2](case))

    def conv():
        torch.nn.functional.conv2d(x, w, b)
        if mode != "fwd":
            torch.ops.aten.convolution_backward(g, x, w, [w.shape[0]], [1, 1], [0, 0], [1, 1],
                                                False, [0, 0], 1, [nig, True, True])

    def linear():
        torch.nn.functional.linear(x, w, b)
        if mode != "fwd":
            if nig:
                torch.mm(g, w)
            torch.mm(g.t(), x)
            g.sum(0)

    def step():
        with torch.no_grad():
            (conv if layer == "conv2d" else linear)()
    return step


def fastnn_step(layer, case, mode):
    _, _, make, forward, backward, _, _ = LAYERS[layer]
    x, w, b, g, nig, _ = make(case)
    y = np.empty(g.shape, np.float32)
    gx = np.empty(x.shape, np.float32) if nig else None
    gw, gb = np.empty(w.shape, np.float32), np.empty(b.shape, np.float32)

    def step():
        forward(x, w, b, out=y)
        if mode != "fwd":
            backward(g, x, w, need_input_grad=nig, grad_input=gx, grad_weight=gw, grad_bias=gb)
    return step


RUNS = op_runs("torch")


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
@pytest.mark.parametrize("mode", PASSES)
@pytest.mark.parametrize("layer,case", LAYER_CASES)
def test_layer(benchmark, record, alternating, layer, case, mode, library, isa, threads):
    """fastnn on every variant and PyTorch, on every thread count, taking turns."""
    group, _, make, *_ = LAYERS[layer]
    candidates = op_candidates("test_layer", {"layer": layer, "case": case, "mode": mode},
                               lambda lib: (fastnn_step if lib == "fastnn" else
                                            torch_step)(layer, case, mode), RUNS)
    benchmark.group = group  # before the timing: pytest-benchmark takes it then
    time_op(benchmark, alternating, (layer, case, mode), (library, isa, threads), candidates)
    _, _, _, _, nig, flops = make(case)
    record(benchmark, op=f"{layer} {mode}", shape=case, library=library, threads=threads,
           flops=conv_flops(flops, mode, nig), isa=isa)
