"""Tests for fastnn.datasets: IDX reading, file search, checked download and batching."""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import struct
import signal
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from fastnn import datasets

REAL_DATA = os.environ.get("FASTNN_DATA")

TYPE_CODES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


def idx_bytes(arr, code=None):
    """Encode arr as IDX bytes (type code taken from its dtype unless given)."""
    if code is None:
        code = {np.dtype(t): c for c, t in TYPE_CODES.items()}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, gz=True):
    """Write arr as an IDX file at path, gzipped or raw; return the path."""
    data = idx_bytes(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_split(base, name, split, n, label=0, gz=True):
    """Write a fake split of n 28x28 images with all labels equal to label under base/name."""
    images = np.arange(n * 28 * 28, dtype=np.uint64).reshape(n, 28, 28) % 256
    labels = np.full(n, label, dtype=np.uint8)
    image_stem, label_stem = datasets.SPLITS[split]
    suffix = ".gz" if gz else ""
    write_idx(base / name / (image_stem + suffix), images.astype(np.uint8), gz)
    write_idx(base / name / (label_stem + suffix), labels, gz)
    return images.astype(np.uint8), labels


def assert_says_how_to_provide(msg):
    """Check that a not-found message tells every way of providing the files."""
    for hint in ("FASTNN_DATA", "root=", "apt-get install dataset-fashion-mnist"):
        assert hint in msg


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the real cache, system dir, data dir, proxies and network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(datasets, "MIRRORS", {name: [] for name in datasets.DATASETS})
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 5.0)


# --- read_idx -------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("code", sorted(TYPE_CODES), ids=lambda c: f"0x{c:02x}")
def test_round_trip_every_type(tmp_path, code, gz):
    dtype = np.dtype(TYPE_CODES[code])
    rng = np.random.default_rng(code)
    if dtype.kind == "f":
        arr = rng.standard_normal((3, 4, 5)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True, dtype=dtype)
    path = write_idx(tmp_path / "data.bin", arr, gz)
    out = datasets.read_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (1, 2, 1, 3), (0, 5)])
def test_round_trip_shapes(tmp_path, shape):
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    out = datasets.read_idx(str(write_idx(tmp_path / "a.idx", arr, gz=False)))
    np.testing.assert_array_equal(out, arr)
    assert out.shape == shape


def test_gzip_detected_by_magic_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    gz_named_raw = tmp_path / "raw.gz"
    gz_named_raw.write_bytes(idx_bytes(arr))
    plain_named_gz = tmp_path / "compressed.idx"
    plain_named_gz.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(datasets.read_idx(gz_named_raw), arr)
    np.testing.assert_array_equal(datasets.read_idx(plain_named_gz), arr)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.read_idx(tmp_path / "nope.idx")


GOOD = idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
CORRUPT = {
    "bad magic": (b"\x01\x00" + GOOD[2:], "bad magic"),
    "unknown type": (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown data type code 0x0a"),
    "zero ndim": (b"\x00\x00\x08\x00", "0 dimensions"),
    "too many dims": (b"\x00\x00\x08\x09" + b"\x00\x00\x00\x01" * 9 + b"\x00", "9 dimensions"),
    "short header": (GOOD[:2], "truncated"),
    "truncated dims": (GOOD[:9], "truncated: expected 12 bytes of header, found 5"),
    "truncated payload": (GOOD[:-7], "truncated: expected 120 bytes of data, found 113"),
    "trailing bytes": (GOOD + b"\x00\x01\x02", "3 trailing bytes"),
    "empty": (b"", "truncated"),
    "huge dims": (b"\x00\x00\x08\x02" + b"\xff\xff\xff\xff" * 2 + b"\x00" * 1000,
                  "expected 18446744065119617025 bytes of data, found 1000"),
    "huge 3d dims": (b"\x00\x00\x0e\x03" + b"\xff\xff\xff\xff" * 3 + b"\x00" * 64, "truncated"),
    "zero-size huge shape": (
        b"\x00\x00\x08\x03" + struct.pack(">3I", 0, 2**32 - 1, 2**32 - 1), "shape"
    ),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_files(tmp_path, case, gz):
    data, fragment = CORRUPT[case]
    path = tmp_path / "corrupt.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    if case == "bad magic" and gz is False:
        assert data[:2] != b"\x1f\x8b"
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            datasets.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert fragment in str(info.value)
    assert peak < 16 * 2**20


def test_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.float64)))
    for cut in (len(compressed) // 2, len(compressed) - 4, 12):
        path = tmp_path / f"cut{cut}.gz"
        path.write_bytes(compressed[:cut])
        with pytest.raises(ValueError, match="corrupt or truncated gzip") as info:
            datasets.read_idx(path)
        assert str(path) in str(info.value)


def test_corrupt_gzip_crc(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(np.arange(50, dtype=np.uint8))))
    compressed[-8] ^= 0xFF  # CRC32 in the gzip trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(ValueError, match="gzip") as info:
        datasets.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("seed", range(20))
def test_random_garbage(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=int(rng.integers(1, 4000)), dtype=np.uint8).tobytes()
    if seed % 2:
        data = b"\x1f\x8b" + data  # garbage that claims to be gzip
    path = tmp_path / "garbage.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        datasets.read_idx(path)
    assert str(path) in str(info.value)


# --- load and search order ------------------------------------------------


def test_load_converts(tmp_path):
    images, labels = write_split(tmp_path, "mnist", "test", 4, label=7)
    x, y = datasets.load("mnist", "test", root=tmp_path, download=False)
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [7] * 4
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)


def test_load_uncompressed_files(tmp_path):
    write_split(tmp_path, "fashion-mnist", "train", 3, label=2, gz=False)
    x, y = datasets.load("fashion-mnist", "train", root=str(tmp_path), download=False)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [2, 2, 2]


def test_load_both_splits(tmp_path):
    write_split(tmp_path, "mnist", "train", 5, label=1)
    write_split(tmp_path, "mnist", "test", 2, label=3)
    write_split(tmp_path, "fashion-mnist", "train", 4, label=4)
    write_split(tmp_path, "fashion-mnist", "test", 3, label=5)
    (xtr, ytr), (xte, yte) = datasets.load_mnist(root=tmp_path, download=False)
    assert (len(xtr), len(xte), ytr[0], yte[0]) == (5, 2, 1, 3)
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(root=tmp_path, download=False)
    assert (len(xtr), len(xte), ytr[0], yte[0]) == (4, 3, 4, 5)


def test_search_order(tmp_path, monkeypatch):
    root, env, cache, system = (tmp_path / d for d in ("root", "env", "cache", "system"))
    for n, base in enumerate((root, env, cache / "fastnn", system), start=1):
        write_split(base, "mnist", "test", n)
    monkeypatch.setenv("FASTNN_DATA", str(env))

    def count(**kw):
        return len(datasets.load("mnist", "test", download=False, **kw)[0])

    assert count(root=root) == 1
    assert count() == 2
    monkeypatch.delenv("FASTNN_DATA")
    assert count() == 3
    for f in (cache / "fastnn" / "mnist").iterdir():
        f.unlink()
    assert count() == 4


def test_search_is_per_file(tmp_path, monkeypatch):
    images = tmp_path / "root" / "mnist" / "t10k-images-idx3-ubyte.gz"
    labels = tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte"
    write_idx(images, np.zeros((2, 28, 28), np.uint8))
    write_idx(labels, np.array([3, 4], np.uint8), gz=False)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    _, y = datasets.load("mnist", "test", root=tmp_path / "root", download=False)
    assert y.tolist() == [3, 4]


def test_cache_dir_default_is_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "fastnn"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "fastnn"


def test_not_found_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("fashion-mnist", "train", root=tmp_path / "root", download=False)
    msg = str(info.value)
    for base in ("root", "env", "cache/fastnn", "system"):
        assert str(tmp_path / base / "fashion-mnist" / "train-images-idx3-ubyte.gz") in msg
        assert str(tmp_path / base / "fashion-mnist" / "train-images-idx3-ubyte") + ":" in msg
    assert "download=False" in msg
    assert_says_how_to_provide(msg)


@pytest.mark.parametrize(
    "images, labels, fragment",
    [
        (np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "3 images but"),
        (np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8), "label 10"),
        (np.zeros((2, 27, 28), np.uint8), np.zeros(2, np.uint8), "(N, 28, 28)"),
        (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.uint8), "(N, 28, 28)"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.uint8), "(N,)"),
    ],
)
def test_load_validates(tmp_path, images, labels, fragment):
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match="t10k-") as info:
        datasets.load("mnist", "test", root=tmp_path, download=False)
    assert fragment in str(info.value)


def test_load_bad_name_and_split(tmp_path):
    with pytest.raises(ValueError, match="name"):
        datasets.load("cifar10", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        datasets.load("mnist", "valid", root=tmp_path)
    # download="no" downloaded (truthiness); root=3 failed in pathlib, unnamed
    for call in (lambda: datasets.load("mnist", "test", root=tmp_path, download="no"),
                 lambda: datasets.load_splits("mnist", root=tmp_path, download=0)):
        with pytest.raises(TypeError, match="load(_splits)?: download must be True or False"):
            call()
    with pytest.raises(TypeError, match="load: root must be a directory path or None"):
        datasets.load("mnist", "test", root=3, download=False)


# --- download -------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that does not log to stderr. Paths under /cut/, /short/, /stall/
    and /slow/ serve the file under /good/ badly: the connection closes halfway through a
    body announced in full (cut), or without a Content-Length (short); it stops sending
    for longer than the download timeout (stall); or it trickles 4 bytes per 10 ms (slow)."""

    def log_message(self, *args):
        """Drop the access log."""

    def do_GET(self):
        mode, _, rest = self.path.lstrip("/").partition("/")
        if mode not in ("cut", "short", "stall", "slow"):
            return super().do_GET()
        data = Path(self.translate_path("/good/" + rest)).read_bytes()
        self.send_response(200)
        if mode != "short":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "slow":
            for i in range(0, len(data), 4):
                self.wfile.write(data[i:i + 4])
                self.wfile.flush()
                time.sleep(0.01)
            return
        self.wfile.write(data[:len(data) // 2])
        self.wfile.flush()
        if mode == "stall":
            time.sleep(3 * datasets.DOWNLOAD_TIMEOUT)
        self.close_connection = True


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1 and yield its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(www))
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def refused_url():
    """Return a URL on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def publish(www, monkeypatch, n=3, label=6):
    """Put a fake MNIST test split under www/good and a corrupted copy under www/bad; patch MD5."""
    images, labels = write_split(www / "good", "mnist", "test", n, label)
    for stem in datasets.SPLITS["test"]:
        data = (www / "good" / "mnist" / f"{stem}.gz").read_bytes()
        monkeypatch.setitem(datasets.MD5["mnist"], f"{stem}.gz", (hashlib.md5(data).hexdigest(),))
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x55
        (www / "bad").mkdir(exist_ok=True)
        (www / "bad" / f"{stem}.gz").write_bytes(bytes(bad))
    return images, labels


def cache_files(tmp_path):
    """List every file under the test's cache directory."""
    root = tmp_path / "cache"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_download_lands_in_cache(tmp_path, monkeypatch, server):
    www, url = server
    images, labels = publish(www, monkeypatch)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/good/mnist/"])
    x, y = datasets.load("mnist", "test")
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    assert cache_files(tmp_path) == [
        "fastnn/mnist/t10k-images-idx3-ubyte.gz",
        "fastnn/mnist/t10k-labels-idx1-ubyte.gz",
    ]
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [])  # now served from the cache
    np.testing.assert_array_equal(datasets.load("mnist", "test")[1], labels)


def test_corrupt_and_down_mirrors_are_skipped(tmp_path, monkeypatch, server, refused_url):
    www, url = server
    _, labels = publish(www, monkeypatch)
    monkeypatch.setitem(
        datasets.MIRRORS,
        "mnist",
        [refused_url, f"{url}/bad/", f"{url}/missing/", f"{url}/good/mnist"],
    )
    _, y = datasets.load("mnist", "test")
    np.testing.assert_array_equal(y, labels)
    assert cache_files(tmp_path) == [
        "fastnn/mnist/t10k-images-idx3-ubyte.gz",
        "fastnn/mnist/t10k-labels-idx1-ubyte.gz",
    ]


def test_all_mirrors_failing(tmp_path, monkeypatch, server, refused_url):
    www, url = server
    publish(www, monkeypatch)
    mirrors = [refused_url, f"{url}/bad/", f"{url}/missing/"]
    monkeypatch.setitem(datasets.MIRRORS, "mnist", mirrors)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as info:
        datasets.load("mnist", "test", root=tmp_path / "root")
    msg = str(info.value)
    assert cache_files(tmp_path) == []
    for base in ("root", "env", "cache/fastnn", "system"):
        assert str(tmp_path / base / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert f"{refused_url}t10k-images-idx3-ubyte.gz: download failed" in msg
    assert f"{url}/bad/t10k-images-idx3-ubyte.gz: MD5 mismatch" in msg
    assert f"{url}/missing/t10k-images-idx3-ubyte.gz: download failed: HTTPError" in msg
    assert "404" in msg
    assert_says_how_to_provide(msg)


def test_no_download_when_disabled(tmp_path, monkeypatch, server):
    www, url = server
    publish(www, monkeypatch)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/good/mnist/"])
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load("mnist", "test", download=False)
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize("mode,why", [("cut", "download failed: connection closed after"),
                                      ("short", "MD5 mismatch"),
                                      ("stall", "download failed: TimeoutError")])
def test_interrupted_downloads_are_detected_and_never_used(tmp_path, monkeypatch, server, mode,
                                                          why):
    """A body cut short (announced length or not) or a stalled server: the next mirror is
    used, and nothing but the verified files is left in the cache."""
    www, url = server
    _, labels = publish(www, monkeypatch)
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 0.3)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/{mode}/mnist/"])
    with pytest.raises(FileNotFoundError, match=f"{mode}/mnist/t10k-images-idx3-ubyte.gz: {why}"):
        datasets.load("mnist", "test")
    assert cache_files(tmp_path) == []
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/{mode}/mnist/", f"{url}/good/mnist/"])
    np.testing.assert_array_equal(datasets.load("mnist", "test")[1], labels)
    assert cache_files(tmp_path) == ["fastnn/mnist/t10k-images-idx3-ubyte.gz",
                                     "fastnn/mnist/t10k-labels-idx1-ubyte.gz"]


def test_download_killed_midway_leaves_nothing_usable(tmp_path, monkeypatch, server):
    """SIGKILL during a download: at most a hidden .part file remains, which is never
    read; the next load downloads again."""
    www, url = server
    _, labels = publish(www, monkeypatch)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/slow/mnist/"])
    pid = os.fork()
    if pid == 0:
        try:
            datasets.load("mnist", "test")
        finally:
            os._exit(0)
    time.sleep(0.15)  # the slow mirror needs > 0.25 s for the image file alone
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert all(Path(f).name.startswith(".") and f.endswith(".part")
               for f in cache_files(tmp_path))
    monkeypatch.setitem(datasets.MIRRORS, "mnist", [f"{url}/good/mnist/"])
    np.testing.assert_array_equal(datasets.load("mnist", "test")[1], labels)


# --- real data ------------------------------------------------------------


def real_dir(name):
    """Return $FASTNN_DATA/name, skipping when FASTNN_DATA is unset."""
    if not REAL_DATA:
        pytest.skip("FASTNN_DATA is not set: no real MNIST/Fashion-MNIST files to test on")
    return Path(REAL_DATA) / name


def require(path):
    """Skip unless path exists."""
    if not path.is_file():
        pytest.skip(f"real data file {path} is absent")
    return path


def test_real_fashion_mnist():
    base = real_dir("fashion-mnist")
    for split in datasets.SPLITS.values():
        for stem in split:
            require(base / f"{stem}.gz")
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(root=REAL_DATA, download=False)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    for x, y in ((xtr, ytr), (xte, yte)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        assert len(y) == len(x) and set(np.unique(y).tolist()) == set(range(10))


def test_real_mnist_test_split():
    base = real_dir("mnist")
    for stem in datasets.SPLITS["test"]:
        require(base / f"{stem}.gz")
    x, y = datasets.load("mnist", "test", root=REAL_DATA, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert set(np.unique(y).tolist()) == set(range(10))


@pytest.mark.parametrize("name", datasets.DATASETS)
def test_real_md5_matches_table(name):
    base = real_dir(name)
    present = [f for f in sorted(datasets.MD5[name]) if (base / f).is_file()]
    if not present:
        pytest.skip(f"no real {name} files in {base}")
    for fname in present:
        digest = hashlib.md5((base / fname).read_bytes()).hexdigest()
        assert digest in datasets.MD5[name][fname], fname


# --- iterate_batches ------------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_sample_once(shuffle):
    x = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    batches = list(datasets.iterate_batches(x, y, 5, shuffle=shuffle, seed=1))
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(23))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)
    if not shuffle:
        assert seen.tolist() == list(range(23))


def test_batches_seed_reproducible():
    x, y = np.arange(100), np.arange(100)

    def order(seed):
        batches = datasets.iterate_batches(x, y, 7, seed=seed)
        return np.concatenate([yb for _, yb in batches]).tolist()

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert order(3) != list(range(100))


def test_batches_exact_and_large_batch():
    x, y = np.zeros((12, 3)), np.zeros(12)
    assert [len(b[0]) for b in datasets.iterate_batches(x, y, 4)] == [4, 4, 4]
    assert [len(b[0]) for b in datasets.iterate_batches(x, y, 50)] == [12]
    assert list(datasets.iterate_batches(x[:0], y[:0], 4)) == []


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "4", True, None])
def test_batches_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        datasets.iterate_batches(np.zeros(4), np.zeros(4), batch_size)


def test_batches_length_mismatch():
    with pytest.raises(ValueError, match=r"len\(x\)=4 and len\(y\)=3"):
        datasets.iterate_batches(np.zeros(4), np.zeros(3), 2)


def test_iterate_batches_names_a_missing_x_or_y():
    """iterate_batches(x, None, ...) failed in len() unnamed ('object of type NoneType
    has no len()')."""
    with pytest.raises(TypeError, match="iterate_batches: x and y must be arrays"):
        datasets.iterate_batches(np.ones((4, 2)), None, 2)
    with pytest.raises(ValueError, match="iterate_batches: x and y must have the same length"):
        datasets.iterate_batches(np.ones((4, 2)), np.ones(3), 2)
    with pytest.raises(TypeError, match=r"iterate_batches: x and y must be arrays \(setting"):
        datasets.iterate_batches([[1.0, 2.0], [3.0]], [0, 1], 1)  # NumPy's ValueError
