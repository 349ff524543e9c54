"""Memory-bound ops at the MNIST CNN's shapes (batch 128): max-pool 2x2 forward+backward,
activations forward+backward, the fused softmax cross-entropy and one Adam step over the
CNN's parameters; fastnn (every ISA) vs the NumPy reference (float32 inputs) vs PyTorch,
1..N threads (NumPy's elementwise ops are single-threaded). Rates are GB/s of bytes read
+ written (nbytes). fastnn's variants and PyTorch, on every thread count, take turns
block by block (conftest.op_candidates); the NumPy reference, a float64-faithful
yardstick rather than a peer, runs on its own."""
import numpy as np
import pytest

from fastnn import _core, functional as F, reference as ref

from .conftest import THREADS, op_candidates, op_runs, run_ids, time_op

# output rows 13, 5 (11 // 2, the CNN's) and 5 wide: narrower than a vector of 8 or 16
POOL_SHAPES = {"128x32x26x26": (128, 32, 26, 26), "128x64x11x11": (128, 64, 11, 11),
               "128x64x10x10": (128, 64, 10, 10)}
ACT_SHAPE = (128, 32, 26, 26)  # softmax: over the last axis
CE_SHAPE = (128, 10)
CNN_PARAMS = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 1600), (128,), (10, 128), (10,)]


RUNS = op_runs("torch")


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def pool_case(name):
    x = data(POOL_SHAPES[name])
    y, idx = ref.max_pool2d_with_indices(x, 2)
    g = data(y.shape, 1)
    # forward: x in, y + int64 indices out; backward: grad_out + indices in, grad_x out
    nbytes = x.nbytes + y.nbytes + idx.nbytes + g.nbytes + idx.nbytes + x.nbytes
    return x, g, nbytes


def pool_call(shape):
    """call(library) for conftest.op_candidates: the pool's forward and backward."""
    def call(library):
        x, g, _ = pool_case(shape)
        if library == "torch":
            import torch
            tx, tg = torch.from_numpy(x), torch.from_numpy(g)
            backward = torch.ops.aten.max_pool2d_with_indices_backward

            def step():
                y, idx = torch.nn.functional.max_pool2d_with_indices(tx, 2)
                backward(tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
            return step
        y, idx = F.max_pool2d_with_indices(x, 2)
        gx = np.empty_like(x)

        def step():
            F.max_pool2d_with_indices(x, 2, out=y, indices=idx)
            F.max_pool2d_backward(g, x, 2, indices=idx, out=gx)
        return step
    return call


@pytest.mark.benchmark(group="pool")
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool(benchmark, record, alternating, shape, library, isa, threads):
    candidates = op_candidates("test_max_pool", {"shape": shape}, pool_call(shape), RUNS)
    time_op(benchmark, alternating, ("pool", shape), (library, isa, threads), candidates)
    record(benchmark, op="maxpool2x2 fwd+bwd", shape=shape, library=library, threads=threads,
           nbytes=pool_case(shape)[2], isa=isa)


@pytest.mark.benchmark(group="pool")
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool_numpy(benchmark, record, shape):
    x, g, nbytes = pool_case(shape)

    def step():
        ref.max_pool2d_with_indices(x, 2)
        ref.max_pool2d_backward(g, x, 2)

    benchmark.pedantic(step, rounds=3)
    record(benchmark, op="maxpool2x2 fwd+bwd", shape=shape, library="numpy", threads=1,
           nbytes=nbytes)


# name: (fastnn forward, backward, NumPy reference forward, backward, backward takes the
# output y rather than the input x); PyTorch's pairs are in torch_activation()
ACTIVATIONS = {
    "relu": (F.relu, F.relu_backward, ref.relu, ref.relu_backward, False),
    "leaky_relu": (F.leaky_relu, F.leaky_relu_backward, ref.leaky_relu,
                   ref.leaky_relu_backward, False),
    "gelu": (F.gelu, F.gelu_backward, ref.gelu, ref.gelu_backward, False),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, ref.sigmoid, ref.sigmoid_backward, True),
    "tanh": (F.tanh, F.tanh_backward, ref.tanh, ref.tanh_backward, True),
    "softmax": (F.softmax, F.softmax_backward, ref.softmax, ref.softmax_backward, True),
}


def activation_case():
    x, g = data(ACT_SHAPE), data(ACT_SHAPE, 1)
    # forward: x in, y out; backward: grad_out and x (or y) in, grad_x out
    return x, g, 5 * x.nbytes


def torch_activation(torch, name):
    aten = torch.ops.aten
    return {"relu": (torch.relu, lambda g, x, y: aten.threshold_backward(g, x, 0)),
            "leaky_relu": (torch.nn.functional.leaky_relu,
                           lambda g, x, y: aten.leaky_relu_backward(g, x, 0.01, False)),
            "gelu": (torch.nn.functional.gelu, lambda g, x, y: aten.gelu_backward(g, x)),
            "sigmoid": (torch.sigmoid, lambda g, x, y: aten.sigmoid_backward(g, y)),
            "tanh": (torch.tanh, lambda g, x, y: aten.tanh_backward(g, y)),
            "softmax": (lambda x: torch.softmax(x, -1),
                        lambda g, x, y: aten._softmax_backward_data(g, y, -1, torch.float32)),
            }[name]


def record_activation(record, benchmark, name, library, threads, nbytes, isa=None):
    record(benchmark, op=f"{name} fwd+bwd", shape="x".join(map(str, ACT_SHAPE)),
           library=library, threads=threads, nbytes=nbytes, isa=isa)


def activation_call(name):
    """call(library) for conftest.op_candidates: the activation's forward and backward."""
    def call(library):
        x, g, _ = activation_case()
        if library == "torch":
            import torch
            tx, tg = torch.from_numpy(x), torch.from_numpy(g)
            forward, backward = torch_activation(torch, name)
            return lambda: backward(tg, tx, forward(tx))
        forward, backward, _, _, uses_output = ACTIVATIONS[name]
        y = np.empty_like(x)
        # relu's backward reads x, so its output buffer can take the gradient too, as in
        # torch: its relu output is freed at once and malloc hands the same memory to
        # threshold_backward's output.
        gx = np.empty_like(x) if uses_output else y

        def step():
            forward(x, out=y)
            backward(g, y if uses_output else x, out=gx)
        return step
    return call


@pytest.mark.benchmark(group="activation")
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(benchmark, record, alternating, name, library, isa, threads):
    candidates = op_candidates("test_activation", {"name": name}, activation_call(name), RUNS)
    time_op(benchmark, alternating, ("activation", name), (library, isa, threads), candidates)
    record_activation(record, benchmark, name, library, threads, activation_case()[2], isa)


@pytest.mark.benchmark(group="activation")
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_numpy(benchmark, record, name):
    _, _, forward, backward, uses_output = ACTIVATIONS[name]
    x, g, nbytes = activation_case()

    def step():
        y = forward(x)
        backward(g, y if uses_output else x)

    benchmark(step)
    record_activation(record, benchmark, name, "numpy", 1, nbytes)


def ce_case():
    logits = data(CE_SHAPE)
    labels = np.random.default_rng(2).integers(0, CE_SHAPE[1], CE_SHAPE[0])
    return logits, labels, 2 * logits.nbytes + labels.nbytes


def cross_entropy_call(library):
    """conftest.op_candidates' call: the loss and its gradient."""
    logits, labels, _ = ce_case()
    if library == "torch":
        import torch
        tl, tlab = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(labels)

        def step():
            loss = torch.nn.functional.cross_entropy(tl, tlab)
            return loss.item(), torch.autograd.grad(loss, tl)
        return step
    grad = np.empty_like(logits)
    return lambda: F.cross_entropy_with_grad(logits, labels, grad=grad)


@pytest.mark.benchmark(group="loss")
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", RUNS, ids=run_ids(RUNS))
def test_cross_entropy(benchmark, record, alternating, library, isa, threads):
    candidates = op_candidates("test_cross_entropy", {}, cross_entropy_call, RUNS)
    time_op(benchmark, alternating, ("loss",), (library, isa, threads), candidates)
    record(benchmark, op="cross_entropy+grad", shape="128x10", library=library,
           threads=threads, nbytes=ce_case()[2], isa=isa)


@pytest.mark.benchmark(group="loss")
def test_cross_entropy_numpy(benchmark, record):
    logits, labels, nbytes = ce_case()

    def step():
        return ref.cross_entropy(logits, labels), ref.cross_entropy_backward(logits, labels)

    benchmark(step)
    record(benchmark, op="cross_entropy+grad", shape="128x10", library="numpy", threads=1,
           nbytes=nbytes)


def adam_case():
    params = [data(s, i) for i, s in enumerate(CNN_PARAMS)]
    grads = [data(s, 100 + i) for i, s in enumerate(CNN_PARAMS)]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    # param, m, v read and written, grad read
    return params, grads, ms, vs, 7 * sum(p.nbytes for p in params)


ADAM_SHAPE = f"CNN {sum(int(np.prod(s)) for s in CNN_PARAMS)} params"


def adam_call(library):
    """conftest.op_candidates' call: one Adam step over the CNN's parameters."""
    params, grads, ms, vs, _ = adam_case()
    if library == "fastnn":
        return lambda: _core.adam_step(params, grads, ms, vs, step=10, lr=1e-3)
    import torch
    tparams = [torch.from_numpy(p).requires_grad_() for p in params]
    for t, g in zip(tparams, grads):
        t.grad = torch.from_numpy(g)
    return torch.optim.Adam(tparams, lr=1e-3, foreach=library == "torch-foreach").step


ADAM_RUNS = op_runs("torch", "torch-foreach")


@pytest.mark.benchmark(group="optimizer")
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("library,isa", ADAM_RUNS, ids=run_ids(ADAM_RUNS))
def test_adam(benchmark, record, alternating, library, isa, threads):
    candidates = op_candidates("test_adam", {}, adam_call, ADAM_RUNS)
    time_op(benchmark, alternating, ("optimizer",), (library, isa, threads), candidates)
    record(benchmark, op="adam step", shape=ADAM_SHAPE, library=library, threads=threads,
           nbytes=adam_case()[4], isa=isa)


@pytest.mark.benchmark(group="optimizer")
def test_adam_numpy(benchmark, record):
    params, grads, ms, vs, nbytes = adam_case()

    def step():
        for p, g, m, v in zip(params, grads, ms, vs):
            ref.adam_step(p, g, m, v, step=10, lr=1e-3)

    benchmark(step)
    record(benchmark, op="adam step", shape=ADAM_SHAPE, library="numpy", threads=1, nbytes=nbytes)
