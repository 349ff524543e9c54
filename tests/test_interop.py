"""PyTorch weights both ways (state_dicts of torch tensors straight into fastnn, fastnn's
back into torch) and safetensors files (fastnn.save_weights / load_weights against the
`safetensors` package), for every layer type."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import functional as F
from fastnn import nn

torch = pytest.importorskip("torch", reason="PyTorch not installed")
tnn = torch.nn

# kernels of the branch that adds them (archk); until it is merged these tests skip
ARCH_KERNELS = ("batch_norm", "adaptive_avg_pool2d", "add", "concatenate")
needs_arch_kernels = pytest.mark.skipif(
    not all(hasattr(F, k) for k in ARCH_KERNELS),
    reason=f"needs the kernels {ARCH_KERNELS} (not on this branch yet)")


def mlp_pair():
    return (nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.LeakyReLU(0.1),
                          nn.Dropout(0.3), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 6),
                          nn.Sigmoid(), nn.Linear(6, 4, bias=False), nn.Softmax()),
            tnn.Sequential(tnn.Linear(12, 16), tnn.ReLU(), tnn.Linear(16, 16),
                           tnn.LeakyReLU(0.1), tnn.Dropout(0.3), tnn.Linear(16, 8), tnn.Tanh(),
                           tnn.Linear(8, 6), tnn.Sigmoid(), tnn.Linear(6, 4, bias=False),
                           tnn.Softmax(dim=-1)),
            (12,))


def cnn_pair():
    return (nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 6, 4, padding="same"), nn.AvgPool2d(2, padding=1),
                          nn.Conv2d(6, 4, 3, padding="valid", dilation=2, bias=False),
                          nn.Identity(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)),
            tnn.Sequential(tnn.Conv2d(3, 8, 3, stride=2, padding=1), tnn.ReLU(),
                           tnn.MaxPool2d(2), tnn.Conv2d(8, 6, 4, padding="same"),
                           tnn.AvgPool2d(2, padding=1),
                           tnn.Conv2d(6, 4, 3, padding="valid", dilation=2, bias=False),
                           tnn.Identity(), tnn.Flatten(), tnn.Linear(4 * 3 * 3, 5)),
            (3, 48, 48))


def norm_pair():
    return (nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10),
                          nn.BatchNorm1d(10)),
            tnn.Sequential(tnn.Conv2d(3, 8, 3, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
                           tnn.AdaptiveAvgPool2d(2), tnn.Flatten(), tnn.Linear(32, 10),
                           tnn.BatchNorm1d(10)),
            (3, 9, 9))


def modern_mlp_pair():
    """LayerNorm (over one and two trailing dimensions, without bias, without affine),
    GELU in both forms, SiLU and ELU."""
    return (nn.Sequential(nn.Linear(6, 8), nn.LayerNorm((3, 8)), nn.GELU(), nn.Linear(8, 8),
                          nn.LayerNorm(8, eps=1e-3, bias=False), nn.SiLU(), nn.Linear(8, 6),
                          nn.ELU(0.7), nn.LayerNorm(6, elementwise_affine=False),
                          nn.GELU("tanh"), nn.Flatten(), nn.Linear(18, 4)),
            tnn.Sequential(tnn.Linear(6, 8), tnn.LayerNorm((3, 8)), tnn.GELU(),
                           tnn.Linear(8, 8), tnn.LayerNorm(8, eps=1e-3, bias=False), tnn.SiLU(),
                           tnn.Linear(8, 6), tnn.ELU(0.7),
                           tnn.LayerNorm(6, elementwise_affine=False),
                           tnn.GELU(approximate="tanh"), tnn.Flatten(), tnn.Linear(18, 4)),
            (3, 6))


PAIRS = [pytest.param(mlp_pair, id="mlp"), pytest.param(cnn_pair, id="cnn"),
         pytest.param(modern_mlp_pair, id="layernorm-gelu"),
         pytest.param(norm_pair, id="batchnorm", marks=needs_arch_kernels)]


def trained_torch(tmodel, shape, seed=0):
    """Random weights, and running statistics moved off their defaults by a few batches."""
    g = torch.Generator().manual_seed(seed)
    tmodel.train()
    with torch.no_grad():
        for p in tmodel.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for _ in range(3):
            tmodel(torch.randn((8,) + shape, generator=g) * 2 + 0.5)
    return tmodel.eval()


def predict_torch(tmodel, x):
    with torch.no_grad():
        return tmodel.eval()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("make", PAIRS)
def test_torch_to_fastnn_to_torch(make, rng):
    model, tmodel, shape = make()
    trained_torch(tmodel, shape)
    model.load_state_dict(tmodel.state_dict())  # torch tensors, as written
    x = rng.standard_normal((5,) + shape).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), predict_torch(tmodel, x), rtol=1e-5, atol=1e-5)
    _, back, _ = make()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    np.testing.assert_array_equal(predict_torch(back, x), predict_torch(tmodel, x))
    for (k, a), (k2, b) in zip(tmodel.state_dict().items(), back.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b)


class TorchResidual(tnn.Module):
    """The torch twin of residual_model(): the same layers under fastnn's names (the
    functional model names its calls "0", "1", ...; "5" is the + of the residual)."""

    def __init__(self):
        super().__init__()
        layers = {"0": tnn.Conv2d(4, 8, 3, padding=1, groups=2), "1": tnn.BatchNorm2d(8),
                  "2": tnn.ReLU(), "3": tnn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False),
                  "4": tnn.BatchNorm2d(8, momentum=None),
                  "6": tnn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                  "7": tnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                  "8": tnn.Flatten(), "9": tnn.Dropout(0.5), "10": tnn.Linear(128, 10),
                  "11": tnn.BatchNorm1d(10), "12": tnn.Linear(10, 3)}
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x):
        m = self._modules
        h = m["2"](m["1"](m["0"](x)))
        h = h + m["4"](m["3"](h))
        return m["12"](m["11"](m["10"](m["9"](m["8"](m["7"](m["6"](h)))))))


def residual_model():
    x = fastnn.Input(shape=(4, 11, 11))
    h = nn.ReLU()(nn.BatchNorm2d(8)(nn.Conv2d(4, 8, 3, padding=1, groups=2)(x)))
    h = h + nn.BatchNorm2d(8, momentum=None)(nn.Conv2d(8, 8, 3, padding=1, groups=4,
                                                       bias=False)(h))
    h = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)(
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)(h))
    h = nn.Linear(128, 10)(nn.Dropout(0.5)(nn.Flatten()(h)))
    return fastnn.Model(x, nn.Linear(10, 3)(nn.BatchNorm1d(10)(h)))


def test_functional_residual_model_matches_torch_in_eval_and_train(rng):
    """A graph model (residual +, grouped convs, BatchNorm1d/2d, ceil_mode pooling with
    count_include_pad=False, Dropout) takes its torch twin's state_dict: the same keys,
    the same eval outputs, and (Dropout off) the same train-mode outputs and running
    statistics (float32 rounding: 1e-5)."""
    model, tmodel = residual_model(), trained_torch(TorchResidual(), (4, 11, 11))
    assert list(model.state_dict()) == list(tmodel.state_dict())
    model.load_state_dict(tmodel.state_dict())
    x = rng.standard_normal((5, 4, 11, 11)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), predict_torch(tmodel, x), rtol=1e-5,
                               atol=1e-5)
    model.train(), tmodel.train()
    dict(model.named_children())["9"].p = tmodel._modules["9"].p = 0.0  # the Dropouts
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_from_another_architecture_is_rejected():
    model, _, _ = mlp_pair()
    _, tcnn, _ = cnn_pair()
    with pytest.raises(ValueError, match="missing keys.*unexpected keys"):
        model.load_state_dict(tcnn.state_dict())
    other = tnn.Sequential(tnn.Linear(12, 17))
    with pytest.raises(ValueError, match=r"shape mismatch for 0.weight"):
        nn.Sequential(nn.Linear(12, 16)).load_state_dict(other.state_dict())


def test_torch_bfloat16_and_parameter_tensors_load():
    """A bfloat16 state_dict (NumPy has no bfloat16) and torch Parameters, which require
    grad (dict(named_parameters())), raised TypeError 'is not an array'; torch loads both."""
    tmodel = trained_torch(tnn.Sequential(tnn.Linear(4, 3), tnn.BatchNorm1d(3)), (4,))
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model.load_state_dict(dict(tmodel.named_parameters()), strict=False)
    np.testing.assert_array_equal(model[0].weight.data, tmodel[0].weight.detach().numpy())
    half = tmodel.to(torch.bfloat16).state_dict()
    model.load_state_dict(half)
    for k, v in half.items():
        np.testing.assert_array_equal(model.state_dict()[k], v.float().numpy()
                                      if v.is_floating_point() else v.numpy())


class TorchShared(tnn.Module):
    def __init__(self):
        super().__init__()
        self.body = tnn.Sequential(tnn.Linear(3, 3), tnn.Linear(3, 2))
        self.head = self.body[1]  # the same layer under a second name

    def forward(self, x):
        return self.body(x)


class Shared(nn.Module):
    def __init__(self):
        self.body = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
        self.head = self.body[1]

    def forward(self, x):
        return self.body(x)


def test_a_module_under_two_names_is_in_state_dict_twice(rng):
    """torch's state_dict lists a module reachable by two names under both (head.weight
    and body.1.weight); fastnn listed it once, so neither state_dict loaded into the
    other's model (unexpected/missing head.*)."""
    tmodel, model = TorchShared(), Shared()
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert [k for k, _ in model.named_parameters()] == \
        [k for k, _ in tmodel.named_parameters()]  # parameters once, as torch's
    model.load_state_dict(tmodel.state_dict())
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), predict_torch(tmodel, x), rtol=1e-6, atol=1e-6)
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})


def test_missing_num_batches_tracked_as_torch():
    """torch fills in a BatchNorm's num_batches_tracked missing from a plain dict (older
    checkpoints and converted weights lack it; safetensors files carry no torch
    metadata) and keeps its count; fastnn raised 'missing keys'. A torch state_dict
    (which carries its _metadata) without it is still refused, as torch refuses it."""
    tmodel = trained_torch(tnn.Sequential(tnn.Conv2d(2, 3, 1), tnn.BatchNorm2d(3)),
                           (2, 4, 4))
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    model[1].num_batches_tracked[...] = 5
    plain = {k: v for k, v in tmodel.state_dict().items() if "num_batches" not in k}
    assert tuple(model.load_state_dict(plain)) == tuple(tnn.Sequential(
        tnn.Conv2d(2, 3, 1), tnn.BatchNorm2d(3)).load_state_dict(plain)) == ([], [])
    assert model[1].num_batches_tracked == 5
    np.testing.assert_array_equal(model[1].running_var, tmodel[1].running_var.numpy())
    state = tmodel.state_dict()
    del state["1.num_batches_tracked"]
    with pytest.raises(RuntimeError, match="Missing key.*1.num_batches_tracked"):
        tmodel.load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing keys \['1.num_batches_tracked'\]"):
        model.load_state_dict(state)


# ---- safetensors ----

@pytest.mark.parametrize("make", PAIRS)
def test_safetensors_fastnn_to_torch_and_back(make, rng, tmp_path):
    st = pytest.importorskip("safetensors.torch", reason="safetensors not installed")
    model, tmodel, shape = make()
    model.load_state_dict(trained_torch(tmodel, shape).state_dict())
    path = tmp_path / "w.safetensors"
    fastnn.save_weights(model, path)
    loaded = st.load_file(str(path))
    assert list(loaded) == list(model.state_dict())
    _, twin, _ = make()
    twin.load_state_dict(loaded)
    x = rng.standard_normal((4,) + shape).astype(np.float32)
    np.testing.assert_array_equal(predict_torch(twin, x), predict_torch(tmodel, x))
    # and torch's own file into a fresh fastnn model
    st.save_file({k: v.contiguous() for k, v in tmodel.state_dict().items()},
                 str(tmp_path / "t.safetensors"))
    fresh, _, _ = make()
    fastnn.load_weights(fresh, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_safetensors_metadata_and_dtypes(tmp_path):
    st = pytest.importorskip("safetensors", reason="safetensors not installed")
    model = nn.Sequential(nn.Linear(3, 2))
    model.register_buffer("steps", np.array(7, np.int64))
    fastnn.save_weights(model, tmp_path / "m.safetensors", metadata={"epoch": "3"})
    with st.safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt", "epoch": "3"}
        assert f.get_tensor("steps").dtype == np.int64 and f.get_tensor("steps").shape == ()
    model.steps[...] = 0
    fastnn.load_weights(model, tmp_path / "m.safetensors")
    assert model.steps == 7


def test_bad_safetensors_files_name_the_file(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    path = tmp_path / "w.safetensors"
    fastnn.save_weights(model, path)
    data = path.read_bytes()
    cases = {"truncated": data[:-5], "header cut": data[:20], "tiny": data[:4], "empty": b"",
             "foreign": b"PK\x03\x04" + bytes(60), "not json": (8).to_bytes(8, "little") +
             b"{{{{{{{{", "gap": _rewrite_offsets(data, 4)}
    for what, blob in cases.items():
        bad = tmp_path / f"{what.replace(' ', '_')}.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match=str(bad).replace(".", r"\.")):
            fastnn.load_weights(model, bad)
    other = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"w\.safetensors does not fit this Sequential.*shape"):
        fastnn.load_weights(other, path)
    with pytest.raises(ValueError, match=r"does not fit.*missing keys"):
        fastnn.load_weights(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), path)


def _rewrite_offsets(data, shift):
    """The same file with every tensor's offsets moved by `shift` bytes (a gap)."""
    import json
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    for k, v in header.items():
        if k != "__metadata__":
            v["data_offsets"] = [o + shift for o in v["data_offsets"]]
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + bytes(shift) + data[8 + n:]


def _safetensors_file(path, header, data=b""):
    """A safetensors file of this header text (or JSON-able header) and data bytes."""
    import json
    text = header if isinstance(header, str) else json.dumps(header)
    path.write_bytes(len(text.encode()).to_bytes(8, "little") + text.encode() + data)
    return path


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_safetensors_bfloat16_and_every_integer_dtype(dtype, tmp_path):
    """A file of bfloat16 tensors (torch's save_file of a .bfloat16() model) or of U16, U32,
    U64 tensors was 'not a valid safetensors file'; now bfloat16 loads as float32 (exactly:
    it is float32's upper half) and the unsigned types as NumPy's."""
    st = pytest.importorskip("safetensors.torch", reason="safetensors not installed")
    tmodel = trained_torch(tnn.Sequential(tnn.Linear(3, 4), tnn.BatchNorm1d(4)), (3,))
    tmodel = tmodel.to(getattr(torch, dtype))
    st.save_file(tmodel.state_dict(), str(tmp_path / "t.safetensors"))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    fastnn.load_weights(model, tmp_path / "t.safetensors")
    for k, v in tmodel.state_dict().items():
        assert model.state_dict()[k].dtype == (np.int64 if v.dtype == torch.int64
                                               else np.float32)
        np.testing.assert_array_equal(model.state_dict()[k], v.float().numpy())
    arrays = {"u16": np.array([0, 65535], np.uint16), "u32": np.arange(3, dtype=np.uint32),
              "u64": np.array([[2 ** 64 - 1]], np.uint64), "bool": np.array([True, False]),
              "empty": np.zeros((0, 3), np.float16), "scalar": np.array(2.5),
              "i8": np.array([-3], np.int8)}
    pytest.importorskip("safetensors.numpy").save_file(
        arrays, str(tmp_path / "np.safetensors"), metadata={"k": "v"})
    got = fastnn.weights.read_safetensors(tmp_path / "np.safetensors")
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v)


def test_safetensors_dtype_fastnn_cannot_read_is_named(tmp_path):
    """A valid file with an 8-bit float (F8_E4M3) tensor: the error names the tensor and
    its dtype, and does not call the file invalid."""
    path = _safetensors_file(tmp_path / "f8.safetensors",
                             {"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}},
                             bytes(2))
    with pytest.raises(ValueError, match=r"f8\.safetensors: tensor 'w' has dtype F8_E4M3, "
                                         r"which fastnn cannot read \(it reads BF16, BOOL"):
        fastnn.weights.read_safetensors(path)


def test_hostile_safetensors_headers(tmp_path):
    """A duplicate tensor name loaded the last one silently, a deeply nested header raised
    RecursionError, an integer of 5000 digits a ValueError not naming the file, and
    metadata that is not {str: str} (which the safetensors package rejects) was accepted;
    now each is a ValueError naming the file. Unknown fields in an entry are ignored, as
    the safetensors package ignores them."""
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    cases = {"duplicate": (f'{{"a": {entry}, "a": {entry}}}', "duplicate name 'a'"),
             "nested": ("[" * 100_000 + "]" * 100_000, "not JSON"),
             "long int": ('{"a": {"dtype": "F32", "shape": [' + "9" * 5000 +
                          '], "data_offsets": [0, 4]}}', "not JSON.*4300 digits"),
             "metadata": (f'{{"__metadata__": {{"epoch": 3}}, "a": {entry}}}',
                          "__metadata__ must map strings to strings"),
             "metadata list": (f'{{"__metadata__": [], "a": {entry}}}',
                               "__metadata__ must map strings to strings")}
    for what, (header, message) in cases.items():
        path = _safetensors_file(tmp_path / f"{what}.safetensors", header, bytes(4))
        with pytest.raises(ValueError, match=f"{what}\\.safetensors.*{message}"):
            fastnn.weights.read_safetensors(path)
    path = _safetensors_file(tmp_path / "null.safetensors",  # null metadata is none
                             f'{{"__metadata__": null, "a": {entry}}}', bytes(4))
    assert list(fastnn.weights.read_safetensors(path)) == ["a"]
    path = _safetensors_file(tmp_path / "extra.safetensors",
                             '{"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], '
                             '"note": 1}}', np.float32(1.5).tobytes())
    assert fastnn.weights.read_safetensors(path)["a"] == 1.5


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_load_weights_from_a_device_is_refused():
    """load_weights('/dev/zero') read without end, until memory ran out."""
    with pytest.raises(ValueError, match="/dev/zero: not a regular file"):
        fastnn.load_weights(nn.Sequential(nn.Linear(3, 2)), "/dev/zero")


def test_failed_save_weights_keeps_the_file(tmp_path):
    """metadata=[] (not a dict, but falsy) was accepted silently; a save that fails leaves
    the file that was there."""
    path = tmp_path / "w.safetensors"
    model = nn.Sequential(nn.Linear(3, 2))
    fastnn.save_weights(model, path)
    before = path.read_bytes()
    for metadata in ([], {"epoch": 3}, "epoch"):
        with pytest.raises(TypeError, match="metadata must map str to str"):
            fastnn.save_weights(model, path, metadata=metadata)
    model.register_buffer("phase", np.zeros(2, np.complex64))
    with pytest.raises(TypeError, match="phase has dtype complex64"):
        fastnn.save_weights(model, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]


def test_strict_false_reports_keys_in_torchs_order():
    """torch lists unexpected keys module by module (each at the deepest module on its
    path, in traversal order); fastnn listed them in the state_dict's order."""
    def pair(lib):
        return lib.Sequential(lib.Linear(2, 2), lib.Sequential(lib.Linear(2, 2)))
    tmodel, model = pair(tnn), pair(nn)
    state = {k: v for k, v in tmodel.state_dict().items() if k != "1.0.bias"}
    state.update({"1.0.extra": torch.zeros(1), "1.x.y": torch.zeros(1),
                  "0.extra": torch.zeros(1), "zzz": torch.zeros(1), "0": torch.zeros(1),
                  "0.weight.x": torch.zeros(1)})
    want = tmodel.load_state_dict(state, strict=False)
    got = model.load_state_dict(state, strict=False)
    assert got.missing_keys == want.missing_keys == ["1.0.bias"]
    assert got.unexpected_keys == want.unexpected_keys


def test_one_element_into_a_scalar_as_torch():
    """torch loads a (1,) tensor into a 0-d buffer (num_batches_tracked of torch 0.3's
    checkpoints and of converters); fastnn raised a shape mismatch. (2,) still is one."""
    tmodel, model = tnn.BatchNorm1d(3), nn.BatchNorm1d(3)
    state = dict(tmodel.state_dict(), num_batches_tracked=torch.tensor([7]))
    tmodel.load_state_dict(state)
    model.load_state_dict(state)
    assert model.num_batches_tracked.shape == () and model.num_batches_tracked == 7
    state["num_batches_tracked"] = torch.tensor([7, 8])
    with pytest.raises(RuntimeError, match="size mismatch for num_batches_tracked"):
        tmodel.load_state_dict(state)
    with pytest.raises(ValueError, match=r"shape mismatch for num_batches_tracked"):
        model.load_state_dict(state)


def test_whole_float_count_loads_into_an_integer_buffer():
    """Converted checkpoints store num_batches_tracked as a float; torch casts it, fastnn
    raised 'expected an integer dtype'. A whole number loads now; a fraction (which
    torch would truncate silently) is still refused."""
    tmodel, model = tnn.BatchNorm2d(3), nn.BatchNorm2d(3)
    state = dict(tmodel.state_dict(), num_batches_tracked=torch.tensor(12.0))
    tmodel.load_state_dict(state)
    model.load_state_dict(state)
    assert model.num_batches_tracked == tmodel.num_batches_tracked.item() == 12
    for bad in (2.5, np.inf, np.nan, 1e30):
        state["num_batches_tracked"] = np.float32(bad)
        with pytest.raises(TypeError, match="num_batches_tracked has dtype float32 with "
                                            "values an integer buffer cannot hold"):
            model.load_state_dict(state)
    assert model.num_batches_tracked == 12
