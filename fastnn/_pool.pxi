# _pool.pxi: max and average pooling (csrc/pool.c), included by fastnn/_core.pyx.
# Also ew_same_shape, which the elementwise families (_activation, _loss) share.


cdef object ew_same_shape(cnp.ndarray a, str a_name, cnp.ndarray b, str b_name, str fn):
    if not same_shape(a, b):
        raise ValueError(f"{fn}: {b_name} must have the shape of {a_name} "
                         f"{(<object>a).shape}, got {(<object>b).shape}")
    return b


cdef fnn_pool2d pool_geometry(tuple shape, object kernel_size, object stride, object padding,
                              str fn, object ceil_mode=False,
                              object count_include_pad=True) except *:
    """Shapes and window of a pooling call on input of `shape`, checked like PyTorch does
    (ceil_mode and count_include_pad: torch's arguments, see csrc/fastnn.h)."""
    if len(shape) != 4 or shape[2] == 0 or shape[3] == 0:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W) with H, W >= 1, got shape "
                         f"{shape}")
    kh, kw = int_pair(kernel_size, "kernel_size", fn, 1)
    sh, sw = (kh, kw) if stride is None else int_pair(stride, "stride", fn, 1)
    ph, pw = int_pair(padding, "padding", fn, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{fn}: padding {(ph, pw)} must be non-negative and at most half "
                         f"of kernel_size {(kh, kw)}")
    as_flags(fn, {"ceil_mode": ceil_mode, "count_include_pad": count_include_pad})
    cdef fnn_pool2d p
    p.planes = shape[0] * shape[1]
    p.h, p.w = shape[2], shape[3]
    p.kh, p.kw, p.sh, p.sw, p.ph, p.pw = kh, kw, sh, sw, ph, pw
    p.ceil_mode, p.exclude_pad = bool(ceil_mode), not count_include_pad
    p.oh = fnn_pool_output_size(p.h, kh, sh, ph, p.ceil_mode)
    p.ow = fnn_pool_output_size(p.w, kw, sw, pw, p.ceil_mode)
    if p.oh < 1 or p.ow < 1:
        raise ValueError(f"{fn}: output size is too small: ({p.oh}, {p.ow}) for input "
                         f"({p.h}, {p.w}), kernel_size {(kh, kw)}, stride {(sh, sw)}, "
                         f"padding {(ph, pw)}")
    return p


def pool_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad, bint ceil_mode):
    """A pooling output's size along one dimension of size n (< 1 if no window fits):
    floor, or with ceil_mode torch's rounding up (csrc/fastnn.h)."""
    return fnn_pool_output_size(n, k, stride, pad, ceil_mode)


cdef tuple pool_out_shape(object x, fnn_pool2d *p):
    return (x.shape[0], x.shape[1], p.oh, p.ow)


cdef object pool_grad_out(object grad_out, object x, fnn_pool2d *p, str fn):
    grad_out = as_float32(grad_out, "grad_out", fn)
    shape = pool_out_shape(x, p)
    if grad_out.shape != shape:
        raise ValueError(f"{fn}: grad_out must have shape {shape} (the pooled x), "
                         f"got {grad_out.shape}")
    return grad_out


cdef object pool_indices(object indices, object grad_out, str fn, object dtype=np.int64,
                         str kind="an int64 array"):
    """The forward's argmax `indices` for a backward pass: `dtype`, grad_out's shape."""
    indices = as_array(indices, "indices", fn)
    if indices.dtype != dtype:
        raise TypeError(f"{fn}: indices must be {kind} (from the forward's "
                        f"return_indices), got dtype {indices.dtype}")
    ew_same_shape(grad_out, "grad_out", indices, "indices", fn)
    cdef cnp.ndarray arr = <cnp.ndarray>indices
    if cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr):
        return indices  # (what np.require returns then, after ~3 us in Python)
    return contiguous(arr, "indices", fn)


cdef void pool_indices_out_of_range(fnn_pool2d *p, str fn) except *:
    raise ValueError(f"{fn}: indices must lie in [0, H*W) = [0, {p.h * p.w}) of each "
                     f"input plane")


def max_pool2d_with_indices(x, kernel_size, stride=None, padding=0, *, ceil_mode=False,
                            out=None, indices=None):
    """Max pooling of NCHW float32 x: (y, int64 indices h*W + w into each input plane).

    Padding counts as -inf; ties pick the first maximum in row-major window order; a
    window with NaN yields NaN (like torch.nn.functional.max_pool2d_with_indices).
    ceil_mode: the output size rounds up, as torch's (the last windows are clipped)."""
    fn = "max_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn, ceil_mode)
    shape = pool_out_shape(x, &p)
    out = check_out(out, shape, fn, (x,))
    indices = check_out(indices, shape, fn, (x, out), alias=None, name="indices", dtype=np.int64)
    if out.size == 0:
        return out, indices
    cdef const float *xp = <const float *>data_ptr(x)
    cdef float *yp = <float *>data_ptr(out)
    cdef int64_t *ip = <int64_t *>data_ptr(indices)
    cdef int status
    with nogil:
        status = fnn_max_pool2d(&p, xp, yp, ip)
    check(status, fn)
    return out, indices


def max_pool2d(x, kernel_size, stride=None, padding=0, *, ceil_mode=False, out=None):
    """Max pooling of NCHW float32 x (see max_pool2d_with_indices)."""
    fn = "max_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn, ceil_mode)
    out = check_out(out, pool_out_shape(x, &p), fn, (x,))
    if out.size == 0:
        return out
    cdef const float *xp = <const float *>data_ptr(x)
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_max_pool2d(&p, xp, yp, NULL)
    check(status, fn)
    return out


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, *, ceil_mode=False,
                        indices=None, out=None):
    """Gradient of max_pool2d w.r.t. x: grad_out scattered (summed) to each window's
    maximum, through the forward's `indices` when given, else recomputed from x."""
    fn = "max_pool2d_backward"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn, ceil_mode)
    grad_out = pool_grad_out(grad_out, x, &p, fn)
    if indices is not None:
        indices = pool_indices(indices, grad_out, fn)
    out = check_out(out, x.shape, fn, (x, grad_out) if indices is None else (x, grad_out, indices))
    if out.size == 0:
        return out
    cdef const float *gp = <const float *>data_ptr(grad_out)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const int64_t *ip = <const int64_t *>data_ptr(indices) if indices is not None else NULL
    cdef float *op = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_max_pool2d_backward(&p, gp, ip, xp, op)
    if status == FNN_EINVAL and indices is not None:
        pool_indices_out_of_range(&p, fn)
    check(status, fn)
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               *, out=None):
    """Average pooling of NCHW float32 x; zero padding counts in the kh*kw divisor unless
    count_include_pad is False; ceil_mode rounds the output size up (torch's arguments:
    a window running past the padding divides by its part inside the padded plane)."""
    fn = "avg_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn, ceil_mode,
                                      count_include_pad)
    out = check_out(out, pool_out_shape(x, &p), fn, (x,))
    if out.size == 0:
        return out
    cdef const float *xp = <const float *>data_ptr(x)
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_avg_pool2d(&p, xp, yp)
    check(status, fn)
    return out


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, out=None):
    """Gradient of avg_pool2d w.r.t. x: grad_out / (its window's divisor) spread over
    each window."""
    fn = "avg_pool2d_backward"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn, ceil_mode,
                                      count_include_pad)
    grad_out = pool_grad_out(grad_out, x, &p, fn)
    out = check_out(out, x.shape, fn, (x, grad_out))
    if out.size == 0:
        return out
    cdef const float *gp = <const float *>data_ptr(grad_out)
    cdef float *op = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_avg_pool2d_backward(&p, gp, op)
    check(status, fn)
    return out


cdef tuple adaptive_output_size(object output_size, tuple shape, str fn):
    """(oh, ow) from an int or a pair of ints; None in the pair keeps that input size."""
    pair = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(pair) != 2 or output_size is None or any(
            p is not None and not is_int(p) for p in pair):
        raise TypeError(f"{fn}: output_size must be an int or a pair of ints (or None: the "
                        f"input's size), got {output_size!r}")
    sizes = tuple(shape[2 + k] if pair[k] is None else int(pair[k]) for k in range(2))
    if not all(1 <= v <= MAX_WINDOW_ARG for v in sizes):
        raise ValueError(f"{fn}: output_size must be in [1, 2**40], got {output_size!r}")
    return sizes


def adaptive_avg_pool2d(x, output_size, *, out=None):
    """Adaptive average pooling of NCHW float32 x to output_size (an int, or a pair whose
    None entries keep the input's size), like torch.nn.functional.adaptive_avg_pool2d:
    output row i averages input rows [floor(i*H/oh), ceil((i+1)*H/oh)), columns likewise
    (windows overlap when the sizes do not divide). output_size 1 is global average
    pooling."""
    fn = "adaptive_avg_pool2d"
    x = as_float32(x, "x", fn)
    if x.ndim != 4 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W) with H, W >= 1, got shape "
                         f"{x.shape}")
    oh, ow = adaptive_output_size(output_size, x.shape, fn)
    if max(oh * x.shape[2], ow * x.shape[3]) >= 2**62:
        raise ValueError(f"{fn}: output_size {(oh, ow)} is too large for x {x.shape}")
    out = check_out(out, (x.shape[0], x.shape[1], oh, ow), fn, (x,))
    cdef int64_t planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef int64_t oh_ = oh, ow_ = ow
    cdef const float *xp = <const float *>data_ptr(x)
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_adaptive_avg_pool2d(planes, h, w, oh_, ow_, xp, yp)
    check(status, fn)
    return out


def adaptive_avg_pool2d_backward(grad_y, input_shape, *, out=None):
    """Gradient of :func:`adaptive_avg_pool2d` w.r.t. its input of shape input_shape
    (N, C, H, W) (only the shape is needed): each grad_y / (its window's size) spread
    over its window, overlaps summed."""
    fn = "adaptive_avg_pool2d_backward"
    grad_y = as_float32(grad_y, "grad_y", fn)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4 or not all(
            is_int(v) for v in input_shape):
        raise TypeError(f"{fn}: input_shape must be 4 ints (N, C, H, W), got {input_shape!r}")
    shape = tuple(int(v) for v in input_shape)
    if min(shape) < 0 or shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: input_shape must be (N, C, H, W) with N, C >= 0 and "
                         f"H, W >= 1, got {shape}")
    if grad_y.ndim != 4 or grad_y.shape[:2] != shape[:2] or grad_y.shape[2] == 0 or \
            grad_y.shape[3] == 0:
        raise ValueError(f"{fn}: grad_y must be 4-D ({shape[0]}, {shape[1]}, oh, ow) with "
                         f"oh, ow >= 1 for input_shape {shape}, got {grad_y.shape}")
    if max(shape[2] * shape[3], math.prod(shape), grad_y.shape[2] * shape[2],
           grad_y.shape[3] * shape[3]) >= 2**62:
        raise ValueError(f"{fn}: input_shape {shape} is too large for grad_y {grad_y.shape}")
    out = check_out(out, shape, fn, (grad_y,))
    cdef int64_t planes = shape[0] * shape[1], h = shape[2], w = shape[3]
    cdef int64_t oh = grad_y.shape[2], ow = grad_y.shape[3]
    cdef const float *gp = <const float *>data_ptr(grad_y)
    cdef float *op = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_adaptive_avg_pool2d_backward(planes, h, w, oh, ow, gp, op)
    check(status, fn)
    return out
