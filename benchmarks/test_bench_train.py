"""Training speed: fastnn vs PyTorch on the reference MLP and CNN, batch 128, Adam,
cross-entropy, 1 and 2 threads. "step" is one forward + loss + backward + update;
"epoch" is 60 such steps over distinct batches (7,680 samples; samples/s in the
benchmark's extra_info). Both libraries start from the same weights and see the same
random images (speed does not depend on pixel values). The GFLOP/s column counts
2 FLOPs per multiply-add: forward, weight gradients, and input gradients of every
parameterised layer but the first."""
import numpy as np
import pytest

from fastnn import losses, models, nn, optim

from .conftest import THREADS, library_threads

BATCH = 128
EPOCH_BATCHES = 60
MODELS = {"mlp": models.mlp, "cnn": models.cnn}


def train_flops(model):
    """FLOPs of one training step of `model` on one batch."""
    shape, total, first = (BATCH, 1, 28, 28), 0, True
    for layer in model.layers:
        out = layer.output_shape(shape)
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            macs = layer.weight.data.size * int(np.prod(out[2:])) * BATCH
            total += 2 * macs * (2 if first else 3)
            first = False
        shape = out
    return total


def data():
    rng = np.random.default_rng(0)
    x = rng.random((EPOCH_BATCHES * BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, EPOCH_BATCHES * BATCH)
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]


def fastnn_step(name):
    model = MODELS[name](seed=0)
    loss_fn = losses.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(xb, yb):
        out = model(xb)
        loss_fn(out, yb)
        model.backward(loss_fn.backward())
        opt.step()
    return model, step


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


def bench(benchmark, record, library, name, kind, threads, step, batches, flops):
    if kind == "step":
        xb, yb = batches[0]
        run, rounds, samples = (lambda: step(xb, yb)), 20, BATCH
    else:
        def run():
            for xb, yb in batches:
                step(xb, yb)
        rounds, samples = 3, BATCH * len(batches)
    with library_threads(library, threads):
        run()  # warm-up: buffers, caches, thread pools
        benchmark.pedantic(run, rounds=rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats and getattr(stats, "stats", None):
        benchmark.extra_info["samples_per_sec"] = samples / stats.stats.median
    record(benchmark, op=f"train {kind}",
           shape=f"{name} b{BATCH}" + ("" if kind == "step" else f" x{len(batches)}"),
           library=library, threads=threads,
           flops=flops * (1 if kind == "step" else len(batches)))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", ["step", "epoch"])
@pytest.mark.parametrize("name", MODELS)
def test_train_fastnn(benchmark, record, name, kind, threads):
    model, step = fastnn_step(name)
    bench(benchmark, record, "fastnn", name, kind, threads, step, data(), train_flops(model))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", ["step", "epoch"])
@pytest.mark.parametrize("name", MODELS)
def test_train_torch(benchmark, record, torch, name, kind, threads):
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data()]
    bench(benchmark, record, "torch", name, kind, threads, torch_step(torch, name), batches,
          train_flops(MODELS[name](seed=0)))


def test_flop_count_of_the_mlp():
    # 54,912 MACs per sample (784*64 + 64*64 + 64*10), done 3 times (forward, weight and
    # input gradients) except the first layer's 50,176 input-gradient MACs
    assert train_flops(models.mlp(0)) == BATCH * 2 * (3 * 54912 - 50176)
