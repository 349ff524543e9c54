# _merge.pxi: merging several arrays into one (csrc/merge.c), included by fastnn/_core.pyx:
# add (a residual connection) and concatenate (channel concatenation), with backwards.


cdef list merge_inputs(object inputs, str fn):
    """inputs as a list of >= 1 float32 ndarrays of at least one dimension (not copied)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{fn}: inputs must be a list or tuple of float32 arrays, got "
                        f"{type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError(f"{fn}: inputs must hold at least one array, got none")
    arrays = []
    for i, a in enumerate(inputs):
        a = as_array(a, f"inputs[{i}]", fn)
        if a.dtype != np.float32:
            raise TypeError(f"{fn}: inputs[{i}] must be a float32 array, got dtype {a.dtype}; "
                            f"convert it with .astype(np.float32)")
        arrays.append(a)
    return arrays


def add(inputs, *, out=None):
    """The elementwise sum ((inputs[0] + inputs[1]) + inputs[2]) + ... of one or more
    float32 arrays of one shape, in list order, so the same bits for any thread count.
    `out` may be one of the inputs (in place). The backward of add is the identity: each
    input's gradient is the output's gradient itself, so there is no add_backward."""
    fn = "add"
    arrays = merge_inputs(inputs, fn)
    shape = arrays[0].shape
    for i in range(len(arrays)):
        if arrays[i].shape != shape:
            raise ValueError(f"{fn}: inputs[{i}] must have the shape of inputs[0] {shape}, "
                             f"got {arrays[i].shape}")
        arrays[i] = as_float32(arrays[i], f"inputs[{i}]", fn)
    alias = next((a for a in arrays if a is out), None)
    out = check_out(out, shape, fn, tuple(arrays), alias)
    cdef int64_t count = len(arrays), n = out.size, k
    cdef cnp.ndarray ptrs = np.empty(count, dtype=np.uintp)  # the C array of input pointers
    cdef size_t *table = <size_t *>cnp.PyArray_DATA(ptrs)
    for k in range(count):
        table[k] = <size_t>cnp.PyArray_DATA(<cnp.ndarray>arrays[k])
    cdef const float *const *xs = <const float *const *>table
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_add(count, n, xs, yp)
    check(status, fn)
    return out


cdef int merge_axis(object axis, int ndim, str fn) except -1:
    if not is_int(axis):
        raise TypeError(f"{fn}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis must be in [-{ndim}, {ndim}) for {ndim}-D arrays, "
                         f"got {axis}")
    return axis % ndim


def concatenate(inputs, axis=1, *, out=None):
    """The float32 arrays in `inputs` joined along `axis` (channels of NCHW by default),
    like torch.cat; they must agree in every other dimension. A plain copy."""
    fn = "concatenate"
    arrays = merge_inputs(inputs, fn)
    first = arrays[0].shape
    if len(first) == 0:
        raise ValueError(f"{fn}: inputs[0] must have at least one dimension, got a 0-d array")
    ax = merge_axis(axis, len(first), fn)
    for i, a in enumerate(arrays):
        if a.ndim != len(first) or a.shape[:ax] + a.shape[ax + 1:] != first[:ax] + first[ax + 1:]:
            raise ValueError(f"{fn}: inputs[{i}] of shape {a.shape} does not match inputs[0] "
                             f"{first} outside axis {ax}")
    shape = first[:ax] + (sum(a.shape[ax] for a in arrays),) + first[ax + 1:]
    out = check_out(out, shape, fn, tuple(arrays))
    np.concatenate(arrays, axis=ax, out=out)
    return out


def concatenate_backward(grad_y, sizes, axis=1, *, out=None):
    """Gradients of :func:`concatenate`: grad_y split along `axis` into parts of `sizes`
    (the inputs' sizes along axis), each a C-contiguous copy, or written into the arrays
    of the list `out`."""
    fn = "concatenate_backward"
    grad_y = as_array(grad_y, "grad_y", fn)
    if grad_y.dtype != np.float32:
        raise TypeError(f"{fn}: grad_y must be a float32 array, got dtype {grad_y.dtype}; "
                        f"convert it with grad_y.astype(np.float32)")
    if grad_y.ndim == 0:
        raise ValueError(f"{fn}: grad_y must have at least one dimension, got a 0-d array")
    ax = merge_axis(axis, grad_y.ndim, fn)
    if not isinstance(sizes, (list, tuple)) or not sizes or not all(is_int(s) for s in sizes):
        raise TypeError(f"{fn}: sizes must be a non-empty list of ints, got {sizes!r:.80}")
    if min(sizes) < 0:
        raise ValueError(f"{fn}: sizes must be >= 0, got {list(sizes)}")
    if sum(sizes) != grad_y.shape[ax]:
        raise ValueError(f"{fn}: sizes {list(sizes)} must add up to grad_y's size "
                         f"{grad_y.shape[ax]} along axis {ax} (shape {grad_y.shape})")
    if out is not None and (not isinstance(out, (list, tuple)) or len(out) != len(sizes)):
        raise TypeError(f"{fn}: out must be a list of {len(sizes)} arrays (one per size), got "
                        f"{out!r:.80}")
    grads, start = [], 0
    for i, s in enumerate(sizes):
        shape = grad_y.shape[:ax] + (int(s),) + grad_y.shape[ax + 1:]
        g = check_out(None if out is None else out[i], shape, fn, (grad_y, *grads), None,
                      f"out[{i}]")
        g[...] = grad_y[(slice(None),) * ax + (slice(start, start + s),)]
        grads.append(g)
        start += s
    return grads
