"""The training loop of fastnn.keras models (fit, evaluate, predict, train_on_batch,
test_on_batch, predict_on_batch) as Keras 3 runs it:

- callbacks get every hook Keras calls, in Keras' order, with Keras' logs: per batch the
  running means of the epoch so far (on_train_batch_end, on_test_batch_end), per epoch the
  epoch's means and the validation ones (val_*), on_test_end the evaluation's,
  on_predict_batch_end {"outputs": batch outputs};
- a weighted batch's loss is sum(w * loss) / N (Keras' "sum_over_batch_size": N counts
  every sample, whatever its weight), and the logged loss is the mean of the batch losses
  weighted by batch size; the compiled metrics are not weighted (Keras keeps weights for
  compile(weighted_metrics=...)); class_weight gives each sample its class's weight.
"""
import math
import sys
import time

import numpy as np

from .._core import as_rng, is_int
from ..nn.module import _zero_grads
from ..training import _float32, _format_logs, _progress, _real_array, _sigint_at_step_end
from . import callbacks as _callbacks

# ---- metrics: per-sample values of (targets as the loss takes them, model outputs) ----


def _labels(y, p):
    """Class indices of targets: labels as they are, one-hot (or probabilities) by argmax."""
    return y if y.ndim == p.ndim - 1 else y.argmax(-1)


def _per_sample(values):
    return values.reshape(len(values), -1).mean(axis=1)


def _binary_accuracy(y, p, threshold=0.5):
    return _per_sample(_like_output(y, p, "binary_accuracy") == (p > threshold))


def _categorical_accuracy(y, p):
    return _per_sample(_labels(y, p) == p.argmax(-1))


def _top_k(y, p, k=5):
    """Keras' in_top_k: the label's score is beaten by fewer than k others (ties are in)."""
    labels = _labels(y, p)
    score = np.take_along_axis(p, labels[..., None], -1)
    return _per_sample((p > score).sum(-1) < k)


def _accuracy(y, p):
    """Keras' Accuracy: how often the targets equal the outputs exactly."""
    return _per_sample(_like_output(y, p, "Accuracy") == p)


def _mae(y, p):
    return _per_sample(abs(_like_output(y, p, "mae") - p))


def _mse(y, p):
    return _per_sample((_like_output(y, p, "mse") - p) ** 2)


def _like_output(y, p, name):
    if y.shape != p.shape:
        raise ValueError(f"metric {name!r} needs targets shaped like the model output "
                         f"{p.shape[1:]} per sample, got {y.shape[1:]} (class labels: use an "
                         f"accuracy metric, or one-hot targets with to_categorical)")
    return y


METRICS = {"binary_accuracy": _binary_accuracy, "categorical_accuracy": _categorical_accuracy,
           "sparse_categorical_accuracy": _categorical_accuracy,
           "top_k_categorical_accuracy": _top_k, "sparse_top_k_categorical_accuracy": _top_k,
           "mae": _mae, "mean_absolute_error": _mae, "mse": _mse, "mean_squared_error": _mse}
ACCURACY = ("accuracy", "acc")  # Keras picks binary or categorical from the output width


def metric_functions(metrics, out_width):
    """[(name, fn)] for compile's metrics: names, or fastnn.keras.metrics objects (their
    name and per-sample function)."""
    return [(m, (_binary_accuracy if out_width == 1 else _categorical_accuracy)
             if m in ACCURACY else METRICS[m]) if isinstance(m, str) else (m.name, m.fn)
            for m in metrics]


class _Means:
    """Keras' running means over an epoch: the loss weighted by batch size, each output's
    (unweighted) loss with several outputs over batches (each counts once: Keras'
    TensorFlow backend weights them by the static batch size, None in its graph), the
    metrics over samples (every sample counts once, whatever its weight). losses: [(log
    key, output)]; metrics: [(log key, output, fn)]."""

    def __init__(self, losses, metrics):
        self.losses, self.metrics = losses, metrics
        self.loss = self.seen = self.batches = 0.0
        self.loss_sums = [0.0] * len(losses)
        self.sums = [0.0] * len(metrics)

    def update(self, loss, output_losses, outputs, ys):
        """A batch: its total loss, each output's loss, the outputs and the targets."""
        n = len(ys[0])
        self.loss += loss * n
        self.seen += n
        self.batches += 1
        for j, (_, k) in enumerate(self.losses):
            self.loss_sums[j] += output_losses[k]
        for j, (_, k, fn) in enumerate(self.metrics):
            self.sums[j] += float(fn(ys[k], outputs[k]).sum())

    def logs(self):
        """Keras' logs: every key sorted by name (its metrics and 'loss' in one order)."""
        logs = {"loss": self.loss / self.seen}
        logs.update((key, s / self.batches) for (key, _), s in zip(self.losses,
                                                                   self.loss_sums))
        logs.update((key, s / self.seen) for (key, *_), s in zip(self.metrics, self.sums))
        return {k: logs[k] for k in sorted(logs)}


# ---- sample and class weights ----


def sample_weights(w, n, what, name="sample_weight"):
    """w as a float64 array (n,) of finite weights >= 0, or an error naming it."""
    w = _real_array(w, what, name)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"{what}: {name} must hold one weight per sample, shape ({n},), got "
                         f"shape {w.shape}")
    w = w.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
    if bad.size:
        raise ValueError(f"{what}: {name} must be finite and >= 0, got {name}[{bad[0]}] = "
                         f"{w[bad[0]]}")
    return w


def class_weights(class_weight, y, out_width, what):
    """Keras' class_weight as sample weights: each sample gets its class's weight (1 for
    a class not in the dict). Classes are labels, the argmax of one-hot targets, or the
    rounded target of a single output (0 or 1)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what}: class_weight must be a dict {{class: weight}}, got "
                        f"{type(class_weight).__name__}")
    classes = max(out_width, 2)
    table = np.ones(classes)
    for key, value in class_weight.items():
        if not is_int(key) or not 0 <= key < classes:
            raise ValueError(f"{what}: class_weight keys must be class indices in [0, "
                             f"{classes}) (the model's classes), got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{what}: class_weight[{key}] must be a finite number >= 0, got "
                             f"{value!r}")
        table[int(key)] = value
    if y.ndim > 1 and y.shape[-1] != 1:
        labels = y.argmax(-1)
    else:
        targets = y.reshape(len(y))
        labels = np.round(targets).astype(np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            raise ValueError(f"{what}: class_weight needs targets that are classes in [0, "
                             f"{classes}), got y[{bad[0]}] = {targets[bad[0]]}")
    return table[labels]


# ---- callbacks ----


class CallbackList:
    """The user's callbacks, then the History, called as Keras calls them: set_params
    and set_model first, then each hook with its logs (one dict for every
    callback: what one adds, e.g. learning_rate, the next ones and the History see)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            for hook, arg in (("set_params", params), ("set_model", model)):
                if callable(getattr(cb, hook, None)):
                    getattr(cb, hook)(arg)

    def __call__(self, hook, *args):
        *args, logs = args
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):  # as Keras: a batch hook's logs by keyword
                fn(*args, logs=logs) if "batch" in hook else fn(*args, logs)


def check_callbacks(callbacks, what):
    """callbacks as a list of objects with Keras' hooks, or a TypeError naming the bad one
    (a class or an object without hooks would be silently never called)."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{what}: callbacks must be a list, got {type(callbacks).__name__}")
    for k, cb in enumerate(callbacks):
        if isinstance(cb, type) or not any(callable(getattr(cb, hook, None))
                                           for hook in _callbacks.HOOKS):
            got = f"the class {cb.__name__}" if isinstance(cb, type) else type(cb).__name__
            raise TypeError(f"{what}: callbacks[{k}] must be a callback object (a "
                            f"fastnn.keras.callbacks.Callback), got {got}")
    return list(callbacks)


# ---- the loops ----


def _loss(loss_fn, out, y, w, train):
    """(loss, its gradient if train) of one output: Keras' mean, or sum(w * loss) / N
    with weights."""
    if w is None:
        return loss_fn(out, y), loss_fn.backward() if train else None
    loss_fn.reduction = "none"  # per-sample values; backward weights them
    try:
        values = loss_fn(out, y)
        scale = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - 1)),
                                values.shape) / values.size
        return float((values * scale).sum()), loss_fn.backward(scale) if train else None
    finally:
        loss_fn.reduction = "mean"


def step(model, xb, ys, ws, train):
    """One batch: (total loss, each output's loss, the model's outputs), lists in the
    outputs' flat order. train=True also runs backward and the optimizer step. The loss
    is Keras': sum(loss weight * output loss)."""
    out = model(xb)
    outs = list(out) if isinstance(out, tuple) else [out]
    total, losses, grads = 0.0, [], []
    for loss_fn, weight, o, y, w in zip(model._loss_fns, model._compiled.loss_weights, outs,
                                        ys, ws):
        loss, grad = _loss(loss_fn, o, y, w, train)
        losses.append(float(loss))
        total += weight * float(loss)
        grads.append(grad if weight == 1 or grad is None else grad * np.float32(weight))
    if train:
        _zero_grads(model.parameters(), True)  # each step's gradient afresh
        model.backward(grads if len(grads) > 1 else grads[0])
        model._compiled.optimizer.clip(model._stepped.params)
        model._stepped.step()
    return total, losses, model._outputs_of(outs)


def _rows(arrays, idx):
    """The rows idx of each array (None stays None)."""
    return [None if a is None else a[idx] for a in arrays]


def run_batches(model, x, ys, ws, batch_size, means, callbacks, stage, order=None,
                interrupted=lambda: False, bar=None):
    """One pass of `stage` ('train' or 'test') over the data in batches (ys and ws: one
    array per output), calling on_{stage}_batch_begin/end; stops early when
    model.stop_training is set (train)."""
    for i, start in enumerate(range(0, len(x), batch_size)):
        idx = slice(start, start + batch_size) if order is None else \
            order[start:start + batch_size]
        callbacks(f"on_{stage}_batch_begin", i, {})
        yb = _rows(ys, idx)
        means.update(*step(model, x[idx], yb, _rows(ws, idx), stage == "train"), yb)
        if bar is not None:
            bar.update(len(yb[0]))
        callbacks(f"on_{stage}_batch_end", i, means.logs())
        if interrupted():
            raise KeyboardInterrupt
        if stage == "train" and model.stop_training:
            break


def evaluate(model, x, y, w, batch_size, callbacks):
    """Keras' evaluation of (x, y): on_test_begin, batches, on_test_end; the logs."""
    callbacks("on_test_begin", {})
    means = _Means(*model._log_keys())
    with model._training_graph(), model._mode(False, x.shape):  # packed inputs first
        run_batches(model, x, y, w, batch_size, means, callbacks, "test")
    logs = means.logs()
    callbacks("on_test_end", dict(logs))
    return logs


def fit(model, x, y, w, val, batch_size, epochs, initial_epoch, shuffle, seed, verbose,
        callbacks, history):
    """Keras' fit loop; val is None or (x, y, w). Returns the History."""
    steps = -(-len(x) // batch_size)
    history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
    callbacks = CallbackList(callbacks + [history], model, history.params)
    rng = as_rng(seed, "fit")
    model.stop_training = False
    model._freeze_weights()
    callbacks("on_train_begin", {})
    logs = {}
    try:
        with _sigint_at_step_end() as interrupted:
            for epoch in range(initial_epoch, epochs):
                callbacks("on_epoch_begin", epoch, {})
                model.train()
                means = _Means(*model._log_keys())
                order = rng.permutation(len(x)) if shuffle else None
                bar = _progress(len(x), f"Epoch {epoch + 1}/{epochs}", verbose)
                start = time.perf_counter()
                try:
                    with model._training_graph():
                        run_batches(model, x, y, w, batch_size, means, callbacks, "train",
                                    order, interrupted, bar)
                finally:
                    if bar is not None:
                        bar.close()
                seconds = time.perf_counter() - start
                logs = means.logs()
                if val is not None:
                    logs.update(("val_" + k, v) for k, v in
                                evaluate(model, *val, batch_size, callbacks).items())
                # fastnn's own, after Keras' keys
                logs.update(seconds=seconds, samples_per_sec=means.seen / max(seconds, 1e-9))
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(logs)}", flush=True)
                callbacks("on_epoch_end", epoch, logs)
                if model.stop_training:
                    break
    except KeyboardInterrupt:
        history.interrupted = True
        print("fit: interrupted (KeyboardInterrupt); the model keeps the weights of the last "
              "completed step", file=sys.stderr, flush=True)
    callbacks("on_train_end", dict(logs))
    return history


def predict(model, x, batch_size, callbacks):
    """The outputs for x in batches (in the model's output structure), with
    on_predict_* hooks."""
    x = _float32(x, "predict")
    callbacks("on_predict_begin", {})
    parts = []
    with model._mode(False, x.shape):
        for i, start in enumerate(range(0, len(x), batch_size)):
            callbacks("on_predict_batch_begin", i, {})
            parts.append(model._flat_run((x[start:start + batch_size],)))
            callbacks("on_predict_batch_end", i, {"outputs": model._structured(parts[-1])})
    callbacks("on_predict_end", {})
    return model._structured([np.concatenate(p) for p in zip(*parts)])
