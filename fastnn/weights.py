"""Weights in the safetensors format (Hugging Face's): `save_weights(model, path)` and
`load_weights(model, path)`, under torch's state_dict key names, so the file loads in
`safetensors.torch.load_file` and into the torch twin of the model.

The format is written and read here, without the `safetensors` package: an 8-byte
little-endian header length N, N bytes of JSON ({name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, padded with spaces to a multiple
of 8), then the tensors' raw little-endian bytes, in header order, back to back. A file
that is truncated, not safetensors, or inconsistent raises ValueError naming it; bfloat16
tensors (which NumPy lacks) read as float32."""
import collections
import json
import math
import os
import struct

import numpy as np

from ._core import as_flag
from .serialization import atomic_write, open_regular

__all__ = ["save_weights", "load_weights", "read_safetensors"]

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
          "I8": np.dtype("i1"), "U64": np.dtype("<u8"), "U32": np.dtype("<u4"),
          "U16": np.dtype("<u2"), "U8": np.dtype("u1"), "BOOL": np.dtype("?")}
_CODES = {v: k for k, v in DTYPES.items()}
# torch's bfloat16, which NumPy lacks: the upper 16 bits of a float32, read as float32
BF16 = "BF16"
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
    if metadata is not None:
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
    """{name: NumPy array} of a safetensors file, validated (ValueError naming the file);
    bfloat16 tensors come as float32."""
    path = os.fspath(path)

    def bad(why):
        return ValueError(f"{path} is not a valid safetensors file: {why}")

    duplicates = []

    def unique(pairs):  # json keeps the last of a repeated name silently
        out = dict(pairs)
        if len(out) < len(pairs):
            duplicates.extend(k for k, n in collections.Counter(k for k, _ in pairs).items()
                              if n > 1)
        return out

    with open_regular(path) as f:
        raw = f.read()
    if len(raw) < 8:
        raise bad(f"it has {len(raw)} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER, len(raw) - 8):
        raise bad(f"the header length {n} exceeds the file ({len(raw)} bytes; truncated or "
                  f"foreign)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=unique)
    except (ValueError, RecursionError) as e:  # ValueError: JSON's, UTF-8's, or an int
        raise bad(f"the header is not JSON ({e})") from None  # of over 4300 digits
    if duplicates:
        raise bad(f"duplicate name {duplicates[0]!r} in the header")
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)  # null is none, as safetensors reads it
    if not (metadata is None or isinstance(metadata, dict) and all(
            isinstance(v, str) for v in metadata.values())):
        raise bad("__metadata__ must map strings to strings")
    data = memoryview(raw)[8 + n:]
    spans, out = [], {}
    for name, info in header.items():
        # other fields are ignored, as the safetensors package ignores them
        if not (isinstance(info, dict) and {"dtype", "shape", "data_offsets"} <= info.keys()):
            raise bad(f"entry {name!r} is not {{dtype, shape, data_offsets}}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not (isinstance(code, str) and (code == BF16 or code in DTYPES)):
            raise ValueError(f"{path}: tensor {name!r} has dtype {code}, which fastnn cannot "
                             f"read (it reads {', '.join(sorted([BF16, *DTYPES]))})")
        dtype = DTYPES["U16"] if code == BF16 else DTYPES[code]
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
            raise bad(f"entry {name!r} has {end - begin} bytes for shape {shape} of {code}")
        spans.append((begin, end))
        try:  # a zero-size shape may still have dimensions NumPy cannot index
            array = np.frombuffer(data[begin:end], dtype).reshape(shape)
        except ValueError as e:
            raise bad(f"entry {name!r} has shape {shape} ({e})") from None
        out[name] = ((array.astype(np.uint32) << 16).view(np.float32) if code == BF16
                     else array.astype(dtype.newbyteorder("=")))
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
