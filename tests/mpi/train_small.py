"""Run under mpirun by tests/test_distributed.py: train a small model data-parallel and
print one line per check; a MODE argument makes one rank fail on purpose."""
import os
import sys
import time
import zlib

import numpy as np

from fastnn import distributed as dist, models, optim

MODE = sys.argv[1] if len(sys.argv) > 1 else "train"
dist.init(timeout=float(os.environ.get("TEST_TIMEOUT", "300")))
r = dist.rank()


def data(n=1200, seed=1):
    """Two-class-ish 10-class problem learnable in a few epochs: the label picks which
    pixel block is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.normal(0, 1.0, (n, 1, 28, 28)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 2 * label:2 * label + 4, 4:24] += 0.4
    return x, y


if MODE == "batchnorm":  # a small ResNet: BatchNorm buffers must end up equal everywhere
    x, y = data(n=300)
    model = models.resnet(channels=(4, 8), blocks=(1, 1), seed=r)
    model.fit(x, y, optimizer=optim.SGD(model.parameters(), lr=0.05), epochs=1, batch_size=30,
              seed=0, verbose=0, distributed=True)
    state = b"".join(np.ascontiguousarray(a).tobytes() for a in model.state_dict().values())
    print(f"rank {r} batchnorm state crc {zlib.crc32(state):08x} "
          f"buffers {len(list(model.buffers()))}", flush=True)
    sys.exit(0)
if MODE == "sync":  # DataParallel.sync_gradients on hand-made gradients
    model = models.mlp(seed=0)
    ddp = dist.DataParallel(model)
    failed = []

    def expect(name, got, want_grad, want_result):
        if not all(np.array_equal(p.grad, np.full(p.data.shape, want_grad, np.float32))
                   for p in model.parameters()) or got != want_result:
            failed.append(name)

    for p in model.parameters():  # weighted: (3 * 1 + 1 * 2) / 4 on both ranks
        p.grad = np.full(p.data.shape, r + 1, np.float32)
    expect("weighted mean", ddp.sync_gradients(3 if r == 0 else 1), 1.25, (4, False))
    for p in model.parameters():  # rank 1 has no samples (and stale NaN gradients)
        p.grad[...] = 5.0 if r == 0 else np.nan
    expect("a rank without samples", ddp.sync_gradients(2 if r == 0 else 0, stop=r == 1), 5.0,
           (2, True))
    for p in model.parameters():  # .grad replaced by new arrays: still averaged
        p.grad = np.full(p.data.shape, 2.0 * (r + 1), np.float32)
    expect("replaced .grad arrays", ddp.sync_gradients(5), 3.0, (10, False))
    for p in model.parameters():  # None (no backward reached it) on rank 1: a zero gradient
        p.grad = np.full(p.data.shape, 4.0, np.float32) if r == 0 else None
    expect("a .grad of None", ddp.sync_gradients(1), 2.0, (2, False))
    first = next(model.parameters())
    first.grad = np.zeros(3, np.float32)  # the wrong shape: refused before any message
    try:
        ddp.sync_gradients(5)
        failed.append("a .grad of the wrong shape")
    except ValueError as e:
        if "grad must have the parameter's shape" not in str(e):
            failed.append(f"a .grad of the wrong shape: {e}")
    print(f"rank {r} sync checks failed: {failed}", flush=True)
    sys.exit(0)
x, y = data()  # fit on 1000 samples in batches of 37: 18 + 19 per rank, and a last
               # batch of 1 that leaves rank 0 with nothing
model = models.mlp(seed=r if MODE == "train" else 0)  # rank 0's weights must win
if MODE == "mismatch" and r == 1:
    model = models.cnn(seed=0)
running = np.full(3, float(r), np.float32)  # a buffer (running statistics): rank 0's wins
model.register_buffer("running", running)
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


class Checksum:
    """After each epoch, every rank prints the CRC of its weights; in a failure MODE,
    rank 1 fails after the first epoch while rank 0 goes on training."""

    def on_epoch_end(self, epoch, logs):
        if r == 1 and MODE == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        if r == 1 and MODE == "exit":
            os._exit(3)
        if r == 1 and MODE == "hang":
            time.sleep(600)
        crc = zlib.crc32(b"".join(p.data.tobytes() for p in model.parameters()) +
                         running.tobytes())
        print(f"rank {r} epoch {epoch} crc {crc:08x} loss {logs['loss']!r}", flush=True)


model.fit(x[:1000], y[:1000], optimizer=opt, epochs=3, batch_size=37, seed=0, verbose=0,
          distributed=True, callbacks=[Checksum()], validation_data=(x[1000:], y[1000:]))
result = model.evaluate(x[1000:], y[1000:], distributed=True)
pred = model.predict(x[1000:], distributed=True)
print(f"rank {r} accuracy {result['accuracy']!r} predict {zlib.crc32(pred.tobytes()):08x} "
      f"shape {pred.shape}", flush=True)
# Without a seed, the ranks still shuffle alike: their slices cover each sample once.
index = np.arange(len(y))
times = np.zeros(len(y))
for ib, _ in dist.DataParallel(model).batches(index, y, 64):
    times[ib] += 1
times = dist.allgather(times).sum(axis=0)
print(f"rank {r} unseeded batches cover every sample once: {bool((times == 1).all())}",
      flush=True)
