"""save/load of a model: architecture, weights, buffers and optimizer state.

Every Sequential and functional fastnn.Model is saved whole, as is any model built of
layers and classes registered with fastnn.nn.register. A Module subclass that is not
registered cannot be rebuilt from a file: its weights and buffers (its state_dict) and
the optimizer are saved, and `load(path, model=Net(...))` puts them into a new instance.

Format: a zip archive (stored, not compressed) holding `fastnn.json` and one `.npy`
entry per array. The JSON carries a magic string, the format version, the
architecture, the optimizer's type, hyperparameters and step count, the list of
arrays, and a SHA-256 over the JSON payload and every array entry's bytes, so a
truncated, bit-flipped or foreign file raises ValueError naming the file.

Writes go to a temporary file in the same directory, are fsync'ed, and then
os.replace'd over the destination: a crash leaves the old file or the new one,
never half of one."""
import errno
import hashlib
import io
import json
import os
import secrets
import stat
import zipfile
import zlib

import numpy as np

from . import nn, optim
from .nn import registry

__all__ = ["save", "load"]

MAGIC = "fastnn-model"
VERSION = 1
_HEADER = "fastnn.json"


def _npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array, order="C"), allow_pickle=False)
    return buf.getvalue()


def _digest(payload, entries):
    """SHA-256 over the canonical JSON payload, then each entry's name and bytes in order."""
    h = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    for name, data in entries:
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _saved_buffers(model):
    """(name, array) of the buffers a file holds: those in state_dict (torch's
    persistent ones; a register_buffer(..., persistent=False) cache is left out)."""
    state = model.state_dict()
    return [(name, b) for name, b in model.named_buffers() if name in state]


def save(model, path, optimizer=None):
    """Write `model` (any fastnn model) and optionally `optimizer` to path atomically."""
    if not isinstance(model, nn.Module) or model._is_layer():
        raise TypeError(f"save: model must be a fastnn model (Sequential, Model or a Module "
                        f"subclass), got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"save: optimizer must be a fastnn.optim optimizer or None, got "
                        f"{type(optimizer).__name__}")
    try:
        arch = registry.spec(model)
    except TypeError:  # an unregistered subclass: its state only
        arch = {"type": type(model).__name__, "config": None}
    params, buffers = list(model.named_parameters()), _saved_buffers(model)
    entries = [(f"param/{name}.npy", _npy_bytes(p.data)) for name, p in params]
    entries += [(f"buffer/{name}.npy", _npy_bytes(b)) for name, b in buffers]
    payload = {"model": arch["config"], "model_type": arch["type"], "optimizer": None,
               "parameters": [name for name, _ in params],
               "buffers": [name for name, _ in buffers]}
    # a parameter two layers share (tied weights) is listed once, under its first name:
    # the architecture does not say so, and its rebuilt layers had a parameter each
    first = {id(p): name for name, p in params}
    tied = {name: first[id(p)] for name, p in model.named_parameters(remove_duplicate=False)
            if first[id(p)] != name}
    if tied:
        payload["tied"] = tied
    if optimizer is not None:
        # by name: an optimizer over some of the parameters (a fine-tuned head) or in
        # another order was rebuilt over all of them in order (a file load refused, or
        # the state of one parameter given to another of its shape)
        names = {id(p): name for name, p in params}
        held = [names.get(id(p)) for p in optimizer.params]
        if None in held:
            raise ValueError(f"save: the optimizer's params[{held.index(None)}] is not a "
                             f"parameter of this {type(model).__name__}")
        state = optimizer.state_dict()
        payload["optimizer"] = {"type": state["type"],
                                "hyperparameters": state["hyperparameters"],
                                "steps": state["steps"], "parameters": held,
                                "state": {k: len(v) for k, v in state["state"].items()}}
        if "param_groups" in state:
            payload["optimizer"]["param_groups"] = state["param_groups"]
        entries += [(f"optim/{k}/{i}.npy", _npy_bytes(a))
                    for k, arrays in state["state"].items() for i, a in enumerate(arrays)]
    try:
        digest = _digest(payload, entries)
    except (TypeError, ValueError) as e:  # json's message names the value, not the layer
        raise TypeError(f"save: the architecture of this {arch['type']} is not "
                        f"JSON-serialisable ({e}): a config() of a registered class must "
                        f"return plain ints, floats, strings, lists and dicts") from None
    header = {"magic": MAGIC, "version": VERSION, "payload": payload,
              "entries": [name for name, _ in entries], "sha256": digest}

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(_HEADER, json.dumps(header, indent=1))
            for name, data in entries:
                zf.writestr(name, data)

    atomic_write(path, write)


def atomic_write(path, write):
    """Call write(binary file) on a temporary file beside path, fsync it and os.replace it
    over path: a crash leaves the old file or the new one, never half of one. A device or
    a pipe at path is written into instead."""
    path = os.fsdecode(os.fspath(path))  # bytes too, as open() takes them
    if not path:  # as open("") fails: os.replace's error named the temporary file
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.islink(path):  # written through, as open() writes: replacing the link lost it
        path = os.path.realpath(path)
    directory = os.path.dirname(os.path.abspath(path))
    # named here: os.open's and os.replace's errors would name the temporary file
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot write a file over a directory", path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "no directory to write the file into", path)
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        # a device or a pipe (/dev/null, a FIFO) is written into, as open() writes it:
        # os.replace put a regular file in its place (as root, over /dev/null itself)
        with open(path, "wb") as f:
            write(f)
        return
    # created as open() creates files, 0o666 less the umask (mkstemp's are 0o600)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if os.path.exists(path):  # a replaced file keeps its mode
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def open_regular(path):
    """path opened for reading if it is a regular file; else ValueError (a device or a
    pipe, such as /dev/zero, whose reads do not end)."""
    # O_NONBLOCK: a blocking open of a FIFO waits for a writer, forever (no effect on a
    # regular file's reads)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):  # as open() raises it, naming the path (os.fdopen's names fd)
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        raise ValueError(f"{os.fspath(path)}: not a regular file")
    return os.fdopen(fd, "rb")


def _read(path):
    """(header, {entry name: bytes}) of a fastnn file, checked; ValueError otherwise."""
    def bad(why):
        return ValueError(f"{path}: {why}")

    try:
        with open_regular(path) as f, zipfile.ZipFile(f) as zf:
            if any(i.compress_type != zipfile.ZIP_STORED for i in zf.infolist()):
                # save stores them: a compressed entry could inflate to any size
                raise bad("not a fastnn model file (compressed entries)")
            # save never encrypts (zipfile's read raised RuntimeError), and a negative
            # offset made its seek raise OSError
            if any(i.flag_bits & 0x1 or i.header_offset < 0 for i in zf.infolist()):
                raise bad("corrupt fastnn model file (an entry is encrypted or misplaced)")
            names = set(zf.namelist())
            if _HEADER not in names:
                raise bad("not a fastnn model file (no fastnn.json entry)")
            header = json.loads(zf.read(_HEADER))
            if not isinstance(header, dict) or header.get("magic") != MAGIC:
                raise bad("not a fastnn model file (wrong magic in fastnn.json)")
            if header.get("version") != VERSION:
                raise bad(f"fastnn model format version {header.get('version')!r} is not "
                          f"supported (this fastnn reads version {VERSION})")
            missing = [n for n in header["entries"] if n not in names]
            if missing:
                raise bad(f"corrupt fastnn model file: missing entries {missing}")
            entries = [(n, zf.read(n)) for n in header["entries"]]
            if _digest(header["payload"], entries) != header.get("sha256"):
                raise bad("corrupt fastnn model file: SHA-256 checksum mismatch")
    except ValueError as e:
        if str(e).startswith(f"{path}: "):
            raise
        raise bad(f"corrupt fastnn model file ({type(e).__name__}: {e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, TypeError,
            RecursionError, NotImplementedError) as e:  # the last: zipfile's for a version
        # or flag (strong encryption, patched data) it does not read
        raise bad(f"not a fastnn model file, or truncated/corrupt ({type(e).__name__}: "
                  f"{e})") from None
    return header, dict(entries)


def _array(path, entries, name):
    if name not in entries:
        raise ValueError(f"{path}: corrupt fastnn model file: no array entry {name}")
    try:
        return np.lib.format.read_array(io.BytesIO(entries[name]), allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: corrupt array entry {name}: {e}") from None


def load(path, model=None):
    """Read a model written by save/model.save; the optimizer (if saved) is rebuilt on
    the model's parameters with its state and put in model.optimizer. `model`: an
    instance to load the weights, buffers and optimizer into instead of building one
    from the saved architecture (needed for an unregistered Module subclass)."""
    path = os.fspath(path)
    header, entries = _read(path)
    payload = header["payload"]
    try:
        kind = payload.get("model_type", "Sequential")  # version-1 files before graphs
        saved_names = {"param": payload["parameters"], "buffer": payload.get("buffers", [])}
        if model is None:
            if payload["model"] is None:
                raise TypeError(f"it holds the weights of a {kind} whose architecture is "
                                f"not saved (an unregistered Module subclass): build one and "
                                f"pass it, fastnn.load(path, model={kind}(...))")
            model = registry.build({"type": kind, "config": payload["model"]})
            for name, to in payload.get("tied", {}).items():  # tied again as saved
                target, param = model.get_parameter(name), model.get_parameter(to)
                if param.shape != target.shape:
                    raise ValueError(f"{name} {target.shape} is tied to {to} {param.shape}")
                owner, _, attr = name.rpartition(".")
                setattr(model.get_submodule(owner), attr, param)
        elif not isinstance(model, nn.Module) or model._is_layer():
            raise TypeError(f"model must be a fastnn model, got {type(model).__name__}")
    except (KeyError, TypeError, ValueError, MemoryError, AttributeError, IndexError,
            RecursionError) as e:  # the last: layers nested hundreds deep
        raise ValueError(f"{path}: unreadable architecture ({type(e).__name__}: {e})") from None
    # Every array is read and checked before any is copied: a model passed in is left
    # as it was when the file does not fit it (it was overwritten up to the mismatch).
    copies = []
    for what, named, prefix in (("parameter", list(model.named_parameters()), "param"),
                                ("buffer", _saved_buffers(model), "buffer")):
        names = saved_names[prefix]
        if [name for name, _ in named] != names:
            raise ValueError(f"{path}: {what} names {names} do not match the "
                             f"architecture's {[name for name, _ in named]}")
        for name, target in named:
            target = target.data if prefix == "param" else target
            value = _array(path, entries, f"{prefix}/{name}.npy")
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"{path}: {what} {name} is {value.dtype} {value.shape}, "
                                 f"expected {target.dtype} {target.shape}")
            copies.append((target, value))
    opt, spec = None, payload["optimizer"]
    if spec is not None:
        try:
            by_name = dict(model.named_parameters())  # files before "parameters": all
            held = [by_name[name] for name in spec.get("parameters", payload["parameters"])]
            kind = optim.OPTIMIZERS.get(spec["type"]) if isinstance(spec["type"], str) else None
            if kind is None:  # was "KeyError: 'Bogus'"
                raise ValueError(f"unknown optimizer type {spec['type']!r}; known: "
                                 f"{sorted(optim.OPTIMIZERS)}")
            opt = kind(held, **spec["hyperparameters"])
            opt.load_state_dict({
                "type": spec["type"], "hyperparameters": spec["hyperparameters"],
                "steps": spec["steps"], "param_groups": spec.get("param_groups"),
                "state": {k: [_array(path, entries, f"optim/{k}/{i}.npy") for i in range(n)]
                          for k, n in spec["state"].items()}})
        except (KeyError, TypeError, AttributeError) as e:  # the last: a spec not a dict
            raise ValueError(f"{path}: unreadable optimizer state ({type(e).__name__}: "
                             f"{e})") from None
        except ValueError as e:
            if str(e).startswith(f"{path}: "):  # _array's names the file already
                raise
            raise ValueError(f"{path}: {e}") from None
    for target, value in copies:
        np.copyto(target, value)
    if opt is not None:
        model.optimizer = opt
    return model
