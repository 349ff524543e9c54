"""PyTorch weights both ways (state_dicts of torch tensors straight into fastnn, fastnn's
back into torch) and safetensors files (fastnn.save_weights / load_weights against the
`safetensors` package), for every layer type."""
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


PAIRS = [pytest.param(mlp_pair, id="mlp"), pytest.param(cnn_pair, id="cnn"),
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


def test_state_dict_from_another_architecture_is_rejected():
    model, _, _ = mlp_pair()
    _, tcnn, _ = cnn_pair()
    with pytest.raises(ValueError, match="missing keys.*unexpected keys"):
        model.load_state_dict(tcnn.state_dict())
    other = tnn.Sequential(tnn.Linear(12, 17))
    with pytest.raises(ValueError, match=r"shape mismatch for 0.weight"):
        nn.Sequential(nn.Linear(12, 16)).load_state_dict(other.state_dict())


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
