"""The Keras-style model API every fastnn.nn.Module has (fit, evaluate, predict, summary,
profile, save), History, callbacks and progress display.

`fit` runs exactly the explicit loop (see fastnn.nn) over fastnn.datasets.iterate_batches:
    zero_grad; out = model(xb); loss = loss_fn(out, yb); model.backward(loss_fn.backward());
    opt.step()
"""
import contextlib
import math
import signal
import sys
import threading
import time

import numpy as np

from . import distributed as dist, losses
from ._core import as_flag, as_real, as_rng, as_sample_shape, is_int
from .datasets import as_batch_size, iterate_batches

__all__ = ["ModelAPI", "History", "Callback", "EarlyStopping"]


class History:
    """Per-epoch metrics of one fit: `history` maps each name (loss, accuracy, val_loss,
    val_accuracy, seconds, samples_per_sec) to a list with one value per epoch;
    `interrupted` is True when a KeyboardInterrupt stopped the fit."""

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.interrupted = False

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class Callback:
    """Hooks fit calls: set_model(model), on_train_begin(), on_epoch_begin(epoch),
    on_epoch_end(epoch, logs), on_train_end(). Set model.stop_training = True to stop
    after the current epoch. Any object with some of these methods works (the LR
    schedulers of fastnn.optim do)."""

    model = None

    def set_model(self, model):
        self.model = model

    # logs: fastnn.keras' fit passes Keras' logs to every hook
    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, logs=None):
        pass


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs.

    With restore_best_weights, the weights and buffers (BatchNorm's running statistics,
    which Keras restores too) of the best epoch are copied back when training ends
    (early or not)."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be a metric name, got {monitor!r}")
        if not is_int(patience) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got "
                             f"{patience!r}")
        min_delta = as_real(min_delta, "min_delta", "EarlyStopping")
        if not math.isfinite(min_delta):  # NaN: no epoch would ever count as better
            raise ValueError(f"EarlyStopping: min_delta must be finite, got {min_delta!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(min_delta)
        self.sign = 1.0 if mode == "min" else -1.0
        self.restore_best_weights = as_flag(restore_best_weights, "restore_best_weights",
                                            "EarlyStopping")

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_epoch = math.inf, 0, None
        self.best_weights, self.stopped_epoch = None, None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not among the "
                             f"metrics {sorted(logs)} (val_* need validation data)")
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best_weights:
                self.best_weights = [a.copy() for a in self._state()]
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def _state(self):
        return [p.data for p in self.model.parameters()] + list(self.model.buffers())

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            for a, best in zip(self._state(), self.best_weights):
                np.copyto(a, best)


_HOOKS = ("set_model", "on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")


def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _progress(total, desc, verbose):
    """A tqdm bar on stderr when verbose == 1 and tqdm is installed, else None."""
    if verbose != 1:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="samples", leave=False, file=sys.stderr,
                dynamic_ncols=True)


@contextlib.contextmanager
def _sigint_at_step_end():
    """While fit runs, Ctrl-C (SIGINT) only sets a flag, which the training loop turns
    into KeyboardInterrupt after the current step: a step (forward, backward, optimizer
    update and its step count) is never cut in half. Main thread only (signal rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield lambda: bool(pending)
    finally:
        signal.signal(signal.SIGINT, previous)


def _finite_guard(at):
    """A check(array_or_float, where) raising FloatingPointError at the first NaN/inf,
    naming `where` and the step `at` (fit's _Progress) is in."""
    def check(value, where):
        if not np.isfinite(value).all():
            raise FloatingPointError(
                f"fit(check_finite=True): non-finite value (NaN or inf) first appeared in "
                f"{where} at step {at.done + 1} (epoch {at.epoch + 1}, batch {at.batch + 1})")
    return check


class _Progress:
    """Where fit is: epoch and batch (0-based) of the running step, completed steps."""
    epoch = batch = done = 0


def _real_array(a, what, name):
    """a as a NumPy array of real numbers with a batch dimension, or a TypeError naming
    it: float32 conversion would drop a complex part and fail unnamed on strings."""
    try:
        array = np.asarray(a)
    except (ValueError, TypeError) as e:  # a ragged list
        raise TypeError(f"{what}: {name} must be an array, got {type(a).__name__} ({e})") from None
    if array.dtype.kind not in "biuf" or array.ndim == 0:
        got = (f"{array.dtype} of shape {array.shape}" if isinstance(a, np.ndarray)
               else type(a).__name__)
        raise TypeError(f"{what}: {name} must be an array of real numbers with one entry per "
                        f"sample, got {got}")
    return array


def _float32(x, what):
    """x as one C-contiguous float32 array (converted once), or a MemoryError naming it
    (NumPy's names neither: e.g. a broadcast view of 2**40 rows)."""
    try:
        return np.ascontiguousarray(x, dtype=np.float32)
    except MemoryError:
        raise MemoryError(f"{what}: cannot convert x of shape {x.shape} to one float32 array "
                          f"({x.size * 4:,} bytes)") from None


def _check_finite_data(a, what, name):
    """A ValueError naming `name` and its first sample holding NaN or inf. Checked once
    per fit/evaluate, always: one such sample makes the loss and then every weight NaN
    at the first batch holding it, silently (check_finite=True then only says which
    layer saw it first). min and max propagate NaN and show inf, reading the array
    twice without a temporary: 25-35 ms for MNIST's 60000x1x28x28 on 2 cores, once per
    call (about 5% of one epoch of models.mlp, 0.2% of models.cnn's)."""
    if a.dtype.kind != "f" or not a.size or (np.isfinite(a.min()) and np.isfinite(a.max())):
        return
    bad = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))[0])
    raise ValueError(f"{what}: {name} holds NaN or inf as float32 (first in sample {bad}, "
                     f"{name}[{bad}]); training on it makes the loss and the weights NaN: "
                     f"clean or drop those samples")


def _format_logs(logs):
    parts = []
    for key, value in logs.items():
        if key == "seconds":
            parts.append(f"{value:.1f}s")
        elif key == "samples_per_sec":
            parts.append(f"{value:,.0f} samples/s")
        else:
            parts.append(f"{key} {value:.4f}")
    return " - ".join(parts)


def _targets_for(y, out_shape, loss_fn, what):
    """y (a real array) as loss_fn expects it for a model output of out_shape (batch
    first), checked: labels or class probabilities for cross-entropy, else the output's
    shape."""
    if isinstance(loss_fn, losses.CrossEntropyLoss):
        classes = out_shape[-1]
        if y.dtype.kind == "f" and y.ndim == 2:
            if y.shape[1] != classes:
                raise ValueError(f"{what}: one-hot / class-probability targets must have "
                                 f"{classes} columns (the model's outputs), got shape "
                                 f"{y.shape}")
            return np.ascontiguousarray(y, dtype=np.float32)
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
            raise ValueError(f"{what}: cross-entropy needs integer class labels of shape "
                             f"(N,) or float class probabilities of shape (N, {classes}), "
                             f"got {y.dtype} of shape {y.shape}")
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if bad.size:
            raise ValueError(f"{what}: labels must lie in [0, {classes}) for a model with "
                             f"{classes} outputs; y[{bad[0]}] = {y[bad[0]]}")
        return y.astype(np.int64)
    if y.shape[1:] != out_shape[1:]:
        raise ValueError(f"{what}: targets must have shape (N, "
                         f"{', '.join(map(str, out_shape[1:]))}) like the model output, "
                         f"got {y.shape}")
    return np.ascontiguousarray(y, dtype=np.float32)


class ModelAPI:
    """Mixin giving every model (fastnn.nn.Module) its Keras-style API; x is one array
    (a model with several inputs or outputs trains with the explicit loop)."""

    input_shape = None  # per sample, when the model knows it
    optimizer = None
    loss = None
    stop_training = False
    _guard = None  # fit(check_finite=True): check(value, where), called on each layer's values

    def _single_output_shape(self, shape, what):
        """output_shape(shape), for a model returning one array (else its first output's
        shape only: fit failed in the loss, predict in the copy)."""
        if self._is_layer():
            return self.output_shape(shape)
        shape = tuple(shape)
        graph = self._graph_for((shape,))
        if not graph.single:
            raise TypeError(f"{what}: the model returns a list of {len(graph.output_values)} "
                            f"output(s); fit, evaluate and predict take a model returning one "
                            f"array (train this one with the explicit loop: outs = model(x), "
                            f"..., model.backward([...]))")
        return graph.output_shapes((shape,))[0]

    def _prepare(self, x, y, loss_fn, what):
        """x as float32 (converted once) and y as the loss expects, checked: lengths,
        labels, and no NaN or inf (in float32: 1e300 in a float64 x is inf there)."""
        x, y = self._converted(x, y, loss_fn, what)
        _check_finite_data(x, what, "x")
        _check_finite_data(y, what, "y")
        return x, y

    def _converted(self, x, y, loss_fn, what):
        x = _float32(_real_array(x, what, "x"), what)
        y = _real_array(y, what, "y")
        if len(x) != len(y):
            raise ValueError(f"{what}: x and y must have the same length, got len(x)={len(x)} "
                             f"and len(y)={len(y)}")
        if len(x) == 0:
            raise ValueError(f"{what}: x is empty")
        try:  # on one sample: the layer's message alone said "got (1, ...)"
            out_shape = self._single_output_shape((1,) + x.shape[1:], what)
        except ValueError as e:
            raise ValueError(f"{what}: x of shape {x.shape} does not fit the model: {e}") from None
        return x, _targets_for(y, out_shape, loss_fn, what)

    def fit(self, x, y, *, optimizer, loss="cross_entropy", epochs=1, batch_size=32,
            validation_data=None, validation_split=0.0, shuffle=True, seed=None, verbose=1,
            callbacks=None, check_finite=False, distributed=False):
        """Train for `epochs` passes over (x, y) and return a History.

        optimizer: a fastnn.optim optimizer, or a name ('sgd', 'adam', 'adamw', 'rmsprop')
        for one with its default hyperparameters over model.parameters(). x is converted
        to float32 once; y holds int class labels or float class probabilities (N, C) for
        cross_entropy, or float targets shaped like the output for 'binary_cross_entropy' /
        'mse'.
        validation_split takes the last fraction of x (before shuffling) as validation
        data. `seed` fixes the shuffling. verbose: 0 silent, 1 progress bar (tqdm if
        installed) and a line per epoch, 2 a line per epoch. Logged per epoch: loss,
        accuracy (mean over the epoch's batches, as Keras does), val_loss, val_accuracy,
        seconds and samples_per_sec (training time only).

        KeyboardInterrupt (Ctrl-C, or raised by a callback or inside a batch) stops
        training cleanly: the model keeps the weights of the last completed step (Ctrl-C
        waits for the running step to finish), callbacks get on_train_end, a message is
        printed to stderr and the History of the completed epochs is returned, with
        `history.interrupted` True.

        x (and y, when float) holding NaN or inf raises ValueError naming the first such
        sample, here and in evaluate (checked once per call, always: see
        _check_finite_data). check_finite=True checks every layer's forward output, the
        loss, every backward gradient and the updated weights at each step, and raises
        FloatingPointError naming the first layer (forward/backward/parameter) and the
        step where NaN or inf appeared (the weights are then those of that step). Off by
        default: it costs a pass over every activation.

        distributed=True trains data-parallel across the ranks of an MPI job (see
        fastnn.distributed; run under mpirun): batch_size is the global batch, split
        across ranks; gradients, loss and accuracy are averaged over ranks; only rank 0
        prints; validation is split across ranks."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        batch_size = as_batch_size(batch_size, "fit")
        distributed = as_flag(distributed, "distributed", "fit")
        check_finite = as_flag(check_finite, "check_finite", "fit")
        shuffle = as_flag(shuffle, "shuffle", "fit")
        if not 0.0 <= as_real(validation_split, "validation_split", "fit") < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
        pair = isinstance(validation_data, (tuple, list))
        if validation_data is not None and not (pair and len(validation_data) == 2):
            got = f"{len(validation_data)} items" if pair else type(validation_data).__name__
            raise TypeError(f"fit: validation_data must be a pair (x_val, y_val), got {got}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"fit: callbacks must be a list, got {type(callbacks).__name__}")
        for k, cb in enumerate(callbacks or ()):  # else it would be silently never called
            if not any(callable(getattr(cb, hook, None)) for hook in _HOOKS):
                raise TypeError(f"fit: callbacks[{k}] ({type(cb).__name__}) has none of the "
                                f"hooks {', '.join(_HOOKS)}")
        loss_fn = losses.get(loss)
        if isinstance(optimizer, str):
            from . import optim
            optimizer = optim.get(optimizer, self.parameters())
        elif isinstance(optimizer, type) or not callable(getattr(optimizer, "step", None)):
            # a class (optimizer=optim.SGD) failed in its unbound step(), missing self
            got = (f"the class {optimizer.__name__}" if isinstance(optimizer, type)
                   else type(optimizer).__name__)
            raise TypeError(f"fit: optimizer must be a fastnn.optim optimizer or a name, got "
                            f"{got} (an instance: e.g. optim.SGD(model.parameters()))")
        elif isinstance(getattr(optimizer, "params", None), list):
            own = {id(p) for p in self.parameters()}
            if not any(id(p) in own for p in optimizer.params):  # it would train nothing
                raise ValueError(f"fit: the optimizer holds none of this model's parameters "
                                 f"(built over another model's?); pass one over "
                                 f"model.parameters()")
        x, y = self._prepare(x, y, loss_fn, "fit")
        if validation_data is not None:
            xv, yv = self._prepare(*validation_data, loss_fn, "fit (validation_data)")
        elif validation_split:
            # Keras' split: the training part is floor(n * (1 - split)) samples (int(n *
            # split) validation samples gave one fewer, e.g. 2 of 10 for 0.25, not 3)
            n_val = len(x) - math.floor(len(x) * (1.0 - validation_split))
            if n_val == 0 or n_val == len(x):
                raise ValueError(f"fit: validation_split={validation_split} leaves "
                                 f"{n_val} of {len(x)} samples for validation")
            x, xv, y, yv = x[:-n_val], x[-n_val:], y[:-n_val], y[-n_val:]
        else:
            xv = yv = None

        self.optimizer, self.loss, self.stop_training = optimizer, loss_fn, False
        ddp = dist.DataParallel(self) if distributed else None
        verbose = verbose if dist.is_main() else 0
        history = History()
        callbacks = list(callbacks or [])
        _call(callbacks, "set_model", self)
        _call(callbacks, "on_train_begin")
        rng = as_rng(dist.shared_seed(seed) if distributed else seed, "fit")
        at = _Progress()
        self._guard = _finite_guard(at) if check_finite else None
        try:
            with _sigint_at_step_end() as interrupted:
                for epoch in range(epochs):
                    at.epoch = epoch
                    _call(callbacks, "on_epoch_begin", epoch)
                    logs = self._train_epoch(x, y, optimizer, loss_fn, batch_size, shuffle, rng,
                                             f"Epoch {epoch + 1}/{epochs}", verbose, at,
                                             interrupted, ddp)
                    if xv is not None:
                        val = ModelAPI.evaluate(self, xv, yv, loss=loss_fn,
                                                batch_size=max(batch_size, 256),
                                                distributed=distributed)
                        logs.update({"val_" + k: v for k, v in val.items()})
                    history.append(epoch, logs)
                    if verbose:
                        print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(logs)}", flush=True)
                    _call(callbacks, "on_epoch_end", epoch, logs)
                    if self.stop_training or interrupted():
                        break
            history.interrupted = interrupted()
        except KeyboardInterrupt:
            history.interrupted = True
        finally:
            self._guard = None
        if history.interrupted and dist.is_main():
            print(f"fit: interrupted (KeyboardInterrupt) after {at.done} completed steps; "
                  f"the model keeps the weights of the last completed step", file=sys.stderr,
                  flush=True)
        _call(callbacks, "on_train_end")
        return history

    def _train_epoch(self, x, y, optimizer, loss_fn, batch_size, shuffle, rng, desc, verbose,
                     at, interrupted, ddp=None):
        """One pass over (x, y), keeping `at` (a _Progress) current; interrupted() says
        Ctrl-C arrived (checked between steps). With a DataParallel `ddp`, this rank
        trains on its slice of each batch and the sums are taken over ranks."""
        self.train()
        from .nn.module import _zero_grads as zero_grads  # (nn.module imports this file)
        params = list(self.parameters())  # zeroed at every step
        bar = _progress(len(x), desc, verbose)
        total_loss, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        batches = (iterate_batches if ddp is None else ddp.batches)(x, y, batch_size, shuffle,
                                                                     seed=rng)
        stop, done = False, 0
        try:
            for i, (xb, yb) in enumerate(batches):
                at.batch = i
                zero_grads(params, True)  # torch's zero_grad: each step's gradient afresh
                if len(xb):  # empty only on a rank whose share of a short last batch is 0
                    batch_loss, batch_correct = self._forward_backward(xb, yb, loss_fn)
                    total_loss += batch_loss * len(xb)
                    correct += batch_correct
                count = len(xb)
                if ddp is not None:  # every rank stops at the same step (one asked)
                    count, stop = ddp.sync_gradients(len(xb), stop=interrupted())
                optimizer.step()
                if self._guard is not None:
                    for name, p in self.named_parameters():
                        self._guard(p.data, f"parameter {name} after the optimizer step")
                at.done += 1
                seen += len(xb)
                done += count
                if bar is not None:
                    bar.update(count)
                    if i % 10 == 0:
                        rate = done / max(time.perf_counter() - start, 1e-9)
                        bar.set_postfix_str(f"loss {total_loss / max(seen, 1):.4f}, "
                                            f"{rate:,.0f} samples/s", refresh=False)
                if interrupted() or stop:
                    raise KeyboardInterrupt
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        if ddp is not None:
            ddp.sync_buffers()
            sums = dist.allgather([total_loss, correct, seen, seconds])
            total_loss, correct, seen = map(float, sums[:, :3].sum(axis=0))
            seconds = float(sums[:, 3].max())
        logs = {"loss": total_loss / seen}
        if loss_fn.has_accuracy:
            logs["accuracy"] = correct / seen
        logs["seconds"] = seconds
        logs["samples_per_sec"] = seen / max(seconds, 1e-9)
        return logs

    def _forward_backward(self, xb, yb, loss_fn):
        """Forward, loss and backward of one batch: (loss, correct predictions); fit
        checked the batches' values up front (_check_finite_data)."""
        out = self(xb)
        batch_loss = loss_fn(out, yb)
        if self._guard is not None:
            self._guard(batch_loss, f"the loss ({loss_fn!r})")
        correct = loss_fn.correct(out, yb) if loss_fn.has_accuracy else 0
        self.backward(loss_fn.backward())
        return batch_loss, correct

    def evaluate(self, x, y, batch_size=256, *, loss=None, distributed=False):
        """{"loss", "accuracy"} over (x, y) in eval mode, with the loss of the last fit
        (cross-entropy if none); "accuracy" is omitted for losses without one (mse).
        distributed=True: each rank of the MPI job evaluates its shard of (x, y) and the
        sums are combined (every rank gets the result)."""
        distributed = as_flag(distributed, "distributed", "evaluate")
        batch_size = as_batch_size(batch_size, "evaluate")
        loss_fn = losses.get(loss or self.loss or "cross_entropy")
        x, y = self._prepare(x, y, loss_fn, "evaluate")
        part = dist.shard(len(x)) if distributed and dist.init() else slice(None)
        with self._mode(False, x.shape):
            total, correct = 0.0, 0
            for xb, yb in iterate_batches(x[part], y[part], batch_size, shuffle=False):
                out = self(xb)
                total += loss_fn(out, yb) * len(xb)
                if loss_fn.has_accuracy:
                    correct += loss_fn.correct(out, yb)
        if distributed:
            total, correct = map(float, dist.allgather([total, correct]).sum(axis=0))
        result = {"loss": total / len(x)}
        if loss_fn.has_accuracy:
            result["accuracy"] = correct / len(x)
        return result

    @contextlib.contextmanager
    def _mode(self, training, shape):
        """Train or eval mode on every module for a run on inputs of `shape`, each
        module's own mode restored after (a frozen BatchNorm of a training model stays
        in eval). The modules come from the traced graph: walking the tree twice cost
        more than a batch-1 forward."""
        modules = [self] if self._is_layer() else self._graph_for((shape,)).modules
        switched = [(m, m.training) for m in modules if m.training is not training]
        for m, _ in switched:  # none for predict on a model in eval mode
            m.training = training
        try:
            yield
        finally:
            for m, mode in switched:
                m.training = mode

    def predict(self, x, batch_size=256, *, distributed=False):
        """Model outputs for x, computed in eval mode batch by batch (a new array).
        distributed=True: each rank of the MPI job predicts its shard of x and every rank
        gets the whole result."""
        batch_size = as_batch_size(batch_size, "predict")
        distributed = as_flag(distributed, "distributed", "predict")
        x = _float32(_real_array(x, "predict", "x"), "predict")
        n = len(x)
        if distributed and dist.init():
            x = x[dist.shard(n)]
        shape = self._single_output_shape(x.shape, "predict")
        try:
            result = np.empty(shape, np.float32)
        except (MemoryError, ValueError):  # ValueError: the byte count overflows
            raise MemoryError(f"predict: cannot allocate the outputs of shape {shape}") from None
        with self._mode(False, x.shape):
            for start in range(0, len(x), batch_size):
                result[start:start + batch_size] = self(x[start:start + batch_size])
        return dist.gather_rows(result, n) if distributed else result

    def _input_shapes(self, input_shape, what):
        """The model's input shapes (batch None first): from per-sample `input_shape`, or
        the model's own; an error naming `what` when neither is known."""
        if input_shape is not None:
            return ((None,) + as_sample_shape(input_shape, "input_shape", what),)
        if getattr(self, "_functional", False):
            return tuple(v.shape for v in self._in_values)
        if self.input_shape is not None:
            return ((None,) + tuple(self.input_shape),)
        raise ValueError(f"{what}: pass input_shape (per sample, e.g. (1, 28, 28)) or build "
                         f"the model with Sequential(..., input_shape=...)")

    def summary(self, input_shape=None, file=None):
        """Print and return a table of the layers (as the model's graph runs them, by
        their names in the model), their output shapes and parameter counts, for
        per-sample `input_shape` (default: the model's input_shape); then the counts of
        trainable and frozen (requires_grad False) parameters."""
        graph = self._graph_for(self._input_shapes(input_shape, "summary"))
        rows = [("Layer (type)", "Output shape", "Params")]
        for name, node in zip(graph.names, graph.nodes):
            count = sum(p.data.size for p in node.module.parameters())
            shape = node.output.shape
            rows.append((f"{name}: {type(node.module).__name__}",
                         f"({', '.join(map(str, ('N',) + tuple(shape[1:])))})", f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        rule = "-" * (sum(widths) + 4)
        lines = [rule]
        for j, (name, out, params) in enumerate(rows):
            lines.append(f"{name:<{widths[0]}}  {out:<{widths[1]}}  {params:>{widths[2]}}")
            if j == 0:
                lines.append(rule)
        params = list(self.parameters())
        total = sum(p.data.size for p in params)
        trainable = sum(p.data.size for p in params if p.requires_grad)
        lines += [rule, f"Total params: {total:,} ({4 * total / 1024:,.1f} KiB float32)",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}"]
        text = "\n".join(lines)
        print(text, file=file)
        return text

    def profile(self, x, y, *, loss="cross_entropy", optimizer="adam", repeat=10, file=None):
        """Time training steps on the batch (x, y) step by step of the plan the model's
        graph runs, forward and backward, with GFLOP/s and % of the machine's FMA peak;
        prints the table and returns its rows (see fastnn.profiling.profile). Weights are
        left unchanged."""
        from . import profiling
        return profiling.profile(self, x, y, loss=loss, optimizer=optimizer, repeat=repeat,
                                 file=file)

    def save(self, path):
        """Write architecture, weights, buffers and the optimizer of the last fit (if any)
        to path, atomically; read it back with fastnn.load(path) (see fastnn.serialization
        for models whose architecture cannot be saved). In an MPI job only rank 0 writes."""
        from .serialization import save
        if dist.is_main():
            save(self, path, optimizer=self.optimizer)
