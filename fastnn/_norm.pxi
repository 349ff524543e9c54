# _norm.pxi: batch and layer normalization (csrc/norm.c), included by fastnn/_core.pyx.
# Batch norm: x is (N, C) or (N, C, *spatial); a channel's statistics run over N and the spatial
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
               save_invstd=None, activation=None):
    """Batch normalization of x (N, C) or (N, C, *spatial) per channel, with
    torch.nn.functional.batch_norm's arguments in its order: (y, save_mean, save_invstd),
    each (C,) statistic float32, save_invstd = 1 / sqrt(var + eps).

    training=True normalises with the batch mean and biased variance and, when
    running_mean / running_var are given (writeable (C,) float32 arrays), updates them
    in place: running = (1 - momentum) * running + momentum * stat, with the unbiased
    variance. training=False normalises with the running statistics (required).
    weight and bias (C,) or None (scale 1, shift 0). The statistics are summed in
    double in a fixed order: the same bits for any thread count. activation="relu":
    y is relu'd in the same pass, bitwise relu(batch_norm(...)) (its backward:
    batch_norm_backward's activation and output)."""
    fn = "batch_norm"
    cdef int act = _fused_act(fn, activation)
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
        status = fnn_batch_norm(n_, c_, s_, xp, wp, bp, rmp, rvp, train, mom, eps_, act, yp, mp,
                                ip)
    check(status, fn)
    return out, save_mean, save_invstd


def batch_norm_backward(grad_y, x, weight, save_mean, save_invstd, *, training,
                        need_input_grad=True, need_weight_grad=True, grad_input=None,
                        grad_weight=None, grad_bias=None, activation=None, output=None):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of
    :func:`batch_norm` from its save_mean and save_invstd. training=True: the batch
    statistics' backward (grad_x couples the batch through the mean and variance);
    training=False: grad_x = grad_y * weight * invstd. grad_weight = sum(grad_y * xhat)
    and grad_bias = sum(grad_y) per channel (None when weight is None or
    need_weight_grad is False); grad_x is None when need_input_grad is False.
    activation="relu": of the forward that ran with it, whose output `output` gates grad_y
    (it passes where output > 0, as relu_backward's input would): bitwise the backward of
    relu(batch_norm(...)) taken in two steps."""
    fn = "batch_norm_backward"
    cdef int act = _fused_act(fn, activation)
    need_input_grad, need_weight_grad = as_flags(
        fn, {"need_input_grad": need_input_grad, "need_weight_grad": need_weight_grad})
    x = as_float32(x, "x", fn)
    n, c, s = bn_sizes(x, fn)
    grad_y = ew_same_shape(x, "x", as_float32(grad_y, "grad_y", fn), "grad_y", fn)
    training = bn_training(training, fn)
    weight = bn_channels(weight, "weight", c, fn)
    save_mean = bn_channels(save_mean, "save_mean", c, fn, True)
    save_invstd = bn_channels(save_invstd, "save_invstd", c, fn, True)
    output = _act_output(fn, act, activation, output, x.shape, "grad_y")
    want_w = weight is not None and need_weight_grad
    for name, given, wanted, why in (
            ("grad_input", grad_input, need_input_grad, "need_input_grad is False"),
            ("grad_weight", grad_weight, want_w, "weight is None or need_weight_grad is False"),
            ("grad_bias", grad_bias, want_w, "weight is None or need_weight_grad is False")):
        if given is not None and not wanted:
            raise ValueError(f"{fn}: {name} was given but is not computed ({why})")
    inputs = (grad_y, x, weight, save_mean, save_invstd, output)
    gx = (check_out(grad_input, x.shape, fn, inputs, None, "grad_input") if need_input_grad
          else None)
    gw = check_out(grad_weight, (c,), fn, inputs + (gx,), None, "grad_weight") if want_w else None
    gb = check_out(grad_bias, (c,), fn, inputs + (gx, gw), None, "grad_bias") if want_w else None
    cdef const float *gyp = <const float *>data_ptr(grad_y)
    cdef const float *yp = <const float *>data_ptr(output)
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
        status = fnn_batch_norm_backward(n_, c_, s_, gyp, yp, xp, wp, mp, ip, train, gxp, gwp,
                                         gbp)
    check(status, fn)
    return gx, gw, gb


# Layer normalization: x (*, *normalized_shape), each sample's trailing normalized_shape
# values normalised together (rows = prod of the leading dimensions).

cdef tuple ln_sizes(object x, object normalized_shape, str fn):
    """(normalized_shape as a tuple, rows, cols) of x, whose trailing dimensions must be
    normalized_shape (an int or a sequence of positive ints)."""
    shape = normalized_shape if isinstance(normalized_shape, (tuple, list)) else (
        normalized_shape,)
    if not shape or not all(is_int(d) for d in shape):
        raise TypeError(f"{fn}: normalized_shape must be an int or a non-empty sequence of "
                        f"ints, got {normalized_shape!r}")
    if not all(1 <= d <= MAX_WINDOW_ARG for d in shape):
        raise ValueError(f"{fn}: normalized_shape must hold positive ints, got "
                         f"{normalized_shape!r}")
    shape = tuple(int(d) for d in shape)
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"{fn}: normalized_shape {shape} must be the trailing dimensions of "
                         f"x, got x of shape {x.shape}")
    return shape, math.prod(x.shape[:x.ndim - k]), math.prod(shape)


cdef object ln_param(object v, str name, tuple shape, str fn, bint required=False):
    """v as a float32 array of normalized_shape (None passes unless required)."""
    if v is None:
        if required:
            raise ValueError(f"{fn}: {name} is required, got None")
        return None
    v = as_float32(v, name, fn)
    if v.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape} (normalized_shape), got "
                         f"{v.shape}")
    return v


cdef object ln_stat(object v, str name, tuple shape, str fn):
    """A saved statistic (mean, rstd): a float32 array of x's leading dimensions."""
    if v is None:
        raise ValueError(f"{fn}: {name} is required, got None")
    v = as_float32(v, name, fn)
    if v.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape} (x's leading dimensions), "
                         f"got {v.shape}")
    return v


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None,
               save_mean=None, save_rstd=None):
    """Layer normalization of x over its trailing dimensions normalized_shape, like
    torch.nn.functional.layer_norm: (y, save_mean, save_rstd), the statistics float32
    arrays of x's leading dimensions, save_rstd = 1 / sqrt(var + eps) (biased variance).
    weight and bias of normalized_shape, or None (scale 1, shift 0). The statistics are
    summed in double in a fixed order: the same bits for any thread count."""
    fn = "layer_norm"
    x = as_float32(x, "x", fn)
    shape, rows, cols = ln_sizes(x, normalized_shape, fn)
    eps = as_real(eps, "eps", fn)
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"{fn}: eps must be finite and >= 0, got {eps}")
    weight = ln_param(weight, "weight", shape, fn)
    bias = ln_param(bias, "bias", shape, fn)
    lead = tuple(x.shape[:x.ndim - len(shape)])
    inputs = (x, weight, bias)
    out = check_out(out, x.shape, fn, inputs)
    save_mean = check_out(save_mean, lead, fn, inputs + (out,), None, "save_mean")
    save_rstd = check_out(save_rstd, lead, fn, inputs + (out, save_mean), None, "save_rstd")
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *bp = <const float *>data_ptr(bias)
    cdef float *yp = <float *>data_ptr(out)
    cdef float *mp = <float *>data_ptr(save_mean)
    cdef float *rp = <float *>data_ptr(save_rstd)
    cdef int64_t rows_ = rows, cols_ = cols
    cdef double eps_ = eps
    cdef int status
    with nogil:
        status = fnn_layer_norm(rows_, cols_, xp, wp, bp, eps_, yp, mp, rp)
    check(status, fn)
    return out, save_mean, save_rstd


def layer_norm_backward(grad_y, x, normalized_shape, save_mean, save_rstd, weight=None,
                        bias=None, *, need_input_grad=True, need_weight_grad=True,
                        grad_input=None, grad_weight=None, grad_bias=None):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of
    :func:`layer_norm` from its save_mean and save_rstd (the order of torch's
    native_layer_norm_backward). grad_weight = sum(grad_y * xhat) over the leading
    dimensions when weight is given, grad_bias = sum(grad_y) when bias is (bias is read
    for its presence only); need_weight_grad=False or need_input_grad=False skip them."""
    fn = "layer_norm_backward"
    need_input_grad, need_weight_grad = as_flags(
        fn, {"need_input_grad": need_input_grad, "need_weight_grad": need_weight_grad})
    x = as_float32(x, "x", fn)
    shape, rows, cols = ln_sizes(x, normalized_shape, fn)
    grad_y = ew_same_shape(x, "x", as_float32(grad_y, "grad_y", fn), "grad_y", fn)
    lead = tuple(x.shape[:x.ndim - len(shape)])
    save_mean = ln_stat(save_mean, "save_mean", lead, fn)
    save_rstd = ln_stat(save_rstd, "save_rstd", lead, fn)
    weight = ln_param(weight, "weight", shape, fn)
    bias = ln_param(bias, "bias", shape, fn)
    want_w = weight is not None and need_weight_grad
    want_b = bias is not None and need_weight_grad
    for name, given, wanted, why in (
            ("grad_input", grad_input, need_input_grad, "need_input_grad is False"),
            ("grad_weight", grad_weight, want_w, "weight is None or need_weight_grad is False"),
            ("grad_bias", grad_bias, want_b, "bias is None or need_weight_grad is False")):
        if given is not None and not wanted:
            raise ValueError(f"{fn}: {name} was given but is not computed ({why})")
    inputs = (grad_y, x, weight, bias, save_mean, save_rstd)
    gx = (check_out(grad_input, x.shape, fn, inputs, None, "grad_input") if need_input_grad
          else None)
    gw = check_out(grad_weight, shape, fn, inputs + (gx,), None, "grad_weight") if want_w else None
    gb = check_out(grad_bias, shape, fn, inputs + (gx, gw), None, "grad_bias") if want_b else None
    cdef const float *gyp = <const float *>data_ptr(grad_y)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *mp = <const float *>data_ptr(save_mean)
    cdef const float *rp = <const float *>data_ptr(save_rstd)
    cdef float *gxp = <float *>data_ptr(gx)
    cdef float *gwp = <float *>data_ptr(gw)
    cdef float *gbp = <float *>data_ptr(gb)
    cdef int64_t rows_ = rows, cols_ = cols
    cdef int status
    with nogil:
        status = fnn_layer_norm_backward(rows_, cols_, gyp, xp, wp, mp, rp, gxp, gwp, gbp)
    check(status, fn)
    return gx, gw, gb
