# _optim.pxi: fused optimizer steps (csrc/optim.c), included by fastnn/_core.pyx.
# One C call updates every parameter array: the pointer tables are built here once.
from libc.stdlib cimport malloc, free


cdef list optim_arrays(object arrays, str name, int64_t count, list params, bint writable,
                       str fn):
    """arrays as a list of C-contiguous float32 arrays shaped like params (in place, so
    nothing is copied: a wrong array is an error). The checks read the array structs:
    a step checks every parameter's arrays, and NumPy's Python attributes (a.flags,
    a.dtype) took a third of a small model's Adam step."""
    cdef cnp.ndarray arr
    if params is None:  # arrays are the params themselves
        arrays = list(arrays)
        count = len(arrays)
    elif arrays is None or len(arrays) != count:
        got = "None" if arrays is None else f"{len(arrays)} arrays"
        raise ValueError(f"{fn}: {name} must be a list of {count} arrays (one per param), "
                         f"got {got}")
    else:
        arrays = list(arrays)
    for i in range(count):
        a = arrays[i]
        if not cnp.PyArray_Check(a) or cnp.PyArray_TYPE(<cnp.ndarray>a) != cnp.NPY_FLOAT32 \
                or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):  # (a.dtype != np.float32)
            raise TypeError(f"{fn}: {name}[{i}] must be a float32 ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        arr = <cnp.ndarray>a
        if params is not None and not same_shape(arr, <cnp.ndarray>params[i]):
            raise ValueError(f"{fn}: {name}[{i}] must have shape {params[i].shape} like "
                             f"params[{i}], got {a.shape}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)) or \
                (writable and not cnp.PyArray_ISWRITEABLE(arr)):
            raise ValueError(f"{fn}: {name}[{i}] must be a "
                             f"{'writeable ' if writable else ''}C-contiguous (aligned) array")
    return arrays


cdef class PointerTable:
    """sizes[i] and up to five pointer columns for `count` arrays, freed with the object."""
    cdef int64_t count
    cdef int64_t *sizes
    cdef float **ptrs

    def __cinit__(self, int64_t count):
        self.count = count
        self.sizes = <int64_t *>malloc(max(count, 1) * sizeof(int64_t))
        self.ptrs = <float **>malloc(max(count, 1) * 5 * sizeof(float *))
        if self.sizes == NULL or self.ptrs == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.sizes)
        free(self.ptrs)

    cdef float **column(self, int j) noexcept nogil:
        return self.ptrs + j * self.count

    cdef fill(self, int j, list arrays, bint writable):
        cdef float **col = self.column(j)
        cdef cnp.ndarray a
        for i in range(self.count):
            a = <cnp.ndarray>arrays[i]  # (checked by optim_arrays)
            self.sizes[i] = cnp.PyArray_SIZE(a)
            col[i] = <float *>cnp.PyArray_DATA(a) if self.sizes[i] else NULL


cdef void optim_check_lr(double lr, str fn) except *:
    if not lr >= 0.0:
        raise ValueError(f"{fn}: lr must be >= 0, got {lr}")


def sgd_step(params, grads, bufs, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, first_step):
    """One torch.optim.SGD step on every (param, grad, momentum buffer), in place.

    bufs may be None when momentum == 0; first_step=True sets each buffer to the
    gradient (torch's first step) instead of decaying it."""
    fn = "sgd_step"
    optim_check_lr(lr, fn)
    if not momentum >= 0.0 or not weight_decay >= 0.0:
        raise ValueError(f"{fn}: momentum and weight_decay must be >= 0, got "
                         f"{momentum} and {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{fn}: Nesterov momentum requires a momentum and zero dampening")
    params = optim_arrays(params, "params", 0, None, True, fn)
    cdef int64_t count = len(params)
    grads = optim_arrays(grads, "grads", count, params, False, fn)
    if momentum != 0:
        bufs = optim_arrays(bufs, "bufs", count, params, True, fn)
    cdef PointerTable t = PointerTable(count)
    t.fill(0, params, True)
    t.fill(1, grads, False)
    if momentum != 0:
        t.fill(2, bufs, True)
    cdef double c_lr = lr, c_mom = momentum, c_damp = dampening, c_wd = weight_decay
    cdef int c_nesterov = bool(nesterov), c_first = bool(first_step), status
    with nogil:
        status = fnn_sgd_step(count, t.sizes, t.column(0), <const float *const *>t.column(1),
                              t.column(2) if c_mom != 0 else NULL, c_lr, c_mom, c_damp,
                              c_nesterov, c_wd, c_first)
    check(status, fn)


def adam_step(params, grads, ms, vs, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False):
    """One torch.optim.Adam step (AdamW when decoupled) on every (param, grad, m, v), in
    place; `step` counts from 1."""
    fn = "adam_step"
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"{fn}: step must be an int >= 1 (steps count from 1), got {step!r}")
    optim_check_lr(lr, fn)
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{fn}: {name} must lie in [0, 1), got {beta}")
    if not eps > 0.0:
        raise ValueError(f"{fn}: eps must be > 0, got {eps}")
    if not weight_decay >= 0.0:
        raise ValueError(f"{fn}: weight_decay must be >= 0, got {weight_decay}")
    params = optim_arrays(params, "params", 0, None, True, fn)
    cdef int64_t count = len(params)
    grads = optim_arrays(grads, "grads", count, params, False, fn)
    ms = optim_arrays(ms, "ms", count, params, True, fn)
    vs = optim_arrays(vs, "vs", count, params, True, fn)
    cdef PointerTable t = PointerTable(count)
    t.fill(0, params, True)
    t.fill(1, grads, False)
    t.fill(2, ms, True)
    t.fill(3, vs, True)
    cdef int64_t c_step = step
    cdef double c_lr = lr, b1 = beta1, b2 = beta2, c_eps = eps, c_wd = weight_decay
    cdef int c_dec = bool(decoupled), status
    with nogil:
        status = fnn_adam_step(count, t.sizes, t.column(0), <const float *const *>t.column(1),
                               t.column(2), t.column(3), c_step, c_lr, b1, b2, c_eps, c_wd,
                               c_dec)
    check(status, fn)


def rmsprop_step(params, grads, square_avgs, grad_avgs, bufs, *, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, centered=False, eps_inside=False):
    """One torch.optim.RMSprop step on every (param, grad, square average, gradient
    average, momentum buffer), in place; grad_avgs may be None unless centered, bufs
    None when momentum == 0. eps_inside: divide by sqrt(square_avg + eps), as Keras
    does, instead of sqrt(square_avg) + eps."""
    fn = "rmsprop_step"
    optim_check_lr(lr, fn)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{fn}: alpha must lie in [0, 1], got {alpha}")
    if not eps > 0.0:
        raise ValueError(f"{fn}: eps must be > 0, got {eps}")
    if not weight_decay >= 0.0 or not momentum >= 0.0:
        raise ValueError(f"{fn}: weight_decay and momentum must be >= 0, got {weight_decay} "
                         f"and {momentum}")
    params = optim_arrays(params, "params", 0, None, True, fn)
    cdef int64_t count = len(params)
    grads = optim_arrays(grads, "grads", count, params, False, fn)
    square_avgs = optim_arrays(square_avgs, "square_avgs", count, params, True, fn)
    cdef PointerTable t = PointerTable(count)
    t.fill(0, params, True)
    t.fill(1, grads, False)
    t.fill(2, square_avgs, True)
    if centered:
        t.fill(3, optim_arrays(grad_avgs, "grad_avgs", count, params, True, fn), True)
    if momentum != 0:
        t.fill(4, optim_arrays(bufs, "bufs", count, params, True, fn), True)
    cdef double c_lr = lr, c_alpha = alpha, c_eps = eps, c_wd = weight_decay, c_mom = momentum
    cdef int c_centered = bool(centered), c_inside = bool(eps_inside), status
    with nogil:
        status = fnn_rmsprop_step(count, t.sizes, t.column(0),
                                  <const float *const *>t.column(1), t.column(2),
                                  t.column(3) if c_centered else NULL,
                                  t.column(4) if c_mom != 0 else NULL, c_lr, c_alpha, c_eps,
                                  c_wd, c_mom, c_centered, c_inside)
    check(status, fn)
