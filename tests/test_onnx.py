"""fastnn.onnx.export: every layer and model kind run by onnxruntime with the predictions
of model.predict (1e-5), a dynamic batch dimension, and the CLI's --export-onnx."""
import numpy as np
import pytest

import fastnn
from fastnn import functional as F
from fastnn import keras as fk
from fastnn import models, nn

onnx = pytest.importorskip("onnx", reason="onnx not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
from fastnn import onnx as fonnx  # noqa: E402

# kernels of the branch that adds them (archk); until it is merged these tests skip
ARCH_KERNELS = ("batch_norm", "adaptive_avg_pool2d", "add", "concatenate")
needs_arch_kernels = pytest.mark.skipif(
    not all(hasattr(F, k) for k in ARCH_KERNELS),
    reason=f"needs the kernels {ARCH_KERNELS} (not on this branch yet)")


def run_onnx(path, *xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, xs)))


def residual_graph():
    x = fastnn.Input(shape=(3, 10, 10))
    h = nn.ReLU()(nn.Conv2d(3, 6, 3, padding="same")(x))
    r = nn.Conv2d(6, 6, 3, padding=1)(h)
    h = nn.LeakyReLU(0.2)(r + h)
    c = nn.Concatenate()([h, nn.Tanh()(nn.Conv2d(6, 2, 1)(h))])
    p = nn.AvgPool2d(2, padding=1)(nn.MaxPool2d(2)(c))
    out = nn.Softmax()(nn.Linear(8 * 3 * 3, 4)(nn.Dropout(0.2)(nn.Flatten()(p))))
    return fastnn.Model(x, out), (3, 10, 10)


class Subclassed(nn.Module):
    def __init__(self):
        self.conv = nn.Conv2d(2, 4, 3, stride=2, dilation=1, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3, bias=False)
        self.flat = nn.Flatten()

    def forward(self, x):
        return nn.Sigmoid()(self.fc(self.flat(nn.ReLU()(self.conv(x)))))


def keras_cnn():
    return fk.Sequential([
        fk.layers.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 2)),
        fk.layers.MaxPooling2D(), fk.layers.Conv2D(3, 3, padding="same"), fk.layers.Flatten(),
        fk.layers.Dense(5, activation="softmax")]), (12, 12, 2)


def keras_same_strided():
    """'same' padding where TensorFlow pads one more at the bottom/right (a Pad2d: zeros
    before the convolution, -inf before the max pool): export refused it."""
    return fk.Sequential([
        fk.layers.Conv2D(3, 3, strides=2, padding="same", input_shape=(8, 8, 2)),
        fk.layers.MaxPooling2D(3, strides=2, padding="same"), fk.layers.Flatten(),
        fk.layers.Dense(2)]), (8, 8, 2)


CASES = {
    "keras-same-strided": keras_same_strided,
    "mlp": lambda: (models.mlp(seed=0), (1, 28, 28)),
    "cnn": lambda: (models.cnn(seed=0), (1, 28, 28)),
    "residual": residual_graph,
    "subclassed": lambda: (Subclassed(), (2, 8, 8)),
    "keras-cnn": keras_cnn,
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=needs_arch_kernels)
                                  if c == "residual" else c for c in sorted(CASES)])
def test_onnxruntime_matches_predict(case, tmp_path, rng):
    model, shape = CASES[case]()
    path = tmp_path / "m.onnx"
    proto = fonnx.export(model, path, input_shape=shape)
    assert proto.opset_import[0].version >= 17
    for n in (1, 5):  # the batch dimension is dynamic
        x = rng.standard_normal((n,) + shape).astype(np.float32)
        (got,) = run_onnx(path, x)
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


@needs_arch_kernels
def test_onnx_resnet_and_batchnorm_in_eval_form(tmp_path, rng):
    model = models.resnet(seed=0)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    model.train()
    for _ in range(2):  # move the running statistics off their defaults
        model(x)
    path = tmp_path / "r.onnx"
    fonnx.export(model, path)
    assert "BatchNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
    np.testing.assert_allclose(run_onnx(path, x[:3])[0], model.predict(x[:3]), rtol=1e-5,
                               atol=1e-5)


@needs_arch_kernels
def test_multiple_inputs_and_outputs(tmp_path, rng):
    a, b = fastnn.Input(shape=(4,)), fastnn.Input(shape=(4,))
    s = nn.Linear(4, 3)(a) + nn.Linear(4, 3)(b)
    model = fastnn.Model([a, b], [s, nn.ReLU()(s)])
    path = tmp_path / "two.onnx"
    fonnx.export(model, path)
    xa, xb = (rng.standard_normal((2, 4)).astype(np.float32) for _ in range(2))
    got = run_onnx(path, xa, xb)
    want = model(xa, xb)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_torch_arguments_export(tmp_path, rng):
    """Pooling's ceil_mode and count_include_pad, Flatten's start_dim/end_dim and
    Softmax/LogSoftmax's dim export as the ONNX attributes (a Reshape for a partial
    Flatten)."""
    model = nn.Sequential(
        nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 2, 1, True, False),
        nn.Conv2d(3, 4, 1), nn.Flatten(2), nn.Softmax(1), nn.LogSoftmax(),
        nn.Flatten(1, 2), nn.Linear(4 * 16, 5), nn.LogSoftmax(dim=0))
    x = rng.standard_normal((2, 3, 11, 11)).astype(np.float32)
    fonnx.export(model, tmp_path / "m.onnx", input_shape=(3, 11, 11))
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x)[0], model.predict(x),
                               rtol=1e-5, atol=1e-5)


def test_export_errors(tmp_path):
    with pytest.raises(ValueError, match="pass input_shape"):
        fonnx.export(nn.Sequential(nn.Linear(2, 2)), tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="must be a fastnn model"):
        fonnx.export(nn.Linear(2, 2), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset must be an int from 17 to "):
        fonnx.export(models.mlp(), tmp_path / "x.onnx", input_shape=(1, 28, 28), opset=11)

    class Odd(nn.Module):
        def forward(self, x):
            return x * 2

        def backward(self, g, need_input_grad=True):
            return g * 2

    with pytest.raises(TypeError, match="Odd, which has no ONNX form"):
        fonnx.export(nn.Sequential(Odd()), tmp_path / "x.onnx", input_shape=(3,))


def test_cli_export_onnx(tmp_path):
    from test_cli import run_cli, write_split
    write_split(tmp_path, "fashion-mnist", "train", 64, 0)
    write_split(tmp_path, "fashion-mnist", "test", 32, 1)
    out = tmp_path / "cli.onnx"
    proc = run_cli(tmp_path, "--model", "cnn", "--dataset", "fashion-mnist", "--data-root",
                   str(tmp_path), "--no-download", "--no-progress", "--export-onnx", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"exported to {out}" in proc.stdout
    (got,) = run_onnx(out, np.zeros((2, 1, 28, 28), np.float32))
    assert got.shape == (2, 10)


def test_export_builds_a_keras_sequential_for_input_shape(tmp_path):
    """A fastnn.keras Sequential without an input shape could not be exported even with
    input_shape given (it asked to be built first)."""
    model = fk.Sequential([fk.layers.Dense(3), fk.layers.Dense(2)])
    fonnx.export(model, tmp_path / "m.onnx", input_shape=(5,))
    assert model.input_shape == (None, 5)
    with pytest.raises(ValueError, match="export: input_shape must hold positive ints"):
        fonnx.export(fk.Sequential([fk.layers.Dense(3)]), tmp_path / "n.onnx",
                           input_shape=(0,))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_predict(mode, tmp_path, rng):
    """A Pad node before the unpadded Conv; circular ("wrap") from opset 19, where it was
    refused at any opset ("no ONNX Pad mode before opset 19" even with opset=19)."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode, seed=0))
    path = tmp_path / "m.onnx"
    if mode == "circular":
        with pytest.raises(ValueError, match=r"circular padding .* \(pass opset=19\)"):
            fonnx.export(model, path, input_shape=(2, 5, 6))
    fonnx.export(model, path, input_shape=(2, 5, 6), opset=19)
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-5, atol=1e-5)
