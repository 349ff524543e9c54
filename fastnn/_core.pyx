"""fastnn._core: the C kernels of csrc/ behind thin, validating wrappers.

Each wrapper checks dtypes, shapes and layouts and raises a Python exception
naming the argument before the GIL is released; the C call runs inside
`with nogil`, and its status code becomes an exception. Parallelism lives in C.
"""
import os

import numpy as np

from libc.stdint cimport int64_t

ISA_NAMES = tuple(fnn_isa_name(i).decode() for i in range(FNN_ISA_COUNT))


cdef int check(int status, str what) except -1:
    """Turn a C status code into the matching Python exception."""
    if status == FNN_OK:
        return 0
    if status == FNN_ENOMEM:
        raise MemoryError(f"{what}: could not allocate the kernel workspace")
    if status == FNN_EUNSUPPORTED:
        raise RuntimeError(f"{what}: not supported by this CPU or build")
    raise ValueError(f"{what}: the C kernel rejected its arguments (status {status})")


# ---- runtime: ISA, threads, build facts ----

def supported_isas():
    """Names of the instruction-set variants this CPU and OS can run, best last."""
    return tuple(ISA_NAMES[i] for i in range(FNN_ISA_COUNT) if fnn_isa_supported(i))


def get_isa():
    """Name of the instruction-set variant in use."""
    return ISA_NAMES[fnn_current_isa()]


def set_isa(name):
    """Switch every kernel to the variant `name` ('avx512', 'avx2' or 'generic')."""
    if name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {name!r}; expected one of {', '.join(ISA_NAMES)}")
    if fnn_select_isa(ISA_NAMES.index(name)) != FNN_OK:
        raise RuntimeError(
            f"ISA {name!r} is not supported by this CPU or OS; supported here: "
            f"{', '.join(supported_isas())}")


def set_num_threads(n):
    """Use `n` OpenMP threads in later kernel calls (like omp_set_num_threads)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    fnn_set_num_threads(min(int(n), 1 << 16))


def get_num_threads():
    """Threads the next kernel call may use (OMP_NUM_THREADS / threadpoolctl honoured)."""
    return fnn_get_num_threads()


def has_openmp():
    return bool(fnn_has_openmp())


def compiler():
    return fnn_compiler().decode()


def release_workspace():
    """Free the calling thread's cached kernel workspace."""
    fnn_release_workspace()


def _select_isa_from_env():
    name = os.environ.get("FASTNN_ISA", "").strip().lower()
    if not name:
        fnn_select_isa(fnn_best_isa())
        return
    try:
        set_isa(name)
    except (ValueError, RuntimeError) as e:
        raise ImportError(f"FASTNN_ISA={name}: {e}") from None


_select_isa_from_env()


# ---- GEMM ----

cdef object as_matrix(object x, str name, str fn):
    """x as a 2-D float32 ndarray whose strides are whole elements (copied if not)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"{fn}: {name} must be a float32 array, got dtype {x.dtype}; "
                        f"convert it with {name}.astype(np.float32)")
    if x.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2-D, got shape {x.shape}")
    if x.strides[0] % 4 or x.strides[1] % 4 or not x.flags.aligned:
        x = np.ascontiguousarray(x)
    return x


def gemm(a, b, out=None, float alpha=1.0, float beta=0.0):
    """out = alpha * a @ b + beta * out for 2-D float32 arrays of any strides.

    Transposed and strided views are read in place (packing absorbs the layout).
    `out` must be C-contiguous float32 of shape (M, N) and must not overlap a or b;
    with beta == 0 its old contents are ignored (NaN included)."""
    a = as_matrix(a, "a", "matmul")
    b = as_matrix(b, "b", "matmul")
    cdef int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {a.shape} and b has "
                         f"shape {b.shape}; b must have shape ({k}, N)")
    if out is None:
        out = np.empty((m, n), dtype=np.float32)
        beta = 0.0
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.float32:
            raise TypeError(f"matmul: out must be a float32 ndarray, got "
                            f"{getattr(out, 'dtype', type(out).__name__)}")
        if out.shape != (m, n):
            raise ValueError(f"matmul: out must have shape ({m}, {n}) for a {a.shape} @ b "
                             f"{b.shape}, got {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("matmul: out must be a writeable C-contiguous array")
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError("matmul: out overlaps an input (a or b); pass a separate array")
    if m == 0 or n == 0:
        return out
    if k == 0:
        out[...] = 0.0 if beta == 0.0 else beta * out
        return out
    cdef const float[:, :] av = a
    cdef const float[:, :] bv = b
    cdef float[:, ::1] cv = out
    cdef int status
    with nogil:
        status = fnn_sgemm_strided(m, n, k, alpha,
                                   &av[0, 0], av.strides[0] // 4, av.strides[1] // 4,
                                   &bv[0, 0], bv.strides[0] // 4, bv.strides[1] // 4,
                                   beta, &cv[0, 0], n)
    check(status, "matmul")
    return out


# ---- kernel families: one .pxi each, sharing this module's helpers ----
include "_conv.pxi"
include "_pool.pxi"
include "_activation.pxi"
include "_loss.pxi"
include "_optim.pxi"
