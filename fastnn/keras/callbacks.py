"""keras.callbacks: Callback, History, EarlyStopping, LearningRateScheduler,
ReduceLROnPlateau, ModelCheckpoint, CSVLogger, TerminateOnNaN, LambdaCallback.

fit, evaluate and predict call every hook Keras calls, in Keras' order and with Keras'
logs (see fastnn.keras.trainer): set_params and set_model first, then on_train_begin,
per epoch on_epoch_begin, per batch on_train_batch_begin/end (logs: the running means of
the epoch so far), the validation's on_test_begin, on_test_batch_begin/end,
on_test_end, then on_epoch_end (logs: Keras' keys sorted, then val_*, then fastnn's
seconds and samples_per_sec), and on_train_end; predict calls on_predict_*. The batch
hooks get logs as a keyword, the others positionally, as Keras calls them."""
import csv
import math
import os
import warnings

from .. import training
from .._core import as_flag, as_real, is_int

__all__ = ["Callback", "History", "EarlyStopping", "LearningRateScheduler",
           "ReduceLROnPlateau", "ModelCheckpoint", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback"]

HOOKS = tuple(f"on_{stage}_{when}" for stage in ("train", "test", "predict", "epoch",
                                                 "train_batch", "test_batch",
                                                 "predict_batch", "batch")
              for when in ("begin", "end"))


class Callback(training.Callback):
    """Base class: override any of the hooks (HOOKS), each called with its logs;
    self.model and self.params (verbose, epochs, steps) are set before the first; set
    self.model.stop_training = True to stop after the running batch. on_train_batch_begin
    and on_train_batch_end call on_batch_begin and on_batch_end (Keras' older names)."""

    params = None

    def set_params(self, params):
        self.params = params

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)


def _no_op(self, *args, logs=None):
    pass


for _hook in HOOKS:  # the base class's other hooks do nothing
    if not hasattr(Callback, _hook) or getattr(Callback, _hook) is getattr(
            training.Callback, _hook, None):
        setattr(Callback, _hook, _no_op)

FASTNN_LOGS = ("seconds", "samples_per_sec")  # fastnn's own, not in a Keras History


def _keras_logs(logs):
    return {k: v for k, v in (logs or {}).items() if k not in FASTNN_LOGS}


class History(Callback, training.History):
    """What fit returns (also model.history): .history {"accuracy": [...], "loss": [...],
    "val_accuracy": [...], "val_loss": [...]} (what the callbacks before it logged, as in
    Keras: a LearningRateScheduler adds learning_rate), .epoch, .params, .model. fit runs
    it after every other callback."""

    def on_epoch_end(self, epoch, logs=None):
        self.append(epoch, _keras_logs(logs))


class EarlyStopping(training.EarlyStopping, Callback):
    """keras.callbacks.EarlyStopping(monitor='val_loss', min_delta=0, patience=0,
    verbose=0, mode='auto', restore_best_weights=False)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        if baseline is not None or start_from_epoch:
            raise TypeError("EarlyStopping: baseline and start_from_epoch are not supported "
                            "by fastnn.keras")
        super().__init__(monitor, patience, min_delta, mode, restore_best_weights)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        super().on_train_begin()
        # Keras' values until an epoch sets them (fastnn's EarlyStopping has None)
        self.stopped_epoch = self.best_epoch = 0

    def on_train_end(self, logs=None):
        super().on_train_end()
        if self.verbose and self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


def _lr(value, what, name, verb="is"):
    """A learning rate a callback takes or computes, checked: else the next step fails in
    the kernel, or trains on NaN."""
    lr = as_real(value, name, what)
    if not 0 <= lr < math.inf:
        raise ValueError(f"{what}: {name} {verb} {value!r}, not a learning rate (finite, >= 0)")
    return lr


class LearningRateScheduler(Callback):
    """Set the learning rate before each epoch to schedule(epoch, lr), or schedule(epoch)
    for a function of one argument (as Keras does); logs it as learning_rate."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) "
                            f"-> lr, got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, opt.lr)
        except TypeError:  # Keras' fallback for a schedule(epoch) of the older API
            lr = self.schedule(epoch)
        opt.lr = _lr(lr, "LearningRateScheduler", f"schedule({epoch}, {opt.lr})", "returned")
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {opt.lr}")

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = self.model.optimizer.lr


class _Monitor(Callback):
    """A callback watching one logged value (Keras' MonitorCallback): an improvement
    beats the best by more than min_delta, down for a loss or an error, up for an
    accuracy (mode 'auto'), as mode 'min'/'max' says otherwise."""

    def __init__(self, monitor, mode, min_delta=0.0, best=None):
        what = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{what}: monitor must be a metric name such as 'val_loss', got "
                            f"{monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{what}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        min_delta = as_real(min_delta, "min_delta", what)
        if not math.isfinite(min_delta):
            raise ValueError(f"{what}: min_delta must be finite, got {min_delta!r}")
        if best is not None and not math.isfinite(as_real(best, "initial_value_threshold",
                                                          what)):
            raise ValueError(f"{what}: initial_value_threshold must be finite, got {best!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor.removeprefix("val_") else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = self._initial = best

    def _is_improvement(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best


def _count(value, name, what):
    if not is_int(value) or value < 0:
        raise ValueError(f"{what}: {name} must be a non-negative int, got {value!r}")
    return int(value)


class ReduceLROnPlateau(_Monitor):
    """keras.callbacks.ReduceLROnPlateau(monitor='val_loss', factor=0.1, patience=10,
    verbose=0, mode='auto', min_delta=1e-4, cooldown=0, min_lr=0.0): multiply the
    learning rate by factor (not below min_lr) after `patience` epochs without
    improvement, then wait `cooldown` epochs; logs learning_rate (before the cut)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        self.factor = as_real(factor, "factor", "ReduceLROnPlateau")
        if not 0 <= self.factor < 1:  # Keras refuses >= 1 (no reduction)
            raise ValueError(f"ReduceLROnPlateau: factor must be in [0, 1), got {factor!r}")
        self.min_lr = _lr(min_lr, "ReduceLROnPlateau", "min_lr")
        self.patience = _count(patience, "patience", "ReduceLROnPlateau")
        self.cooldown = _count(cooldown, "cooldown", "ReduceLROnPlateau")
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        logs["learning_rate"] = opt.lr
        if self.monitor not in logs:
            warnings.warn(f"ReduceLROnPlateau: monitor {self.monitor!r} is not among the "
                          f"logs {sorted(_keras_logs(logs))}; the learning rate is kept",
                          stacklevel=2)
            return
        current = logs[self.monitor]
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            # Keras compares with min_lr at float32, as its variable holds the rate
            if self.wait >= self.patience and opt.lr > self.min_lr:
                opt.lr = max(opt.lr * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{opt.lr}.")


class ModelCheckpoint(_Monitor):
    """keras.callbacks.ModelCheckpoint(filepath, monitor='val_loss', verbose=0,
    save_best_only=False, save_weights_only=False, mode='auto', save_freq='epoch',
    initial_value_threshold=None): save after each epoch (or every save_freq batches) to
    filepath formatted with epoch (1-based) and the logs, e.g.
    'ckpt-{epoch:02d}-{val_loss:.2f}.keras'. fastnn cannot write Keras' files: the model
    is saved in fastnn's format (model.save; read it with fastnn.keras.models.load_model)
    and the weights alone as safetensors (model.save_weights; read them with
    load_weights), whatever the file's extension."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, best=initial_value_threshold)
        try:
            self.filepath = os.fspath(filepath)
        except TypeError:
            raise TypeError(f"ModelCheckpoint: filepath must be a path (str or os.PathLike), "
                            f"got {type(filepath).__name__}") from None
        if not isinstance(self.filepath, str) or not self.filepath:
            raise ValueError(f"ModelCheckpoint: filepath must be a non-empty str path, got "
                             f"{filepath!r}")
        self.save_best_only = as_flag(save_best_only, "save_best_only", "ModelCheckpoint")
        self.save_weights_only = as_flag(save_weights_only, "save_weights_only",
                                         "ModelCheckpoint")
        if save_freq != "epoch" and not (is_int(save_freq) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int "
                             f"(batches), got {save_freq!r}")
        self.save_freq, self.verbose = save_freq, verbose

    def on_train_begin(self, logs=None):
        self.best, self._batches, self._epoch = self._initial, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches >= self.save_freq:
                self._batches = 0
                self._save(self._epoch, logs, batch=batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def _path(self, epoch, logs, **batch):
        try:
            return self.filepath.format(epoch=epoch + 1, **batch, **_keras_logs(logs))
        except KeyError as e:  # Keras raises KeyError too
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is "
                           f"not among the logs {sorted(_keras_logs(logs))} (nor epoch)") \
                from None
        except (ValueError, IndexError) as e:
            raise ValueError(f"ModelCheckpoint: cannot format filepath {self.filepath!r}: "
                             f"{e}") from None

    def _save(self, epoch, logs, **batch):
        path = self._path(epoch, logs, **batch)
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None:  # Keras saves then, with a warning
                warnings.warn(f"ModelCheckpoint: can save the best model only with "
                              f"{self.monitor!r} in the logs; saving every time",
                              stacklevel=2)
            elif not self._is_improvement(current):
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            else:
                self.best = current
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {path!r} is a directory; "
                                    f"give a file's path")
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")


class CSVLogger(Callback):
    """keras.callbacks.CSVLogger(filename, separator=',', append=False): one row per
    epoch, 'epoch' then Keras' logged keys sorted (and their val_* columns when the
    first epoch had none), as Keras writes it; fastnn's seconds and samples_per_sec are
    left out."""

    def __init__(self, filename, separator=",", append=False):
        try:
            self.filename = os.fspath(filename)
        except TypeError:
            raise TypeError(f"CSVLogger: filename must be a path (str or os.PathLike), got "
                            f"{type(filename).__name__}") from None
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.sep = separator
        self.append = as_flag(append, "append", "CSVLogger")
        self.file = self.writer = self.keys = None

    def on_train_begin(self, logs=None):
        self.header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.header = not f.readline()
        self.on_train_end()
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = _keras_logs(logs)
        if self.keys is None:
            self.keys = sorted(logs)
            if not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, ["epoch"] + self.keys,
                                         delimiter=self.sep)
            if self.header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None and not self.file.closed:
            self.file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose (running) loss is NaN or inf; with
    raise_error=True raise a RuntimeError instead (no on_train_end then), as Keras."""

    def __init__(self, raise_error=False):
        self.raise_error = as_flag(raise_error, "raise_error", "TerminateOnNaN")

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"TerminateOnNaN: NaN or Inf loss encountered at batch "
                                   f"{batch}. Loss value: {loss}")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...,
    on_train_batch_end=..., ...), any of the hooks (HOOKS), each called as the hook."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; the hooks are "
                                f"{', '.join(HOOKS)}")
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be a function, got "
                                    f"{type(fn).__name__}")
                setattr(self, name, fn)
