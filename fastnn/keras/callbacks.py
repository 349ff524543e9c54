"""keras.callbacks: Callback, History, EarlyStopping, LearningRateScheduler.

fit calls set_model, on_train_begin, on_epoch_begin(epoch), on_epoch_end(epoch, logs) and
on_train_end (fit refuses a callback with per-batch hooks, which it would never call);
logs holds Keras' keys in Keras' order (accuracy, loss, val_accuracy, val_loss, with the
metric named as compile was given it: 'acc' gives acc, val_acc), then fastnn's seconds and
samples_per_sec."""
import math

from .. import training
from .._core import as_real

__all__ = ["Callback", "History", "EarlyStopping", "LearningRateScheduler"]


class Callback(training.Callback):
    """Base class: override on_train_begin(logs=None), on_epoch_end(epoch, logs=None),
    on_train_end(logs=None); set self.model.stop_training = True to stop. fit calls
    set_params (self.params: verbose, epochs, steps) and set_model first, and passes
    logs to every hook, as Keras."""

    params = None

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


FASTNN_LOGS = ("seconds", "samples_per_sec")  # fastnn's own, not in a Keras History


class History(Callback, training.History):
    """What fit returns: .history {"accuracy": [...], "loss": [...], "val_accuracy": [...],
    "val_loss": [...]} (what the callbacks before it logged, as in Keras: a
    LearningRateScheduler adds learning_rate), .epoch, .params, .model. fit runs it after
    every other callback."""

    def on_epoch_end(self, epoch, logs=None):
        self.append(epoch, {k: v for k, v in logs.items() if k not in FASTNN_LOGS})


class EarlyStopping(training.EarlyStopping):
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


class LearningRateScheduler(Callback):
    """Set the learning rate before each epoch to schedule(epoch, lr), or schedule(epoch)
    for a function of one argument (as Keras does); logs it as learning_rate."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) "
                            f"-> lr, got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def _set(self, epoch):
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, opt.lr)
        except TypeError:  # Keras' fallback for a schedule(epoch) of the older API
            lr = self.schedule(epoch)
        lr = as_real(lr, f"schedule({epoch}, {opt.lr})", "LearningRateScheduler")
        if not 0 <= lr < math.inf:  # else the next step fails in the kernel, or trains on NaN
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, {opt.lr}) returned "
                             f"{lr!r}, not a learning rate (finite, >= 0)")
        opt.lr = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {opt.lr}")

    def on_epoch_begin(self, epoch, logs=None):
        self._set(epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = self.model.optimizer.lr
