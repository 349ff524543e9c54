"""fastnn.keras: Keras programs run with only their imports changed; layers match real
Keras (weights copied with get_weights/set_weights) including channels-last convolutions
and Flatten's order; the fused losses; History/evaluate/predict as Keras returns them;
clear errors."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import datasets, models
from fastnn import functional as F
from fastnn import keras as fk
from fastnn.keras import layers as L
from fastnn.keras.callbacks import FASTNN_LOGS

# kernels of the branch that adds them (archk); until it is merged these tests skip
ARCH_KERNELS = ("batch_norm", "adaptive_avg_pool2d", "add", "concatenate")
needs_arch_kernels = pytest.mark.skipif(
    not all(hasattr(F, k) for k in ARCH_KERNELS),
    reason=f"needs the kernels {ARCH_KERNELS} (not on this branch yet)")


def mnist_test_split():
    """MNIST's test split (uint8 images, labels) from FASTNN_DATA, or skip."""
    if not os.environ.get("FASTNN_DATA"):
        pytest.skip("FASTNN_DATA is not set (the shared MNIST copy)")
    try:
        return datasets.load_raw("mnist", "test", download=False)
    except FileNotFoundError as e:
        pytest.skip(f"MNIST test split not found: {e}")


def test_issue_program_runs_unchanged_but_imports():
    images, labels = mnist_test_split()
    X_train = images[:8000].reshape(-1, 784).astype(np.float32) / 255
    X_test = images[8000:].reshape(-1, 784).astype(np.float32) / 255
    y_train, y_test = labels[:8000], labels[8000:]
    fk.utils.set_random_seed(0)
    # ---- the program of issue 12, only `keras` changed to `fastnn.keras` ----
    from fastnn.keras.layers import Dense
    from fastnn.keras.models import Sequential
    from fastnn.keras.utils import to_categorical

    model = Sequential()
    model.add(Dense(units=64, activation='relu', input_shape=(784,)))
    model.add(Dense(units=64, activation='relu'))
    model.add(Dense(units=10, activation='softmax'))
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    model.fit(X_train, to_categorical(y_train), epochs=10, batch_size=128, verbose=1,
              validation_split=0.2)
    loss, accuracy = model.evaluate(X_test, to_categorical(y_test), verbose=0)
    # ----
    assert accuracy >= 0.93, accuracy
    assert 0 < loss < 0.5


def test_load_data_like_keras():
    mnist_test_split()
    with pytest.warns(UserWarning, match="training split not found") if not os.path.exists(
            os.path.join(os.environ["FASTNN_DATA"], "mnist", "train-images-idx3-ubyte.gz")) \
            else _no_warning():
        (x, y), (xt, yt) = fk.datasets.mnist.load_data()
    assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[1:] == (28, 28)
    assert y.dtype == np.uint8 and len(y) == len(x) and len(yt) == len(xt)
    (x, y), (xt, yt) = fk.datasets.fashion_mnist.load_data()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28) and x.dtype == np.uint8


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def build_cnn(K, with_norm=False):
    """Every Keras layer kind, for real Keras or fastnn.keras."""
    layers = [K.layers.Conv2D(8, 3, activation="relu", input_shape=(16, 16, 3))]
    if with_norm:
        layers.append(K.layers.BatchNormalization())
    layers += [K.layers.MaxPooling2D(),
               K.layers.Conv2D(6, (3, 3), padding="same", activation="tanh"),
               K.layers.AveragePooling2D(2),
               K.layers.Conv2D(4, 3, strides=2, padding="same"),
               K.layers.Activation("relu")]
    if with_norm:
        layers += [K.layers.BatchNormalization(), K.layers.GlobalAveragePooling2D()]
    else:
        layers.append(K.layers.Flatten())
    layers += [K.layers.Dense(16, activation="sigmoid"), K.layers.Dropout(0.3),
               K.layers.Dense(5, activation="softmax")]
    return K.Sequential(layers)


@pytest.mark.parametrize("with_norm", [False,
                                       pytest.param(True, marks=needs_arch_kernels)])
def test_predictions_match_real_keras(with_norm):
    keras = pytest.importorskip("keras")
    ref, mine = build_cnn(keras, with_norm), build_cnn(fk, with_norm)
    rng = np.random.default_rng(0)
    weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in ref.get_weights()]
    if with_norm:  # moving variances positive
        weights = [np.abs(w) + 0.5 if k in (5, 13) else w for k, w in enumerate(weights)]
    ref.set_weights(weights)
    mine.set_weights(ref.get_weights())
    for a, b in zip(mine.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = rng.random((7, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(mine.predict(x), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [layer.output_shape_keras for layer in mine.layers] == \
        [tuple(layer.output.shape) for layer in ref.layers]
    assert mine.count_params() == ref.count_params()


def test_gelu_silu_elu_activations_match_real_keras():
    """Keras' activation names 'gelu' (its exact, erf form by default), 'silu', 'swish'
    and 'elu' run fastnn's GELU, SiLU and ELU."""
    keras = pytest.importorskip("keras")

    def build(K):
        return K.Sequential([K.Input(shape=(6,)), K.layers.Dense(8, activation="gelu"),
                             K.layers.Dense(8, activation="silu"),
                             K.layers.Dense(8, activation="swish"),
                             K.layers.Dense(8, activation="elu"), K.layers.Activation("gelu"),
                             K.layers.Dense(3)])

    ref, mine = build(keras), build(fk)
    mine.set_weights(ref.get_weights())
    x = (np.random.default_rng(2).normal(size=(5, 6)) * 3).astype(np.float32)
    np.testing.assert_allclose(mine.predict(x), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_functional_api_matches_real_keras():
    keras = pytest.importorskip("keras")

    def build(K):
        inp = K.Input(shape=(10,))
        h = K.layers.Dense(8, activation="tanh")(inp)
        out = K.layers.Dense(3, activation="softmax")(K.layers.Activation("relu")(h))
        return K.Model(inp, out)

    ref, mine = build(keras), build(fk)
    mine.set_weights(ref.get_weights())
    x = np.random.default_rng(1).normal(size=(5, 10)).astype(np.float32)
    np.testing.assert_allclose(mine.predict(x), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def keras_cnn():
    """models.cnn in Keras' words, on channels-last images."""
    return fk.Sequential([
        fk.layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        fk.layers.MaxPooling2D(), fk.layers.Conv2D(64, 3, activation="relu"),
        fk.layers.MaxPooling2D(), fk.layers.Flatten(),
        fk.layers.Dense(128, activation="relu"), fk.layers.Dense(10, activation="softmax")])


def copy_cnn_weights(model, torch_style):
    """models.cnn's weights into keras_cnn(): kernels to (kh, kw, in, out), and the first
    Dense kernel's rows from torch's (C, H, W) flatten order to Keras' (H, W, C)."""
    sd = torch_style.state_dict()
    dense1 = sd["7.weight"].reshape(128, 64, 5, 5).transpose(2, 3, 1, 0).reshape(1600, 128)
    model.set_weights([sd["0.weight"].transpose(2, 3, 1, 0), sd["0.bias"],
                       sd["3.weight"].transpose(2, 3, 1, 0), sd["3.bias"], dense1, sd["7.bias"],
                       sd["9.weight"].T, sd["9.bias"]])


def test_one_input_and_output_as_lists_of_one_array_like_keras():
    """fit([x], [y]), evaluate and predict([x]) of a one-input, one-output model, as
    Keras takes them: the lists were read as one sample ("x and y must have the same
    length, got len(x)=4 and len(y)=1", "x of shape (1, 4, 3) does not fit")."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2))
    results, weights = [], None
    for K in (keras, fk):
        inputs = K.layers.Input((3,))
        model = K.Model([inputs], [K.layers.Dense(2)(inputs)])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile(K.optimizers.SGD(0.1), "mse")
        history = model.fit([x], [y], batch_size=4, shuffle=False, verbose=0,
                            validation_data=([x], [y])).history
        results.append((history, model.evaluate([x], [y], verbose=0),
                        model.predict([x], verbose=0)))
    (ref_h, ref_e, ref_p), (h, e, p) = results
    for key in ref_h:
        np.testing.assert_allclose(h[key], ref_h[key], rtol=1e-5)
    assert e == pytest.approx(ref_e, rel=1e-5)
    np.testing.assert_allclose(p, ref_p, rtol=1e-5, atol=1e-6)

def test_inputs_missing_or_with_a_trailing_axis_of_one_like_keras():
    """Keras adds the trailing axis of 1 an Input ends with and the data lacks (MNIST's
    (N, 28, 28) images for Input((28, 28, 1)), (N,) for Input((1,))), and drops one
    the data has more: fit, evaluate, predict and the model called refused them ("x of
    shape (16,) does not fit the model: ... got (1,)")."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    images, y = rng.normal(size=(8, 5, 5)).astype(np.float32), rng.normal(size=(8, 1))
    results, weights = [], None
    for K in (keras, fk):
        image, value = K.layers.Input((5, 5, 1)), K.layers.Input((1,))
        h = K.layers.Flatten()(K.layers.Conv2D(2, 3)(image))
        model = K.Model([image, value], K.layers.Dense(1)(
            K.layers.Concatenate()([h, value])))
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile(K.optimizers.SGD(0.1), "mse")
        x = [images, y[:, 0]]
        history = model.fit(x, y, batch_size=4, shuffle=False, verbose=0).history
        results.append((history["loss"], model.evaluate(x, y, verbose=0),
                        model.predict([images[..., None], y[:, :, None]], verbose=0)))
        single = K.Sequential([K.layers.Input((1,)), K.layers.Dense(2)])
        assert single.predict(y[:, 0], verbose=0).shape == (8, 2)
        assert np.asarray(single(y[:, 0].astype(np.float32))).shape == (8, 2)
    (ref_h, ref_e, ref_p), (h, e, p) = results
    np.testing.assert_allclose(h, ref_h, rtol=1e-5)
    assert e == pytest.approx(ref_e, rel=1e-5)
    np.testing.assert_allclose(p, ref_p, rtol=1e-5, atol=1e-6)

def test_keras_cnn_is_models_cnn_in_channels_last():
    """With models.cnn's weights the Keras CNN gives the same outputs on the transposed
    images, and the same training step (the graph fuses each Conv2d with its pool)."""
    torch_style, model = models.cnn(seed=0), keras_cnn()
    copy_cnn_weights(model, torch_style)
    x = np.random.default_rng(2).random((6, 1, 28, 28)).astype(np.float32)
    y = np.arange(6) % 10
    logits = torch_style.predict(x)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    x_nhwc = x.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict(x_nhwc), probs, rtol=1e-5, atol=1e-6)
    model.compile(optimizer=fk.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert "_FusedConv" in [type(s.runner).__name__ for s in model._train_graph.steps]
    model.fit(x_nhwc, y, batch_size=6, shuffle=False, verbose=0)
    torch_style.fit(x, y, optimizer=fastnn.optim.SGD(torch_style.parameters(), lr=0.1),
                    batch_size=6, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.layers[0].conv.weight.data, torch_style[0].weight.data,
                               rtol=1e-5, atol=1e-6)


def test_keras_cnn_trains_like_models_cnn():
    """One epoch on 3,000 MNIST images from the same starting weights: the Keras CNN
    (one-hot targets, the fused softmax loss, Keras' Adam) reaches models.cnn's accuracy."""
    images, labels = mnist_test_split()
    x, y = images[:3000].astype(np.float32) / 255, labels[:3000].astype(np.int64)
    xt, yt = images[8000:].astype(np.float32) / 255, labels[8000:].astype(np.int64)
    ref, model = models.cnn(seed=0), keras_cnn()
    copy_cnn_weights(model, ref)
    fk.utils.set_random_seed(0)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None], fk.utils.to_categorical(y, 10), epochs=1, batch_size=64, verbose=0)
    keras_acc = model.evaluate(xt[..., None], fk.utils.to_categorical(yt, 10), verbose=0)[1]
    ref.fit(x[:, None], y, optimizer=fastnn.optim.Adam(ref.parameters()), epochs=1,
            batch_size=64, seed=0, verbose=0)
    ref_acc = ref.evaluate(xt[:, None], yt)["accuracy"]
    assert ref_acc > 0.9
    assert abs(keras_acc - ref_acc) < 0.02, (keras_acc, ref_acc)


def test_history_evaluate_predict_like_keras(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    fk.utils.set_random_seed(1)
    model = fk.Sequential([fk.layers.Dense(8, activation="relu", input_dim=4),
                           fk.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x[:16], y[:16]))
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]  # Keras' order
    assert h.epoch == [0, 1, 2] and all(len(v) == 3 for v in h.history.values())
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    p = model.predict(x)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    # the loss evaluate reports is the cross-entropy of the probabilities predict returns
    np.testing.assert_allclose(result[0], -np.log(p[np.arange(64), y]).mean(), rtol=1e-4)
    model.save_weights(tmp_path / "k.safetensors")
    twin = fk.Sequential([fk.layers.Dense(8, activation="relu", input_dim=4),
                          fk.layers.Dense(2, activation="softmax")])
    twin.load_weights(tmp_path / "k.safetensors")
    np.testing.assert_array_equal(twin.predict(x), p)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")  # keeps them
    h = model.fit(x, y, epochs=1, verbose=0)
    assert list(h.history) == ["accuracy", "loss"]
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[])
    h = model.fit(x, y, epochs=1, verbose=0)
    assert list(h.history) == ["loss"]
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_binary_and_mse_losses():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.float32)
    model = fk.Sequential([fk.layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(fk.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    p = model.predict(x)
    loss, acc = model.evaluate(x, y, verbose=0)
    bce = -(y * np.log(p[:, 0]) + (1 - y) * np.log(1 - p[:, 0])).mean()
    np.testing.assert_allclose(loss, bce, rtol=1e-4)
    np.testing.assert_allclose(acc, ((p[:, 0] > 0.5) == (y > 0.5)).mean())
    reg = fk.Sequential([fk.layers.Dense(2, input_shape=(3,))])
    reg.compile("adam", "mse")
    t = x[:, :2] * 2
    reg.fit(x, t, epochs=2, verbose=0)
    np.testing.assert_allclose(reg.evaluate(x, t, verbose=0), ((reg.predict(x) - t) ** 2).mean(),
                               rtol=1e-4)


def test_callbacks_and_deferred_build():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    y = fk.utils.to_categorical(rng.integers(0, 3, 32), 3)
    model = fk.Sequential()
    model.add(fk.layers.Dense(4, activation="relu"))
    model.add(fk.layers.Dense(3, activation="softmax"))
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    stop = fk.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    sched = fk.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (1 + epoch))
    h = model.fit(x, y, epochs=5, verbose=0, callbacks=[stop, sched])
    assert len(h.epoch) == 2  # stopped at the second epoch: no improvement > 10
    assert model.optimizer.lr == pytest.approx(0.01 / 2)  # set before epoch 1, as Keras does
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.01 / 2])
    assert model.layers[0].get_weights()[0].shape == (5, 4)


def test_to_categorical():
    np.testing.assert_array_equal(fk.utils.to_categorical([0, 2, 1]),
                                  np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert fk.utils.to_categorical(np.array([[1], [0]]), 4).shape == (2, 4)
    assert fk.utils.to_categorical([0, 1], 3).dtype == np.float32
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        fk.utils.to_categorical([0, 2], 2)
    with pytest.raises(ValueError, match="integer class labels"):
        fk.utils.to_categorical([0.5])


def test_clear_errors():
    x = np.zeros((4, 3), np.float32)
    model = fk.Sequential([fk.layers.Dense(2, activation="softmax", input_shape=(3,))])
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamax'.*'adam'.*'rmsprop'"):
        model.compile("adamax", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'.*'binary_crossentropy'"):
        model.compile("adam", "hinge")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile("adam", "mse", metrics=["auc"])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, np.zeros(4))
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one-hot targets must have 2 columns.*\(4, 3\)"):
        model.fit(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], verbose=0)
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, np.array([0, 1, 1, 0]), verbose=0)
    logits = fk.Sequential([fk.layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"softmax output.*from_logits=True"):
        logits.compile("adam", "categorical_crossentropy")
    logits.compile("adam", fk.losses.CategoricalCrossentropy(from_logits=True))
    logits.fit(x, np.eye(2, dtype=np.float32)[[0, 1, 1, 0]], verbose=0)
    with pytest.raises(ValueError, match="unknown activation 'selu'"):  # ('gelu' is known)
        fk.layers.Dense(2, activation="selu")
    with pytest.raises(ValueError, match="Flatten"):
        fk.Sequential([fk.layers.Dense(2, input_shape=(4, 4, 1))]).summary()
    with pytest.raises(ValueError, match="padding='same' that pads is not supported"):
        fk.Sequential([fk.layers.AveragePooling2D(padding="same",
                                                  input_shape=(5, 5, 1))]).summary()
    with pytest.raises(TypeError, match="unsupported argument"):
        fk.layers.Dense(2, kernel_regularizer="l2")
    with pytest.raises(ValueError, match=r"expects images \(N, H, W, C\)"):
        fk.Sequential([fk.layers.Conv2D(2, 3, input_shape=(28, 28))]).summary()


def test_transpose_layer_gradient():
    t = L.Transpose(L.TO_NCHW)
    x = np.random.default_rng(6).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = t.forward(x)
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    g = np.random.default_rng(7).normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(t.backward(g), g.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match="axes"):
        L.Transpose((1, 0, 2, 3))


def test_logs_use_keras_metric_names_order_and_accuracy():
    """metrics=['acc'] logged as 'accuracy' (Keras keeps the name given: acc, val_acc);
    History and evaluate(return_dict=True) were in fastnn's order, not Keras' sorted one;
    an mse model's accuracy rounded the output (1.7 missed a target of 1; Keras
    thresholds it at 0.5)."""
    x = np.random.default_rng(8).normal(size=(16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = fk.Sequential([fk.layers.Dense(2, activation="softmax", input_shape=(4,))])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    seen = []
    stop = fk.callbacks.EarlyStopping(monitor="val_acc", patience=5)
    spy = type("Spy", (fk.callbacks.Callback,), {
        "on_epoch_end": lambda self, epoch, logs=None: seen.append(list(logs))})
    h = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[stop, spy()])
    assert list(h.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert seen[0][:4] == ["acc", "loss", "val_acc", "val_loss"]
    assert list(model.evaluate(x, y, verbose=0, return_dict=True)) == ["acc", "loss"]
    reg = fk.Sequential([fk.layers.Dense(1, input_shape=(4,))])
    reg.compile("sgd", "mse", metrics=["accuracy"])
    reg.set_weights([np.eye(4, 1, dtype=np.float32), np.zeros(1, np.float32)])
    xx = np.array([[1.7, 0, 0, 0], [0.4, 0, 0, 0], [0.6, 0, 0, 0], [-0.6, 0, 0, 0]], np.float32)
    assert reg.evaluate(xx, np.array([1, 0, 1, 0], np.float32), verbose=0)[1] == 1.0


def test_learning_rate_scheduler_and_callbacks_like_keras():
    """A schedule(epoch) of one argument failed (Keras falls back to it); the lr was set
    after each epoch for the next, leaving schedule(epochs) after fit (Keras:
    schedule(epochs - 1)); a callback's per-batch hook was silently never called (then
    refused; now called)."""
    x, y = np.ones((8, 3), np.float32), np.ones((8, 2), np.float32)
    model = fk.Sequential([fk.layers.Dense(2, input_shape=(3,))])
    model.compile(fk.optimizers.SGD(0.1), "mse")
    begun = []
    spy = type("Spy", (fk.callbacks.Callback,), {
        "on_epoch_begin": lambda self, epoch, logs=None: begun.append(epoch)})
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        fk.callbacks.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch), spy()])
    assert begun == [0, 1, 2]
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert model.optimizer.lr == pytest.approx(0.025)
    batches = []
    batchy = type("Batchy", (fk.callbacks.Callback,), {
        "on_train_batch_end": lambda self, batch, logs=None: batches.append(batch)})
    model.fit(x, y, verbose=0, batch_size=4, callbacks=[batchy()])
    assert batches == [0, 1]
    with pytest.raises(TypeError, match="fit: callbacks must be a list"):
        model.fit(x, y, verbose=0, callbacks=fk.callbacks.EarlyStopping())


def test_model_optimizer_is_there_after_compile_like_keras():
    """model.optimizer was None from compile to the first fit (Keras': the optimizer,
    from compile on), so model.optimizer.learning_rate = ... before fit failed with an
    AttributeError on None."""
    keras = pytest.importorskip("keras")
    x, y = np.ones((8, 3), np.float32), np.ones((8, 2), np.float32)
    for K in (keras, fk):
        inputs = K.layers.Input((3,))
        for model in (K.Sequential([inputs, K.layers.Dense(2)]),
                      K.Model(inputs, K.layers.Dense(2)(inputs))):
            model.compile(K.optimizers.SGD(0.1), "mse")
            model.optimizer.learning_rate = 0.0
            before = model.get_weights()
            model.fit(x, y, verbose=0)
            for a, b in zip(before, model.get_weights()):
                np.testing.assert_array_equal(a, b)

def test_optimizer_learning_rate_is_the_one_fit_steps_with_like_keras():
    """The Keras optimizer object's learning_rate was a copy read once, when the fastnn
    optimizer was built: set after fit (a fine-tuning phase) it changed nothing, and it
    did not show what a LearningRateScheduler had set."""
    keras = pytest.importorskip("keras")
    x, y = np.ones((8, 3), np.float32), np.ones((8, 2), np.float32)
    for K in (keras, fk):
        opt = K.optimizers.SGD(0.1)
        model = K.Sequential([K.layers.Input((3,)), K.layers.Dense(2)])
        model.compile(opt, "mse")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[
            K.callbacks.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)])
        assert float(opt.learning_rate) == pytest.approx(0.05)
        opt.learning_rate = 0.0
        before = model.get_weights()
        model.fit(x, y, verbose=0)
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="SGD: learning_rate must be finite and >= 0"):
        opt.learning_rate = float("nan")

def test_save_and_load_model_like_keras(tmp_path):
    """model.save wrote a file no loader could rebuild (its architecture was not saved)
    and there was no load_model: now the model comes back with its layers' names and
    arguments, weights, compile settings and optimizer state (training continues as if
    never saved)."""
    x = np.random.default_rng(9).random((12, 6, 6, 1)).astype(np.float32)
    y = np.arange(12) % 3
    fk.utils.set_random_seed(2)
    model = fk.Sequential([
        fk.layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
        fk.layers.BatchNormalization(), fk.layers.MaxPooling2D(), fk.layers.Flatten(),
        fk.layers.Dense(3, activation="softmax", name="probs")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = fk.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is fk.Sequential
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    model.layers[0].trainable = False  # saved as Keras saves it
    model.save(tmp_path / "frozen.keras")
    assert [layer.trainable for layer in fk.models.load_model(tmp_path / "frozen.keras").layers] \
        == [False, True, True, True, True]
    model.layers[0].trainable = True
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == \
        model.evaluate(x, y, verbose=0, return_dict=True)
    h1 = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    h2 = loaded.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert h1.history == h2.history  # the Adam moments and step count came back
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)

    inp = fk.Input(shape=(5,))
    out = fk.layers.Dense(1, activation="sigmoid")(fk.layers.Dense(4, activation="tanh")(inp))
    functional = fk.Model(inp, out)
    functional.save(tmp_path / "f.keras")  # not compiled
    again = fk.models.load_model(tmp_path / "f.keras")
    assert type(again) is fk.Model and again._compiled is None
    xf = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(again.predict(xf), functional.predict(xf))
    # a Sequential never compiled: its file failed to load ("parameter names [...] do not
    # match the architecture's []": it was built only by compile)
    plain = fk.Sequential([fk.layers.Dense(3, input_shape=(5,)), fk.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    np.testing.assert_array_equal(fk.models.load_model(tmp_path / "plain.keras").predict(xf),
                                  plain.predict(xf))
    model.save(tmp_path / "m.keras")
    assert fk.models.load_model(tmp_path / "m.keras", compile=False)._compiled is None
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(tmp_path / "m.keras", overwrite=False)
    fastnn.save(fastnn.nn.Sequential(fastnn.nn.Linear(2, 2)), tmp_path / "plain.fnn")
    with pytest.raises(ValueError, match="not a fastnn.keras model; read it with fastnn.load"):
        fk.models.load_model(tmp_path / "plain.fnn")
    with pytest.raises(ValueError, match="not built yet"):
        fk.Sequential([fk.layers.Dense(2)]).save(tmp_path / "unbuilt.keras")


@pytest.mark.parametrize("tail", ["conv", "pool", "bn"])
def test_an_image_output_is_channels_last(tail, tmp_path):
    """A model ending in an image layer returned fastnn's NCHW from predict ((N, C, H, W)
    where Keras gives (N, H, W, C)), so fit on NHWC targets failed or, with H = W = C,
    trained on transposed ones. The model now transposes its output back."""
    keras = pytest.importorskip("keras")

    def build(K):
        last = {"conv": K.layers.Conv2D(3, 2, activation="sigmoid"),
                "pool": K.layers.MaxPooling2D(), "bn": K.layers.BatchNormalization()}[tail]
        return K.Sequential([K.Input(shape=(6, 6, 3)), K.layers.Conv2D(3, 1), last])

    ref, mine = build(keras), build(fk)
    rng = np.random.default_rng(10)
    ref.set_weights([rng.random(w.shape).astype(np.float32) + 0.5 for w in ref.get_weights()])
    mine.set_weights(ref.get_weights())
    x = rng.random((4, 6, 6, 3)).astype(np.float32)
    want = ref.predict(x, verbose=0)
    np.testing.assert_allclose(mine.predict(x), want, rtol=1e-5, atol=1e-6)
    assert mine.layers[-1].output_shape_keras == (None,) + want.shape[1:]
    assert len(mine.layers) == 2  # the transpose is not a Keras layer
    mine.compile("sgd", "mse")
    target = rng.random(want.shape).astype(np.float32)
    np.testing.assert_allclose(mine.evaluate(x, target, verbose=0),
                               ((want - target) ** 2).mean(), rtol=1e-5)
    mine.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(fk.models.load_model(tmp_path / "m.keras").predict(x),
                                  mine.predict(x))


def test_shapes_and_tensors_keras_names():
    """model.input_shape was fastnn's per-sample (6, 6, 2) and model.output_shape a method;
    layer.input / layer.output did not exist. Keras' values: (None, ...) shapes."""
    model = fk.Sequential([fk.Input(shape=(6, 6, 2)), fk.layers.Conv2D(3, 2),
                           fk.layers.Flatten(), fk.layers.Dense(2)])
    assert model.input_shape == (None, 6, 6, 2) and model.output_shape == (None, 2)
    assert model.layers[0].input.shape == (None, 6, 6, 2)
    assert model.layers[0].output.shape == (None, 5, 5, 3)
    model.compile("sgd", "mse")  # built: the same
    assert model.input_shape == (None, 6, 6, 2) and model.output_shape == (None, 2)
    with pytest.raises(AttributeError, match="never been called"):
        fk.layers.Dense(3).output
    inp = fk.Input(shape=(6, 6, 2))
    functional = fk.Model(inp, fk.layers.Conv2D(3, 2)(inp))
    assert functional.input_shape == (None, 6, 6, 2)
    assert functional.output_shape == (None, 5, 5, 3)


@pytest.mark.parametrize("shape", [(5,), (3, 3, 2)])
def test_batch_normalization_moving_variance_like_keras(shape):
    """The moving variance took the unbiased batch variance (torch's, var * m / (m - 1));
    Keras takes the biased one: after a step it differed by momentum * var / (m - 1)."""
    x = np.random.default_rng(11).normal(2.0, 3.0, (6,) + shape).astype(np.float32)
    model = fk.Sequential([fk.layers.BatchNormalization(momentum=0.9, input_shape=shape)])
    model.compile(fk.optimizers.SGD(1e-30), "mse")
    model.fit(x, np.zeros_like(x), batch_size=6, verbose=0)
    axes = tuple(range(x.ndim - 1))
    gamma, beta, mean, var = model.get_weights()
    np.testing.assert_allclose(mean, 0.1 * x.mean(axes), rtol=1e-5)
    np.testing.assert_allclose(var, 0.9 + 0.1 * x.var(axes), rtol=1e-5)


def test_trainable_false_freezes_like_keras():
    """layer.trainable = False (transfer learning's idiom) set an unused attribute: fit
    went on training the layer and updating a BatchNormalization's moving statistics.
    Now its weights stay, and a BatchNormalization runs in inference mode (Keras 3)."""
    rng = np.random.default_rng(12)
    x = rng.normal(1.0, 2.0, (16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = fk.Sequential([fk.Input(shape=(4,)), fk.layers.Dense(5),
                           fk.layers.BatchNormalization(),
                           fk.layers.Dense(3, activation="softmax")])
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    before = model.get_weights()
    model.compile(fk.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    # inference-mode BatchNormalization: the training loss is the evaluate loss
    loss = model.evaluate(x, y, verbose=0)
    h = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert h.history["loss"][0] == pytest.approx(loss, rel=1e-6)
    after = model.get_weights()
    for a, b in zip(before[:6], after[:6]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before[6], after[6])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 18" in lines[0] and "Non-trainable params: 45" in lines[0]
    model.trainable = False
    assert [layer.trainable for layer in model.layers] == [False] * 3
    model.fit(x, y, verbose=0)
    for a, b in zip(after, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="trainable must be True or False"):
        model.layers[0].trainable = "no"
    frozen = fk.Sequential([fk.layers.Dense(2, input_shape=(4,), trainable=False)])
    assert not any(p.requires_grad for p in frozen.parameters())


def test_loss_objects_called_like_keras():
    """Keras' loss(y_true, y_pred) (e.g. the quickstart's loss_fn(y[:1], predictions))
    raised 'object is not callable'. The expected values are real Keras 3.15's, including
    its clipping of probabilities at float32 1e-7 and its rescaling of unnormalised ones."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 5)
    onehot = np.eye(4, dtype=np.float32)[labels]
    b = rng.random((5, 1)).astype(np.float32)
    bt = (rng.random((5, 1)) > .5).astype(np.float32)
    losses = fk.losses
    got = [losses.SparseCategoricalCrossentropy()(labels, probs),
           losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits),
           losses.SparseCategoricalCrossentropy()(labels[:, None], probs * 3),
           losses.CategoricalCrossentropy()(onehot, probs),
           losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(onehot, logits),
           losses.CategoricalCrossentropy()(onehot, np.eye(4, dtype=np.float32)[(labels + 1) % 4]),
           losses.BinaryCrossentropy()(bt, b),
           losses.BinaryCrossentropy(from_logits=True)(bt, logits[:, :1]),
           losses.BinaryCrossentropy()(bt, np.round(b)),
           losses.MeanSquaredError()(onehot, probs)]
    keras = [2.213976, 2.213976, 2.089223, 2.213976, 2.147478, 16.118095, 2.342988, 0.657051,
             9.600573, 0.268693]
    np.testing.assert_allclose(got, keras, rtol=1e-5)
    assert all(isinstance(v, np.float32) for v in got)
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy: y_true has shape \(5, 4\)"):
        losses.CategoricalCrossentropy()(onehot, probs[:, :3])
    with pytest.raises(ValueError, match=r"class labels in \[0, 4\)"):
        losses.SparseCategoricalCrossentropy()(labels + 4, probs)
    with pytest.raises(TypeError, match="MeanSquaredError: y_pred must be an array of real"):
        losses.MeanSquaredError()(onehot, "x")


def test_get_layer():
    model = fk.Sequential([fk.layers.Dense(3, input_shape=(2,), name="hidden"),
                           fk.layers.Dense(1, name="out")])
    assert model.get_layer("out") is model.layers[1]
    assert model.get_layer(index=0) is model.layers[0]
    with pytest.raises(ValueError, match=r"no layer named 'x'; the layers are \['hidden', 'out'\]"):
        model.get_layer("x")
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 2\)"):
        model.get_layer(index=2)


def test_accuracy_of_several_sigmoid_outputs():
    """binary_crossentropy on several sigmoid outputs with metrics=['accuracy'] counted
    every right output as a right sample (accuracy 1.625, as fastnn's own fit did);
    Keras' 'accuracy' is categorical then (argmax match: 0.5 here, Keras' value)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = (rng.random((8, 3)) > 0.5).astype(np.float32)
    model = fk.Sequential([fk.Input(shape=(4,)), fk.layers.Dense(3, activation="sigmoid")])
    model.set_weights([np.random.default_rng(1).normal(0, .5, (4, 3)).astype(np.float32),
                       np.zeros(3, np.float32)])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(0.7069802284240723, rel=1e-6) and accuracy == 0.5
    net = fastnn.nn.Sequential(fastnn.nn.Linear(4, 3), input_shape=(4,))  # the mean per output
    logits = net.predict(x)
    want = ((logits > 0) == (y > 0.5)).mean()
    assert net.evaluate(x, y, loss="binary_cross_entropy")["accuracy"] == pytest.approx(want)


def test_build_like_keras():
    """model.build((None, 5)) did not exist: a Sequential without an input shape could
    not have weights before fit/predict."""
    model = fk.Sequential([fk.layers.Dense(3), fk.layers.Dense(2)])
    model.build((None, 5))
    assert model.input_shape == (None, 5)
    assert [w.shape for w in model.get_weights()] == [(5, 3), (3,), (3, 2), (2,)]
    model.build([None, 5])  # again, the same shape
    with pytest.raises(ValueError, match=r"built for inputs of shape \(None, 5\), not \(None, 6\)"):
        model.build((None, 6))
    with pytest.raises(ValueError, match="build: input_shape must be a tuple"):
        fk.Sequential([fk.layers.Dense(3)]).build(5)


def test_input_refuses_what_it_would_ignore():
    """Input(dtype='float64') computed in float32 and Input(batch_size=8) took any batch,
    silently; both are refused by name (float32 and no batch_size are fine)."""
    assert fk.Input(shape=(3,), dtype="float32").shape == (None, 3)
    with pytest.raises(TypeError, match="Input: fastnn.keras computes in float32 only"):
        fk.Input(shape=(3,), dtype="float64")
    with pytest.raises(TypeError, match="Input: a fixed batch_size is not supported"):
        fk.Input(shape=(3,), batch_size=8)


def test_same_padding_with_more_at_the_bottom_right_like_keras():
    """Conv2D(strides=2, padding='same') on an even size, an even kernel, or a pool with
    padding='same' on an odd size pad one more row/column at the bottom/right in
    TensorFlow, which fastnn.keras refused; a Pad2d (zeros for a convolution, -inf for
    a max pool) before the layer now gives Keras' outputs."""
    keras = pytest.importorskip("keras")

    def build(K):
        return K.Sequential([
            K.Input(shape=(9, 8, 2)),
            K.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            K.layers.Conv2D(3, 2, padding="same"), K.layers.MaxPooling2D(padding="same"),
            K.layers.MaxPooling2D(3, strides=2, padding="same"), K.layers.Flatten(),
            K.layers.Dense(2)])

    ref, mine = build(keras), build(fk)
    ref.set_weights([np.random.default_rng(k).normal(0, .5, w.shape).astype(np.float32)
                     for k, w in enumerate(ref.get_weights())])
    mine.set_weights(ref.get_weights())
    x = np.random.default_rng(13).normal(size=(3, 9, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(mine.predict(x), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert [layer.output_shape_keras for layer in mine.layers] == \
        [tuple(layer.output.shape) for layer in ref.layers]
    pad = L.Pad2d((0, 1, 1, 2), -np.inf)
    y = pad.forward(x.transpose(0, 3, 1, 2).copy())
    assert y.shape == (3, 2, 10, 11) and np.isneginf(y[:, :, 9]).all()
    g = np.random.default_rng(14).normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(pad.backward(g), g[:, :, :9, 1:9])
    with pytest.raises(ValueError, match="Pad2d: padding must be 4 non-negative ints"):
        L.Pad2d((1, -1, 0, 0))


def test_early_stopping_restores_moving_statistics_too():
    """restore_best_weights copied back the parameters only: a BatchNormalization kept
    the moving mean/variance of the last epoch, not of the best one (Keras restores all
    of get_weights())."""
    rng = np.random.default_rng(15)
    x = rng.normal(2.0, 3.0, (32, 4)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    model = fk.Sequential([fk.layers.BatchNormalization(input_shape=(4,)),
                           fk.layers.Dense(2, activation="softmax")])
    model.compile(fk.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    seen = []
    spy = type("Spy", (fk.callbacks.Callback,), {
        "on_epoch_end": lambda self, epoch, logs=None: seen.append(model.get_weights())})
    stop = fk.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1,
                                      restore_best_weights=True)  # the first epoch is best
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[stop, spy()])
    assert len(seen) == 2
    for a, b in zip(model.get_weights(), seen[0]):
        np.testing.assert_array_equal(a, b)


def test_batch_normalization_axis_counted_with_the_batch():
    """BatchNormalization(axis=3) on images (axis=1 after a Dense): Keras' channel axis
    counted with the batch, as older Keras code writes it, was refused as not -1."""
    x = np.random.default_rng(16).normal(size=(4, 6, 6, 3)).astype(np.float32)

    def build(axes):
        fk.utils.set_random_seed(5)
        return fk.Sequential([fk.layers.Conv2D(2, 3, input_shape=(6, 6, 3)),
                              fk.layers.BatchNormalization(axis=axes[0]), fk.layers.Flatten(),
                              fk.layers.Dense(3), fk.layers.BatchNormalization(axis=axes[1])])

    np.testing.assert_array_equal(build((3, 1)).predict(x), build((-1, -1)).predict(x))
    with pytest.raises(ValueError, match=r"only axis=-1 \(the channels, last: 3 here\)"):
        fk.Sequential([fk.layers.BatchNormalization(axis=1, input_shape=(6, 6, 3))]).summary()


def test_calling_the_model_builds_it_and_infers_like_keras():
    """model(x) on a Sequential not built yet builds it (it raised 'Sequential defines no
    forward'), and runs in inference mode as Keras' does outside fit (Dropout off);
    training=True turns it on for that call; fit still trains in training mode."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    model = fk.Sequential([L.Dense(16), L.Dropout(0.5),
                              L.Dense(2)])
    first = model(x)
    assert first.shape == (8, 2) and np.array_equal(first, model(x))
    assert np.array_equal(first, model.predict(x, verbose=0))
    assert not np.array_equal(first, model(x, training=True))
    assert np.array_equal(first, model(x, training=False))
    with pytest.raises(TypeError, match="training must be True or False"):
        model(x, training="no")
    model.compile("sgd", "mse")
    before = model.get_weights()
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert np.array_equal(model(x), model.predict(x, verbose=0))


def test_fit_with_validation_split_and_a_frozen_layer_trains_like_keras():
    """validation_split=0.25 of 10 samples held out int(10 * 0.25) = 2 samples where
    Keras holds out 10 - floor(10 * 0.75) = 3: the losses, accuracies and weights then
    differed from Keras'. Twin run (a frozen Dense, a BatchNormalization, SGD with
    momentum, batches of 3 not dividing the 7 training samples: the last has one, which
    the BatchNormalization refused as torch's does) against real Keras."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(16)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10)

    def build(K):
        model = K.Sequential([K.layers.Input((4,)), K.layers.Dense(5, activation="relu"),
                              K.layers.BatchNormalization(),
                              K.layers.Dense(3, activation="softmax")])
        model.layers[0].trainable = False
        model.compile(K.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    ref, mine = build(keras), build(fk)
    mine.set_weights(ref.get_weights())
    runs = [m.fit(x, y, epochs=3, batch_size=3, shuffle=False, validation_split=0.25,
                  verbose=0).history for m in (ref, mine)]
    assert list(runs[1]) == list(runs[0])
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-5, err_msg=key)
    for a, b in zip(mine.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3,), (1, 1, 3)])
def test_batch_normalization_trains_on_a_batch_of_one_like_keras(shape):
    """A training batch of one sample (a last batch of fit) raised torch's 'expected more
    than 1 value per channel'; Keras normalises it (mean the sample, variance 0: the
    output is beta, the moving variance decays) and trains beta on it."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(17)
    x = rng.normal(1.0, 2.0, (1,) + shape).astype(np.float32)
    target = rng.normal(size=(1,) + shape).astype(np.float32)

    def build(K):
        model = K.Sequential([K.Input(shape), K.layers.BatchNormalization(momentum=0.8)])
        model.compile(K.optimizers.SGD(0.5), "mse")
        return model

    ref, mine = build(keras), build(fk)
    weights = [w + rng.random(w.shape).astype(np.float32) for w in ref.get_weights()]
    ref.set_weights(weights)
    mine.set_weights(weights)
    # Keras' float32 variance of one value is a rounding error, not 0: atol 1e-5
    np.testing.assert_allclose(mine(x, training=True), ref(x, training=True), atol=1e-5)
    for model in (ref, mine):
        model.fit(x, target, epochs=2, batch_size=1, verbose=0)
    for a, b in zip(mine.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("monitor, options", [
    ("val_loss", {"patience": 1}), ("val_accuracy", {"patience": 2}),
    ("loss", {"patience": 0, "min_delta": 0.5}), ("val_loss", {"patience": 3, "mode": "max"})])
def test_early_stopping_like_keras(monitor, options):
    """Twin runs against real Keras: the epochs run, the monitored values, the best and
    stopped epochs and the restored weights agree. stopped_epoch was None (Keras: 0)
    when training ran to the end."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(18)
    x, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    val = rng.standard_normal((10, 4)).astype(np.float32), rng.integers(0, 3, 10)
    runs, weights = [], None
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input((4,)), K.layers.Dense(16, activation="relu"),
                              K.layers.Dense(3, activation="softmax")])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile(K.optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        stop = K.callbacks.EarlyStopping(monitor=monitor, restore_best_weights=True, **options)
        history = model.fit(x, y, epochs=8, batch_size=8, shuffle=False, validation_data=val,
                            verbose=0, callbacks=[stop])
        runs.append((history.history[monitor], stop.stopped_epoch, stop.best_epoch,
                     model.get_weights()))
    (ref, ref_stopped, ref_best, ref_w), (mine, stopped, best, mine_w) = runs
    np.testing.assert_allclose(mine, ref, rtol=1e-5)
    assert (stopped, best) == (ref_stopped, ref_best)
    for a, b in zip(mine_w, ref_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_callbacks_are_called_with_logs_and_params_like_keras():
    """Keras passes logs to every hook and sets params first; fit called
    on_train_begin() and on_epoch_begin(epoch) without logs, so a callback written for
    Keras (def on_train_begin(self, logs)) failed with a TypeError, and self.params was
    never set. Twin run against real Keras: the same calls, arguments and params."""
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(19).standard_normal((8, 3)).astype(np.float32)
    y = np.arange(8) % 2
    calls = []
    for K in (keras, fk):
        seen = []

        class Spy(K.callbacks.Callback):
            def on_train_begin(self, logs):
                seen.append(("train_begin", logs, self.params))

            def on_epoch_begin(self, epoch, logs):
                seen.append(("epoch_begin", epoch, logs))

            # fastnn adds its documented seconds and samples_per_sec to the logs
            def on_epoch_end(self, epoch, logs):
                seen.append(("epoch_end", epoch, sorted(set(logs) - set(FASTNN_LOGS))))

            def on_train_end(self, logs):
                seen.append(("train_end", sorted(set(logs) - set(FASTNN_LOGS))))

        model = K.Sequential([K.layers.Input((3,)), K.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=2, verbose=0, callbacks=[Spy()])
        calls.append(seen)
    assert calls[1] == calls[0]


def test_a_layer_of_a_non_trainable_model_stays_frozen_like_keras():
    """After model.trainable = False, setting one layer's trainable back to True trained
    that layer; Keras gives a non-trainable model no trainable weights at all (a
    BatchNormalization's mode still follows its own flag). Twin run against real Keras,
    frozen then unfrozen and compiled again: losses and weights agree."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(20)
    x, y = rng.standard_normal((24, 5)).astype(np.float32), rng.integers(0, 3, 24)
    runs, weights = [], None
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input((5,)), K.layers.Dense(6, activation="relu"),
                              K.layers.BatchNormalization(),
                              K.layers.Dense(3, activation="softmax")])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.trainable = False
        model.layers[-1].trainable = True
        losses_ = []
        for _ in range(2):
            model.compile(K.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
            losses_ += model.fit(x, y, epochs=2, batch_size=5, shuffle=False,
                                 verbose=0).history["loss"]
            model.trainable = True
        runs.append((losses_, model.get_weights()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_compile_again_keeps_the_same_optimizers_state_like_keras():
    """compile built a new fastnn optimizer each time, so compiling again with the same
    optimizer object restarted its state (SGD's momentum, Adam's moments): Keras
    continues it (a new object starts afresh); metrics=None dropped the metrics, which
    Keras keeps (metrics=[] drops them)."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 3)).astype(np.float32), rng.integers(0, 2, 8)
    runs, weights = [], None
    for K in (keras, fk):
        for same in (True, False):
            model = K.Sequential([K.layers.Input((3,)), K.layers.Dense(2, activation="softmax")])
            weights = weights or model.get_weights()
            model.set_weights(weights)
            opt = K.optimizers.SGD(0.1, momentum=0.9)
            model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(x, y, epochs=2, batch_size=8, verbose=0)
            model.compile(opt if same else K.optimizers.SGD(0.1, momentum=0.9),
                          "sparse_categorical_crossentropy")  # metrics=None: kept
            assert (model.optimizer is opt) == same
            keys = [sorted(model.fit(x, y, epochs=1, batch_size=8, verbose=0).history)]
            model.compile(opt, "sparse_categorical_crossentropy", metrics=[])
            keys.append(sorted(model.evaluate(x, y, verbose=0, return_dict=True)))
            runs.append((keys, model.get_weights()))
    for (keys, mine), (ref_keys, ref) in zip(runs[2:], runs[:2]):
        assert keys == ref_keys == [["accuracy", "loss"], ["loss"]]
        for a, b in zip(mine, ref):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs[0][1][0], runs[1][1][0])


def weights_model(K):
    return K.Sequential([K.layers.Input((4, 4, 1)), K.layers.Conv2D(2, 3, name="conv"),
                         K.layers.Flatten(name="flat"), K.layers.Dense(3, name="hidden"),
                         K.layers.BatchNormalization(name="bn"),
                         K.layers.Dense(2, use_bias=False, name="out")])


def test_weights_are_variables_like_keras():
    """model.weights / trainable_weights / non_trainable_weights, layer.weights and
    layer.kernel / bias / moving_mean did not exist: Keras' Variables, with names, shapes
    and trainable flags as Keras', np.asarray / numpy() giving the values and assign()
    changing the model."""
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).random((3, 4, 4, 1)).astype(np.float32)
    models, seen, weights = [], [], None
    for K in (keras, fk):
        model = weights_model(K)
        weights = weights or model.get_weights()
        model.set_weights(weights)
        models.append(model)
        dense, bn = model.get_layer("hidden"), model.get_layer("bn")
        got = [[(v.name, tuple(v.shape), bool(v.trainable)) for v in model.weights],
               [v.name for v in model.trainable_weights],
               [v.name for v in model.non_trainable_weights],
               [v.name for v in bn.non_trainable_weights], model.count_params(),
               model.get_layer("out").bias is None, tuple(model.get_layer("conv").kernel.shape)]
        assert model.weights[2] is dense.kernel and bn.moving_mean is model.weights[6]
        for v, w in zip(model.weights, model.get_weights()):
            np.testing.assert_array_equal(np.asarray(v), w)
            np.testing.assert_array_equal(v.numpy(), w)
        dense.kernel.assign(np.full((8, 3), 0.5, np.float32))
        bn.moving_variance.assign(np.full(3, 4.0, np.float32))
        dense.bias.assign_add(np.ones(3, np.float32))
        got.append(np.asarray(model(x, training=False)))
        bn.trainable = False
        got += [[v.name for v in model.trainable_weights], [v.trainable for v in bn.weights],
                bn.trainable_weights, len(bn.non_trainable_weights)]
        model.trainable = False
        got += [model.trainable_weights, len(model.non_trainable_weights)]
        with pytest.raises(ValueError):
            dense.kernel.assign(np.ones((3, 8), np.float32))
        with pytest.raises(AttributeError, match="kernel"):
            K.layers.Dense(2).kernel
        assert K.layers.Dense(2).weights == []
        seen.append(got)
    (ref, mine) = seen
    np.testing.assert_allclose(mine.pop(7), ref.pop(7), rtol=1e-5, atol=1e-6)
    assert mine == ref
    with pytest.raises(TypeError, match="assign: weight 0 has dtype"):
        models[1].get_layer("hidden").kernel.assign([["a"] * 3] * 8)


def test_get_config_from_config_and_clone_model_like_keras():
    """get_config / from_config (layers and models) and keras.models.clone_model did not
    exist: the config holds Keras' arguments, from_config rebuilds the architecture
    (names, shapes, parameter counts) with new weights, not compiled, as Keras."""
    keras = pytest.importorskip("keras")
    layers = {"Dense": dict(units=3, activation="relu", use_bias=False),
              "Conv2D": dict(filters=2, kernel_size=(3, 2), strides=(1, 2), padding="same"),
              "MaxPooling2D": dict(pool_size=(2, 2), padding="valid"),
              "Dropout": dict(rate=0.25), "BatchNormalization": dict(momentum=0.9),
              "LeakyReLU": dict(negative_slope=0.1), "Reshape": dict(target_shape=(2, 3))}
    for kind, args in layers.items():
        ref = getattr(keras.layers, kind)(name="x", **args).get_config()
        mine = getattr(fk.layers, kind)(name="x", **args).get_config()
        for key in ["name", "trainable", *args]:
            want = ref[key]
            assert tuple(mine[key]) == want if isinstance(want, tuple) else \
                mine[key] == want, (kind, key)
        again = getattr(fk.layers, kind).from_config(mine)
        assert again.get_config() == mine and not again.built
    assert fk.layers.Dense(2).get_config()["activation"] == \
        keras.layers.Dense(2).get_config()["activation"] == "linear"

    def functional(K):
        inp = K.Input((6,), name="inp")
        a = K.layers.Dense(4, activation="relu", name="a")(inp)
        return K.Model(inp, K.layers.Add(name="add")([K.layers.Dense(4, name="b")(a), a]),
                       name="f")

    for build, kind in ((weights_model, "Sequential"), (functional, "Model")):
        shapes = []
        for K in (keras, fk):
            model = build(K)
            model.compile(K.optimizers.SGD(0.2, momentum=0.5), "mse", metrics=["mae"])
            again, clone = getattr(K, kind).from_config(model.get_config()), \
                K.models.clone_model(model)
            for new in (again, clone):
                assert type(new) is type(model) and new.name == model.name
                assert [layer.name for layer in new.layers] == \
                    [layer.name for layer in model.layers]
                assert new.count_params() == model.count_params()
                assert not any(np.array_equal(a, b) for a, b in zip(
                    new.get_weights(), model.get_weights()) if a.std() > 0)
                shapes.append((new.input_shape, new.output_shape))
            # from_config leaves the model uncompiled; clone_model compiles it like model,
            # with a new optimizer of the same arguments
            assert not again.compiled and clone.compiled
            assert clone.optimizer is not model.optimizer
            x = np.ones((2,) + clone.input_shape[1:], np.float32)
            y = np.ones((2,) + clone.output_shape[1:], np.float32)
            assert sorted(clone.fit(x, y, verbose=0).history) == ["loss", "mae"]
            assert float(clone.optimizer.learning_rate) == pytest.approx(0.2)
        assert shapes[:2] == shapes[2:]
    deferred = fk.Sequential([fk.layers.Dense(2, name="d")])
    again = fk.Sequential.from_config(deferred.get_config())
    assert [layer.name for layer in again.layers] == ["d"] and again.input_shape is None
    assert again.predict(np.ones((1, 3), np.float32)).shape == (1, 2)
    with pytest.raises(TypeError, match="Dense.from_config: config must be a dict"):
        fk.layers.Dense.from_config("x")
    with pytest.raises(TypeError, match="unsupported argument.*bogus"):
        fk.layers.Dense.from_config({"units": 2, "bogus": 1})
    with pytest.raises(ValueError, match="Sequential.from_config: config must be a dict"):
        fk.Sequential.from_config({"layers": 3})
    with pytest.raises(ValueError, match="Sequential.from_config: malformed config"):
        fk.Sequential.from_config({"name": "s", "layers": [{"class": "Dense"}]})
    with pytest.raises(TypeError, match="clone_model: model must be"):
        fk.models.clone_model(3)


def test_pop_and_add_after_pop_like_keras():
    """Sequential.pop did not exist: it removes the last layer and returns it, the model
    ends at the layer before, add continues from there; a compiled model refuses to fit
    a layer its optimizer was not built with until compiled with a new one, as Keras."""
    keras = pytest.importorskip("keras")
    x, y = np.ones((4, 4, 4, 1), np.float32), np.ones((4, 5), np.float32)
    seen = []
    for K in (keras, fk):
        model = weights_model(K)
        model.compile(K.optimizers.SGD(0.1), "mse")
        model.fit(x, np.ones((4, 2)), verbose=0)
        popped = model.pop()
        got = [popped.name, [layer.name for layer in model.layers], model.output_shape,
               len(model.weights), model.predict(x, verbose=0).shape]
        model.add(K.layers.Dense(5, name="new"))
        # model(x): Keras' predict runs the graph it traced before the add (4, 3)
        got += [model.output_shape, np.asarray(model(x)).shape]
        with pytest.raises(ValueError, match="optimizer"):
            model.fit(x, y, verbose=0)
        model.compile(K.optimizers.SGD(0.1), "mse")
        before = model.get_layer("new").get_weights()[0]
        model.fit(x, y, verbose=0)
        assert not np.array_equal(before, model.get_layer("new").get_weights()[0])
        for _ in range(5):
            model.pop()
        with pytest.raises(IndexError):
            model.pop()
        seen.append(got)
    assert seen[1] == seen[0]


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["losses"][0].update(loss="bogus"), "unknown loss 'bogus'"),
    (lambda c: c["losses"][0].update(from_logits="yes"), "from_logits"),
    (lambda c: c["losses"][0].update(label_smoothing=5), "label_smoothing"),
    (lambda c: c.update(metrics=[["bogus"]]), "unknown metric 'bogus'"),
    (lambda c: c.update(metrics=[]), "metrics must be a list of one entry per output"),
    (lambda c: c.update(loss_weights=["x"]), "loss_weights"),
    (lambda c: c.update(loss_order=[3]), "loss_order"),
    (lambda c: c.update(clipping={"clipnorm": -1}), "clipnorm must be finite and > 0"),
    (lambda c: c.update(clipping={"bogus": 1}), "bogus"),
])
def test_forged_compile_settings_raise_naming_the_file(tmp_path, edit, match):
    """A saved model's compile settings were taken as written: an unknown metric, a
    loss weight 'x' or a loss order out of range loaded and failed in fit (KeyError,
    TypeError, IndexError); an unknown loss raised KeyError: 'bogus'. Now load_model
    checks them as compile checks its arguments."""
    from test_robustness import forge
    model = fk.Sequential([fk.Input((3,)), fk.layers.Dense(2, activation="softmax")])
    model.compile(fk.optimizers.Adam(clipnorm=1.0), loss=fk.losses.CategoricalCrossentropy(
        label_smoothing=0.1), metrics=["accuracy"])
    good, bad = tmp_path / "good.keras", tmp_path / "bad.keras"
    model.save(good)
    assert fk.models.load_model(good)._compiled.optimizer.clipnorm == 1.0
    forge(good, bad, lambda h: edit(h["payload"]["model"]["compile"]))
    with pytest.raises(ValueError, match=f"{bad}.*compile settings.*{match}"):
        fk.models.load_model(bad)
    forge(good, bad, lambda h: h["payload"]["optimizer"].update(type="Bogus"))
    with pytest.raises(ValueError, match=f"{bad}.*unknown optimizer type 'Bogus'"):
        fk.models.load_model(bad)


def ids(tensors):
    """A structure of tensors by identity (KerasTensor == is a layer call in Keras)."""
    if isinstance(tensors, dict):
        return {k: id(t) for k, t in tensors.items()}
    if isinstance(tensors, (list, tuple)):
        return type(tensors), [id(t) for t in tensors]
    return id(tensors)


def test_model_inputs_outputs_like_keras():
    """model.input / output (the structure the model was made of), model.inputs /
    outputs (flat lists of KerasTensors, a dict's sorted by key) were missing or
    fastnn's graph values, so Model(model.inputs, model.get_layer(...).output) (a
    feature extractor) failed; a subclassed model has none, an unbuilt Sequential none
    yet (AttributeError), as in Keras."""
    keras = pytest.importorskip("keras")
    x = [np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)]
    for K in (keras, fk):
        a, b = K.Input((3,), name="a"), K.Input((2,), name="b")
        o1 = K.layers.Dense(2, name="o1")(K.layers.Dense(4, name="h")(a))
        o2 = K.layers.Dense(1, name="o2")(b)
        for outputs, flat in (({"z": o1, "y": o2}, [o2, o1]), ([o1, o2], [o1, o2]),
                              ((o1, o2), [o1, o2]), ([o1], [o1]), (o1, [o1])):
            model = K.Model([a, b], outputs)
            assert ids(model.input) == ids(model.inputs) == ids([a, b])
            assert ids(model.output) == ids(outputs) and ids(model.outputs) == ids(flat)
        single = K.Model(a, o1)
        assert single.input is a and single.output is o1 and single.inputs == [a]
        features = K.Model(model.inputs, model.get_layer("h").output)
        assert features.predict(x, verbose=0).shape == (4, 4)
        seq = K.Sequential([K.layers.Dense(4, name="h"), K.layers.Dense(2)])
        with pytest.raises(AttributeError):
            seq.outputs
        seq.build((None, 3))
        assert [t.shape for t in seq.inputs + seq.outputs] == [(None, 3), (None, 2)]
        features = K.Model(seq.inputs, seq.get_layer("h").output)
        assert features.predict(x[0], verbose=0).shape == (4, 4)

        class Sub(K.Model):
            def __init__(self):
                super().__init__()
                self.dense = K.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        sub = Sub()
        sub(x[0])
        for name in ("inputs", "outputs", "input", "output"):
            with pytest.raises(AttributeError):
                getattr(sub, name)
    built = fk.Sequential([fk.Input((3,)), fk.layers.Dense(2)])  # Keras 3 raises; tf.keras'
    assert built.input is built.inputs[0] and built.output is built.outputs[0]


def test_metrics_names_label_evaluate_like_keras():
    """model.metrics_names was missing: [] before compile and ['loss'] without metrics,
    as Keras'; with metrics the names of evaluate's list in its order (Keras 3 gives
    ['loss', 'compile_metrics']; tf.keras gave these)."""
    keras = pytest.importorskip("keras")
    x, y = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    for K in (keras, fk):
        model = K.Sequential([K.Input((3,)), K.layers.Dense(2)])
        assert model.metrics_names == []
        model.compile("sgd", "mse")
        model.fit(x, y, verbose=0)
        assert model.metrics_names == ["loss"]
    model.compile("sgd", "mse", metrics=["mse", fk.metrics.MeanAbsoluteError(name="a")])
    assert model.metrics_names == ["loss", "mse", "a"]
    assert dict(zip(model.metrics_names, model.evaluate(x, y, verbose=0))) == \
        model.evaluate(x, y, verbose=0, return_dict=True)
    a = fk.Input((3,))
    two = fk.Model(a, [fk.layers.Dense(2, name="p")(a), fk.layers.Dense(2, name="q")(a)])
    two.compile("sgd", {"q": "mse", "p": "mae"}, metrics=[["mae"], ["mse"]])
    assert two.metrics_names == ["loss", "q_loss", "p_loss", "p_mae", "q_mse"]
    assert dict(zip(two.metrics_names, two.evaluate(x, [y, y], verbose=0))) == \
        two.evaluate(x, [y, y], verbose=0, return_dict=True)


def test_model_optimizer_is_the_compiled_object_like_keras():
    """model.optimizer was the fastnn optimizer fit steps, not the object compile was
    given (Keras': model.optimizer is opt), so its get_config or class were fastnn's;
    its learning_rate, set or read there, is the one fit steps with. A name gives
    Keras' class; a fastnn.optim optimizer given to compile is itself."""
    keras = pytest.importorskip("keras")
    x, y = np.ones((8, 3), np.float32), np.ones((8, 2), np.float32)
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input((3,)), K.layers.Dense(2)])
        opt = K.optimizers.SGD(0.1)
        model.compile(opt, "mse")
        assert model.optimizer is opt
        model.fit(x, y, verbose=0, callbacks=[K.callbacks.LearningRateScheduler(
            lambda epoch: 0.05)])
        assert model.optimizer is opt and float(opt.learning_rate) == pytest.approx(0.05)
        opt.learning_rate = 0.0
        before = model.get_weights()
        model.fit(x, y, verbose=0)
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)
        model.compile("adam", "mse")
        assert type(model.optimizer) is K.optimizers.Adam
    sgd = fastnn.optim.SGD(model.parameters(), 0.1)
    model.compile(sgd, "mse")
    assert model.optimizer is sgd
