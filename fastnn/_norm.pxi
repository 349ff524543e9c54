# _norm.pxi: batch normalization (csrc/norm.c), included by fastnn/_core.pyx.
# x is (N, C) or (N, C, *spatial); a channel's statistics run over N and the spatial
# positions, m = N * prod(spatial) values.


cdef tuple bn_sizes(object x, str fn):
    """(N, C, prod(spatial)) of x, which must have at least 2 dimensions."""
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must be (N, C) or (N, C, *spatial), got shape {x.shape}")
    return x.shape[0], x.shape[1], math.prod(x.shape[2:])


cdef object bn_channels(object v, str name, int64_t c, str fn, bint required=False,
                        bint in_place=False):
    """v as a (C,) float32 array (None passes unless required). An in-place one is
    updated by the kernel, so it must already be a writeable C-contiguous ndarray: a
    copy would lose the update."""
    if v is None:
        if required:
            raise ValueError(f"{fn}: {name} is required, got None")
        return None
    if in_place and not isinstance(v, np.ndarray):
        raise TypeError(f"{fn}: {name} is updated in place: it must be a float32 ndarray, "
                        f"got {type(v).__name__}")
    v = as_array(v, name, fn)
    if in_place and v.dtype == np.float32 and not (
            v.flags.c_contiguous and v.flags.aligned and v.flags.writeable):
        raise ValueError(f"{fn}: {name} is updated in place: it must be a writeable, aligned "
                         f"C-contiguous array")
    v = as_float32(v, name, fn)
    if v.shape != (c,):
        raise ValueError(f"{fn}: {name} must have shape ({c},) (one value per channel of x), "
                         f"got {v.shape}")
    return v


cdef bint bn_training(object training, str fn) except -1:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{fn}: training must be a bool, got {training!r}")
    return bool(training)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, *, out=None, save_mean=None,
               save_invstd=None):
    """Batch normalization of x (N, C) or (N, C, *spatial) per channel, with
    torch.nn.functional.batch_norm's arguments in its order: (y, save_mean, save_invstd),
    each (C,) statistic float32, save_invstd = 1 / sqrt(var + eps).

    training=True normalises with the batch mean and biased variance and, when
    running_mean / running_var are given (writeable (C,) float32 arrays), updates them
    in place: running = (1 - momentum) * running + momentum * stat, with the unbiased
    variance. training=False normalises with the running statistics (required).
    weight and bias (C,) or None (scale 1, shift 0). The statistics are summed in
    double in a fixed order: the same bits for any thread count."""
    fn = "batch_norm"
    x = as_float32(x, "x", fn)
    n, c, s = bn_sizes(x, fn)
    training = bn_training(training, fn)
    momentum = as_real(momentum, "momentum", fn)
    eps = as_real(eps, "eps", fn)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: momentum must be in [0, 1], got {momentum}")
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"{fn}: eps must be finite and >= 0, got {eps}")
    weight = bn_channels(weight, "weight", c, fn)
    bias = bn_channels(bias, "bias", c, fn)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var are required when "
                         f"training=False (they normalise x), got None")
    running_mean = bn_channels(running_mean, "running_mean", c, fn, False, training)
    running_var = bn_channels(running_var, "running_var", c, fn, False, training)
    if training and n * s == 1:
        raise ValueError(f"{fn}: Expected more than 1 value per channel when training, got x "
                         f"of shape {x.shape}")
    if training:  # the running statistics are written: they must overlap nothing read
        for name, r in (("running_mean", running_mean), ("running_var", running_var)):
            if r is not None and any(a is not None and overlaps(r, a) for a in
                                     (x, weight, bias, running_var if r is running_mean else None)):
                raise ValueError(f"{fn}: {name} overlaps another argument; pass a separate array")
    inputs = (x, weight, bias, running_mean, running_var)
    out = check_out(out, x.shape, fn, inputs)
    save_mean = check_out(save_mean, (c,), fn, inputs + (out,), None, "save_mean")
    save_invstd = check_out(save_invstd, (c,), fn, inputs + (out, save_mean), None,
                            "save_invstd")
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *bp = <const float *>data_ptr(bias)
    cdef float *rmp = <float *>data_ptr(running_mean)
    cdef float *rvp = <float *>data_ptr(running_var)
    cdef float *yp = <float *>data_ptr(out)
    cdef float *mp = <float *>data_ptr(save_mean)
    cdef float *ip = <float *>data_ptr(save_invstd)
    cdef int64_t n_ = n, c_ = c, s_ = s
    cdef int train = training
    cdef double mom = momentum, eps_ = eps
    cdef int status
    with nogil:
        status = fnn_batch_norm(n_, c_, s_, xp, wp, bp, rmp, rvp, train, mom, eps_, yp, mp, ip)
    check(status, fn)
    return out, save_mean, save_invstd


def batch_norm_backward(grad_y, x, weight, save_mean, save_invstd, *, training,
                        need_input_grad=True, need_weight_grad=True, grad_input=None,
                        grad_weight=None, grad_bias=None):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of
    :func:`batch_norm` from its save_mean and save_invstd. training=True: the batch
    statistics' backward (grad_x couples the batch through the mean and variance);
    training=False: grad_x = grad_y * weight * invstd. grad_weight = sum(grad_y * xhat)
    and grad_bias = sum(grad_y) per channel (None when weight is None or
    need_weight_grad is False); grad_x is None when need_input_grad is False."""
    fn = "batch_norm_backward"
    need_input_grad, need_weight_grad = as_flags(
        fn, {"need_input_grad": need_input_grad, "need_weight_grad": need_weight_grad})
    x = as_float32(x, "x", fn)
    n, c, s = bn_sizes(x, fn)
    grad_y = ew_same_shape(x, "x", as_float32(grad_y, "grad_y", fn), "grad_y", fn)
    training = bn_training(training, fn)
    weight = bn_channels(weight, "weight", c, fn)
    save_mean = bn_channels(save_mean, "save_mean", c, fn, True)
    save_invstd = bn_channels(save_invstd, "save_invstd", c, fn, True)
    want_w = weight is not None and need_weight_grad
    for name, given, wanted, why in (
            ("grad_input", grad_input, need_input_grad, "need_input_grad is False"),
            ("grad_weight", grad_weight, want_w, "weight is None or need_weight_grad is False"),
            ("grad_bias", grad_bias, want_w, "weight is None or need_weight_grad is False")):
        if given is not None and not wanted:
            raise ValueError(f"{fn}: {name} was given but is not computed ({why})")
    inputs = (grad_y, x, weight, save_mean, save_invstd)
    gx = (check_out(grad_input, x.shape, fn, inputs, None, "grad_input") if need_input_grad
          else None)
    gw = check_out(grad_weight, (c,), fn, inputs + (gx,), None, "grad_weight") if want_w else None
    gb = check_out(grad_bias, (c,), fn, inputs + (gx, gw), None, "grad_bias") if want_w else None
    cdef const float *gyp = <const float *>data_ptr(grad_y)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *mp = <const float *>data_ptr(save_mean)
    cdef const float *ip = <const float *>data_ptr(save_invstd)
    cdef float *gxp = <float *>data_ptr(gx)
    cdef float *gwp = <float *>data_ptr(gw)
    cdef float *gbp = <float *>data_ptr(gb)
    cdef int64_t n_ = n, c_ = c, s_ = s
    cdef int train = training
    cdef int status
    with nogil:
        status = fnn_batch_norm_backward(n_, c_, s_, gyp, xp, wp, mp, ip, train, gxp, gwp, gbp)
    check(status, fn)
    return gx, gw, gb
