"""fastnn.keras' functional API as Keras 3 users write it: merge layers (residual
blocks, Inception-style concatenation, of NHWC inputs and NCHW convolution outputs),
several inputs (lists and dicts of arrays), shared layers, models nested as layers, and
the smaller layers (ReLU, LeakyReLU, Softmax, ZeroPadding2D, Reshape, Rescaling,
Identity, initializers), each against real Keras 3 on the same weights: predictions,
get_weights order and a few training steps' losses (SGD: the same formula in both)."""
import re

import numpy as np
import pytest

from fastnn import keras as fk


def twins(build, seed=0):
    """(real Keras model, fastnn.keras model) from build(K), fastnn's with the Keras
    model's weights (perturbed, so biases are not all zero)."""
    keras = pytest.importorskip("keras")
    ref, mine = build(keras), build(fk)
    rng = np.random.default_rng(seed)
    ref.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32)
                     for w in ref.get_weights()])
    assert [w.shape for w in mine.get_weights()] == [w.shape for w in ref.get_weights()]
    mine.set_weights(ref.get_weights())
    return ref, mine


def keras_kinds(model):
    """model.layers' classes (Keras' Functional is fastnn.keras' Model), without Keras'
    InputLayers, and their weights' shapes: the order get_weights follows."""
    return [({"Functional": "Model"}.get(type(layer).__name__, type(layer).__name__),
             [w.shape for w in layer.get_weights()])
            for layer in model.layers if type(layer).__name__ != "InputLayer"]


def assert_predicts_like(ref, mine, x):
    np.testing.assert_allclose(mine.predict(x, verbose=0), ref.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def assert_trains_like(ref, mine, x, y, loss="sparse_categorical_crossentropy", epochs=3):
    """A few epochs of SGD with momentum, unshuffled batches: the same losses (and
    accuracies) epoch by epoch and the same weights after."""
    for m, K in ((ref, __import__("keras")), (mine, fk)):
        m.compile(K.optimizers.SGD(0.05, momentum=0.9), loss, metrics=["accuracy"])
    runs = [m.fit(x, y, epochs=epochs, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, mine)]
    assert list(runs[1]) == list(runs[0])
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    for a, b in zip(mine.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(mine.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0),
                               rtol=1e-4, atol=1e-5)


def residual_inception(K):
    """A residual block and an Inception-style concatenation on images, then Flatten and
    Dense: the layouts meet (the NHWC input added to an NCHW convolution output)."""
    inp = K.Input((6, 6, 3))
    x = K.layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    y = K.layers.Conv2D(3, 3, padding="same")(x)
    z = K.layers.Add()([inp, y])  # NHWC + NCHW
    a = K.layers.Conv2D(2, 1, activation="relu")(z)
    b = K.layers.Conv2D(4, 3, padding="same")(z)
    c = K.layers.MaxPooling2D(3, strides=1, padding="same")(z)
    m = K.layers.Concatenate()([a, b, c, inp])  # channels; NCHW with an NHWC input
    m = K.layers.Concatenate(axis=1)([m, m])  # rows
    z4 = K.layers.Concatenate()([z, z, z, z])
    m = K.layers.Concatenate(axis=2)([m, K.layers.Concatenate(axis=1)([z4, z4])])
    out = K.layers.Dense(3, activation="softmax")(K.layers.Flatten()(m))
    return K.Model(inp, out)


def test_residual_and_inception_blocks_match_keras(tmp_path):
    ref, mine = twins(residual_inception)
    assert keras_kinds(mine) == keras_kinds(ref)
    rng = np.random.default_rng(1)
    x = rng.random((8, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    assert_predicts_like(ref, mine, x)
    assert mine.count_params() == ref.count_params()
    assert [layer.output_shape_keras for layer in mine.layers] == \
        [tuple(layer.output.shape) for layer in ref.layers[1:]]
    assert_trains_like(ref, mine, x, y)
    path = tmp_path / "w.safetensors"
    mine.save_weights(path)
    other = residual_inception(fk)
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), mine.predict(x))


@pytest.mark.parametrize("kind", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                  "Minimum", "Concatenate"])
@pytest.mark.parametrize("images", [False, True])
def test_merge_layers_match_keras(kind, images):
    """Every merge layer on vectors and on images (one input NHWC, the other an NCHW
    convolution output), forward and training (the gradients of each input: the
    weights before each branch)."""
    shape = (5, 5, 2) if images else (4,)

    def build(K):
        inp = K.Input(shape)
        if images:
            a = K.layers.Conv2D(2, 3, padding="same")(inp)
            b = K.layers.Activation("tanh")(inp)
        else:
            a = K.layers.Dense(4, activation="tanh")(inp)
            b = K.layers.Dense(4)(inp)
        merged = getattr(K.layers, kind)()([a, b])
        if kind not in ("Subtract",):
            merged = getattr(K.layers, kind)()([merged, a, b])  # three inputs
        return K.Model(inp, K.layers.Dense(3, activation="softmax")(
            K.layers.Flatten()(merged)))

    ref, mine = twins(build)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8,) + shape).astype(np.float32)
    assert_predicts_like(ref, mine, x)
    assert_trains_like(ref, mine, x, rng.integers(0, 3, 8))


def two_inputs(K):
    image, vector = K.Input((5, 5, 1), name="image"), K.Input((3,), name="meta")
    h = K.layers.Flatten()(K.layers.Conv2D(2, 3)(image))
    m = K.layers.Dense(4, activation="relu")(vector)
    out = K.layers.Dense(3, activation="softmax")(K.layers.Concatenate()([h, m]))
    return K.Model([image, vector], out)


def test_several_inputs_as_a_list_or_a_dict_like_keras():
    ref, mine = twins(two_inputs)
    assert keras_kinds(mine) == keras_kinds(ref)
    rng = np.random.default_rng(3)
    xs = [rng.random((10, 5, 5, 1)).astype(np.float32),
          rng.standard_normal((10, 3)).astype(np.float32)]
    y = rng.integers(0, 3, 10)
    assert_predicts_like(ref, mine, xs)
    by_name = {"meta": xs[1], "image": xs[0]}
    np.testing.assert_allclose(mine.predict(by_name), ref.predict(by_name, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mine(xs), ref(xs), rtol=1e-5, atol=1e-6)
    assert_trains_like(ref, mine, xs, y)
    mine.fit(by_name, y, validation_data=(xs, y), validation_split=0.0, verbose=0)
    with pytest.raises(ValueError, match="2 inputs"):
        mine.predict(xs[0])
    with pytest.raises(ValueError, match="keyed by the Inputs' names"):
        mine.predict({"image": xs[0]})
    with pytest.raises(ValueError, match=r"x\[1\].*shape"):
        mine.predict([xs[0], xs[1][:, :2]])
    with pytest.raises(ValueError, match="same length"):
        mine.predict([xs[0], xs[1][:4]])


def shared(K):
    inp = K.Input((5, 5, 2))
    conv = K.layers.Conv2D(2, 3, padding="same", activation="tanh")
    a = conv(inp)
    b = conv(a)  # NCHW in
    dense = K.layers.Dense(4, activation="tanh")
    flat = K.layers.Flatten()
    h = K.layers.Add()([dense(flat(a)), dense(flat(b))])
    return K.Model(inp, K.layers.Dense(3, activation="softmax")(h))


def test_shared_layers_share_weights_like_keras():
    """One Dense and one Conv2D each called on two tensors (the Conv2D on an NHWC input
    and on an NCHW convolution output): one set of weights, the gradients of both calls
    summed."""
    ref, mine = twins(shared)
    assert keras_kinds(mine) == keras_kinds(ref)
    assert len(mine.get_weights()) == 6
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 5, 5, 2)).astype(np.float32)
    assert_predicts_like(ref, mine, x)
    assert_trains_like(ref, mine, x, rng.integers(0, 3, 8))


def nested(K):
    features = K.Sequential([K.layers.Input((6, 6, 1)), K.layers.Conv2D(2, 3),
                             K.layers.Flatten()], name="features")
    inner_in = K.Input((6, 6, 1))
    inner = K.Model(inner_in, K.layers.Dense(4, activation="tanh")(features(inner_in)),
                    name="inner")
    head = K.Sequential([K.layers.Dense(3, activation="softmax")], name="head")
    inp = K.Input((6, 6, 1))
    conv = K.layers.Conv2D(1, 3, padding="same")(inp)  # NCHW into the nested model
    h = K.layers.Concatenate()([inner(inp), inner(conv)])
    return K.Model(inp, head(h))


def test_nested_models_are_layers_like_keras():
    """A Sequential and a functional model (itself holding a Sequential) used as layers,
    one of them twice; get_weights in Keras' order; training updates the inner models'
    weights (the same objects)."""
    ref, mine = twins(nested)
    assert keras_kinds(mine) == keras_kinds(ref)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    assert_predicts_like(ref, mine, x)
    inner = mine.get_layer("inner")
    assert_trains_like(ref, mine, x, rng.integers(0, 3, 8))
    for a, b in zip(inner.get_weights(), ref.get_layer("inner").get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    mine.get_layer("inner").trainable = False
    before = inner.get_weights()
    mine.fit(x, rng.integers(0, 3, 8), verbose=0)
    for a, b in zip(inner.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_layer_added_to_a_nested_sequential_after_fit_is_run_and_trained():
    """A Dense added to a Sequential nested in another after fit: the outer model's
    predict graph and its training graph (the logits before the softmax) kept the old
    structure and the next fit trained it, the new layer never; now both trace again,
    the optimizer takes the new weights, and the outer model predicts what its layers
    compute by hand. The next fit asks for a new optimizer, as after Sequential.add on
    the model itself (Keras requires one holding every weight)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    inner = fk.Sequential([fk.Input((5,)), fk.layers.Dense(4, activation="relu")])
    head = fk.layers.Dense(3, activation="softmax")
    outer = fk.Sequential([inner, head])
    outer.compile(fk.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    outer.fit(x, y, verbose=0)
    extra = fk.layers.Dense(4, activation="tanh")
    inner.add(extra)
    assert len(outer.get_weights()) == 6
    np.testing.assert_allclose(outer.predict(x, verbose=0),
                               head(extra(inner.layers[0](x))), rtol=1e-5, atol=1e-6)
    before = [w.copy() for w in extra.get_weights()]
    with pytest.raises(ValueError, match="compile the model again with a new optimizer"):
        outer.fit(x, y, verbose=0)
    outer.compile(fk.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    outer.fit(x, y, verbose=0)
    for a, b in zip(extra.get_weights(), before):
        assert not np.allclose(a, b)
    np.testing.assert_allclose(outer.predict(x, verbose=0),
                               head(extra(inner.layers[0](x))), rtol=1e-5, atol=1e-6)


def transfer(K):
    """Keras' transfer-learning idiom: a frozen base model (a BatchNormalization in it,
    in inference mode as Keras 3 runs a frozen one) in a Sequential with a new head."""
    base = K.Sequential([K.layers.Input((6, 6, 2)), K.layers.Conv2D(3, 3),
                         K.layers.BatchNormalization(), K.layers.ReLU(),
                         K.layers.GlobalAveragePooling2D()], name="base")
    base.trainable = False
    return K.Sequential([base, K.layers.Dense(3, activation="softmax")])


def test_a_frozen_model_in_a_sequential_trains_like_keras():
    ref, mine = twins(transfer)
    assert keras_kinds(mine) == keras_kinds(ref)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    base = [w.copy() for w in mine.layers[0].get_weights()]
    assert_predicts_like(ref, mine, x)
    assert_trains_like(ref, mine, x, rng.integers(0, 3, 8))
    for a, b in zip(mine.layers[0].get_weights(), base):  # moving statistics too
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("build", [residual_inception, two_inputs, shared, nested,
                                   transfer])
def test_graphs_save_and_load_like_keras(build, tmp_path):
    """model.save / load_model of every kind of graph: the same layers, weights,
    predictions, compile settings and optimizer state (the next epoch's loss)."""
    model = build(fk)
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((6,) + s[1:]).astype(np.float32) for s in shapes]
    x = xs if len(xs) > 1 else xs[0]
    y = rng.integers(0, 3, 6)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = fk.models.load_model(tmp_path / "m.keras")
    assert keras_kinds(loaded) == keras_kinds(model)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    runs = [m.fit(x, y, epochs=2, shuffle=False, verbose=0).history for m in (model, loaded)]
    assert runs[0] == runs[1]


def test_small_layers_match_keras():
    def build(K):
        inp = K.Input((4, 4, 2))
        h = K.layers.Rescaling(1 / 2, offset=-0.25)(inp)
        h = K.layers.ZeroPadding2D(((1, 0), (2, 1)))(h)
        h = K.layers.Conv2D(3, 3, use_bias=False)(h)
        h = K.layers.LeakyReLU()(h)
        h = K.layers.ZeroPadding2D(1)(h)
        h = K.layers.Identity()(K.layers.ReLU()(h))
        h = K.layers.Softmax()(h)  # over the channels of NCHW images
        h = K.layers.Reshape((-1, 5))(h)
        h = K.layers.Softmax(axis=1)(K.layers.LeakyReLU(negative_slope=0.1)(h))
        h = K.layers.Reshape((3, 5, -1))(K.layers.Flatten()(h))
        h = K.layers.Flatten()(K.layers.Conv2D(2, 1, padding="same")(h))
        h = K.layers.Dense(4, use_bias=False)(h)
        return K.Model(inp, K.layers.Dense(3, activation="softmax")(K.layers.ReLU(
            negative_slope=0.2)(h)))

    ref, mine = twins(build)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 4, 4, 2)).astype(np.float32)
    assert [layer.output_shape_keras for layer in mine.layers] == \
        [tuple(layer.output.shape) for layer in ref.layers[1:]]
    assert_predicts_like(ref, mine, x)
    assert_trains_like(ref, mine, x, rng.integers(0, 3, 8))


@pytest.mark.parametrize("name", fk.layers.INITIALIZERS)
def test_initializers_have_keras_statistics(name):
    """Each initializer's weights (a Conv2D kernel, fans counted as Keras does, and a
    bias, fans its length) have the mean, spread and range of Keras' own."""
    keras = pytest.importorskip("keras")

    def weights(K):
        K.utils.set_random_seed(0)
        model = K.Sequential([K.layers.Input((6, 6, 40)),
                              K.layers.Conv2D(400, 3, kernel_initializer=name,
                                              bias_initializer=name)])
        return model.get_weights()

    for a, b in zip(weights(fk), weights(keras)):
        assert a.shape == b.shape
        error = 5 * b.std() / np.sqrt(b.size) + 1e-7  # of the sample mean and std
        assert abs(a.mean() - b.mean()) < error
        assert abs(a.std() - b.std()) < error
        if name != "random_normal":  # bounded: the largest reaches the bound
            assert abs(np.abs(a).max() - np.abs(b).max()) <= 0.1 * np.abs(b).max()


@pytest.mark.parametrize("make", [lambda L: L.LeakyReLU(-1), lambda L: L.ReLU(negative_slope=-0.5)])
def test_rectifiers_refuse_a_negative_slope_as_keras(make):
    """Keras refuses a negative slope (torch's LeakyReLU takes one): fastnn.keras took it."""
    with pytest.raises(ValueError, match="negative_slope must be >= 0"):
        make(fk.layers)
    keras = pytest.importorskip("keras")
    with pytest.raises(ValueError, match="negative"):
        make(keras.layers)


def test_graph_errors_name_the_layer():
    inp = fk.Input((4,))
    with pytest.raises(TypeError, match="list of at least two"):
        fk.layers.Add()(inp)
    with pytest.raises(ValueError, match="add_bad.*same shape"):
        fk.layers.Add(name="add_bad")([inp, fk.layers.Dense(3)(inp)])
    with pytest.raises(ValueError, match="takes exactly 2"):
        fk.layers.Subtract()([inp, inp, inp])
    with pytest.raises(ValueError, match="cat.*axis"):
        fk.layers.Concatenate(axis=3, name="cat")([inp, inp])
    dense = fk.layers.Dense(2, name="siamese")
    dense(inp)
    with pytest.raises(ValueError, match="siamese .Dense.: a shared layer .* first call"):
        dense(fk.Input((5,)))
    conv = fk.layers.Conv2D(2, 3, strides=2, padding="same")  # its padding fits 4x4
    conv(fk.Input((4, 4, 1)))
    with pytest.raises(ValueError, match="first call"):
        conv(fk.Input((5, 5, 1)))
    inner = fk.Model(inp, dense(inp))
    with pytest.raises(ValueError, match="input 0 must have shape"):
        inner(fk.Input((3,)))
    with pytest.raises(TypeError, match="training"):
        inner(fk.Input((4,)), training=False)
    with pytest.raises(ValueError, match=r"functional_\d+ \(Model\): takes 2 input\(s\), got 1"):
        fk.Sequential([two_inputs(fk)]).predict(np.ones((2, 5, 5, 1), np.float32))
    with pytest.raises(TypeError, match="Sequential.add: expected a fastnn.keras layer or "
                                        "model, got function"):
        fk.Sequential([fk.layers.Dense(2), fk.layers.Input])
    with pytest.raises(ValueError, match="input name 'x' is used 2 times"):
        fk.Model([fk.Input((2,), name="x"), fk.Input((2,), name="x")], inp)
    for bad in [dict(target_shape=(0, 2)), dict(target_shape=(-1, -1)),
                dict(target_shape="ab")]:
        with pytest.raises(ValueError, match="Reshape: target_shape"):
            fk.layers.Reshape(**bad)
    with pytest.raises(ValueError, match="cannot reshape"):
        fk.layers.Reshape((3, -1))(inp)
    with pytest.raises(ValueError, match="ZeroPadding2D: padding"):
        fk.layers.ZeroPadding2D(((1, 2), 3, 4))
    with pytest.raises(ValueError, match="kernel_initializer"):
        fk.layers.Dense(2, kernel_initializer="orthogonal")


def test_several_inputs_through_the_training_api_like_keras():
    """A two-input model through Keras' training API (weighted fit with validation data
    and a callback, evaluate with weights, the *_on_batch methods, predict with a
    callback): the same numbers as Keras on the same weights."""
    keras = pytest.importorskip("keras")
    ref, mine = twins(two_inputs)
    rng = np.random.default_rng(4)
    xs = [rng.random((8, 5, 5, 1)).astype(np.float32),
          rng.standard_normal((8, 3)).astype(np.float32)]
    y, w = rng.integers(0, 3, 8), rng.random(8).astype(np.float32)
    for m, K in ((ref, keras), (mine, fk)):
        m.compile(K.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    batches = [[], []]
    runs = [m.fit(xs, y, sample_weight=w, validation_data=(xs, y, w), batch_size=4,
                  shuffle=False, verbose=0, callbacks=[K.callbacks.LambdaCallback(
                      on_train_batch_end=lambda b, logs, seen=seen: seen.append(logs["loss"]))]
                  ).history for m, K, seen in ((ref, keras, batches[0]), (mine, fk, batches[1]))]
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    np.testing.assert_allclose(batches[1], batches[0], rtol=1e-4, atol=1e-5)
    for call in (lambda m: m.evaluate(xs, y, sample_weight=w, verbose=0, return_dict=True),
                 lambda m: m.test_on_batch(xs, y, sample_weight=w, return_dict=True),
                 lambda m: m.train_on_batch(xs, y, return_dict=True)):
        got, want = call(mine), call(ref)
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-4,
                                   atol=1e-5)
    np.testing.assert_allclose(mine.predict_on_batch(xs), ref.predict_on_batch(xs),
                               rtol=1e-5, atol=1e-5)
    ends = []
    np.testing.assert_allclose(
        mine.predict(xs, batch_size=3, callbacks=[fk.callbacks.LambdaCallback(
            on_predict_batch_end=lambda b, logs: ends.append(b))]),
        ref.predict(xs, verbose=0), rtol=1e-5, atol=1e-5)
    assert ends == [0, 1, 2]


def test_models_get_keras_default_names():
    """Every Sequential was named 'sequential' and every functional model 'functional'
    (Keras: sequential, sequential_1, ...), so models nested in another one had one name
    and get_layer found only the first; a layer name used twice, which Keras refuses, was
    taken."""
    inner = [fk.Sequential([fk.Input((3,)), fk.layers.Dense(3)]) for _ in range(2)]
    model = fk.Sequential([fk.Input((3,))] + inner)
    names = [m.name for m in inner + [model]]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"sequential(_\d+)?", name) for name in names)
    assert model.get_layer(names[1]) is inner[1]
    x = fk.Input((3,))
    names = [fk.Model(x, m(x)).name for m in inner]
    assert names[0] != names[1] and all(re.fullmatch(r"functional(_\d+)?", name)
                                        for name in names)
    for K in (pytest.importorskip("keras"), fk):  # Keras refuses a name used twice too
        x = K.Input((3,))
        with pytest.raises(ValueError, match="used 2 times"):
            K.Model(x, K.layers.Dense(2, name="d")(K.layers.Dense(2, name="d")(x)))
