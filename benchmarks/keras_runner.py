"""Keras 3 on TensorFlow (CPU) in its own process: `run(threads, cases)` starts
`python -m benchmarks.keras_runner --threads N`, which times every case on N threads and
returns {case key: [seconds per round]}.

Why a process per thread count: TensorFlow fixes its thread pools when it initialises
(`tf.config.threading.set_intra_op_parallelism_threads(n)`, inter-op 1 like the other
libraries' single stream of ops), and its Eigen/oneDNN pools then stay apart from
fastnn's libgomp and PyTorch's threads (nothing of theirs runs in this process; its
parent waits while it runs). One process per thread count, not per case: importing
TensorFlow takes seconds.

A case is {"model": a fastnn.models builder name, "kind": "step" | "epoch" | "infer",
"batch", "samples" (epoch), "rounds"}; every model is the Keras twin of the fastnn model
(benchmarks.twins), on NHWC data of the same shapes, compiled with Adam(lr 1e-3) and
sparse categorical cross-entropy from logits, Keras' defaults otherwise (no XLA: Keras
enables it only with an accelerator), and timed as Keras users run it:
- "step": `train_on_batch(x, y)` (the one-step API; it returns the loss, so the step
  has finished), after one untimed call that traces the step;
- "epoch": `fit(x, y, batch_size, epochs=rounds + 1, shuffle=False)` on NumPy arrays of
  `samples` images, each epoch timed by a callback (epoch begin to end: the fit loop,
  its tf.data input and the steps); the first epoch traces and is dropped. `fit`, not
  a `train_on_batch` loop: it is what Keras users run for an epoch, so its epoch is
  the one they see (fastnn's and PyTorch's loops are theirs: a step per batch);
- "infer": `model(x, training=False)` (the Keras advice for small batches: `predict`
  adds a tf.data pipeline per call), after three untimed calls.
Models are built per (model, batch) and shared by that batch's step and epoch cases."""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL = 'pip install "tensorflow-cpu==2.21.0" "keras==3.15.1"'


def missing():
    """Why Keras cannot run here (None if it can): a check that imports nothing."""
    absent = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(absent)} not installed: {INSTALL}" if absent else None


def key(case):
    return json.dumps(case, sort_keys=True)


def run(threads, cases):
    """Time `cases` in a Keras process on `threads` threads: {key(case): [seconds]}."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.keras_runner", "--threads",
                           str(threads)], input=json.dumps(cases), capture_output=True,
                          text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the Keras process failed (exit status {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def _twin(name, keras):
    from fastnn import models

    from .twins import keras_twin
    twin = keras_twin(getattr(models, name)(seed=0), keras)
    twin.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return twin


def _data(name, samples):
    from fastnn import models

    from .twins import inputs, nhwc
    x, y = inputs(getattr(models, name)(seed=0), samples)
    return nhwc(x), y


def _time_step(twin, case, keras):
    x, y = _data(case["model"], case["batch"])
    twin.train_on_batch(x, y)  # traces the training step
    times = []
    for _ in range(case["rounds"]):
        start = time.perf_counter()
        twin.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return times


def _time_epoch(twin, case, keras):
    x, y = _data(case["model"], case["samples"])
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    twin.fit(x, y, batch_size=case["batch"], epochs=case["rounds"] + 1, shuffle=False,
             verbose=0, callbacks=[EpochTimer()])
    return times[1:]  # the first epoch traced the step


def _time_infer(twin, case, keras):
    import tensorflow as tf
    x = tf.constant(_data(case["model"], case["batch"])[0])
    for _ in range(3):
        twin(x, training=False)
    times = []
    for _ in range(case["rounds"]):
        start = time.perf_counter()
        twin(x, training=False)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    cases = json.loads(sys.stdin.read())
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    timers = {"step": _time_step, "epoch": _time_epoch, "infer": _time_infer}
    twins, results = {}, {}
    # one model per (model, batch size); inference models are never trained
    for case in sorted(cases, key=lambda c: (c["model"], c["batch"], c["kind"] == "infer")):
        slot = (case["model"], case["batch"], case["kind"] == "infer")
        if slot not in twins:
            twins.clear()  # free the previous model's graphs and buffers
            twins[slot] = _twin(case["model"], keras)
        results[key(case)] = timers[case["kind"]](twins[slot], case, keras)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
