"""save/load: identical predictions and optimizer state after a round trip; atomic
writes; truncated, bit-flipped and foreign files give a ValueError naming the file."""
import json
import os
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import models, nn, optim


def trained(make, opt_cls, rng, **opt_kwargs):
    model = make(seed=0)
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model.fit(x, y, optimizer=opt_cls(model.parameters(), **opt_kwargs), batch_size=16,
              epochs=1, seed=0, verbose=0)
    return model, x, y


@pytest.mark.parametrize("make", [models.mlp, models.cnn])
@pytest.mark.parametrize("opt_cls,kwargs", [(optim.Adam, {}), (optim.AdamW, dict(lr=3e-3)),
                                            (optim.SGD, dict(lr=0.1, momentum=0.9,
                                                             nesterov=True))])
def test_round_trip_predictions_and_optimizer_state(tmp_path, rng, make, opt_cls, kwargs):
    model, x, y = trained(make, opt_cls, rng, **kwargs)
    path = tmp_path / "model.fnn"
    model.save(path)
    loaded = fastnn.load(path)
    assert type(loaded) is nn.Sequential and repr(loaded) == repr(model)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    a, b = model.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert a["type"] == b["type"] and a["steps"] == b["steps"] == 4
    assert a["hyperparameters"] == b["hyperparameters"]
    for key in a["state"]:
        for u, v in zip(a["state"][key], b["state"][key]):
            assert np.array_equal(u, v)
    # training resumes identically from the file
    model.fit(x, y, optimizer=model.optimizer, batch_size=16, seed=1, verbose=0)
    loaded.fit(x, y, optimizer=loaded.optimizer, batch_size=16, seed=1, verbose=0)
    for p, q in zip(model.parameters(), loaded.parameters()):
        assert np.array_equal(p.data, q.data)


def test_every_layer_type_round_trips(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, bias=False),
                          nn.LeakyReLU(0.1), nn.AvgPool2d(2, 1), nn.MaxPool2d(3, 2, 1),
                          nn.Tanh(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(18, 5),
                          nn.Sigmoid(), nn.Linear(5, 4, bias=False), nn.LayerNorm(4, eps=1e-3),
                          nn.GELU("tanh"), nn.Linear(4, 6), nn.LayerNorm((6,), bias=False),
                          nn.SiLU(), nn.ELU(0.5), nn.LayerNorm(6, elementwise_affine=False),
                          nn.GELU(), nn.Softmax(), input_shape=(2, 7, 6))
    for layer in model:  # weights off their defaults
        for p in layer.parameters():
            p.data[...] = rng.standard_normal(p.shape)
    path = tmp_path / "all.fnn"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert loaded.optimizer is None and loaded.input_shape == (2, 7, 6)
    x = rng.random((3, 2, 7, 6), dtype=np.float32)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert repr(loaded) == repr(model)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, rng, monkeypatch):
    model, _, _ = trained(models.mlp, optim.Adam, rng)
    path = tmp_path / "m.fnn"
    model.save(path)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good  # the old file is intact
    assert os.listdir(tmp_path) == ["m.fnn"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_files_get_the_usual_mode(tmp_path):
    """save and save_weights wrote mkstemp's mode 0o600 (unreadable to the group and to
    others, whatever the umask), also over a file that had another mode; now a new file
    gets 0o666 less the umask, as open() gives, and a replaced one keeps its mode."""
    umask = os.umask(0o022)
    try:
        model = nn.Sequential(nn.Linear(2, 2))
        for save, name in ((fastnn.save, "m.fnn"), (fastnn.save_weights, "w.safetensors")):
            path = tmp_path / name
            save(model, path)
            assert path.stat().st_mode & 0o777 == 0o644
            path.chmod(0o640)
            save(model, path)
            assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def test_truncated_file_raises_naming_it(tmp_path, rng):
    model, _, _ = trained(models.mlp, optim.Adam, rng)
    path = tmp_path / "m.fnn"
    model.save(path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=str(path)):
            fastnn.load(path)


def test_bit_flips_are_detected(tmp_path, rng):
    model, _, _ = trained(models.mlp, optim.SGD, rng, lr=0.1, momentum=0.9)
    path = tmp_path / "m.fnn"
    model.save(path)
    data = bytearray(path.read_bytes())
    for pos in np.random.default_rng(0).integers(0, len(data), 40):
        flipped = data.copy()
        flipped[pos] ^= 0x10
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match=str(path)):
            fastnn.load(path)


def test_tampered_array_fails_the_checksum(tmp_path, rng):
    """A consistent zip (CRCs recomputed) with a changed weight: only SHA-256 notices."""
    model, _, _ = trained(models.mlp, optim.Adam, rng)
    path, forged = tmp_path / "m.fnn", tmp_path / "forged.fnn"
    model.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "param/1.weight.npy":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(name, data)
    with pytest.raises(ValueError, match=f"{forged}: corrupt.*SHA-256"):
        fastnn.load(forged)


def test_foreign_files_raise_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=f"{text}: not a fastnn model file"):
        fastnn.load(text)
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.zeros(3))
    with pytest.raises(ValueError, match=f"{npz}: not a fastnn model file"):
        fastnn.load(npz)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("fastnn.json", json.dumps({"magic": "something-else"}))
    with pytest.raises(ValueError, match="wrong magic"):
        fastnn.load(other)
    newer = tmp_path / "newer.fnn"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("fastnn.json", json.dumps({"magic": "fastnn-model", "version": 99}))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        fastnn.load(newer)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.fnn")
    with pytest.raises(TypeError, match="Sequential"):
        fastnn.save(nn.Linear(2, 3), tmp_path / "x.fnn")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_fifo_and_directory_raise_naming_the_path(tmp_path):
    """fastnn.load and load_weights of a named pipe waited forever in open() for a writer
    that never came, before the check for a regular file."""
    fifo = tmp_path / "pipe.fnn"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=f"{fifo}: not a regular file"):
        fastnn.load(fifo)
    with pytest.raises(ValueError, match=f"{fifo}: not a regular file"):
        fastnn.load_weights(nn.Sequential(nn.Linear(3, 2)), fifo)
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        fastnn.load(tmp_path)


@pytest.mark.parametrize("offset, flags", [(8, 0x01), (8, 0x41), (6, 0x9a)])
def test_zip_flags_fastnn_never_writes_raise_naming_the_path(tmp_path, offset, flags):
    """An entry marked encrypted (bit 0; with bit 6, strong encryption) or of a zip version
    zipfile does not read: its RuntimeError and NotImplementedError passed through load."""
    path = tmp_path / "m.fnn"
    fastnn.save(models.mlp(), path)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # fastnn.json's central directory record
    data[entry + offset] |= flags
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}: .*(encrypted|truncated/corrupt)"):
        fastnn.load(path)


def test_hostile_header_and_device_raise_naming_the_path(tmp_path):
    """A fastnn.json nested 100000 deep raised RecursionError; fastnn.load('/dev/zero')
    read without end; a compressed entry (fastnn writes them stored) was inflated whole
    however large."""
    deep = tmp_path / "deep.fnn"
    with zipfile.ZipFile(deep, "w") as zf:
        zf.writestr("fastnn.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=f"{deep}: not a fastnn model file.*RecursionError"):
        fastnn.load(deep)
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match="/dev/zero: not a regular file"):
            fastnn.load("/dev/zero")
    bomb = tmp_path / "bomb.fnn"  # 200 MB of spaces in a 200 kB file, inflated by read
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fastnn.json", b" " * (200 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=f"{bomb}: not a fastnn model file.*compressed"):
        fastnn.load(bomb)


def test_load_of_a_keras_model_file_without_importing_fastnn_keras(tmp_path):
    """fastnn.load of a fastnn.keras model's file in a process that had not imported
    fastnn.keras failed: 'unreadable architecture (KeyError: 'keras.Sequential')'."""
    import subprocess
    import sys
    from fastnn import keras
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    code = ("import sys, fastnn; assert 'fastnn.keras' not in sys.modules; "
            f"m = fastnn.load({str(tmp_path / 'm.keras')!r}); "
            "print(type(m).__module__, type(m.optimizer).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["fastnn.keras.models", "KerasAdam"]


def test_a_sequential_sharing_a_layer_saves_and_loads_it_shared(tmp_path):
    """Sequential(lin, relu, lin) was saved as two Linear layers: the file failed to
    load ('parameter names do not match', the saved names being the shared layer's
    once). The second place now refers to the first: loaded, the layer is shared again
    and trains as one."""
    lin = nn.Linear(3, 3, seed=0)
    model = nn.Sequential(lin, nn.ReLU(), lin, input_shape=(3,))
    x = np.random.default_rng(22).standard_normal((8, 3)).astype(np.float32)
    y = np.arange(8) % 3
    model.fit(x, y, optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)
    model.save(tmp_path / "shared.fastnn")
    loaded = fastnn.load(tmp_path / "shared.fastnn")
    assert loaded[0] is loaded[2] and len(list(loaded.parameters())) == 2
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_parameter_two_layers_share_saves_and_loads_tied(tmp_path):
    """Tied weights (one Parameter assigned to two layers): the file listed it once and
    the rebuilt model had one per layer, so load refused the file save had written
    ('parameter names do not match')."""
    model = nn.Sequential(nn.Linear(3, 3, seed=0), nn.ReLU(), nn.Linear(3, 3, seed=1),
                          input_shape=(3,))
    model[2].weight = model[0].weight
    x = np.random.default_rng(23).standard_normal((8, 3)).astype(np.float32)
    y = np.arange(8) % 3
    opt = optim.Adam(model.parameters(), lr=0.1)
    model.fit(x, y, optimizer=opt, verbose=0)
    fastnn.save(model, tmp_path / "tied.fastnn", optimizer=opt)
    loaded = fastnn.load(tmp_path / "tied.fastnn")
    assert loaded[2].weight is loaded[0].weight and len(list(loaded.parameters())) == 3
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.fit(x, y, optimizer=opt, verbose=0, shuffle=False)
    loaded.fit(x, y, optimizer=loaded.optimizer, verbose=0, shuffle=False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_an_optimizer_over_some_parameters_or_in_another_order_round_trips(tmp_path, rng):
    """The optimizer was rebuilt over all of the model's parameters in order: one over a
    fine-tuned part wrote a file load refused, one in another order gave each parameter
    the state of another of its shape. One over another model's parameters is refused."""
    model = nn.Sequential(nn.Linear(4, 4, seed=0), nn.ReLU(), nn.Linear(4, 4, seed=1))
    x, y = rng.random((16, 4), dtype=np.float32), rng.integers(0, 4, 16)
    path = tmp_path / "m.fnn"
    for params in ([model[2].bias], [*model[2].parameters(), *model[0].parameters()]):
        opt = optim.Adam(params, lr=0.01)
        model.fit(x, y, optimizer=opt, batch_size=4, verbose=0)
        model.save(path)
        loaded = fastnn.load(path)
        names = {id(p): name for name, p in model.named_parameters()}
        loaded_names = {id(p): name for name, p in loaded.named_parameters()}
        assert [loaded_names[id(p)] for p in loaded.optimizer.params] == \
            [names[id(p)] for p in params]
        for key, arrays in opt.state_dict()["state"].items():
            for u, v in zip(arrays, loaded.optimizer.state_dict()["state"][key]):
                assert np.array_equal(u, v)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"save: the optimizer's params\[0\] is not a "
                                         r"parameter of this Sequential"):
        fastnn.save(model, path, optimizer=optim.SGD(nn.Linear(4, 4).parameters()))
    assert path.read_bytes() == before


def test_a_non_persistent_buffer_is_left_out_of_the_file(tmp_path):
    """register_buffer(..., persistent=False) (torch's: a cache __init__ rebuilds) was
    written to the file and required back with its saved shape; it is left out of the
    file as out of state_dict, and the model loaded into keeps its own."""
    def build(cache_size):
        model = nn.Sequential(nn.Linear(3, 2, seed=0), input_shape=(3,))
        model.register_buffer("steps", np.array(7, np.int64))
        model.register_buffer("cache", np.zeros(cache_size, np.float32), persistent=False)
        return model

    model = build(4)
    model.save(tmp_path / "m.fastnn")
    with zipfile.ZipFile(tmp_path / "m.fastnn") as z:
        assert "buffer/steps.npy" in z.namelist()
        assert not any("cache" in name for name in z.namelist())
    other = build(9)
    other.steps[...] = 0
    loaded = fastnn.load(tmp_path / "m.fastnn", model=other)
    assert loaded.steps == 7 and loaded.cache.shape == (9,)
    np.testing.assert_array_equal(loaded[0].weight.data, model[0].weight.data)
