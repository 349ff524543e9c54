"""fastnn.keras models with several outputs (a list, tuple or dict of them) as Keras 3
users train them, against real Keras 3 on the same weights and data: predict's
structure and values, compile's loss per output (one for all, a list, a dict),
loss_weights and metrics per output, the History of a few epochs of SGD with Keras' log
names ('loss', '<output>_loss', '<output>_<metric>', val_*), evaluate's list in Keras'
order, the *_on_batch methods, y and sample_weight as lists or dicts, callbacks' logs,
save/load, summary and ONNX export."""
import numpy as np
import pytest

from fastnn import keras as fk


def heads(K, form="list"):
    """An image trunk with three heads: softmax classes ('cls'), a regression ('reg')
    and a channels-last feature map ('map', NHWC out of an NCHW convolution)."""
    inp = K.Input((6, 6, 2), name="img")
    conv = K.layers.Conv2D(3, 3, activation="relu", name="conv")(inp)
    flat = K.layers.Flatten()(conv)
    hidden = K.layers.Dense(5, activation="tanh")(flat)
    cls = K.layers.Dense(3, activation="softmax", name="cls")(hidden)
    reg = K.layers.Dense(2, name="reg")(hidden)
    fmap = K.layers.Conv2D(1, 1, name="map")(conv)
    outputs = {"list": [cls, reg, fmap], "tuple": (cls, reg, fmap),
               "dict": {"reg_out": reg, "cls_out": cls, "map_out": fmap}}[form]
    return K.Model(inp, outputs)


def twins(form="list", seed=0):
    keras = pytest.importorskip("keras")
    ref, mine = heads(keras, form), heads(fk, form)
    rng = np.random.default_rng(seed)
    ref.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32)
                     for w in ref.get_weights()])
    mine.set_weights(ref.get_weights())
    return keras, ref, mine


def data(n=10, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6, 6, 2)).astype(np.float32),
            [rng.integers(0, 3, n), rng.standard_normal((n, 2)).astype(np.float32),
             rng.standard_normal((n, 4, 4, 1)).astype(np.float32)],
            rng.random(n).astype(np.float32))


def assert_same(got, want, rtol=1e-4):
    """Two results of the same structure (arrays, numbers, lists, tuples, dicts)."""
    assert type(got) is type(want) or (np.isscalar(got) and np.isscalar(want)) or \
        isinstance(want, np.ndarray), (type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want), (list(got), list(want))
        for k in want:
            assert_same(got[k], want[k], rtol)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b, rtol)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5)


@pytest.mark.parametrize("form", ["list", "tuple", "dict"])
def test_predict_returns_keras_structure(form):
    keras, ref, mine = twins(form)
    x, _, _ = data()
    assert mine.output_names == ref.output_names if form != "dict" else \
        mine.output_names == ["cls_out", "map_out", "reg_out"]
    assert mine.output_shape == ref.output_shape
    for call in (lambda m: m.predict(x, verbose=0), lambda m: m.predict(x, batch_size=3,
                                                                         verbose=0),
                 lambda m: m.predict_on_batch(x)):
        assert_same(call(mine), call(ref), 1e-5)
    assert_same(mine(x), ref(x).__class__(np.asarray(v) for v in ref(x)) if form != "dict"
                else {k: np.asarray(v) for k, v in ref(x).items()}, 1e-5)


def compile_both(keras, ref, mine, **kwargs):
    for m, K in ((ref, keras), (mine, fk)):
        m.compile(K.optimizers.SGD(0.05, momentum=0.9), **kwargs)


def test_fit_evaluate_and_batches_with_a_loss_list_like_keras():
    """A loss list, loss_weights and metrics (list of lists) per output: History of 3
    epochs of SGD with validation data and sample weights, evaluate's list in Keras'
    order (loss, the output losses, the metrics sorted), the *_on_batch methods with y as a
    dict by output name and per-output sample weights, every batch's logs."""
    keras, ref, mine = twins()
    x, ys, w = data()
    compile_both(keras, ref, mine, loss=["sparse_categorical_crossentropy", "mse", "mae"],
                 loss_weights=[1.0, 0.5, 2.0], metrics=[["accuracy"], ["mae", "mse"], None])
    logs = [[], []]
    runs = [m.fit(x, ys, sample_weight=[w, w, None], validation_data=(x[:6], [y[:6] for y in ys]),
                  epochs=3, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[K.callbacks.LambdaCallback(
                      on_train_batch_end=lambda b, logs, seen=seen: seen.append(dict(logs)))]
                  ).history
            for m, K, seen in ((ref, keras, logs[0]), (mine, fk, logs[1]))]
    assert list(runs[1]) == list(runs[0])
    assert "cls_loss" in runs[0] and "reg_mse" in runs[0] and "val_map_loss" in runs[0]
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    assert [list(lg) for lg in logs[1]] == [list(lg) for lg in logs[0]]
    for a, b in zip(logs[1], logs[0]):
        np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=1e-4, atol=1e-5)
    for a, b in zip(mine.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    by_name = dict(zip(["cls", "reg", "map"], ys))
    per_output_w = [w, np.ones_like(w), None]
    for call in (lambda m: m.evaluate(x, ys, verbose=0),
                 lambda m: m.evaluate(x, ys, sample_weight=[None, w, None], batch_size=3,
                                      verbose=0, return_dict=True),
                 lambda m: m.test_on_batch(x, by_name, sample_weight=per_output_w),
                 lambda m: m.train_on_batch(x, tuple(ys), return_dict=True),
                 lambda m: m.train_on_batch(x, by_name)):
        assert_same(call(mine), call(ref))


def test_dict_outputs_with_dicts_everywhere_like_keras():
    """A dict of outputs with the loss, loss_weights, metrics, y and sample_weight as
    dicts by output name: History with validation_split, evaluate's list (the output
    losses in the loss dict's order, as Keras), predict's dict in the model's key
    order."""
    keras, ref, mine = twins("dict")
    x, (labels, reg, fmap), w = data(12)
    y = {"reg_out": reg, "map_out": fmap, "cls_out": labels}
    compile_both(keras, ref, mine,
                 loss={"reg_out": "huber", "cls_out": "sparse_categorical_crossentropy",
                       "map_out": "mse"},
                 loss_weights={"cls_out": 0.3, "reg_out": 1.5, "map_out": 1.0},
                 metrics={"cls_out": ["sparse_categorical_accuracy", "accuracy"],
                          "reg_out": "mae"})
    sample_weight = {"reg_out": w, "cls_out": w[::-1].copy(), "map_out": None}
    runs = [m.fit(x, y, sample_weight=sample_weight, validation_split=0.25, epochs=2,
                  batch_size=3, shuffle=False, verbose=0).history for m in (ref, mine)]
    assert list(runs[1]) == list(runs[0])
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    for call in (lambda m: m.evaluate(x, y, verbose=0),
                 lambda m: m.evaluate(x, y, verbose=0, return_dict=True),
                 lambda m: m.train_on_batch(x, y, sample_weight=sample_weight),
                 lambda m: m.predict(x, verbose=0)):
        assert_same(call(mine), call(ref))


def test_one_loss_for_every_output_like_keras():
    """One loss (and a flat metrics list with an entry per output) for every output:
    '<output>_loss' logs, the total their sum; the batch logs of evaluate's callbacks; a
    single sample_weight array weights every output."""
    keras, ref, mine = twins()
    x, (labels, reg, fmap), w = data()
    ys = [np.eye(3, dtype=np.float32)[labels], reg, fmap]
    compile_both(keras, ref, mine, loss="mse", metrics=["categorical_accuracy", "mae",
                                                        None])
    runs = [m.fit(x, ys, epochs=2, batch_size=4, shuffle=False, verbose=0).history
            for m in (ref, mine)]
    assert list(runs[1]) == list(runs[0]) == ["cls_categorical_accuracy", "cls_loss", "loss",
                                              "map_loss", "reg_loss", "reg_mae"]
    for key in runs[0]:
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-4, atol=1e-5)
    logs = [[], []]
    for m, K, seen in ((ref, keras, logs[0]), (mine, fk, logs[1])):
        m.evaluate(x, ys, batch_size=4, verbose=0, callbacks=[K.callbacks.LambdaCallback(
            on_test_batch_end=lambda b, logs, seen=seen: seen.append(dict(logs)))])
    assert_same(logs[1], logs[0])
    # one array weights every output (Keras' TensorFlow backend fails to broadcast it
    # over the map's pixels)
    assert_same(mine.evaluate(x, ys, sample_weight=w, verbose=0),
                mine.evaluate(x, ys, sample_weight=[w, w, w], verbose=0), 1e-6)


@pytest.mark.parametrize("form", ["list", "tuple", "dict"])
def test_save_load_summary_and_onnx_of_several_outputs(form, tmp_path):
    """model.save / load_model keep the outputs' structure, the compile settings per
    output and the optimizer state; summary lists every head; the ONNX file has one
    graph output per model output (Keras' flat order), as predict computes them."""
    keras, ref, mine = twins(form)
    x, (labels, reg, fmap), w = data()
    y = [labels, reg, fmap] if form != "dict" else {"cls_out": labels, "reg_out": reg,
                                                    "map_out": fmap}
    loss = {name: kind for name, kind in zip(mine.output_names, (
        "sparse_categorical_crossentropy", "mae", "mse"))} if form == "dict" else \
        ["sparse_categorical_crossentropy", "mse", "mae"]
    mine.compile(fk.optimizers.Adam(0.01), loss=loss, metrics=[["accuracy"], [], ["mae"]]
                 if form != "dict" else {"cls_out": "accuracy"},
                 loss_weights=[2.0, 1.0, 0.5] if form != "dict" else
                 {"cls_out": 2.0, "map_out": 1.0, "reg_out": 0.5})
    mine.fit(x, y, epochs=1, batch_size=4, verbose=0)
    mine.save(tmp_path / "m.keras")
    loaded = fk.models.load_model(tmp_path / "m.keras")
    assert loaded.output_names == mine.output_names
    assert_same(loaded.predict(x, verbose=0), mine.predict(x, verbose=0), 1e-6)
    assert_same(loaded.evaluate(x, y, verbose=0, return_dict=True),
                mine.evaluate(x, y, verbose=0, return_dict=True), 1e-6)
    assert_same(loaded.train_on_batch(x, y), mine.train_on_batch(x, y), 1e-5)  # Adam's state
    lines = []
    mine.summary(print_fn=lines.append)
    for row in ("cls (Dense)", "reg (Dense)", "map (Conv2D)"):
        assert row in lines[0]
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastnn.onnx
    fastnn.onnx.export(mine, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})
    flat = mine.predict(x, verbose=0)
    flat = [flat[k] for k in sorted(flat)] if form == "dict" else flat
    assert len(got) == 3
    for a, b in zip(got, flat):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_model_with_several_outputs_is_a_layer_like_keras(tmp_path):
    """A model with several outputs called on a tensor gives its outputs' structure,
    which the outer model uses like any tensors."""
    keras = pytest.importorskip("keras")

    def build(K):
        inner = heads(K, "dict")
        inp = K.Input((6, 6, 2))
        outs = inner(inp)
        both = K.layers.Concatenate()([outs["cls_out"], outs["reg_out"]])
        return K.Model(inp, [K.layers.Dense(2, name="top")(both), outs["map_out"]])

    ref, mine = build(keras), build(fk)
    mine.set_weights(ref.get_weights())
    x, _, _ = data()
    assert_same(mine.predict(x, verbose=0), ref.predict(x, verbose=0), 1e-5)
    mine.save(tmp_path / "nested.keras")
    assert_same(fk.models.load_model(tmp_path / "nested.keras").predict(x, verbose=0),
                ref.predict(x, verbose=0), 1e-5)
