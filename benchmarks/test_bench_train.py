"""Training speed: fastnn vs PyTorch vs Keras (TensorFlow) on the reference MLP and CNN,
Adam (lr 1e-3), cross-entropy from logits, 1..N threads. The three start from the same
weights (benchmarks.twins) and see the same random images (speed does not depend on
pixel values); Keras gets them channels-last (NHWC), its fast layout on the CPU.

"training step": one forward + loss + backward + update at batch 128 (median of 20).
"epoch": the scaling benchmark, batch sizes 32..256 over a fixed 7,680 samples per run
(60 batches of 128, 240 of 32, 30 of 256), so every run does the same work and times
compare across batch sizes; median of 3 runs after a one-step warm-up, samples/s in the
benchmark's extra_info. fastnn and PyTorch run the explicit loop over the batches;
Keras runs what its users run, `train_on_batch` for a step and one `fit` epoch on the
NumPy arrays for an epoch (in its own process, after a warm-up that traces the step:
benchmarks.keras_runner says how it is timed). The GFLOP/s column counts 2 FLOPs per
multiply-add: forward, weight gradients, and input gradients of every parameterised
layer but the first (fastnn.profiling.training_flops).

The helpers here also time the architectures group (test_bench_architectures.py)."""
import pytest

from fastnn import losses, models, optim
from fastnn.profiling import training_flops

from .conftest import QUICK, THREADS, library_threads, replay
from .twins import inputs, torch_twin

STEP_BATCH = 128
EPOCH_BATCHES = [32, 64, 128, 256]
EPOCH_SAMPLES = 256 if QUICK else 7680
MODELS = ["mlp", "cnn"]
KINDS = [("step", STEP_BATCH)] + [("epoch", b) for b in EPOCH_BATCHES]
ROUNDS = {"step": 1 if QUICK else 20, "epoch": 1 if QUICK else 3}


def fastnn_step(model):
    loss_fn = losses.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(xb, yb):
        out = model(xb)
        loss_fn(out, yb)
        model.backward(loss_fn.backward())
        opt.step()
    return step


def torch_step(torch, model):
    twin = torch_twin(model)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def step(xb, yb):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(twin(xb), yb).backward()
        opt.step()
    return step


def keras_case(name, kind, batch, samples, rounds):
    """The Keras process's description of a case (benchmarks.keras_runner)."""
    return {"model": name, "kind": kind, "batch": batch,
            "samples": batch if kind == "step" else samples, "rounds": rounds}


def record_train(benchmark, record, library, name, kind, batch, samples, threads):
    """Record a step or epoch case: FLOPs, samples/s, and the epoch's batch count."""
    model = getattr(models, name)(seed=0)
    count = samples // batch
    stats = getattr(benchmark, "stats", None)
    if stats and getattr(stats, "stats", None):
        benchmark.extra_info["samples_per_sec"] = samples / stats.stats.median
    flops = training_flops(model, (batch,) + model.input_shape) * count
    shape = f"{name} b{batch}" + ("" if kind == "step" else f" x{count}")
    record(benchmark, op=f"train {kind}", shape=shape, library=library, threads=threads,
           flops=flops, model=name, batch=batch, samples=samples)


def time_train(benchmark, record, library, group, name, kind, batch, samples, threads, rounds,
               torch=None):
    """Time fastnn's (torch=None) or PyTorch's step loop over `samples` images."""
    model = getattr(models, name)(seed=0)
    x, y = inputs(model, samples)
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, samples, batch)]
    if torch is None:
        step = fastnn_step(model)
    else:
        step = torch_step(torch, model)
        batches = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in batches]

    def run():
        for xb, yb in batches:
            step(xb, yb)

    benchmark.group = group
    with library_threads(library, threads):
        step(*batches[0])  # warm-up: buffers, caches, thread pools
        benchmark.pedantic(run, rounds=rounds, iterations=1)
    record_train(benchmark, record, library, name, kind, batch, samples, threads)


def samples_of(kind, batch):
    return batch if kind == "step" else EPOCH_SAMPLES


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", MODELS)
def test_train_fastnn(benchmark, record, name, kind, batch, threads):
    time_train(benchmark, record, "fastnn", f"training {kind}", name, kind, batch,
               samples_of(kind, batch), threads, ROUNDS[kind])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", MODELS)
def test_train_torch(benchmark, record, torch, name, kind, batch, threads):
    time_train(benchmark, record, "torch", f"training {kind}", name, kind, batch,
               samples_of(kind, batch), threads, ROUNDS[kind], torch=torch)


KERAS_CASES = [keras_case(name, kind, batch, EPOCH_SAMPLES, ROUNDS[kind])
               for name in MODELS for kind, batch in KINDS]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("keras_case", KERAS_CASES,
                         ids=[f"{c['model']}-{c['kind']}-b{c['batch']}" for c in KERAS_CASES])
def test_train_keras(benchmark, record, keras_times, keras_case, threads):
    c = keras_case
    benchmark.group = f"training {c['kind']}"
    replay(benchmark, keras_times(c, threads))
    record_train(benchmark, record, "keras", c["model"], c["kind"], c["batch"], c["samples"],
                 threads)
