"""fastnn._core: the C kernels of csrc/ behind thin, validating wrappers.

Each wrapper checks dtypes, shapes and layouts and raises a Python exception
naming the argument before the GIL is released; the C call runs inside
`with nogil`, and its status code becomes an exception. Parallelism lives in C.
"""
import math
import operator
import os
import time

import numpy as np

cimport numpy as cnp
from libc.float cimport FLT_MAX
from libc.stdint cimport int64_t, uint8_t, uint64_t

cnp.import_array()

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


def max_threads():
    """The largest thread count set_num_threads accepts: 4 per processor OpenMP sees
    (at most 1024; 4 in a build without OpenMP). More threads than cores never pay."""
    return fnn_max_threads()


def set_num_threads(n):
    """Use up to `n` OpenMP threads in later kernel calls, 1 <= n <= max_threads().
    Each kernel takes fewer when its work is too small to pay for them."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r}")
    if not 1 <= n <= fnn_max_threads():
        raise ValueError(f"set_num_threads: n must be between 1 and max_threads() = "
                         f"{fnn_max_threads()} (4 per processor), got {n!r}")
    fnn_set_num_threads(int(n))


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


def fma_peak(int64_t iters=20_000_000):
    """Measured FP32 FMA throughput in GFLOP/s of the active ISA on get_num_threads()
    threads: the ceiling that benchmarks report "% of peak" against."""
    cdef double flops = 0.0
    cdef int status
    with nogil:
        fnn_probe_fma(iters // 10, &flops)  # warm-up: clocks up, threads spawned
    start = time.perf_counter()
    with nogil:
        status = fnn_probe_fma(iters, &flops)
    seconds = time.perf_counter() - start
    check(status, "fma_peak")
    return flops / seconds / 1e9


def copy_bandwidth(int64_t nbytes=256 << 20, int repeats=5):
    """Measured copy bandwidth in GB/s (bytes read + written) on get_num_threads()
    threads, over buffers far larger than the caches."""
    cdef float[::1] src = np.ones(nbytes // 8, dtype=np.float32)
    cdef float[::1] dst = np.empty(nbytes // 8, dtype=np.float32)
    cdef int64_t n = src.shape[0]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with nogil:
            fnn_probe_copy(&dst[0], &src[0], n)
        best = min(best, time.perf_counter() - start)
    return 2 * n * 4 / best / 1e9


def default_isa():
    """The variant chosen at import when FASTNN_ISA is unset: the best this CPU runs,
    avx512, else avx2 (with FMA), else generic; avx512 also on AMD Zen 4, which executes
    it on 256-bit units (measured there: its training steps take 0.97x avx2's time)."""
    return ISA_NAMES[fnn_default_isa()]


def zmm_width():
    """The width AVX-512's FMAs run at on this CPU, measured once against AVX2's: 512 (full
    width: Zen 5, Intel's servers), 256 (Zen 4's 256-bit units), 0 without AVX-512. At 512
    the avx512 kernels take their wide tiles more readily; results are the same bits."""
    return fnn_zmm_width()


def _set_zmm_width(int width):
    """Take `width` (256 or 512) as the measured one (tests: both tile choices)."""
    check(fnn_set_zmm_width(width), "_set_zmm_width")


def _select_isa_from_env():
    name = os.environ.get("FASTNN_ISA", "").strip().lower()
    if not name:
        fnn_select_isa(fnn_default_isa())
        return
    try:
        set_isa(name)
    except (ValueError, RuntimeError) as e:
        raise ImportError(f"FASTNN_ISA={name}: {e}") from None


_select_isa_from_env()


# ---- GEMM ----
# Checks use NumPy's C API (nanoseconds each): at the MNIST shapes a whole SGEMM
# takes a few microseconds, so Python-level attribute lookups would dominate.

cdef cnp.ndarray as_array(object x, str name, str fn):
    """x as an ndarray (np.asarray), or a TypeError naming it (ragged lists...)."""
    if cnp.PyArray_Check(x):
        return <cnp.ndarray>x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__} "
                        f"({e})") from None


def as_ndarray(object x, str name, str fn):
    """as_array for the Python modules: a ragged list's NumPy error named nothing."""
    return as_array(x, name, fn)


cdef cnp.ndarray contiguous(cnp.ndarray x, str name, str fn):
    """x as an aligned C-contiguous array (a copy unless it is one); MemoryError naming x
    when that is too big (a broadcast view of a huge shape costs nothing until copied)."""
    try:
        return np.require(x, requirements="CA")
    except (MemoryError, ValueError):
        raise MemoryError(f"{fn}: cannot make a contiguous copy of {name} of shape "
                          f"{(<object>x).shape}") from None


cdef void check_float32(cnp.ndarray arr, str name, str fn) except *:
    """TypeError unless arr holds native-order float32 (a byte-swapped '>f4' would read
    as garbage)."""
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{fn}: {name} must be a float32 array, got dtype {(<object>arr).dtype}; "
                        f"convert it with {name}.astype(np.float32)")


cdef cnp.ndarray as_matrix(object x, str name, str fn):
    """x as a 2-D float32 ndarray whose strides are whole elements (copied if not)."""
    cdef cnp.ndarray arr = as_array(x, name, fn)
    check_float32(arr, name, fn)
    if cnp.PyArray_NDIM(arr) != 2:
        raise ValueError(f"{fn}: {name} must be 2-D, got shape {(<object>arr).shape}")
    cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(arr)
    if st[0] % 4 or st[1] % 4 or not cnp.PyArray_ISALIGNED(arr):
        arr = contiguous(arr, name, fn)
    return arr


cdef bint overlaps(cnp.ndarray x, cnp.ndarray y):
    """Whether the byte ranges spanned by x and y intersect (conservative, like
    np.may_share_memory)."""
    cdef char *xlo
    cdef char *xhi
    cdef char *ylo
    cdef char *yhi
    extent(x, &xlo, &xhi)
    extent(y, &ylo, &yhi)
    return xlo < yhi and ylo < xhi


cdef void extent(cnp.ndarray x, char **lo, char **hi):
    cdef char *base = <char *>cnp.PyArray_DATA(x)
    cdef cnp.npy_intp span, d
    lo[0] = base
    hi[0] = base + cnp.PyArray_ITEMSIZE(x)
    if cnp.PyArray_SIZE(x) == 0:
        hi[0] = base
        return
    for d in range(cnp.PyArray_NDIM(x)):
        span = (cnp.PyArray_DIMS(x)[d] - 1) * cnp.PyArray_STRIDES(x)[d]
        if span < 0:
            lo[0] += span
        else:
            hi[0] += span


# Window arguments (kernel size, stride, padding, dilation) above this are rejected up
# front: any product of a few of them and the array dimensions stays far inside int64.
MAX_WINDOW_ARG = 1 << 40


cdef tuple int_pair(object v, str name, str fn, int minimum):
    """An int or a pair of ints, each in [minimum, MAX_WINDOW_ARG], as a 2-tuple."""
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, (int, np.integer))
                             for p in pair):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum} "
                         f"({'positive' if minimum else 'non-negative'}), got {v!r}")
    if max(pair) > MAX_WINDOW_ARG:
        raise ValueError(f"{fn}: {name} must be <= 2**40, got {v!r}")
    return int(pair[0]), int(pair[1])


def is_int(v):
    """Whether v is a Python or NumPy integer (not a bool): what size arguments accept."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def as_flag(object v, str name, str fn):
    """v as a bool if it is True or False (NumPy's bool too), else a TypeError naming it:
    a string such as "no", or a list, would count as True."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {v!r}")
    return bool(v)


def as_flags(str fn, dict flags):
    """as_flag of each {name: value} of flags, in order."""
    return [as_flag(v, name, fn) for name, v in flags.items()]


cpdef object as_real(object v, str name, str fn):
    """v as a Python float, or a TypeError naming it (bools, complex, strings...); also
    used by the layers and optimizers for their hyperparameters."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number, got {v!r}")
    return float(v)


def as_sample_shape(object shape, str name, str fn):
    """A per-sample shape (a sequence of dimensions, or an int for one) as a tuple of
    ints in [1, MAX_WINDOW_ARG], or a ValueError naming name and fn."""
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not all(is_int(d) and 1 <= d <= MAX_WINDOW_ARG for d in dims):
        raise ValueError(f"{fn}: {name} must hold positive ints (per sample, e.g. (1, 28, 28)), "
                         f"got {shape!r}")
    return tuple(int(d) for d in dims)


def as_rng(object seed, str fn):
    """np.random.default_rng(seed), or an error naming seed and fn (NumPy's says neither,
    e.g. 'expected non-negative integer'); used wherever a seed argument is taken."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        kind = ValueError if is_int(seed) else TypeError
        raise kind(f"{fn}: seed must be None, a non-negative int or a numpy Generator, got "
                   f"{seed!r}") from None


cdef bint has_shape(cnp.ndarray a, tuple shape) except -1:
    """a.shape == shape (a tuple of ints), without building a.shape: every kernel call
    checks its outputs so, and the tuple cost more than the comparison."""
    cdef int d, ndim = cnp.PyArray_NDIM(a)
    if len(shape) != ndim:
        return False
    for d in range(ndim):
        if cnp.PyArray_DIMS(a)[d] != <cnp.npy_intp>shape[d]:
            return False
    return True


cdef bint same_shape(cnp.ndarray a, cnp.ndarray b):
    """a.shape == b.shape, without building either tuple."""
    cdef int d, ndim = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != ndim:
        return False
    for d in range(ndim):
        if cnp.PyArray_DIMS(a)[d] != cnp.PyArray_DIMS(b)[d]:
            return False
    return True


cdef object check_out(object out, tuple shape, str fn, tuple inputs=(), object alias=None,
                      str name="out", object dtype=np.float32):
    """A fresh output, or `out` checked: dtype, exact shape, C-contiguous, writeable, and
    overlapping none of `inputs` (None entries skipped; it may be exactly `alias`, for
    in-place ops)."""
    if out is None:
        try:
            return np.empty(shape, dtype=dtype)
        except (MemoryError, ValueError):  # ValueError: the byte count overflows
            raise MemoryError(f"{fn}: cannot allocate {name} of shape {shape} "
                              f"({math.prod(shape) * np.dtype(dtype).itemsize:,} bytes)") from None
    if not cnp.PyArray_Check(out) or (<object>out).dtype != dtype:
        raise TypeError(f"{fn}: {name} must be a {np.dtype(dtype).name} ndarray, got "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    cdef cnp.ndarray arr = <cnp.ndarray>out
    if not has_shape(arr, shape):
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {(<object>arr).shape}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISWRITEABLE(arr)
            and cnp.PyArray_ISALIGNED(arr)):
        raise ValueError(f"{fn}: {name} must be a writeable, aligned C-contiguous array")
    for x in inputs:
        if x is None:
            continue
        if x is alias and cnp.PyArray_SIZE(arr) and data_ptr(arr) == data_ptr(x):
            continue  # exactly the input: in place
        if overlaps(arr, x):
            raise ValueError(f"{fn}: {name} overlaps an input; pass a separate array")
    return arr


cdef object as_float32(object x, str name, str fn, int ndim=-1):
    """x as a C-contiguous float32 ndarray (copied only if it is not), with `ndim`
    dimensions when ndim >= 0."""
    cdef cnp.ndarray arr = as_array(x, name, fn)
    check_float32(arr, name, fn)
    if ndim >= 0 and cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {(<object>arr).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        arr = contiguous(arr, name, fn)  # a misaligned float * in C is undefined behaviour
    return arr


cdef inline void *data_ptr(object a):
    """Data pointer of an ndarray the caller keeps alive; NULL for None."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef cnp.ndarray gemm_into(object a_in, object b_in, object out, float alpha, float beta):
    cdef cnp.ndarray a = as_matrix(a_in, "a", "matmul")
    cdef cnp.ndarray b = as_matrix(b_in, "b", "matmul")
    cdef int64_t m = cnp.PyArray_DIMS(a)[0], k = cnp.PyArray_DIMS(a)[1]
    cdef int64_t n = cnp.PyArray_DIMS(b)[1]
    if cnp.PyArray_DIMS(b)[0] != k:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {(<object>a).shape} and b has "
                         f"shape {(<object>b).shape}; b must have shape ({k}, N)")
    if out is None:
        beta = 0.0
    cdef cnp.ndarray c = check_out(out, (m, n), "matmul", (a, b))
    cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(b)
    cdef float *cp = <float *>cnp.PyArray_DATA(c)
    cdef int64_t a_rs = cnp.PyArray_STRIDES(a)[0] // 4, a_cs = cnp.PyArray_STRIDES(a)[1] // 4
    cdef int64_t b_rs = cnp.PyArray_STRIDES(b)[0] // 4, b_cs = cnp.PyArray_STRIDES(b)[1] // 4
    cdef int status
    with nogil:
        status = fnn_sgemm_strided(m, n, k, alpha, ap, a_rs, a_cs, bp, b_rs, b_cs, beta, cp, n)
    check(status, "matmul")
    return c


def matmul(a, b, out=None):
    """a @ b for 2-D float32 arrays, on fastnn's SGEMM.

    Any strided view is read in place (`x.T` costs no copy); other dtypes raise
    TypeError (fastnn never converts silently); `out`, if given, must be a
    C-contiguous float32 array of shape (M, N) that does not overlap a or b."""
    return gemm_into(a, b, out, 1.0, 0.0)


def gemm(a, b, out=None, float alpha=1.0, float beta=0.0):
    """out = alpha * a @ b + beta * out (beta ignored without `out`); as matmul otherwise.
    With beta == 0 the old contents of out are never read (NaN included)."""
    return gemm_into(a, b, out, alpha, beta)


# ---- kernel families: one .pxi each, sharing this module's helpers ----
include "_conv.pxi"
include "_pool.pxi"
include "_norm.pxi"
include "_activation.pxi"
include "_merge.pxi"
include "_loss.pxi"
include "_optim.pxi"
