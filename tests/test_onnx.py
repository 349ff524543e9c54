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


def modern_mlp():
    """LayerNorm (one and two trailing dimensions, no bias, no affine), GELU in both
    forms, SiLU, ELU, with weights off their defaults."""
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm((3, 8)), nn.GELU(), nn.Linear(8, 8),
                          nn.LayerNorm(8, eps=1e-3, bias=False), nn.SiLU(), nn.Linear(8, 6),
                          nn.ELU(0.7), nn.LayerNorm(6, elementwise_affine=False),
                          nn.GELU("tanh"), nn.Flatten(), nn.Linear(18, 4), input_shape=(3, 6))
    rng = np.random.default_rng(3)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 2
    return model, (3, 6)


def keras_graph():
    """Every merge of fastnn.keras on an NHWC input and an NCHW convolution output, a
    Rescaling, a Reshape, a shared Dense."""
    L = fk.layers
    inp = fk.Input((6, 6, 2))
    x = L.Rescaling(0.5, offset=0.1)(inp)
    a = L.Conv2D(2, 3, padding="same")(x)
    merged = [getattr(L, kind)()([x, a, x][:2 if kind == "Subtract" else 3])
              for kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")]
    h = L.Reshape((6, -1))(L.Concatenate(axis=2)(merged))
    dense = L.Dense(4, activation="tanh")
    h = L.Add()([dense(L.Flatten()(h)), dense(L.Reshape((-1,))(h))])
    return fk.Model(inp, L.Dense(3, activation="softmax")(h)), (6, 6, 2)


CASES = {
    "keras-graph": keras_graph,
    "keras-same-strided": keras_same_strided,
    "autoencoder": lambda: (nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.ConvTranspose2d(4, 1, (2, 3), stride=(1, 2), dilation=(2, 1), bias=False)),
        (2, 8, 6)),
    # output_padding below the dilation but not the stride, as torch takes it: onnxruntime
    # refused the ConvTranspose ("output_padding may be too large for stride")
    "conv-transpose-output-padding-over-stride": lambda: (nn.Sequential(
        nn.ConvTranspose2d(2, 4, 3, output_padding=(1, 0), dilation=2, padding=(0, 1)),
        nn.ConvTranspose2d(4, 2, 2, stride=(2, 1), output_padding=(2, 1), dilation=3,
                           padding=(1, 0), bias=False),
        nn.ConvTranspose2d(2, 2, 3, output_padding=1, dilation=2, padding=1, seed=0)),
        (2, 5, 4)),
    "layernorm-gelu-silu-elu": modern_mlp,
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
    onnx.checker.check_model(proto, full_check=True)  # shape inference agrees too
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
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
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


def test_cli_export_onnx_only_on_rank_0(tmp_path, monkeypatch):
    """Under mpirun every rank exported the file (--save wrote it on rank 0 only)."""
    from test_cli import write_split
    from fastnn import distributed, train
    write_split(tmp_path, "fashion-mnist", "train", 32, 0)
    write_split(tmp_path, "fashion-mnist", "test", 32, 1)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    out, saved = tmp_path / "rank1.onnx", tmp_path / "rank1.fnn"
    assert train.main(["--model", "mlp", "--dataset", "fashion-mnist", "--data-root",
                       str(tmp_path), "--no-download", "--no-progress", "--limit", "32",
                       "--save", str(saved), "--export-onnx", str(out)]) == 0
    assert not out.exists() and not saved.exists()


def test_export_builds_a_keras_sequential_for_input_shape(tmp_path):
    """A fastnn.keras Sequential without an input shape could not be exported even with
    input_shape given (it asked to be built first)."""
    model = fk.Sequential([fk.layers.Dense(3), fk.layers.Dense(2)])
    fonnx.export(model, tmp_path / "m.onnx", input_shape=(5,))
    assert model.input_shape == (None, 5)
    with pytest.raises(ValueError, match="export: input_shape must hold positive ints"):
        fonnx.export(fk.Sequential([fk.layers.Dense(3)]), tmp_path / "n.onnx",
                           input_shape=(0,))


@pytest.mark.parametrize("start, end", [(2, 3), (-3, -2), (1, 2)])
def test_partial_flatten_with_dims_after_it(start, end, tmp_path, rng):
    """Flatten(2, 3) of (N, 2, 3, 4, 5) exported as Reshape [0, 0, -1, 0], whose 0 copies
    the input's dimension at the same index (4, not 5): the wrong shape and data."""
    model = nn.Sequential(nn.Flatten(start, end))
    path = tmp_path / "f.onnx"
    fonnx.export(model, path, input_shape=(2, 3, 4, 5))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 5):
        x = rng.standard_normal((n, 2, 3, 4, 5)).astype(np.float32)
        np.testing.assert_array_equal(run_onnx(path, x)[0], model.predict(x))


def test_keras_asymmetric_same_padding_exports(tmp_path, rng):
    """TensorFlow's 'same' padding with the odd row at the bottom (a Pad2d, zeros before
    a Conv2D and -inf before a MaxPooling2D) raised 'Pad2d has no ONNX form'."""
    model = fk.Sequential([
        fk.layers.Conv2D(3, 2, padding="same", input_shape=(6, 6, 2)),
        fk.layers.MaxPooling2D(3, strides=2, padding="same"), fk.layers.Flatten()])
    path = tmp_path / "k.onnx"
    fonnx.export(model, path, input_shape=(6, 6, 2))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 5):
        x = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(2, 2, 1, ceil_mode=True), nn.MaxPool2d(2, 3, ceil_mode=True),
    nn.AvgPool2d(2, 2, 1, ceil_mode=True), nn.AvgPool2d(4, 3, 2, ceil_mode=True),
    nn.AvgPool2d(3, 3, 1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 2, 1, count_include_pad=True)],
    ids=repr)
def test_ceil_mode_pooling_passes_shape_inference(pool, tmp_path, rng):
    """A ceil_mode pooling whose last window would start in the right padding (torch and
    onnxruntime drop it) exported as ceil_mode=1: ONNX's shape inference counts that
    window, so check_model(full_check=True) failed on the declared output shape (and
    onnxruntime warned). Now ceil mode is padding at the end, with the same windows."""
    model = nn.Sequential(pool, nn.Flatten(), input_shape=(2, 7, 7))
    path = tmp_path / "p.onnx"
    fonnx.export(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 5):
        x = rng.standard_normal((n, 2, 7, 7)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-6,
                                   atol=1e-6)


def test_circular_padding_exports_from_opset_19(tmp_path, rng):
    """The error said circular padding has no ONNX form 'before opset 19', yet opset=19
    raised it too; now it is a Pad in mode 'wrap' there. An opset newer than the onnx
    package knows was written (and onnxruntime refused the file)."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="circular"),
                          input_shape=(2, 6, 7))
    with pytest.raises(ValueError, match=r"0:0 \(Conv2d.*circular padding.*opset 19"):
        fonnx.export(model, tmp_path / "c.onnx")
    fonnx.export(model, tmp_path / "c.onnx", opset=19)
    x = rng.standard_normal((3, 2, 6, 7)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "c.onnx", x)[0], model.predict(x),
                               rtol=1e-5, atol=1e-5)
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"opset must be an int from 17 to {newest}"):
        fonnx.export(model, tmp_path / "n.onnx", opset=newest + 1)


def test_the_same_value_twice_among_the_outputs(tmp_path, rng):
    """Model(x, [h, h]) wrote two graph outputs both named output_1 (output_0 missing)."""
    x = fastnn.Input(shape=(3,))
    h = nn.Linear(3, 2)(x)
    model = fastnn.Model(x, [h, nn.ReLU()(h), h, x])
    path = tmp_path / "m.onnx"
    fonnx.export(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == [f"output_{k}" for k in range(4)]
    xb = rng.standard_normal((5, 3)).astype(np.float32)
    for got, want in zip(run_onnx(path, xb), model(xb)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


class TrainBranch(nn.Module):
    def __init__(self):
        self.fc, self.act, self.bn = nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3)

    def forward(self, x):  # a ReLU only while training
        return self.bn(self.act(self.fc(x)) if self.training else self.fc(x))


def test_export_in_training_mode_writes_the_eval_model(tmp_path, rng):
    """A model left in training mode exported its training-mode forward (here with a
    ReLU that predict does not apply); torch.onnx.export writes the eval-mode model, and
    so does this now, leaving every module's mode as it was."""
    model = TrainBranch()
    model.bn.eval()  # a mixed state, which export must not flatten
    fonnx.export(model, tmp_path / "t.onnx", input_shape=(3,))
    assert model.training and model.fc.training and not model.bn.training
    x = -np.abs(rng.standard_normal((4, 3))).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "t.onnx", x)[0], model.predict(x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, output_size", [(7, (2, 3)), (6, (4, None)), (5, 5), (3, 4)])
def test_adaptive_pooling_with_uneven_windows_exports(size, output_size, tmp_path, rng):
    """AdaptiveAvgPool2d whose windows differ in size (7 -> 2: 4 and 4 overlapping rows)
    raised 'ONNX's AveragePool cannot express'; now it is two MatMuls by averaging
    matrices (torch's windows: floor(i * n / o) to ceil((i + 1) * n / o))."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(output_size), input_shape=(2, size, size))
    path = tmp_path / "a.onnx"
    fonnx.export(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 5):
        x = rng.standard_normal((n, 2, size, size)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("layer, shape", [(nn.BatchNorm2d(3, track_running_stats=False),
                                           (3, 4, 5)),
                                          (nn.BatchNorm1d(3, track_running_stats=False,
                                                          affine=False), (3, 6)),
                                          (nn.BatchNorm1d(3, track_running_stats=False),
                                           (3,)),
                                          (nn.BatchNorm2d(3, track_running_stats=False,
                                                          bias=False), (3, 2, 2))],
                         ids=["2d", "1d-ncl", "1d", "2d-weight-only"])
def test_batchnorm_without_running_statistics_exports(layer, shape, opset, tmp_path, rng):
    """A BatchNorm without running statistics (track_running_stats=False: the batch's in
    eval mode too) raised 'ONNX's BatchNormalization needs them'; torch.onnx.export
    writes the batch's mean and variance (ReduceMean) into a BatchNormalization, as this
    does now (ReduceMean takes axes as an input from opset 18). bias=False: a zero shift."""
    for p in layer.parameters():
        p.data[:] = rng.standard_normal(3)
    model = nn.Sequential(layer, nn.Identity(), input_shape=shape)
    path = tmp_path / "b.onnx"
    fonnx.export(model, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (2, 5):
        x = (rng.standard_normal((n,) + shape) * 3 + 2).astype(np.float32)
        np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-4,
                                   atol=1e-5)


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


@pytest.mark.parametrize("opset", [17, 18, 19])
def test_layer_norm_and_smooth_activations_export_at_each_opset(opset, tmp_path, rng):
    """GELU (erf and tanh forms written out: no Gelu before opset 20), SiLU, ELU and
    LayerNormalization at opsets 17-19, with inputs in GELU's tails (|x| up to 12)."""
    model, shape = modern_mlp()
    path = tmp_path / f"m{opset}.onnx"
    proto = fonnx.export(model, path, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Erf", "Tanh", "Sigmoid", "Elu", "LayerNormalization"} <= ops and "Gelu" not in ops
    x = (rng.standard_normal((4,) + shape) * 4).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x)[0], model.predict(x), rtol=1e-5, atol=1e-5)
