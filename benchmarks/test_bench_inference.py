"""Small-batch inference latency: batch 1 and 8 through the reference and architecture
models in eval mode, fastnn `model(x)` and `model.predict(x)` vs PyTorch under
`torch.inference_mode()` vs Keras `model(x, training=False)` (in its own process), each
the median of many calls. fastnn's two calls and PyTorch's on every thread count take
turns in 7 blocks of ~20 ms of calls (conftest.alternate), so that a co-tenant's burst on
a shared VM lands on all of them alike; Keras: 100 calls after 3 warm-up calls. GFLOP/s:
2 FLOPs per multiply-add of the forward pass."""
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import models

from .conftest import QUICK, THREADS, has_torch, inference_threads, replay
from .test_bench_train import ARCH_NAMES as NAMES
from .twins import inputs, torch_twin

pytestmark = pytest.mark.benchmark(group="inference")

BATCHES = [1, 8]
KERAS_ROUNDS = 3 if QUICK else 100


def case(name, batch):
    model = getattr(models, name)(seed=0).eval()
    return model, inputs(model, batch)[0]


def forward_flops(model, batch):
    shape, macs = (batch,) + model.input_shape, 0
    for layer in model.layers:
        shape = layer.output_shape(shape)
        macs += layer.macs(shape)
    return 2 * macs


def record_infer(benchmark, record, library, name, batch, threads, **extra):
    record(benchmark, op="infer", shape=f"{name} b{batch}", library=library, threads=threads,
           flops=forward_flops(getattr(models, name)(seed=0), batch), model=name, batch=batch,
           **extra)


LIBRARIES = {"fastnn": "model(x)", "fastnn-predict": "predict", "torch": None}


def infer_run(library, name, batch, threads):
    """(context, warm, run) of one inference call of the library on the model (see
    conftest.alternate); PyTorch's under torch.inference_mode."""
    model, x = case(name, batch)
    if library == "torch":
        import torch
        twin, tx = torch_twin(model).eval(), torch.from_numpy(x)
        call = lambda: twin(tx)  # noqa: E731
    else:
        f = model if library == "fastnn" else model.predict
        call = lambda: f(x)  # noqa: E731
    threads_of = "torch" if library == "torch" else "fastnn"
    return (lambda: inference_threads(threads_of, threads)), call, call


def time_infer(benchmark, record, alternating, library, name, batch, threads):
    """Time `library` on the model, alternating block by block with the other libraries
    and thread counts of the same model and batch: 7 blocks of ~20 ms of calls each."""
    libraries = [lib for lib in LIBRARIES if lib != "torch" or has_torch()]

    def test(lib, t):
        params = {"name": name, "batch": batch, "threads": t}
        return (("test_infer_torch", params) if lib == "torch" else
                ("test_infer_fastnn", dict(params, call=LIBRARIES[lib])))
    candidates = {(lib, t): (*test(lib, t), lambda lib=lib, t=t: infer_run(lib, name, batch, t))
                  for lib in libraries for t in THREADS}
    replay(benchmark, alternating(("infer", name, batch), (library, threads), candidates, 7))
    record_infer(benchmark, record, library, name, batch, threads,
                 **({"isa": fastnn.get_isa()} if library != "torch" else {}))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("call", ["model(x)", "predict"])
def test_infer_fastnn(benchmark, record, alternating, call, name, batch, threads):
    time_infer(benchmark, record, alternating, "fastnn" if call == "model(x)" else
               "fastnn-predict", name, batch, threads)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", NAMES)
def test_infer_torch(benchmark, record, torch, alternating, name, batch, threads):
    time_infer(benchmark, record, alternating, "torch", name, batch, threads)


KERAS_CASES = [{"model": name, "kind": "infer", "batch": batch, "rounds": KERAS_ROUNDS}
               for name in NAMES for batch in BATCHES]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("keras_case", KERAS_CASES,
                         ids=[f"{c['model']}-b{c['batch']}" for c in KERAS_CASES])
def test_infer_keras(benchmark, record, keras_times, keras_case, threads):
    replay(benchmark, keras_times(keras_case, threads))
    record_infer(benchmark, record, "keras", keras_case["model"], keras_case["batch"], threads)


@pytest.mark.parametrize("mode", [[], ["--train", "--batch", "8"]], ids=["inference", "train"])
def test_bench_latency_script_runs(torch, mode):
    """benchmarks/bench_latency.py (alternating fastnn / PyTorch blocks) on tiny blocks,
    inference and training steps: the script never rots."""
    script = os.path.join(os.path.dirname(__file__), "bench_latency.py")
    out = subprocess.run([sys.executable, script, "--blocks", "1", "--calls", "2", *mode],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert all(f"{name} " in out for name in NAMES) and "PyTorch / fastnn" in out
