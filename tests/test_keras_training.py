"""fastnn.keras' training API as a Keras 3 user runs it, in twin runs against real Keras
on the same weights and data: every callback hook in Keras' order with Keras' logs,
the callbacks of keras.callbacks, sample_weight / class_weight with Keras' formulas,
the *_on_batch methods and the compiled metrics."""
import csv
import math

import numpy as np
import pytest

from fastnn import keras as fk
from fastnn.keras.callbacks import FASTNN_LOGS


def keras_or_skip():
    return pytest.importorskip("keras")


def twins(keras, layers, inputs, loss, metrics=None, optimizer=("SGD", 0.1), seed=0):
    """(keras model, fastnn model): the same layers (a function of the module K), the
    same initial weights, compiled alike."""
    models, weights = [], None
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input(inputs)] + layers(K))
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile(getattr(K.optimizers, optimizer[0])(optimizer[1]), loss,
                      metrics=metrics)
        models.append(model)
    return models


def dense(classes, activation="softmax"):
    return lambda K: [K.layers.Dense(6, activation="relu"),
                      K.layers.Dense(classes, activation=activation)]


def assert_logs_equal(mine, ref, rtol=1e-5):
    """Two lists of (hook, args..., logs) calls: the same hooks, arguments and log keys,
    the values to rtol."""
    assert [c[:-1] for c in mine] == [c[:-1] for c in ref]
    for a, b in zip(mine, ref):
        a = {k: v for k, v in a[-1].items() if k not in FASTNN_LOGS}
        assert list(a) == list(b[-1]), (a, b)
        for k in b[-1]:
            if k == "outputs":
                np.testing.assert_allclose(a[k], b[-1][k], rtol=rtol, atol=1e-6)
            else:
                assert a[k] == pytest.approx(float(b[-1][k]), rel=rtol, abs=1e-6), (k, a, b)


def spy_class(K, seen):
    """A Callback subclass recording every hook (name, args, dict(logs)) into seen."""
    def recorder(hook):
        def record(self, *args, logs=None):
            if "batch" not in hook:  # Keras passes these logs positionally
                *args, logs = args
            seen.append((hook, *args, dict(logs or {})))
        return record
    hooks = {h: recorder(h) for h in fk.callbacks.HOOKS if h not in ("on_batch_begin",
                                                                      "on_batch_end")}
    return type("Spy", (K.callbacks.Callback,), hooks)


def test_every_hook_is_called_like_keras():
    """fit (with validation), evaluate and predict call the same hooks in the same order
    with the same logs as Keras: batch logs are the running means of the epoch so far,
    the validation's on_test_* logs are unprefixed, on_predict_batch_end gets the
    outputs; params are set first (evaluate/predict: epochs 1)."""
    keras = keras_or_skip()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)).astype(np.float32), rng.integers(0, 2, 10)
    runs = []
    for K, model in zip((keras, fk), twins(keras, dense(2), (3,),
                                           "sparse_categorical_crossentropy", ["accuracy"])):
        seen, params = [], []
        spy = spy_class(K, seen)()
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False,
                  validation_data=(x[:6], y[:6]), callbacks=[spy])
        params.append(spy.params)
        model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[spy])
        params.append(spy.params)
        model.predict(x, batch_size=4, verbose=0, callbacks=[spy])
        params.append(spy.params)
        assert spy.model is model
        runs.append((seen, params))
    (ref, ref_params), (mine, params) = runs
    assert params == ref_params
    assert_logs_equal(mine, ref)


def test_stop_training_in_a_batch_hook_stops_like_keras():
    """model.stop_training = True in on_train_batch_end stops after that batch; the
    epoch still ends (validation, on_epoch_end) and on_train_end is called."""
    keras = keras_or_skip()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 3)).astype(np.float32), rng.integers(0, 2, 12)
    runs = []
    for K, model in zip((keras, fk), twins(keras, dense(2), (3,),
                                           "sparse_categorical_crossentropy")):
        seen = []

        class Stop(spy_class(K, seen)):
            def on_train_batch_end(self, batch, logs=None):
                super().on_train_batch_end(batch, logs=logs)
                if batch == 1:
                    self.model.stop_training = True

        history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False,
                            validation_split=0.25, callbacks=[Stop()])
        runs.append((seen, history.epoch, history.history, model.get_weights()))
    assert_logs_equal(runs[1][0], runs[0][0])
    assert runs[1][1] == runs[0][1] == [0]
    for a, b in zip(runs[1][3], runs[0][3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def run_both(keras, layers, inputs, loss, fit, metrics=None, optimizer=("SGD", 0.1)):
    """fit(K, model) on twins; returns [(fit's result, final weights)] for keras, fastnn."""
    out = []
    for K, model in zip((keras, fk), twins(keras, layers, inputs, loss, metrics, optimizer)):
        out.append((fit(K, model), model.get_weights()))
    return out


def assert_runs_equal(runs, rtol=1e-5):
    (ref, ref_w), (mine, mine_w) = runs
    if isinstance(ref, dict):
        assert list(mine) == list(ref)
        for k in ref:
            np.testing.assert_allclose(mine[k], ref[k], rtol=rtol, atol=1e-6, err_msg=k)
    else:
        np.testing.assert_allclose(mine, ref, rtol=rtol, atol=1e-6)
    for a, b in zip(mine_w, ref_w):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def targets(rng, loss, classes, n):
    """n random targets as `loss` takes them for a model with `classes` outputs."""
    labels = rng.integers(0, max(classes, 2), n)
    if loss == "sparse_categorical_crossentropy":
        return labels
    if loss == "binary_crossentropy":
        return labels[:, None].astype(np.float32)
    return np.eye(classes, dtype=np.float32)[labels]


@pytest.mark.parametrize("loss, classes, activation", [
    ("sparse_categorical_crossentropy", 3, "softmax"),
    ("categorical_crossentropy", 3, "softmax"),
    ("binary_crossentropy", 1, "sigmoid"), ("mse", 2, None)])
def test_sample_weight_trains_like_keras(loss, classes, activation):
    """fit(sample_weight=...) with validation_data (x, y, w), then
    evaluate(sample_weight=...): Keras' loss sum(w * loss) / N per batch (not / sum(w)),
    its unweighted metrics, the same trained weights."""
    keras = keras_or_skip()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = targets(rng, loss, classes, 20)
    w = rng.uniform(0, 3, 20).astype(np.float32)
    w[3] = 0

    def fit(K, model):
        h = model.fit(x, y, sample_weight=w, batch_size=6, epochs=2, shuffle=False,
                      verbose=0, validation_data=(x[:8], y[:8], w[:8])).history
        h["evaluate"] = model.evaluate(x, y, sample_weight=w, batch_size=7, verbose=0,
                                       return_dict=True)["loss"]
        return h

    metrics = ["accuracy"] if loss != "mse" else ["mae"]
    assert_runs_equal(run_both(keras, dense(classes, activation), (4,), loss, fit, metrics))


def test_class_weight_and_validation_split_like_keras():
    """class_weight gives each sample its class's weight (1 for classes not in the
    dict); validation_split keeps the weights of the training part only."""
    keras = keras_or_skip()
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 3, 20)

    def fit(K, model):
        return model.fit(x, y, class_weight={0: 0.5, 2: 3.0}, batch_size=5, epochs=2,
                         shuffle=False, verbose=0, validation_split=0.2).history

    assert_runs_equal(run_both(keras, dense(3), (4,), "sparse_categorical_crossentropy",
                               fit, ["acc"]))
    # one-hot targets: the class is the argmax; a sigmoid output's: the rounded target
    assert_runs_equal(run_both(keras, dense(3), (4,), "categorical_crossentropy",
                               lambda K, m: m.fit(x, np.eye(3)[y], class_weight={1: 2.0},
                                                  batch_size=8, shuffle=False,
                                                  verbose=0).history))
    assert_runs_equal(run_both(keras, dense(1, "sigmoid"), (4,), "binary_crossentropy",
                               lambda K, m: m.fit(x, y % 2, class_weight={1: 4.0, 0: 0.25},
                                                  batch_size=8, shuffle=False,
                                                  verbose=0).history))


def test_on_batch_methods_and_initial_epoch_like_keras():
    """train_on_batch / test_on_batch return [loss, *metrics] (a dict with
    return_dict=True) as Keras, the loss before the step; predict_on_batch the outputs;
    fit(initial_epoch=1, epochs=3) runs epochs 1 and 2."""
    keras = keras_or_skip()
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 3)).astype(np.float32), rng.integers(0, 2, 8)
    w = rng.uniform(0, 2, 8)

    def fit(K, model):
        out = [model.train_on_batch(x, y), model.train_on_batch(x, y, sample_weight=w),
               model.train_on_batch(x, y, class_weight={1: 2.0}),
               model.test_on_batch(x, y), model.test_on_batch(x, y, sample_weight=w),
               list(model.train_on_batch(x, y, return_dict=True).values()),
               list(model.test_on_batch(x, y, return_dict=True).values())]
        out = [v for r in out for v in r]
        out += list(model.predict_on_batch(x).ravel())
        h = model.fit(x, y, initial_epoch=1, epochs=3, batch_size=4, verbose=0,
                      shuffle=False)
        assert h.epoch == [1, 2]
        return out + h.history["loss"] + h.history["accuracy"]

    assert_runs_equal(run_both(keras, dense(2), (3,), "sparse_categorical_crossentropy",
                               fit, ["accuracy"]))


@pytest.mark.parametrize("loss, classes, activation, metrics", [
    ("sparse_categorical_crossentropy", 7, "softmax",
     ["sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy", "acc"]),
    ("categorical_crossentropy", 7, "softmax",
     ["categorical_accuracy", "top_k_categorical_accuracy", "mae", "mse"]),
    ("binary_crossentropy", 1, "sigmoid", ["binary_accuracy", "accuracy", "mse"]),
    ("mse", 2, None, ["mae", "mean_squared_error", "mean_absolute_error",
                      "categorical_accuracy", "binary_accuracy"])])
def test_metrics_like_keras(loss, classes, activation, metrics):
    """compile(metrics=[...]) logs each under the name given, sorted with the loss, on
    the model's outputs (probabilities, not the logits fastnn trains on)."""
    keras = keras_or_skip()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = targets(rng, loss, classes, 30)

    def fit(K, model):
        h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      validation_data=(x[:10], y[:10])).history
        h.update(("eval_" + k, v) for k, v in
                 model.evaluate(x, y, verbose=0, return_dict=True).items())
        return h

    assert_runs_equal(run_both(keras, dense(classes, activation), (4,), loss, fit, metrics))


@pytest.mark.parametrize("loss, classes, activation, metrics", [
    ("sparse_categorical_crossentropy", 7, "softmax",
     lambda K: [K.metrics.SparseCategoricalAccuracy(name="acc"), "accuracy",
                K.metrics.SparseTopKCategoricalAccuracy(k=2), "sparse_categorical_accuracy"]),
    ("categorical_crossentropy", 7, "softmax",
     lambda K: [K.metrics.CategoricalAccuracy(), K.metrics.MeanSquaredError(name="m"),
                K.metrics.MeanAbsoluteError()]),
    ("binary_crossentropy", 1, "sigmoid",
     lambda K: [K.metrics.BinaryAccuracy(threshold=0.6), K.metrics.Accuracy(), "mse"])])
def test_metric_objects_like_keras(loss, classes, activation, metrics):
    """compile(metrics=[...]) takes keras.metrics objects, mixed with names: each is logged
    under its name (name= or the class's default) with Keras' values."""
    keras = keras_or_skip()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = targets(rng, loss, classes, 30)

    def fit(K, model):
        model.compile(K.optimizers.SGD(0.1), loss, metrics=metrics(K))
        h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      validation_data=(x[:10], y[:10])).history
        h.update(("eval_" + k, v) for k, v in
                 model.evaluate(x, y, verbose=0, return_dict=True).items())
        return h

    assert_runs_equal(run_both(keras, dense(classes, activation), (4,), loss, fit))


METRIC_CASES = [  # (class, arguments, targets, outputs) of a batch of 7
    ("SparseCategoricalAccuracy", {}, "labels", "probs"),
    ("SparseCategoricalAccuracy", {"name": "a"}, "labels1", "probs"),
    ("CategoricalAccuracy", {}, "onehot", "probs"),
    ("Accuracy", {}, "rounded", "rounded_rev"),
    ("BinaryAccuracy", {}, "binary", "sigmoid"),
    ("BinaryAccuracy", {"threshold": 0.7}, "binary0", "sigmoid"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "labels", "probs"),
    ("SparseTopKCategoricalAccuracy", {}, "labels", "probs"),
    ("MeanSquaredError", {}, "onehot", "probs"),
    ("MeanAbsoluteError", {}, "binary0", "sigmoid")]


@pytest.mark.parametrize("cls, kwargs, y_true, y_pred", METRIC_CASES)
def test_metric_state_like_keras(cls, kwargs, y_true, y_pred):
    """update_state (with and without sample_weight), result, calling the object and
    reset_state give Keras' values; labels (N, 1) and targets (N,) of an output (N, 1)
    are squeezed or expanded as Keras does; get_config / from_config round-trip."""
    keras = keras_or_skip()
    rng = np.random.default_rng(1)
    probs = rng.random((7, 4)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    labels = rng.integers(0, 4, 7)
    binary = rng.integers(0, 2, (7, 1)).astype(np.float32)
    data = {"probs": probs, "labels": labels, "labels1": labels[:, None],
            "onehot": np.eye(4, dtype=np.float32)[labels], "rounded": np.round(probs * 2),
            "rounded_rev": np.round(probs * 2)[::-1], "binary": binary,
            "binary0": binary[:, 0], "sigmoid": rng.random((7, 1)).astype(np.float32)}
    t, p, w = data[y_true], data[y_pred], rng.random(7)
    results = []
    for K in (keras, fk):
        m = getattr(K.metrics, cls)(**kwargs)
        got = [m.result()]
        m.update_state(t[:3], p[:3])
        got.append(m.result())
        m.update_state(t[3:], p[3:], sample_weight=w[3:])
        got += [m.result(), m(t[:2], p[:2])]
        m.reset_state()
        got.append(m.result())
        results.append((m.name, np.array([float(v) for v in got])))
    (ref_name, ref), (name, mine) = results
    assert name == ref_name
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-7)
    config = getattr(fk.metrics, cls)(**kwargs).get_config()
    assert type(fk.metrics.get(fk.metrics.serialize(
        getattr(fk.metrics, cls).from_config(config)))).__name__ == cls
    assert {k: v for k, v in getattr(keras.metrics, cls)(**kwargs).get_config().items()
            if k != "dtype"} == config


def test_metric_objects_are_saved_cloned_and_checked(tmp_path):
    """A model compiled with metric objects saves, loads and clones with them (their
    arguments kept); a bad metric is an error naming compile."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = fk.Sequential([fk.Input((3,)), fk.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy",
                  metrics=[fk.metrics.BinaryAccuracy(threshold=0.2, name="b"), "mae"])
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(want) == ["b", "loss", "mae"]
    model.save(tmp_path / "m.keras")
    for other in (fk.models.load_model(tmp_path / "m.keras"), fk.models.clone_model(model)):
        other.set_weights(model.get_weights())
        assert other.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(want)
        assert other._compiled.metrics[0][0].threshold == 0.2
    for bad, error in [(fk.metrics.BinaryAccuracy, ValueError), (3, ValueError),
                       ({"class_name": "Accuracy", "config": {"k": 2}}, TypeError),
                       ([fk.metrics.Accuracy(), "accuracy"], ValueError)]:
        with pytest.raises(error, match="compile"):
            model.compile("sgd", "binary_crossentropy",
                          metrics=bad if isinstance(bad, list) else [bad])


def test_reduce_lr_on_plateau_like_keras():
    keras = keras_or_skip()
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 2, 16)

    def fit(K, model):
        cb = K.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                           min_delta=0.05, cooldown=1, min_lr=0.02)
        return model.fit(x, y, batch_size=8, epochs=8, shuffle=False, verbose=0,
                         callbacks=[cb]).history

    runs = run_both(keras, dense(2), (3,), "sparse_categorical_crossentropy", fit,
                    optimizer=("SGD", 0.2))
    assert min(runs[0][0]["learning_rate"]) < 0.2  # it did reduce
    assert_runs_equal(runs)


def test_model_checkpoint_like_keras(tmp_path):
    """The files Keras writes (names formatted from epoch and the logs; with
    save_best_only only the improving epochs), each holding the weights of its epoch
    (fastnn's format: load_model / load_weights read them back)."""
    keras = keras_or_skip()
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    names, weights = [], []
    for K, model in zip((keras, fk), twins(keras, dense(2), (3,),
                                           "sparse_categorical_crossentropy", ["accuracy"],
                                           ("SGD", 2.0))):
        root = tmp_path / K.__name__
        every = K.callbacks.ModelCheckpoint(str(root / "all-{epoch:02d}-{loss:.2f}.keras"),
                                            monitor="loss")
        best = K.callbacks.ModelCheckpoint(str(root / "best" / "e{epoch}.weights.h5"),
                                           monitor="val_accuracy", save_best_only=True,
                                           save_weights_only=True)
        epochs = []
        keep = K.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: epochs.append(model.get_weights()))
        model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
                  validation_data=(x[:8], y[:8]), callbacks=[every, best, keep])
        names.append((sorted(p.name for p in root.iterdir() if p.is_file()),
                      sorted(p.name for p in (root / "best").iterdir())))
        weights.append(epochs)
    assert names[1] == names[0]
    for name in names[1][0]:  # the whole model, in fastnn's format
        epoch = int(name.split("-")[1]) - 1
        loaded = fk.models.load_model(tmp_path / "fastnn.keras" / name)
        for a, b in zip(loaded.get_weights(), weights[1][epoch]):
            np.testing.assert_array_equal(a, b)
    for name in names[1][1]:  # the weights alone, as safetensors
        model = fk.Sequential([fk.layers.Input((3,))] + dense(2)(fk))
        model.load_weights(tmp_path / "fastnn.keras" / "best" / name)
        for a, b in zip(model.get_weights(), weights[1][int(name[1:].split(".")[0]) - 1]):
            np.testing.assert_array_equal(a, b)


def test_csv_logger_terminate_on_nan_and_lambda_callback_like_keras(tmp_path):
    """CSVLogger writes Keras' rows (epoch, the sorted keys, val_* columns added when
    the run has none); TerminateOnNaN stops at the batch whose loss is inf/NaN;
    LambdaCallback's functions are called as the hooks."""
    keras = keras_or_skip()
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((12, 3)).astype(np.float32), rng.integers(0, 2, 12)
    tables, calls = [], []
    for K, model in zip((keras, fk), twins(keras, dense(2), (3,),
                                           "sparse_categorical_crossentropy", ["accuracy"])):
        path = tmp_path / f"{K.__name__}.csv"
        seen = []
        lam = K.callbacks.LambdaCallback(
            on_train_begin=lambda logs: seen.append("begin"),
            on_train_batch_end=lambda batch, logs: seen.append(batch),
            on_epoch_end=lambda epoch, logs: seen.append(sorted(set(logs) - {"seconds",
                                                                          "samples_per_sec"})))
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                  callbacks=[K.callbacks.CSVLogger(str(path)), lam])
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                  callbacks=[K.callbacks.CSVLogger(str(path), append=True)])
        with open(path) as f:
            tables.append(list(csv.reader(f)))
        calls.append(seen)
    (ref, mine) = tables
    assert [r[:1] for r in mine] == [r[:1] for r in ref] and mine[0] == ref[0]
    assert mine[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    for a, b in zip(mine[1:], ref[1:]):
        assert a[3:] == b[3:] == ["NA", "NA"]
        np.testing.assert_allclose([float(v) for v in a[1:3]], [float(v) for v in b[1:3]],
                                   rtol=1e-5)
    assert calls[1] == calls[0]
    # a learning rate that overflows the loss: both stop at the same batch
    stopped = []
    for K, model in zip((keras, fk), twins(keras, dense(2, None), (3,), "mse",
                                           optimizer=("SGD", 1e18))):
        h = model.fit(x, np.ones((12, 2), np.float32), batch_size=2, epochs=3,
                      shuffle=False, verbose=0, callbacks=[K.callbacks.TerminateOnNaN()])
        stopped.append((h.epoch, not math.isfinite(h.history["loss"][-1])))
    assert stopped[1] == stopped[0] and stopped[0][1]


def test_mae_and_huber_losses_train_like_keras(tmp_path):
    """loss='mae' / 'mean_absolute_error', 'huber' and losses.Huber(delta) train as in
    Keras, weighted too; a loss object called alone gives Keras' value; Huber's delta
    survives save and load_model."""
    keras = keras_or_skip()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = (rng.standard_normal((16, 2)) * 2).astype(np.float32)
    w = rng.uniform(0, 2, 16)
    for loss in ["mae", "mean_absolute_error", "huber", "huber_object"]:
        def fit(K, model):
            if loss == "huber_object":
                model.compile(K.optimizers.SGD(0.1), K.losses.Huber(delta=0.4), metrics=["mae"])
            return model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, shuffle=False,
                             verbose=0, validation_data=(x[:6], y[:6])).history

        runs = run_both(keras, dense(2, None), (3,),
                        "huber" if loss == "huber_object" else loss, fit)
        assert_runs_equal(runs)
    p = rng.standard_normal((4, 2)).astype(np.float32)
    for name in ("MeanAbsoluteError", "Huber"):
        np.testing.assert_allclose(getattr(fk.losses, name)()(y[:4], p),
                                   float(getattr(keras.losses, name)()(y[:4], p)), rtol=1e-6)
    model = fk.Sequential([fk.layers.Input((3,)), fk.layers.Dense(2)])
    model.compile("sgd", fk.losses.Huber(delta=0.25))
    model.save(tmp_path / "m.keras")
    loaded = fk.models.load_model(tmp_path / "m.keras")
    assert loaded._loss_fns[0].delta == 0.25
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_bad_weights_and_callbacks_raise_clear_errors():
    """Weights of the wrong length, NaN or negative, class_weight keys that are no class
    of the model, both kinds of weights at once (Keras refuses that too), a callback
    class instead of an object: each a ValueError/TypeError saying what is expected."""
    model = fk.Sequential([fk.layers.Input((3,)), fk.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.ones((6, 3), np.float32), np.arange(6) % 2
    for kwargs, error, match in [
            ({"sample_weight": np.ones(5)}, ValueError,
             r"fit: sample_weight must hold one weight per sample, shape \(6,\), got shape \(5,\)"),
            ({"sample_weight": [np.nan] + [1.0] * 5}, ValueError,
             r"sample_weight must be finite and >= 0, got sample_weight\[0\] = nan"),
            ({"class_weight": {0: -1.0}}, ValueError,
             r"class_weight\[0\] must be a finite number >= 0, got -1.0"),
            ({"class_weight": {2: 1.0}}, ValueError,
             r"class_weight keys must be class indices in \[0, 2\) \(the model's classes\)"),
            ({"class_weight": {0: 1.0}, "sample_weight": np.ones(6)}, ValueError,
             "pass class_weight or sample_weight, not both"),
            ({"validation_data": (x, y, np.ones(2))}, ValueError,
             r"fit \(validation_data\): sample_weight must hold one weight per sample"),
            ({"callbacks": [fk.callbacks.EarlyStopping]}, TypeError,
             r"callbacks\[0\] must be a callback object .* got the class EarlyStopping")]:
        with pytest.raises(error, match=match):
            model.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(ValueError, match=r"evaluate: sample_weight must hold one weight"):
        model.evaluate(x, y, sample_weight=np.ones(7), verbose=0)
    with pytest.raises(TypeError, match="LambdaCallback: unknown hook 'on_epoch_ended'"):
        fk.callbacks.LambdaCallback(on_epoch_ended=print)
    assert isinstance(fk.callbacks.EarlyStopping(), fk.callbacks.Callback)
    keras = pytest.importorskip("keras")
    twin = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(2)])
    twin.compile("sgd", "mse")
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        twin.fit(x, np.ones((6, 2)), class_weight={0: 1.0}, sample_weight=np.ones(6), verbose=0)


def test_sgd_nesterov_without_momentum_and_momentum_range_like_keras():
    """SGD(nesterov=True) without momentum is plain SGD in Keras (fastnn raised torch's
    "Nesterov momentum requires momentum > 0"); a momentum above 1, which Keras refuses,
    was taken and diverged."""
    keras = keras_or_skip()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2))
    runs = run_both(keras, lambda K: [K.layers.Dense(2)], (3,), "mse",
                    lambda K, m: (m.compile(K.optimizers.SGD(0.1, nesterov=True), "mse"),
                                  m.fit(x, y, batch_size=4, shuffle=False, verbose=0)
                                  .history)[1])
    assert_runs_equal(runs)
    for K in (keras, fk):
        with pytest.raises(ValueError, match="momentum"):
            K.optimizers.SGD(momentum=1.5)


@pytest.mark.parametrize("optimizer, clipping", [
    (("SGD", 0.1), dict(clipnorm=0.5)), (("SGD", 0.1), dict(clipvalue=0.05)),
    (("SGD", 0.1), dict(global_clipnorm=0.3)), (("RMSprop", 0.1), dict(clipnorm=0.1)),
    (("Adam", 0.01), dict(global_clipnorm=0.2))])
def test_gradient_clipping_trains_like_keras(optimizer, clipping):
    """The optimizers' clipnorm, clipvalue and global_clipnorm were refused (TypeError):
    Keras clips each gradient's norm, each element, or all gradients' joint norm before
    the step."""
    keras = keras_or_skip()
    rng = np.random.default_rng(4)
    x, y = 3 * rng.standard_normal((16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    runs, weights = [], None
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input((5,))] + dense(3)(K))
        # from the seeded rng (the layers' own initialisation differs run to run)
        weights = weights or [(0.5 * rng.standard_normal(w.shape)).astype(np.float32)
                              for w in model.get_weights()]
        model.set_weights(weights)
        model.compile(getattr(K.optimizers, optimizer[0])(optimizer[1], **clipping),
                      "sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    unclipped = fk.Sequential([fk.layers.Input((5,))] + dense(3)(fk))
    unclipped.set_weights(weights)
    unclipped.compile(getattr(fk.optimizers, optimizer[0])(optimizer[1]),
                      "sparse_categorical_crossentropy")
    unclipped.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    assert not np.allclose(unclipped.get_weights()[0], runs[1][1][0])  # it clipped
    for K in (keras, fk):  # one of the three, as Keras
        with pytest.raises(ValueError, match="(?i)only one of `clipnorm`, `clipvalue` and"):
            K.optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    for value in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="SGD: clipvalue must be finite and > 0"):
            fk.optimizers.SGD(clipvalue=value)
    with pytest.raises(TypeError, match="Adam: clipnorm must be a real number"):
        fk.optimizers.Adam(clipnorm="1")
    config = fk.optimizers.Adam(0.01, clipnorm=2.0).get_config()
    assert config["clipnorm"] == 2.0 == fk.optimizers.Adam.from_config(config).clipnorm


def test_sparse_targets_with_a_trailing_axis_of_one_like_keras():
    """Labels of shape (N, 1) with sparse_categorical_crossentropy and the sparse
    accuracy: fit, evaluate and train_on_batch as with (N,), as Keras; other shapes are
    a ValueError naming y."""
    keras = keras_or_skip()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((12, 4)).astype(np.float32), rng.integers(0, 3, (12, 1))

    def run(K, model):
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                            validation_data=(x, y)).history
        return [history, model.evaluate(x, y, verbose=0, return_dict=True),
                model.train_on_batch(x, y, return_dict=True)]

    runs = run_both(keras, dense(3), (4,), "sparse_categorical_crossentropy", run,
                    metrics=["accuracy", "sparse_categorical_accuracy"])
    (ref, ref_w), (mine, mine_w) = runs
    for a, b in zip(mine, ref):
        assert_runs_equal([(b, ref_w), (a, mine_w)])
    model = twins(keras, dense(3), (4,), "sparse_categorical_crossentropy")[1]
    for bad in (np.zeros((12, 2)), np.zeros((12, 3)), np.zeros((12, 1, 1))):
        with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy needs y "
                                              r"as integer class labels of shape \(N,\) or"):
            model.fit(x, bad, verbose=0)
    with pytest.raises(ValueError, match=r"x and y must have the same length"):
        model.evaluate(x, y[:5], verbose=0)
