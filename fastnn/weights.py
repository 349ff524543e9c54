"""Weights in the safetensors format (Hugging Face's): `save_weights(model, path)` and
`load_weights(model, path)`, under torch's state_dict key names, so the file loads in
`safetensors.torch.load_file` and into the torch twin of the model.

The format is written and read here, without the `safetensors` package: an 8-byte
little-endian header length N, N bytes of JSON ({name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, padded with spaces to a multiple
of 8), then the tensors' raw little-endian bytes, in header order, back to back. A file
that is truncated, not safetensors, or inconsistent raises ValueError naming it."""
import json
import math
import os
import struct

import numpy as np

from ._core import as_flag
from .serialization import atomic_write

__all__ = ["save_weights", "load_weights", "read_safetensors"]

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
          "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?")}
_CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def _check_model(model, fn):
    if not hasattr(model, "state_dict") or not hasattr(model, "load_state_dict"):
        raise TypeError(f"{fn}: model must be a fastnn model or layer, got "
                        f"{type(model).__name__}")


def save_weights(model, path, metadata=None):
    """Write model.state_dict() (parameters and buffers, torch's key names) to path as
    safetensors, atomically. metadata: optional {str: str} stored in the header."""
    _check_model(model, "save_weights")
    state = model.state_dict()
    header, blobs, offset = {}, [], 0
    for name, array in state.items():
        array = np.asarray(array)
        code = _CODES.get(array.dtype.newbyteorder("<"))
        if code is None:
            raise TypeError(f"save_weights: {name} has dtype {array.dtype}, which safetensors "
                            f"cannot hold here")
        data = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    meta = {"format": "pt"}
    if metadata:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_weights: metadata must map str to str")
        meta.update(metadata)
    text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)

    atomic_write(path, write)


def read_safetensors(path):
    """{name: NumPy array} of a safetensors file, validated (ValueError naming the file)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()

    def bad(why):
        return ValueError(f"{path} is not a valid safetensors file: {why}")

    if len(raw) < 8:
        raise bad(f"it has {len(raw)} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER, len(raw) - 8):
        raise bad(f"the header length {n} exceeds the file ({len(raw)} bytes; truncated or "
                  f"foreign)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    header.pop("__metadata__", None)
    data = memoryview(raw)[8 + n:]
    spans, out = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} is not {{dtype, shape, data_offsets}}")
        dtype = DTYPES.get(info["dtype"])
        shape, offsets = info["shape"], info["data_offsets"]
        if dtype is None:
            raise bad(f"entry {name!r} has dtype {info['dtype']!r}; known: {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise bad(f"entry {name!r} has shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise bad(f"entry {name!r} has data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= len(data):
            raise bad(f"entry {name!r} spans bytes [{begin}, {end}) of a {len(data)}-byte "
                      f"data section (truncated?)")
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise bad(f"entry {name!r} has {end - begin} bytes for shape {shape} of "
                      f"{info['dtype']}")
        spans.append((begin, end))
        try:  # a zero-size shape may still have dimensions NumPy cannot index
            out[name] = np.frombuffer(data[begin:end], dtype).reshape(shape).astype(
                dtype.newbyteorder("="))
        except ValueError as e:
            raise bad(f"entry {name!r} has shape {shape} ({e})") from None
    spans.sort()
    covered = 0
    for begin, end in spans:
        if begin != covered:
            raise bad("the tensors' byte ranges overlap or leave gaps")
        covered = end
    if covered != len(data):
        raise bad(f"the data section has {len(data) - covered} bytes after the last tensor")
    return out


def load_weights(model, path, strict=True):
    """Load a safetensors file (from save_weights, or torch's `safetensors.torch.save_file`
    of the twin model's state_dict) into model in place. A file whose keys or shapes do
    not fit the model raises ValueError naming the file and the keys."""
    _check_model(model, "load_weights")
    strict = as_flag(strict, "strict", "load_weights")  # not "the file does not fit"
    state = read_safetensors(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{os.fspath(path)} does not fit this {type(model).__name__}: "
                         f"{e}") from None
