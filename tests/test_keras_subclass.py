"""Subclassed fastnn.keras models (layers assigned in __init__, call(inputs, training))
as Keras 3 users write them, against real Keras 3 on the same weights: built from call
on the first use or build(input_shape), get_weights in Keras' order (the attributes'),
predictions, a few epochs of SGD, training passed on to Dropout and BatchNormalization,
save_weights/load_weights, several outputs, and clear errors for what a graph recorded
once cannot do (Python branches on tensor values or on training, arithmetic)."""
import re

import numpy as np
import pytest

import fastnn
from fastnn import keras as fk
from fastnn.nn.graph import TracingError


def net(K, dropout=0.5):
    class Net(K.Model):
        def __init__(self):
            super().__init__()
            self.hidden = K.layers.Dense(8, activation="relu")
            self.norm = K.layers.BatchNormalization()
            self.drop = K.layers.Dropout(dropout)
            self.head = K.layers.Dense(3, activation="softmax")

        def call(self, inputs, training=None):
            x = self.hidden(inputs)
            x = self.norm(x, training=training)
            return self.head(self.drop(x, training=training))
    return Net()


def twins(make, x):
    keras = pytest.importorskip("keras")
    ref, mine = make(keras), make(fk)
    ref(x)  # Keras builds a subclass on its first call
    rng = np.random.default_rng(0)
    ref.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32)
                     for w in ref.get_weights()])
    mine.build((None,) + x.shape[1:])
    mine.set_weights(ref.get_weights())
    return keras, ref, mine


def data(n=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_a_subclass_builds_predicts_and_trains_like_keras():
    x, y = data()
    keras, ref, mine = twins(lambda K: net(K, dropout=0.0), x)
    assert re.fullmatch(r"net(_\d+)?", mine.name)  # Keras' name: the class's, snake case
    assert [type(layer).__name__ for layer in mine.layers] == \
        [type(layer).__name__ for layer in ref.layers]
    assert [w.shape for w in mine.get_weights()] == [w.shape for w in ref.get_weights()]
    np.testing.assert_allclose(mine.predict(x, verbose=0), ref.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mine(x), ref(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mine(x, training=True), ref(x, training=True), rtol=1e-5,
                               atol=1e-6)  # BatchNormalization on the batch's statistics
    for m, K in ((ref, keras), (mine, fk)):
        m.compile(K.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    runs = [m.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, mine)]
    assert list(runs[1]) == list(runs[0])
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5)
    # the trained weights; the moving variance follows torch's unbiased rule (README)
    for k, (a, b) in enumerate(zip(mine.get_weights(), ref.get_weights())):
        if k != 5:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    lines = []
    mine.summary(print_fn=lines.append)
    assert f'Model: "{mine.name}"' in lines[0] and "(BatchNormalization)" in lines[0]


def test_training_reaches_dropout_and_batch_normalization():
    """Dropout is on in fit and model(x, training=True), off in predict and evaluate;
    BatchNormalization's moving statistics move in fit only."""
    x, y = data()
    model = net(fk)
    model.compile("sgd", "sparse_categorical_crossentropy")
    first = model.predict(x, verbose=0)  # built here, from the data
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    np.testing.assert_array_equal(model(x), first)
    assert not np.allclose(model(x, training=True), first)
    assert model.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    moving = model.norm.get_weights()[2].copy()
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(model.norm.get_weights()[2], moving)
    moving = model.norm.get_weights()[2].copy()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.norm.get_weights()[2], moving)


def test_weights_files_and_several_outputs(tmp_path):
    """save_weights / load_weights into a new instance; model.save writes the weights
    (the class is not registered: as Keras needs it in custom_objects, load_model says to
    pass an instance to fastnn.load); a subclass returning a dict, compiled (with a loss
    dict) before it is built, trains like Keras."""
    x, y = data()
    model = net(fk)
    model.build((None, 4))
    model.save_weights(tmp_path / "w.safetensors")
    again = net(fk)
    again.build((None, 4))
    again.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(tmp_path / "m.keras")  # the weights: the class is not registered
    with pytest.raises(ValueError, match=r"pass it, fastnn.load\(path, model=Net"):
        fk.models.load_model(tmp_path / "m.keras")
    again = net(fk)
    again.build((None, 4))
    fastnn.load(tmp_path / "m.keras", model=again)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="not built yet"):
        net(fk).summary()

    def two_heads(K):
        class TwoHeads(K.Model):
            def __init__(self):
                super().__init__()
                self.trunk = K.layers.Dense(5, activation="tanh")
                self.cls = K.layers.Dense(3, activation="softmax", name="cls")
                self.reg = K.layers.Dense(1, name="reg")

            def call(self, inputs):
                h = self.trunk(inputs)
                return {"label": self.cls(h), "value": self.reg(h)}
        return TwoHeads()

    keras, ref, mine = twins(two_heads, x)
    ys = {"label": y, "value": x[:, :1]}
    fresh = two_heads(fk)
    for m, K in ((ref, keras), (fresh, fk)):
        m.compile(K.optimizers.SGD(0.1), loss={"value": "mse",
                                               "label": "sparse_categorical_crossentropy"},
                  metrics={"label": ["accuracy"]})
    fresh.build((None, 4))
    fresh.set_weights(ref.get_weights())
    runs = [m.fit(x, ys, epochs=2, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, fresh)]
    assert list(runs[1]) == list(runs[0])
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fresh.evaluate(x, ys, verbose=0),
                               ref.evaluate(x, ys, verbose=0), rtol=1e-4)
    got, want = fresh.predict(x, verbose=0), ref.predict(x, verbose=0)
    assert list(got) == list(want)


def subclass_calling(body):
    class Bad(fk.Model):
        def __init__(self):
            super().__init__()
            self.dense = fk.layers.Dense(2)

        def call(self, inputs, training=None):
            return body(self, inputs, training)
    return Bad()


@pytest.mark.parametrize("body, match", [
    (lambda self, x, training: self.dense(x) if training else x, "branch on `training`"),
    (lambda self, x, training: self.dense(x) if x > 0 else x, "comparison"),
    (lambda self, x, training: self.dense(x) * 2, r"\* with a int"),
    (lambda self, x, training: self.dense(x) / self.dense(x), "other than"),
    (lambda self, x, training: self.dense(np.tanh(x)), "NumPy"),
    (lambda self, x, training: self.dense(x[:, :2]), "conversion"),
    (lambda self, x, training: self.dense(x, training=True), "training=True per call"),
    (lambda self, x, training: 3, "output 0 must be a KerasTensor"),
])
def test_what_a_recorded_graph_cannot_do_raises_clearly(body, match):
    """Each raises when the model is built (by predict, build or a call), naming what
    cannot be recorded (a TracingError, a TypeError, but for the bad output)."""
    for build in (lambda m: m.predict(np.ones((2, 4), np.float32), verbose=0),
                  lambda m: m.build((None, 4)), lambda m: m(fk.Input((4,)))):
        with pytest.raises(TracingError if "KerasTensor" not in match and "per call" not in
                           match else TypeError, match=match):
            build(subclass_calling(body))


def test_operators_between_tensors_are_merge_layers_like_keras():
    """A residual call written with + - * between tensors of one shape (Keras' operators)
    predicts and trains as Keras."""
    def residual(K):
        class Residual(K.Model):
            def __init__(self):
                super().__init__()
                self.inner = K.layers.Dense(4, activation="tanh")
                self.gate = K.layers.Dense(4, activation="sigmoid")
                self.head = K.layers.Dense(2)

            def call(self, inputs):
                x = inputs + self.inner(inputs)
                return self.head(x * self.gate(x) - inputs)
        return Residual()

    x, _ = data()
    y = np.stack([x.sum(1), x[:, 0] * x[:, 1]], 1)
    keras, ref, mine = twins(residual, x)
    np.testing.assert_allclose(mine.predict(x, verbose=0), ref.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    for m, K in ((ref, keras), (mine, fk)):
        m.compile(K.optimizers.SGD(0.05), "mse", metrics=["mae"])
    runs = [m.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, mine)]
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("as_dict", [False, True])
def test_several_inputs_like_keras(as_dict):
    """call gets the inputs as the data comes, a list (or a dict by name) of tensors."""
    def two_inputs(K):
        class TwoInputs(K.Model):
            def __init__(self):
                super().__init__()
                self.left = K.layers.Dense(3, activation="relu")
                self.right = K.layers.Dense(3, activation="relu")
                self.join = K.layers.Concatenate()
                self.head = K.layers.Dense(2, activation="softmax")

            def call(self, inputs):
                a, b = (inputs["a"], inputs["b"]) if isinstance(inputs, dict) else inputs
                return self.head(self.join([self.left(a), self.right(b)]))
        return TwoInputs()

    keras = pytest.importorskip("keras")
    x, y = data()
    xs = [x, x[:, :2] * 2]
    xs = {"a": xs[0], "b": xs[1]} if as_dict else xs
    ref, mine = two_inputs(keras), two_inputs(fk)
    ref(xs)
    mine.predict(xs, verbose=0)  # built from the data
    mine.set_weights(ref.get_weights())
    np.testing.assert_allclose(mine.predict(xs, verbose=0), ref.predict(xs, verbose=0),
                               rtol=1e-5, atol=1e-6)
    for m, K in ((ref, keras), (mine, fk)):
        m.compile(K.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    runs = [m.fit(xs, y % 2, epochs=2, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, mine)]
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5)


def test_a_built_subclass_exports_to_onnx(tmp_path):
    """The graph a subclass recorded exports as any graph: onnxruntime predicts as
    model.predict (Dropout off, BatchNormalization on its moving statistics)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastnn.onnx
    x, _ = data()
    model = net(fk)
    model.build((None, 4))
    fastnn.onnx.export(model, tmp_path / "net.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "net.onnx")), full_check=True)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0],
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
