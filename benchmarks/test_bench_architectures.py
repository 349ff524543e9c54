"""The architectures group: fastnn vs PyTorch vs Keras (TensorFlow) on networks beyond
the two reference models, all from fastnn.models with their twins derived from the
fastnn layer list (benchmarks.twins): TinyVGG (hidden 32, padding 1), LeNet-5 (5x5
convolutions, tanh, average pooling), a VGG-style CIFAR net (3x32x32), a stride-2
convolution net without pooling, the 784-512-512-10 MLP with dropout, and the reference
MLP and CNN. Adam, cross-entropy from logits, batch 32 and 128.

"architecture step": one training step (median of 10); "architecture epoch": a pass
over a fixed 512 samples (16 batches of 32, 4 of 128; median of 3), timed as in
test_bench_train.py (Keras: `train_on_batch` and `fit`). Quick mode: the top thread
count only, 128 samples, one round."""
import pytest

from .conftest import QUICK, THREADS, replay
from .test_bench_train import keras_case, record_train, time_train

NAMES = ["tinyvgg", "lenet5", "vgg_cifar", "strided_cnn", "mlp_dropout", "mlp", "cnn"]
BATCHES = [32, 128]
SAMPLES = 128 if QUICK else 512
ROUNDS = {"step": 1 if QUICK else 10, "epoch": 1 if QUICK else 3}
KINDS = [(kind, batch) for kind in ("step", "epoch") for batch in BATCHES]
ARCH_THREADS = THREADS[-1:] if QUICK else THREADS


def samples_of(kind, batch):
    return batch if kind == "step" else SAMPLES


@pytest.mark.parametrize("threads", ARCH_THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", NAMES)
def test_architecture_fastnn(benchmark, record, name, kind, batch, threads):
    time_train(benchmark, record, "fastnn", f"architecture {kind}", name, kind, batch,
               samples_of(kind, batch), threads, ROUNDS[kind])


@pytest.mark.parametrize("threads", ARCH_THREADS)
@pytest.mark.parametrize("kind,batch", KINDS, ids=[f"{k}-b{b}" for k, b in KINDS])
@pytest.mark.parametrize("name", NAMES)
def test_architecture_torch(benchmark, record, torch, name, kind, batch, threads):
    time_train(benchmark, record, "torch", f"architecture {kind}", name, kind, batch,
               samples_of(kind, batch), threads, ROUNDS[kind], torch=torch)


KERAS_CASES = [keras_case(name, kind, batch, SAMPLES, ROUNDS[kind])
               for name in NAMES for kind, batch in KINDS]


@pytest.mark.parametrize("threads", ARCH_THREADS)
@pytest.mark.parametrize("keras_case", KERAS_CASES,
                         ids=[f"{c['model']}-{c['kind']}-b{c['batch']}" for c in KERAS_CASES])
def test_architecture_keras(benchmark, record, keras_times, keras_case, threads):
    c = keras_case
    benchmark.group = f"architecture {c['kind']}"
    replay(benchmark, keras_times(c, threads))
    record_train(benchmark, record, "keras", c["model"], c["kind"], c["batch"], c["samples"],
                 threads)
