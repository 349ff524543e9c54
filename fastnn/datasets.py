"""MNIST and Fashion-MNIST: an IDX reader, a file finder with a checked download, batching.

Each file is looked for, in order, under an explicit ``root=``, ``$FASTNN_DATA``,
the user cache (``$XDG_CACHE_HOME/fastnn`` or ``~/.cache/fastnn``) and
``/usr/share/datasets`` (where Debian's ``dataset-fashion-mnist`` installs), at
``<base>/<name>/<file>`` either gzipped (``.gz``) or uncompressed. A file found
nowhere is downloaded into the user cache from the mirrors in ``MIRRORS`` and
kept only if its MD5 is one listed in ``MD5``.
"""

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ._core import as_flag, as_rng, is_int

__all__ = ["read_idx", "load", "load_raw", "load_splits", "load_mnist", "load_fashion_mnist",
           "iterate_batches", "cache_dir"]

# IDX type byte -> big-endian dtype of the stored values.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_NDIM = 8
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

DATASETS = ("mnist", "fashion-mnist")
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Base URLs the ``.gz`` files are downloaded from, tried in order.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# Accepted MD5 digests of each ``.gz`` file. MNIST: the canonical release.
# Fashion-MNIST: Debian's repacked files (dataset-fashion-mnist, also in the
# project's shared data) first, then the upstream release's published digests.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432",),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            "cf8536b0aa1a6ac5fa3f23001093305c",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        "train-labels-idx1-ubyte.gz": (
            "10bea18fdb374794d4bb42e356e600c9",
            "25c81989df183df01b3e8a0aad5dffbe",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "f78720b4224f21cce2f2ccf2d7a94c9a",
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "0d30e22e447f3c33dab9ed536400ac01",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    },
}

SYSTEM_DIR = "/usr/share/datasets"
DOWNLOAD_TIMEOUT = 30.0


def _read_exactly(f, n, path, what):
    """Read n bytes from f in chunks, raising ValueError if the stream ends first."""
    data = bytearray()
    while len(data) < n:
        chunk = f.read(min(_CHUNK, n - len(data)))
        if not chunk:
            raise ValueError(
                f"IDX file {path} is truncated: expected {n} bytes of {what}, found {len(data)}"
            )
        data += chunk
    return data


def _count_rest(f):
    """Count the bytes left in f without keeping them."""
    count = 0
    while chunk := f.read(_CHUNK):
        count += len(chunk)
    return count


def _parse_idx(f, path):
    """Parse an IDX stream f (already decompressed) into a native-endian array."""
    magic = _read_exactly(f, 4, path, "header")
    if magic[:2] != b"\x00\x00":
        raise ValueError(
            f"IDX file {path} has a bad magic number {bytes(magic).hex()}: "
            "expected it to start with 0000"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_TYPES:
        raise ValueError(
            f"IDX file {path} has an unknown data type code 0x{code:02x} "
            f"(known: {', '.join(f'0x{c:02x}' for c in _IDX_TYPES)})"
        )
    if not 1 <= ndim <= _MAX_NDIM:
        raise ValueError(f"IDX file {path} has {ndim} dimensions: expected 1 to {_MAX_NDIM}")
    dims = struct.unpack(f">{ndim}I", _read_exactly(f, 4 * ndim, path, "header"))
    dtype = _IDX_TYPES[code]
    expected = dtype.itemsize * math.prod(dims)
    data = _read_exactly(f, expected, path, "data")
    extra = _count_rest(f)
    if extra:
        raise ValueError(
            f"IDX file {path} has {extra} trailing bytes: expected {expected} bytes of data "
            f"for shape {dims}, found {expected + extra}"
        )
    try:
        return np.frombuffer(data, dtype).astype(dtype.newbyteorder("=")).reshape(dims)
    except ValueError as exc:
        raise ValueError(f"IDX file {path} has a shape {dims} NumPy cannot hold: {exc}") from exc


def read_idx(path):
    """Read an IDX file, gzipped or raw, into a native-endian NumPy array."""
    with open(path, "rb") as raw:
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            return _parse_idx(raw, path)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse_idx(f, path)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(
                f"IDX file {path} is a corrupt or truncated gzip stream: {exc}"
            ) from exc


def cache_dir():
    """Return the user cache directory ($XDG_CACHE_HOME/fastnn or ~/.cache/fastnn)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "fastnn"


def _search_bases(root):
    """Return the base directories to look in, highest priority first."""
    bases = [] if root is None else [Path(root)]
    if os.environ.get("FASTNN_DATA"):
        bases.append(Path(os.environ["FASTNN_DATA"]))
    return bases + [cache_dir(), Path(SYSTEM_DIR)]


def _download(name, gz_name, dest_dir, tried):
    """Download gz_name from the mirrors of name into dest_dir; return its path or None."""
    accepted = MD5[name][gz_name]
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        tried.append((str(dest_dir), f"cannot create cache directory: {exc}"))
        return None
    for base in MIRRORS[name]:
        url = base.rstrip("/") + "/" + gz_name
        fd, tmp = tempfile.mkstemp(prefix=f".{gz_name}.", suffix=".part", dir=dest_dir)
        try:
            digest = hashlib.md5()
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp,
            ):
                received = 0
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                short = resp.length  # bytes of an announced Content-Length never received
            if short:
                tried.append((url, f"download failed: connection closed after {received:,} "
                                   f"bytes, {short:,} short of the announced length"))
                continue
            if digest.hexdigest() not in accepted:
                expected = " or ".join(accepted)
                tried.append((url, f"MD5 mismatch: got {digest.hexdigest()}, expected {expected}"))
                continue
            final = dest_dir / gz_name
            os.replace(tmp, final)
            return final
        except (OSError, http.client.HTTPException, ValueError) as exc:
            tried.append((url, f"download failed: {type(exc).__name__}: {exc}"))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _find(name, stem, root, download):
    """Return the path of file stem of dataset name, downloading it if allowed."""
    tried = []
    for base in _search_bases(root):
        for fname in (stem + ".gz", stem):
            path = base / name / fname
            if path.is_file():
                return path
            tried.append((str(path), "not found"))
    if download:
        path = _download(name, stem + ".gz", cache_dir() / name, tried)
        if path is not None:
            return path
    else:
        tried.append(("download", "skipped (download=False)"))
    places = "\n".join(f"  {where}: {why}" for where, why in tried)
    raise FileNotFoundError(
        f"cannot find {name} file {stem} (.gz or uncompressed); looked in:\n{places}\n"
        f"Provide it by setting FASTNN_DATA=<dir> or passing root=<dir>, with the files "
        f"at <dir>/{name}/{stem}.gz; for Fashion-MNIST, `apt-get install dataset-fashion-mnist` "
        f"installs them under {SYSTEM_DIR}/fashion-mnist."
    )


def load_raw(name, split, root=None, download=True):
    """Load one split of a dataset as stored: (images uint8 (N, 28, 28), labels uint8 (N,))."""
    download = as_flag(download, "download", "load")  # "no" downloaded
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"load: root must be a directory path or None, got {root!r}")
    if name not in DATASETS:
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    image_stem, label_stem = SPLITS[split]
    image_path = _find(name, image_stem, root, download)
    label_path = _find(name, label_stem, root, download)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{image_path} holds {images.dtype} images of shape {images.shape}: "
            "expected uint8 of shape (N, 28, 28)"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{label_path} holds {labels.dtype} labels of shape {labels.shape}: "
            "expected uint8 of shape (N,)"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path} has label {labels.max()}: expected labels in 0..9")
    return images, labels


def load(name, split, root=None, download=True):
    """Load one split of a dataset as (x float32 (N, 1, 28, 28) in [0, 1], y int64)."""
    images, labels = load_raw(name, split, root, download)
    x = images.reshape(-1, 1, 28, 28).astype(np.float32)
    np.divide(x, 255.0, out=x)
    return x, labels.astype(np.int64)


MNIST_FALLBACK_TRAIN = 8000


def load_splits(name, root=None, download=True, loader=load):
    """((x_train, y_train), (x_test, y_test), note) by `loader` (load or load_raw), or,
    for MNIST when only its test split is available locally, that split divided in two:
    the first 8,000 images (80 % of a smaller file) to train, the rest to evaluate, with
    `note` saying so (None otherwise)."""
    download = as_flag(download, "download", "load_splits")
    try:
        train = loader(name, "train", root, download=name != "mnist" and download)
    except FileNotFoundError:
        if name != "mnist":
            raise
        try:
            x, y = loader("mnist", "test", root, download=False)
        except FileNotFoundError:  # nothing local: load both splits, downloading if allowed
            train = loader(name, "train", root, download=download)
        else:
            n = min(MNIST_FALLBACK_TRAIN, len(x) * 4 // 5)
            note = (f"MNIST training split not found; training on the first {n:,} "
                    f"test-split images and evaluating on the remaining {len(x) - n:,}")
            return (x[:n], y[:n]), (x[n:], y[n:]), note
    test = loader(name, "test", root, download=download)
    return train, test, None


def load_mnist(root=None, download=True):
    """Load MNIST as ((x_train, y_train), (x_test, y_test))."""
    return load("mnist", "train", root, download), load("mnist", "test", root, download)


def load_fashion_mnist(root=None, download=True):
    """Load Fashion-MNIST as ((x_train, y_train), (x_test, y_test))."""
    return (
        load("fashion-mnist", "train", root, download),
        load("fashion-mnist", "test", root, download),
    )


def as_batch_size(batch_size, fn, default=None):
    """batch_size as a positive int, or a ValueError naming fn; None means `default` where
    the caller has one (the Keras dialect's 32)."""
    if batch_size is None and default is not None:
        return default
    if not is_int(batch_size) or batch_size <= 0:
        allowed = " or None" if default is not None else ""
        raise ValueError(f"{fn}: batch_size must be a positive int{allowed}, got {batch_size!r}")
    return int(batch_size)


def iterate_batches(x, y, batch_size, shuffle=True, seed=None):
    """Return a generator of (xb, yb) batches covering x and y once; the last may be partial."""
    batch_size = as_batch_size(batch_size, "iterate_batches")
    shuffle = as_flag(shuffle, "shuffle", "iterate_batches")
    try:
        x, y = np.asarray(x), np.asarray(y)
    except ValueError as e:  # a ragged list: NumPy's error named neither
        raise TypeError(f"iterate_batches: x and y must be arrays ({e})") from None
    if x.ndim == 0 or y.ndim == 0:  # None or a scalar: len() failed unnamed
        raise TypeError(f"iterate_batches: x and y must be arrays with one entry per sample, "
                        f"got {x.dtype} of shape {x.shape} and {y.dtype} of shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"iterate_batches: x and y must have the same length, got "
                         f"len(x)={len(x)} and len(y)={len(y)}")
    order = as_rng(seed, "iterate_batches").permutation(len(x)) if shuffle else None

    def batches():
        """Yield the batches in order (fancy-indexed copies when shuffled, views otherwise)."""
        for start in range(0, len(x), batch_size):
            if order is None:
                yield x[start:start + batch_size], y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                yield x[idx], y[idx]

    return batches()
