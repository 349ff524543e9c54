"""Training speed: fastnn vs PyTorch on the reference MLP and CNN, Adam, cross-entropy,
1..N threads. Both libraries start from the same weights and see the same random images
(speed does not depend on pixel values).

"training step": one forward + loss + backward + update at batch 128 (median of 20).
"epoch": the scaling benchmark, batch sizes 32..256 over a fixed 7,680 samples per run
(60 batches of 128, 240 of 32, 30 of 256), so every run does the same work and times
compare across batch sizes; median of 3 runs after a one-step warm-up, samples/s in the
benchmark's extra_info. The GFLOP/s column counts 2 FLOPs per multiply-add: forward,
weight gradients, and input gradients of every parameterised layer but the first
(fastnn.profiling.training_flops)."""
import numpy as np
import pytest

from fastnn import losses, models, optim
from fastnn.profiling import training_flops

from .conftest import QUICK, THREADS, library_threads

STEP_BATCH = 128
EPOCH_BATCHES = [32, 64, 128, 256]
EPOCH_SAMPLES = 256 if QUICK else 7680
MODELS = {"mlp": models.mlp, "cnn": models.cnn}
KINDS = [("step", STEP_BATCH)] + [("epoch", b) for b in EPOCH_BATCHES]


def data(batch, samples):
    rng = np.random.default_rng(0)
    x = rng.random((samples, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, samples, batch)]


def fastnn_step(name):
    model = MODELS[name](seed=0)
    loss_fn = losses.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(xb, yb):
        out = model(xb)
        loss_fn(out, yb)
        model.backward(loss_fn.backward())
        opt.step()
    return step


def torch_step(torch, name):
    tnn = torch.nn
    if name == "mlp":
        twin = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 64), tnn.ReLU(), tnn.Linear(64, 64),
                              tnn.ReLU(), tnn.Linear(64, 10))
    else:
        twin = tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                              tnn.Linear(1600, 128), tnn.ReLU(), tnn.Linear(128, 10))
    twin.load_state_dict({k: torch.from_numpy(p.data.copy())
                          for k, p in MODELS[name](seed=0).named_parameters()})
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def step(xb, yb):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(twin(xb), yb).backward()
        opt.step()
    return step


def bench(benchmark, record, library, name, kind, batch, threads, step, convert=None):
    batches = data(batch, batch if kind == "step" else EPOCH_SAMPLES)
    if convert:
        batches = [tuple(map(convert, b)) for b in batches]
    samples = sum(len(yb) for _, yb in batches)

    def run():
        for xb, yb in batches:
            step(xb, yb)

    benchmark.group = f"training {kind}"
    with library_threads(library, threads):
        step(*batches[0])  # warm-up: buffers, caches, thread pools
        benchmark.pedantic(run, rounds=1 if QUICK else 20 if kind == "step" else 3, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats and getattr(stats, "stats", None):
        benchmark.extra_info["samples_per_sec"] = samples / stats.stats.median
    flops = training_flops(MODELS[name](seed=0), (batch, 1, 28, 28)) * len(batches)
    shape = f"{name} b{batch}" + ("" if kind == "step" else f" x{len(batches)}")
    record(benchmark, op=f"train {kind}", shape=shape, library=library, threads=threads,
           flops=flops, model=name, batch=batch, samples=samples)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", MODELS)
def test_train_fastnn(benchmark, record, name, kind, batch, threads):
    bench(benchmark, record, "fastnn", name, kind, batch, threads, fastnn_step(name))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", MODELS)
def test_train_torch(benchmark, record, torch, name, kind, batch, threads):
    bench(benchmark, record, "torch", name, kind, batch, threads, torch_step(torch, name),
          convert=torch.from_numpy)
