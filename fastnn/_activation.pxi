# _activation.pxi: activations and dropout (csrc/activation.c), included by fastnn/_core.pyx.
# Elementwise ones take any shape; softmax and log_softmax work over the last axis.
# A forward's `out` may be its input itself (in place); a backward's out overlaps nothing.

cdef enum Act:
    RELU, LEAKY_RELU, SIGMOID, TANH, SOFTMAX, LOG_SOFTMAX, GELU, GELU_TANH, SILU, ELU


cdef int act_run(Act op, bint backward, int64_t n, int64_t cols, float slope,
                 const float *g, const float *a, float *y) noexcept nogil:
    """Forward (y = f(a)) or backward (y = grad from g and a) of one activation; `slope`
    is leaky_relu's negative slope and elu's alpha."""
    if op == RELU:
        return fnn_relu_backward(n, g, a, y) if backward else fnn_relu(n, a, y)
    if op == LEAKY_RELU:
        return (fnn_leaky_relu_backward(n, slope, g, a, y) if backward
                else fnn_leaky_relu(n, slope, a, y))
    if op == SIGMOID:
        return fnn_sigmoid_backward(n, g, a, y) if backward else fnn_sigmoid(n, a, y)
    if op == TANH:
        return fnn_tanh_backward(n, g, a, y) if backward else fnn_tanh(n, a, y)
    if op == GELU or op == GELU_TANH:
        approximate = FNN_GELU_TANH if op == GELU_TANH else FNN_GELU_ERF
        return (fnn_gelu_backward(n, approximate, g, a, y) if backward
                else fnn_gelu(n, approximate, a, y))
    if op == SILU:
        return fnn_silu_backward(n, g, a, y) if backward else fnn_silu(n, a, y)
    if op == ELU:
        return fnn_elu_backward(n, slope, g, a, y) if backward else fnn_elu(n, slope, a, y)
    if op == SOFTMAX:
        return (fnn_softmax_backward(n // cols, cols, g, a, y) if backward
                else fnn_softmax(n // cols, cols, a, y))
    return (fnn_log_softmax_backward(n // cols, cols, g, a, y) if backward
            else fnn_log_softmax(n // cols, cols, a, y))


cdef object act_call(Act op, bint backward, object grad_out, object a, str a_name, object out,
                     str fn, float slope=0.0):
    """Validate, then run op's forward (out may be `a` itself) or its backward from
    grad_out (out overlaps no input). softmax/log_softmax work over the last axis."""
    a = as_float32(a, a_name, fn)
    if (op == SOFTMAX or op == LOG_SOFTMAX) and a.ndim == 0:
        raise ValueError(f"{fn}: {a_name} must have at least 1 dimension, got a 0-d array")
    if backward:
        grad_out = ew_same_shape(a, a_name, as_float32(grad_out, "grad_out", fn), "grad_out", fn)
        out = check_out(out, a.shape, fn, (grad_out, a))
    else:
        out = check_out(out, a.shape, fn, (a,), alias=a)
    if out.size == 0:
        return out
    cdef int64_t n = a.size, cols = a.shape[a.ndim - 1] if a.ndim else 1
    cdef const float *gp = <const float *>data_ptr(grad_out) if backward else NULL
    cdef const float *ap = <const float *>data_ptr(a)
    cdef float *op_ = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = act_run(op, backward, n, cols, slope, gp, ap, op_)
    check(status, fn)
    return out


def relu(x, *, out=None):
    """max(x, 0) elementwise; NaN propagates."""
    return act_call(RELU, False, None, x, "x", out, "relu")


def relu_backward(grad_out, x, *, out=None):
    """grad_out where x > 0, else 0 (also at x == 0)."""
    return act_call(RELU, True, grad_out, x, "x", out, "relu_backward")


def as_slope(object v, str fn):
    """negative_slope as a real number finite in float32: NaN, inf or 1e39 (inf as the
    kernels' float) made every negative input's output and gradient NaN or inf."""
    v = as_real(v, "negative_slope", fn)
    if not abs(v) <= FLT_MAX:
        raise ValueError(f"{fn}: negative_slope must be finite (in float32), got {v!r}")
    return v


def leaky_relu(x, negative_slope=0.01, *, out=None):
    """x where x > 0, else negative_slope * x."""
    return act_call(LEAKY_RELU, False, None, x, "x", out, "leaky_relu",
                    as_slope(negative_slope, "leaky_relu"))


def leaky_relu_backward(grad_out, x, negative_slope=0.01, *, out=None):
    """grad_out where x > 0, else negative_slope * grad_out."""
    return act_call(LEAKY_RELU, True, grad_out, x, "x", out, "leaky_relu_backward",
                    as_slope(negative_slope, "leaky_relu_backward"))


def sigmoid(x, *, out=None):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return act_call(SIGMOID, False, None, x, "x", out, "sigmoid")


def sigmoid_backward(grad_out, y, *, out=None):
    """grad_out * y * (1 - y), from the forward output y."""
    return act_call(SIGMOID, True, grad_out, y, "y", out, "sigmoid_backward")


def tanh(x, *, out=None):
    """Hyperbolic tangent elementwise."""
    return act_call(TANH, False, None, x, "x", out, "tanh")


def tanh_backward(grad_out, y, *, out=None):
    """grad_out * (1 - y**2), from the forward output y."""
    return act_call(TANH, True, grad_out, y, "y", out, "tanh_backward")


def as_approximate(object v, str fn):
    """GELU's approximate as torch takes it: 'none' (the erf form) or 'tanh'."""
    if not isinstance(v, str):
        raise TypeError(f"{fn}: approximate must be a str, 'none' or 'tanh', got {v!r}")
    if v not in ("none", "tanh"):
        raise ValueError(f"{fn}: approximate must be 'none' or 'tanh', got {v!r}")
    return v


cdef Act gelu_op(object approximate, str fn) except *:
    return GELU_TANH if as_approximate(approximate, fn) == "tanh" else GELU


def gelu(x, approximate="none", *, out=None):
    """x * Phi(x), Phi the standard normal CDF: by erf (approximate='none'), or
    torch's tanh form 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))."""
    return act_call(gelu_op(approximate, "gelu"), False, None, x, "x", out, "gelu")


def gelu_backward(grad_out, x, approximate="none", *, out=None):
    """grad_out * d gelu(x)/dx, from the forward input x (torch's formulas)."""
    return act_call(gelu_op(approximate, "gelu_backward"), True, grad_out, x, "x", out,
                    "gelu_backward")


def silu(x, *, out=None):
    """x * sigmoid(x) (swish)."""
    return act_call(SILU, False, None, x, "x", out, "silu")


def silu_backward(grad_out, x, *, out=None):
    """grad_out * s * (1 + x * (1 - s)), s = sigmoid(x), from the forward input x."""
    return act_call(SILU, True, grad_out, x, "x", out, "silu_backward")


def as_alpha(object v, str fn):
    """ELU's alpha as a real number finite in float32 (NaN or inf made every
    negative input's output NaN or inf)."""
    v = as_real(v, "alpha", fn)
    if not abs(v) <= FLT_MAX:
        raise ValueError(f"{fn}: alpha must be finite (in float32), got {v!r}")
    return v


def elu(x, alpha=1.0, *, out=None):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    return act_call(ELU, False, None, x, "x", out, "elu", as_alpha(alpha, "elu"))


def elu_backward(grad_out, x, alpha=1.0, *, out=None):
    """grad_out where x > 0, else grad_out * alpha * exp(x) (torch's, from the input x)."""
    return act_call(ELU, True, grad_out, x, "x", out, "elu_backward",
                    as_alpha(alpha, "elu_backward"))


cdef object over_dim(Act op, bint backward, object grad_out, object a, str a_name, object out,
                     str fn, object dim):
    """act_call over dimension `dim` (torch's; negative counts from the end): the last
    runs in place of the kernel, another on the moved axis's copy, written back through
    out's moved view."""
    if not is_int(dim):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    a = as_float32(a, a_name, fn)
    ndim = a.ndim
    if ndim == 0 or dim == -1 or dim == ndim - 1:
        return act_call(op, backward, grad_out, a, a_name, out, fn)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fn}: dim must be in [-{ndim}, {ndim}) for {a_name} of shape "
                         f"{a.shape}, got {dim}")
    axis = dim % ndim
    if backward:
        grad_out = ew_same_shape(a, a_name, as_float32(grad_out, "grad_out", fn), "grad_out",
                                 fn)
        out = check_out(out, a.shape, fn, (grad_out, a))
        grad_out = np.moveaxis(grad_out, axis, -1)
    else:
        out = check_out(out, a.shape, fn, (a,), alias=a)
    np.moveaxis(out, axis, -1)[...] = act_call(op, backward, grad_out, np.moveaxis(a, axis, -1),
                                               a_name, None, fn)
    return out


def softmax(x, dim=-1, *, out=None):
    """Softmax over dimension dim (the last by default), shifted by the maximum."""
    return over_dim(SOFTMAX, False, None, x, "x", out, "softmax", dim)


def softmax_backward(grad_out, y, dim=-1, *, out=None):
    """y * (grad_out - sum(grad_out * y)) over dim, from the forward output y."""
    return over_dim(SOFTMAX, True, grad_out, y, "y", out, "softmax_backward", dim)


def log_softmax(x, dim=-1, *, out=None):
    """log(softmax(x)) over dimension dim: (x - max) - log(sum(exp(x - max)))."""
    return over_dim(LOG_SOFTMAX, False, None, x, "x", out, "log_softmax", dim)


def log_softmax_backward(grad_out, y, dim=-1, *, out=None):
    """grad_out - exp(y) * sum(grad_out) over dim, from the forward output y."""
    return over_dim(LOG_SOFTMAX, True, grad_out, y, "y", out, "log_softmax_backward", dim)


def dropout(x, p, seed, *, out=None):
    """Inverted dropout: x * 1/(1 - p) where an element is kept (probability 1 - p), 0
    elsewhere (x * 0: a NaN stays NaN). The mask is a counter-based hash of `seed` (an int
    in [0, 2**64)) and each element's flat index, so the same seed gives the same mask
    whatever the thread count or ISA. The gradient is dropout(grad_out, p, seed): the
    same call with the forward's seed. 0 <= p < 1; `out` may be x (in place)."""
    p = as_real(p, "p", "dropout")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}")
    if not is_int(seed):
        raise TypeError(f"dropout: seed must be an int, got {seed!r}")
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"dropout: seed must be in [0, 2**64), got {seed!r}")
    x = as_float32(x, "x", "dropout")
    out = check_out(out, x.shape, "dropout", (x,), alias=x)
    cdef int64_t n = x.size
    cdef double p_ = p
    cdef uint64_t key = seed
    cdef const float *xp = <const float *>data_ptr(x)
    cdef float *yp = <float *>data_ptr(out)
    cdef int status
    with nogil:
        status = fnn_dropout(n, p_, key, xp, yp)
    check(status, "dropout")
    return out
