# _pool.pxi: max and average pooling (csrc/pool.c), included by fastnn/_core.pyx.
# Also ew_same_shape, which the elementwise families (_activation, _loss) share.


cdef object ew_same_shape(object a, str a_name, object b, str b_name, str fn):
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {b_name} must have the shape of {a_name} {a.shape}, "
                         f"got {b.shape}")
    return b


cdef fnn_pool2d pool_geometry(tuple shape, object kernel_size, object stride, object padding,
                              str fn) except *:
    """Shapes and window of a pooling call on input of `shape`, checked like PyTorch does."""
    if len(shape) != 4 or shape[2] == 0 or shape[3] == 0:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W) with H, W >= 1, got shape "
                         f"{shape}")
    kh, kw = int_pair(kernel_size, "kernel_size", fn, 1)
    sh, sw = (kh, kw) if stride is None else int_pair(stride, "stride", fn, 1)
    ph, pw = int_pair(padding, "padding", fn, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{fn}: padding {(ph, pw)} must be non-negative and at most half "
                         f"of kernel_size {(kh, kw)}")
    cdef fnn_pool2d p
    p.planes = shape[0] * shape[1]
    p.h, p.w = shape[2], shape[3]
    p.kh, p.kw, p.sh, p.sw, p.ph, p.pw = kh, kw, sh, sw, ph, pw
    p.oh = (p.h + 2 * ph - kh) // sh + 1
    p.ow = (p.w + 2 * pw - kw) // sw + 1
    if p.oh < 1 or p.ow < 1:
        raise ValueError(f"{fn}: output size is too small: ({p.oh}, {p.ow}) for input "
                         f"({p.h}, {p.w}), kernel_size {(kh, kw)}, stride {(sh, sw)}, "
                         f"padding {(ph, pw)}")
    return p


cdef tuple pool_out_shape(object x, fnn_pool2d *p):
    return (x.shape[0], x.shape[1], p.oh, p.ow)


cdef object pool_grad_out(object grad_out, object x, fnn_pool2d *p, str fn):
    grad_out = as_float32(grad_out, "grad_out", fn)
    shape = pool_out_shape(x, p)
    if grad_out.shape != shape:
        raise ValueError(f"{fn}: grad_out must have shape {shape} (the pooled x), "
                         f"got {grad_out.shape}")
    return grad_out


cdef object pool_indices(object indices, object grad_out, str fn):
    """The forward's argmax `indices` for a backward pass: int64, grad_out's shape."""
    indices = as_array(indices, "indices", fn)
    if indices.dtype != np.int64:
        raise TypeError(f"{fn}: indices must be an int64 array (from the forward's "
                        f"return_indices), got dtype {indices.dtype}")
    ew_same_shape(grad_out, "grad_out", indices, "indices", fn)
    return contiguous(indices, "indices", fn)


cdef void pool_indices_out_of_range(fnn_pool2d *p, str fn) except *:
    raise ValueError(f"{fn}: indices must lie in [0, H*W) = [0, {p.h * p.w}) of each "
                     f"input plane")


def max_pool2d_with_indices(x, kernel_size, stride=None, padding=0, *, out=None, indices=None):
    """Max pooling of NCHW float32 x: (y, int64 indices h*W + w into each input plane).

    Padding counts as -inf; ties pick the first maximum in row-major window order; a
    window with NaN yields NaN (like torch.nn.functional.max_pool2d_with_indices)."""
    fn = "max_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn)
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


def max_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Max pooling of NCHW float32 x (see max_pool2d_with_indices)."""
    fn = "max_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn)
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


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, *, indices=None,
                        out=None):
    """Gradient of max_pool2d w.r.t. x: grad_out scattered (summed) to each window's
    maximum, through the forward's `indices` when given, else recomputed from x."""
    fn = "max_pool2d_backward"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn)
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


def avg_pool2d(x, kernel_size, stride=None, padding=0, *, out=None):
    """Average pooling of NCHW float32 x; zero padding counts in the kh*kw divisor."""
    fn = "avg_pool2d"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn)
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


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0, *, out=None):
    """Gradient of avg_pool2d w.r.t. x: grad_out / (kh*kw) spread over each window."""
    fn = "avg_pool2d_backward"
    x = as_float32(x, "x", fn)
    cdef fnn_pool2d p = pool_geometry(x.shape, kernel_size, stride, padding, fn)
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
