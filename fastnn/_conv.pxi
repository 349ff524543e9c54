# _conv.pxi: see fastnn/_core.pyx (included there).
# linear and conv2d, forward and backward (csrc/conv.c), PyTorch layouts and semantics.


cdef object _conv_bias(object bias, str fn, int64_t c_out):
    if bias is None:
        return None
    bias = as_float32(bias, "bias", fn, 1)
    if bias.shape[0] != c_out:
        raise ValueError(f"{fn}: bias must have shape ({c_out},), got {bias.shape}")
    return bias


def linear(x, weight, bias=None, *, out=None):
    """x @ weight.T + bias for x (N, in), weight (out, in), bias (out,) or None."""
    fn = "linear"
    x = as_float32(x, "x", fn, 2)
    weight = as_float32(weight, "weight", fn, 2)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{fn}: x has shape {x.shape} but weight has shape {weight.shape}; "
                         f"weight must have shape (out_features, {x.shape[1]})")
    cdef int64_t n = x.shape[0], in_f = x.shape[1], out_f = weight.shape[0]
    bias = _conv_bias(bias, fn, out_f)
    out = check_out(out, (n, out_f), fn, (x, weight, bias), None, "out")
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *bp = <const float *>data_ptr(bias)
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_linear_forward(n, in_f, out_f, xp, wp, bp, yp)
    check(status, fn)
    return out


def linear_backward(grad_out, x, weight, *, bias=True, need_input_grad=True,
                    need_weight_grad=True, grad_input=None, grad_weight=None, grad_bias=None):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of :func:`linear`;
    each is skipped (None, its GEMM not run) when need_input_grad, need_weight_grad or
    bias is False."""
    fn = "linear_backward"
    bias, need_input_grad, need_weight_grad = as_flags(fn, {  # "no" counted as True
        "bias": bias, "need_input_grad": need_input_grad, "need_weight_grad": need_weight_grad})
    x = as_float32(x, "x", fn, 2)
    weight = as_float32(weight, "weight", fn, 2)
    grad_out = as_float32(grad_out, "grad_out", fn, 2)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{fn}: x has shape {x.shape} but weight has shape {weight.shape}; "
                         f"weight must have shape (out_features, {x.shape[1]})")
    cdef int64_t n = x.shape[0], in_f = x.shape[1], out_f = weight.shape[0]
    if grad_out.shape != (n, out_f):
        raise ValueError(f"{fn}: grad_out must have shape {(n, out_f)}, got {grad_out.shape}")
    inputs = (grad_out, x, weight)
    gx = check_out(grad_input, (n, in_f), fn, inputs, None, "grad_input") if need_input_grad else None
    gw = check_out(grad_weight, (out_f, in_f), fn, inputs, None,
                   "grad_weight") if need_weight_grad else None
    gb = check_out(grad_bias, (out_f,), fn, inputs, None, "grad_bias") if bias else None
    cdef const float *gyp = <const float *>data_ptr(grad_out)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef float *gxp = <float *>data_ptr(gx)
    cdef float *gwp = <float *>data_ptr(gw)
    cdef float *gbp = <float *>data_ptr(gb)
    cdef int status
    with nogil:
        status = fnn_linear_backward(n, in_f, out_f, gyp, xp, wp, gxp, gwp, gbp)
    check(status, fn)
    return gx, gw, gb


cdef fnn_conv2d_shape _conv_shape(str fn, tuple x_shape, object weight, object stride,
                                  object padding, object dilation, int x_hwc=0,
                                  int y_hwc=0) except *:
    """Check x (of x_shape, channels-last if x_hwc) against weight and the window
    arguments; the C shape struct."""
    cdef fnn_conv2d_shape s
    s.x_hwc, s.y_hwc = x_hwc, y_hwc
    if x_hwc:
        s.n, s.h, s.w, s.c_in = x_shape
    else:
        s.n, s.c_in, s.h, s.w = x_shape
    if s.c_in != weight.shape[1]:
        raise ValueError(f"{fn}: x has {s.c_in} input channels (shape {x_shape}"
                         f"{', channels-last' if x_hwc else ''}) but weight expects "
                         f"{weight.shape[1]} (shape {weight.shape})")
    s.c_out, _, s.kh, s.kw = weight.shape
    if s.kh < 1 or s.kw < 1:
        raise ValueError(f"{fn}: weight must have a non-empty kernel, got shape {weight.shape}")
    s.sh, s.sw = int_pair(stride, "stride", fn, 1)
    s.ph, s.pw = int_pair(padding, "padding", fn, 0)
    s.dh, s.dw = int_pair(dilation, "dilation", fn, 1)
    # The output size in Python ints first: C's check covers int64 overflow, this one
    # says which case it is.
    if min(s.h + 2 * s.ph - s.dh * (s.kh - 1), s.w + 2 * s.pw - s.dw * (s.kw - 1)) < 1:
        raise ValueError(f"{fn}: the kernel {weight.shape[2:]} (dilation {(s.dh, s.dw)}) is "
                         f"larger than the padded input {(s.h, s.w)} (padding {(s.ph, s.pw)}): "
                         f"the output would be empty")
    # the kernels convolve a zero-padded copy of each image: a padding whose copy cannot
    # be indexed was "the C kernel rejected its arguments", naming nothing
    plane = (int(s.h) + 2 * int(s.ph)) * (int(s.w) + 2 * int(s.pw))
    if max(plane, plane * int(s.c_in)) > (2 ** 63 - 1) >> 4:  # csrc/conv.c's mul_ok bound
        raise ValueError(f"{fn}: padding {(s.ph, s.pw)} makes the padded input of x "
                         f"{x_shape} too large to index")
    cdef int64_t oh, ow
    if fnn_conv2d_output_size(&s, &oh, &ow) != FNN_OK:
        raise ValueError(f"{fn}: padding {(s.ph, s.pw)} and stride {(s.sh, s.sw)} give an "
                         f"output too large to index for x {x_shape} and weight {weight.shape}")
    return s


# Convolution algorithms by name (csrc/fastnn.h): "winograd" is F(2x2, 3x3), "winograd4x4"
# F(4x4, 3x3), both for 3x3 kernels at stride 1 and dilation 1 only.
CONV_ALGORITHMS = {"auto": FNN_CONV_AUTO, "direct": FNN_CONV_DIRECT,
                   "winograd": FNN_CONV_WINOGRAD, "winograd4x4": FNN_CONV_WINOGRAD4}
_conv_algorithm = "auto"


def _algorithm_name(name, str fn):
    if not isinstance(name, str) or name not in CONV_ALGORITHMS:
        raise ValueError(f"{fn}: algorithm must be one of {', '.join(CONV_ALGORITHMS)}, "
                         f"got {name!r}")
    return name


def set_conv_algorithm(name):
    """The algorithm of every conv2d called without algorithm= (and every Conv2d built
    without one): "auto" (the default: Winograd where it measured faster on the shape,
    else direct), "direct", "winograd" or "winograd4x4". Under a Winograd default, the
    convolutions Winograd cannot run (not 3x3, stride or dilation not 1) run direct."""
    global _conv_algorithm
    _conv_algorithm = _algorithm_name(name, "set_conv_algorithm")


def get_conv_algorithm():
    """The default algorithm of conv2d (see set_conv_algorithm)."""
    return _conv_algorithm


cdef int _conv_algo(str fn, fnn_conv2d_shape *s, object algorithm) except -1:
    """The algorithm to request on s (the C side resolves "auto" per direction):
    `algorithm`, or the default when it is None (a Winograd default falls back to direct
    where it does not apply; an explicit one raises)."""
    explicit = algorithm is not None
    name = _algorithm_name(algorithm if explicit else _conv_algorithm, fn)
    cdef int chosen
    if fnn_conv2d_algorithm(s, CONV_ALGORITHMS[name], &chosen) == FNN_OK:
        return CONV_ALGORITHMS[name]
    if explicit:
        raise ValueError(f"{fn}: algorithm={name!r} needs a 3x3 kernel, stride 1 and dilation 1, "
                         f"got kernel {(s.kh, s.kw)}, stride {(s.sh, s.sw)}, "
                         f"dilation {(s.dh, s.dw)}")
    return FNN_CONV_DIRECT


class _Shaped:
    """Stands for an array of the given NCHW shape (only .shape is read)."""
    def __init__(self, shape, str name, str fn):
        try:
            self.shape = tuple(operator.index(v) for v in shape)
        except TypeError:
            raise TypeError(f"{fn}: {name} must be a tuple of 4 ints, got {shape!r}") from None
        if len(self.shape) != 4 or min(self.shape) < 0:
            raise ValueError(f"{fn}: {name} must be 4 non-negative sizes, got {shape!r}")


def conv2d_algorithm(x_shape, weight_shape, stride=1, padding=0, dilation=1, algorithm=None,
                     *, input_gradient=False, weight_gradient=False):
    """The algorithm ("direct", "winograd" or "winograd4x4") that conv2d runs for these
    shapes and arguments, with `algorithm` or the default; with input_gradient=True, the
    one the input gradient of its backward runs, with weight_gradient=True the weight
    gradient's ("auto" picks each by its own rule: csrc/winograd.c)."""
    fn = "conv2d_algorithm"
    if input_gradient and weight_gradient:
        raise ValueError(f"{fn}: input_gradient and weight_gradient name one direction each; "
                         f"pass at most one of them")
    x, weight = _Shaped(x_shape, "x_shape", fn), _Shaped(weight_shape, "weight_shape", fn)
    cdef fnn_conv2d_shape s = _conv_shape(fn, x.shape, weight, stride, padding, dilation)
    cdef int chosen, requested = _conv_algo(fn, &s, algorithm)
    if weight_gradient:
        fnn_conv2d_grad_weight_algorithm(&s, requested, &chosen)
    elif input_gradient:
        fnn_conv2d_grad_input_algorithm(&s, requested, &chosen)
    else:
        fnn_conv2d_algorithm(&s, requested, &chosen)
    return next(k for k, v in CONV_ALGORITHMS.items() if v == chosen)


cdef tuple _conv2d_output_hw(fnn_conv2d_shape s):
    cdef int64_t oh, ow
    fnn_conv2d_output_size(&s, &oh, &ow)
    return oh, ow


# Activations a convolution or a batch norm applies to its output while it is in cache
# (csrc/fastnn.h).
FUSED_ACTIVATIONS = {None: FNN_ACT_NONE, "relu": FNN_ACT_RELU}


cdef int _fused_act(str fn, object activation) except -1:
    if not isinstance(activation, (str, type(None))) or activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"{fn}: activation must be None or 'relu', got {activation!r}")
    return FUSED_ACTIVATIONS[activation]


cdef object _act_output(str fn, int act, object activation, object output, tuple shape,
                        str grad="grad_out"):
    """The backward's `output` (the forward's relu output, float32 of the shape of its
    gradient argument `grad`), which goes with activation='relu' and only with it."""
    if (output is None) != (act == FNN_ACT_NONE):
        raise ValueError(f"{fn}: output (the forward's relu output) goes with "
                         f"activation='relu' and only with it; got activation={activation!r} "
                         f"and output {'None' if output is None else 'given'}")
    if output is None:
        return None
    output = as_float32(output, "output", fn, len(shape))
    if output.shape != shape:
        raise ValueError(f"{fn}: output must have {grad}'s shape {shape}, got {output.shape}")
    return output


_LAYOUTS = {"NCHW": 0, "NHWC": 1}


cdef int _conv_layout(str fn, object layout, int *x_hwc, int *y_hwc) except -1:
    """*x_hwc, *y_hwc of `layout`: "NCHW", "NHWC", or a pair (x's, the output's)."""
    if isinstance(layout, str) and layout in _LAYOUTS:
        x_hwc[0] = y_hwc[0] = _LAYOUTS[layout]
        return 0
    try:
        x_layout, y_layout = layout
        x_hwc[0], y_hwc[0] = _LAYOUTS[x_layout], _LAYOUTS[y_layout]
        return 0
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"{fn}: layout must be 'NCHW', 'NHWC' or a pair of them (x's, the "
                         f"output's), got {layout!r}") from None


cdef tuple _in_layout(tuple shape, int hwc):
    """The NCHW `shape` in the layout."""
    return (shape[0], shape[2], shape[3], shape[1]) if hwc else shape


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, out=None,
           algorithm=None, activation=None, layout="NCHW"):
    """2-D cross-correlation of NCHW x with weight (C_out, C_in, kh, kw), zero padding;
    output (N, C_out, OH, OW), like torch.nn.functional.conv2d (groups=1). algorithm:
    "auto", "direct", "winograd" or "winograd4x4" (see set_conv_algorithm); None: the
    default. activation="relu": relu(conv2d(...)), bitwise, applied while the output is
    in cache. layout: "NCHW", "NHWC" (channels-last: x (N, H, W, C_in), the output
    (N, OH, OW, C_out)) or a pair (x's, the output's); the values are the same either
    way, but the Winograd algorithms spare their layout copies on NHWC."""
    return _conv2d("conv2d", x, weight, bias, stride, padding, dilation, None, out, None, False,
                   algorithm, activation, layout)


def conv2d_max_pool2d(x, weight, bias=None, stride=1, padding=0, dilation=1, kernel_size=2,
                      pool_stride=None, pool_padding=0, *, out=None, indices=None,
                      return_indices=True, algorithm=None, activation=None, layout="NCHW"):
    """max_pool2d_with_indices(conv2d(x, weight, bias, stride, padding, dilation),
    kernel_size, pool_stride, pool_padding), bitwise, without storing the convolution's
    output: each image's is pooled while in cache. (y, indices), or y alone when
    return_indices is False. indices (uint8, y's shape) hold, in one byte instead of
    max_pool2d_with_indices' int64 plane offset, each maximum's position in its window:
    (row - top) * kw + (column - left) for window (i, j) with top = i * stride - padding,
    left likewise. They need a window of kh * kw <= 256 (else ValueError; pool through
    max_pool2d_with_indices or pass return_indices=False). activation="relu": y relu'd
    after the pool (equal to pooling the relu'd convolution: the two commute). layout: as
    conv2d's (y and indices in the output's)."""
    return _conv2d("conv2d_max_pool2d", x, weight, bias, stride, padding, dilation,
                   (kernel_size, pool_stride, pool_padding), out, indices, return_indices,
                   algorithm, activation, layout)


# The largest pooling window (kh * kw) whose positions conv2d_max_pool2d's uint8 indices hold.
POOL_POSITIONS = FNN_POOL_POSITIONS


cdef void _window_positions_fit(fnn_pool2d *p, str fn) except *:
    if p.kw > FNN_POOL_POSITIONS // p.kh:  # (no int64 overflow)
        raise ValueError(f"{fn}: indices are byte positions in the pooling window, which needs "
                         f"kernel_size[0] * kernel_size[1] <= {FNN_POOL_POSITIONS}, got "
                         f"{(p.kh, p.kw)}; pass return_indices=False, or run conv2d and "
                         f"max_pool2d_with_indices")


cdef object _conv2d(str fn, object x, object weight, object bias, object stride,
                    object padding, object dilation, tuple pool, object out, object indices,
                    bint return_indices, object algorithm, object activation, object layout):
    cdef int x_hwc, y_hwc
    _conv_layout(fn, layout, &x_hwc, &y_hwc)
    x = as_float32(x, "x", fn, 4)
    weight = as_float32(weight, "weight", fn, 4)
    cdef fnn_conv2d_shape s = _conv_shape(fn, x.shape, weight, stride, padding, dilation,
                                          x_hwc, y_hwc)
    cdef int algo = _conv_algo(fn, &s, algorithm), act = _fused_act(fn, activation)
    bias = _conv_bias(bias, fn, s.c_out)
    oh, ow = _conv2d_output_hw(s)
    shape = (s.n, s.c_out, oh, ow)
    cdef fnn_pool2d p
    cdef bint pooled = pool is not None
    if pooled:
        p = pool_geometry(shape, pool[0], pool[1], pool[2], fn)
        shape = (s.n, s.c_out, p.oh, p.ow)
    shape = _in_layout(shape, y_hwc)
    out = check_out(out, shape, fn, (x, weight, bias), None, "out")
    if return_indices:
        _window_positions_fit(&p, fn)
        indices = check_out(indices, shape, fn, (x, weight, bias, out), None, "indices", np.uint8)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef const float *bp = <const float *>data_ptr(bias)
    cdef float *yp = <float *>data_ptr(out)
    cdef uint8_t *ip = <uint8_t *>data_ptr(indices) if return_indices else NULL
    cdef int status
    with nogil:
        if pooled:
            status = fnn_conv2d_max_pool2d(&s, &p, xp, wp, bp, yp, ip, algo, act)
        else:
            status = fnn_conv2d_forward(&s, xp, wp, bp, yp, algo, act)
    check(status, fn)
    return (out, indices) if return_indices else out


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, *, bias=True,
                    need_input_grad=True, need_weight_grad=True, grad_input=None,
                    grad_weight=None, grad_bias=None, algorithm=None, activation=None,
                    output=None, layout="NCHW"):
    """Gradients (grad_x or None, grad_weight or None, grad_bias or None) of :func:`conv2d`;
    grad_x is skipped (None) when need_input_grad is False, grad_weight when
    need_weight_grad is False, grad_bias when bias is False. algorithm: as conv2d's, for
    grad_x and grad_weight (see conv2d_algorithm; the bias gradient runs direct).
    activation="relu": of the forward that ran with it, whose output `output` gates
    grad_out (it passes where output > 0, as relu_backward's input would). layout: the
    forward's (x and grad_x in x's, grad_out and output in the output's)."""
    return _conv2d_backward("conv2d_backward", grad_out, None, x, weight, stride, padding,
                            dilation, None, bias, need_input_grad, need_weight_grad,
                            grad_input, grad_weight, grad_bias, algorithm, activation, output,
                            layout)


def conv2d_max_pool2d_backward(grad_out, indices, x, weight, stride=1, padding=0, dilation=1,
                               kernel_size=2, pool_stride=None, pool_padding=0, *, bias=True,
                               need_input_grad=True, need_weight_grad=True, grad_input=None,
                               grad_weight=None, grad_bias=None, algorithm=None,
                               activation=None, output=None, layout="NCHW"):
    """Gradients of :func:`conv2d_max_pool2d` from the pooled grad_out and its indices
    (uint8 window positions): conv2d_backward's on max_pool2d_backward's result, bitwise,
    neither stored whole. activation, output and layout: as conv2d_backward's (output
    pooled)."""
    return _conv2d_backward("conv2d_max_pool2d_backward", grad_out, indices, x, weight, stride,
                            padding, dilation, (kernel_size, pool_stride, pool_padding), bias,
                            need_input_grad, need_weight_grad, grad_input, grad_weight,
                            grad_bias, algorithm, activation, output, layout)


cdef tuple _conv2d_backward(str fn, object grad_out, object indices, object x, object weight,
                            object stride, object padding, object dilation, tuple pool,
                            object bias, object need_input_grad, object need_weight_grad,
                            object grad_input, object grad_weight, object grad_bias,
                            object algorithm, object activation, object output, object layout):
    bias, need_input_grad, need_weight_grad = as_flags(fn, {  # "no" counted as True
        "bias": bias, "need_input_grad": need_input_grad, "need_weight_grad": need_weight_grad})
    cdef int x_hwc, y_hwc
    _conv_layout(fn, layout, &x_hwc, &y_hwc)
    x = as_float32(x, "x", fn, 4)
    weight = as_float32(weight, "weight", fn, 4)
    grad_out = as_float32(grad_out, "grad_out", fn, 4)
    cdef fnn_conv2d_shape s = _conv_shape(fn, x.shape, weight, stride, padding, dilation,
                                          x_hwc, y_hwc)
    cdef int algo = _conv_algo(fn, &s, algorithm), act = _fused_act(fn, activation)
    oh, ow = _conv2d_output_hw(s)
    shape, what = (s.n, s.c_out, oh, ow), "the conv2d output"
    cdef fnn_pool2d p
    cdef bint pooled = pool is not None
    if pooled:
        p = pool_geometry(shape, pool[0], pool[1], pool[2], fn)
        shape, what = (s.n, s.c_out, p.oh, p.ow), "the pooled conv2d output"
    shape = _in_layout(shape, y_hwc)
    if grad_out.shape != shape:
        raise ValueError(f"{fn}: grad_out must have shape {shape} ({what}), got {grad_out.shape}")
    output = _act_output(fn, act, activation, output, shape)
    if pooled:
        _window_positions_fit(&p, fn)
        indices = pool_indices(indices, grad_out, fn, np.uint8, "a uint8 array of window positions")
    inputs = (grad_out, x, weight, indices, output)
    gx = check_out(grad_input, x.shape, fn, inputs, None, "grad_input") if need_input_grad else None
    gw = check_out(grad_weight, weight.shape, fn, inputs, None,
                   "grad_weight") if need_weight_grad else None
    gb = check_out(grad_bias, (s.c_out,), fn, inputs, None, "grad_bias") if bias else None
    cdef const float *gyp = <const float *>data_ptr(grad_out)
    cdef const float *yp = <const float *>data_ptr(output)
    cdef const uint8_t *ip = <const uint8_t *>data_ptr(indices)
    cdef const float *xp = <const float *>data_ptr(x)
    cdef const float *wp = <const float *>data_ptr(weight)
    cdef float *gxp = <float *>data_ptr(gx)
    cdef float *gwp = <float *>data_ptr(gw)
    cdef float *gbp = <float *>data_ptr(gb)
    cdef int status
    with nogil:
        if pooled:
            status = fnn_conv2d_max_pool2d_backward(&s, &p, gyp, yp, ip, xp, wp, gxp, gwp,
                                                    gbp, algo)
        else:
            status = fnn_conv2d_backward(&s, gyp, yp, xp, wp, gxp, gwp, gbp, algo)
    if status == FNN_EINVAL and pooled:
        raise ValueError(f"{fn}: indices must be positions in [0, kh*kw) = [0, {p.kh * p.kw}) "
                         f"of each pooling window that lie inside the convolution output")
    check(status, fn)
    return gx, gw, gb
