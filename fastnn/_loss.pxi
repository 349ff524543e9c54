# _loss.pxi: losses with mean reduction (csrc/loss.c), included by fastnn/_core.pyx.
# Each returns the loss as a Python float; gradients are w.r.t. the first argument.


cdef tuple ce_inputs(object logits, object labels, str fn):
    """logits as C-contiguous (N, C) float32, labels as C-contiguous (N,) int64. The
    checks read the array structs (NumPy's Python attributes, labels.flags above all,
    cost more than the kernel on a small batch)."""
    cdef cnp.ndarray lg = as_float32(logits, "logits", fn)
    if cnp.PyArray_NDIM(lg) != 2:
        raise ValueError(f"{fn}: logits must be 2-D (N, C), got shape {(<object>lg).shape}")
    cdef cnp.ndarray lb = as_array(labels, "labels", fn)
    if not cnp.PyArray_ISINTEGER(lb):  # (dtype kind 'i' or 'u')
        raise TypeError(f"{fn}: labels must be an integer array of class indices, "
                        f"got dtype {(<object>lb).dtype}")
    cdef cnp.npy_intp n = cnp.PyArray_DIMS(lg)[0]
    if cnp.PyArray_NDIM(lb) != 1 or cnp.PyArray_DIMS(lb)[0] != n:
        raise ValueError(f"{fn}: labels must have shape ({n},) to match logits "
                         f"{(<object>lg).shape}, got {(<object>lb).shape}")
    if cnp.PyArray_DIMS(lg)[1] == 0:
        raise ValueError(f"{fn}: logits must have at least one class, got shape "
                         f"{(<object>lg).shape}")
    if cnp.PyArray_TYPE(lb) != cnp.NPY_INT64 or not cnp.PyArray_ISNOTSWAPPED(lb) or \
            not (cnp.PyArray_IS_C_CONTIGUOUS(lb) and cnp.PyArray_ISALIGNED(lb)):
        lb = lb.astype(np.int64)  # out-of-range unsigned values wrap negative: rejected
    return lg, lb


def holds_label(labels, value):
    """(labels == value).any() for an integer array of labels: CrossEntropyLoss's
    ignore_index check, scanned here for native int64 C-contiguous labels (NumPy's
    comparison and reduction cost ~4 us, more than the loss kernel on a small batch)."""
    cdef cnp.ndarray arr
    cdef const int64_t *p
    cdef int64_t v
    cdef cnp.npy_intp i
    if cnp.PyArray_Check(labels) and isinstance(value, int) and \
            -(1 << 63) <= value < (1 << 63):
        arr = <cnp.ndarray>labels
        if cnp.PyArray_TYPE(arr) == cnp.NPY_INT64 and cnp.PyArray_ISNOTSWAPPED(arr) and \
                cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr):
            p, v = <const int64_t *>cnp.PyArray_DATA(arr), value
            for i in range(cnp.PyArray_SIZE(arr)):
                if p[i] == v:
                    return True
            return False
    return bool((labels == value).any())


cdef object ce_run(object logits, object labels, object grad, bint want_loss, str fn):
    """One C pass: the mean cross-entropy (a float, if want_loss) and/or the gradient."""
    cdef double loss = 0.0
    cdef int64_t n = cnp.PyArray_DIMS(<cnp.ndarray>logits)[0]
    cdef int64_t c = cnp.PyArray_DIMS(<cnp.ndarray>logits)[1]
    cdef const float *lp = <const float *>data_ptr(logits) if n else NULL
    cdef const int64_t *yp = <const int64_t *>data_ptr(labels) if n else NULL
    cdef float *gp = <float *>data_ptr(grad) if grad is not None and n else NULL
    cdef int status
    with nogil:
        status = fnn_cross_entropy(n, c, lp, yp, &loss if want_loss else NULL, gp)
    if status == FNN_EINVAL:
        raise ValueError(f"{fn}: labels must lie in [0, {c}) (the number of classes)")
    if status == FNN_ENONFINITE:
        raise ValueError(f"{fn}: logits contain NaN or infinity")
    check(status, fn)
    return loss


def cross_entropy(logits, labels):
    """Mean over rows of -log_softmax(logits)[i, labels[i]]."""
    logits, labels = ce_inputs(logits, labels, "cross_entropy")
    return ce_run(logits, labels, None, True, "cross_entropy")


def cross_entropy_backward(logits, labels, *, out=None):
    """Gradient of cross_entropy w.r.t. logits: (softmax(logits) - onehot(labels)) / N."""
    fn = "cross_entropy_backward"
    logits, labels = ce_inputs(logits, labels, fn)
    out = check_out(out, logits.shape, fn, (logits,))
    ce_run(logits, labels, out, False, fn)
    return out


def cross_entropy_with_grad(logits, labels, *, grad=None):
    """(cross_entropy(logits, labels), its gradient w.r.t. logits) from one pass."""
    fn = "cross_entropy_with_grad"
    logits, labels = ce_inputs(logits, labels, fn)
    grad = check_out(grad, logits.shape, fn, (logits,), alias=None, name="grad")
    return ce_run(logits, labels, grad, True, fn), grad


cdef tuple pair_inputs(object a, str a_name, object b, str b_name, str fn):
    a = as_float32(a, a_name, fn)
    return a, ew_same_shape(a, a_name, as_float32(b, b_name, fn), b_name, fn)


ctypedef int (*pair_loss_fn)(int64_t n, const float *a, const float *b, double *loss,
                             float *grad) noexcept nogil


cdef object pair_loss(pair_loss_fn kernel, object a, object b, object grad, bint want_loss,
                      str fn):
    """Run an elementwise loss kernel: the mean loss (a float) and/or the gradient."""
    cdef double loss = 0.0
    cdef int64_t n = a.size
    cdef const float *ap = <const float *>data_ptr(a) if n else NULL
    cdef const float *bp = <const float *>data_ptr(b) if n else NULL
    cdef float *gp = <float *>data_ptr(grad) if grad is not None and n else NULL
    cdef int status
    with nogil:
        status = kernel(n, ap, bp, &loss if want_loss else NULL, gp)
    check(status, fn)
    return loss


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of max(x, 0) - x*t + log1p(exp(-|x|)) (stable for any x)."""
    fn = "binary_cross_entropy_with_logits"
    logits, targets = pair_inputs(logits, "logits", targets, "targets", fn)
    return pair_loss(fnn_bce_with_logits, logits, targets, None, True, fn)


def binary_cross_entropy_with_logits_backward(logits, targets, *, out=None):
    """Gradient of binary_cross_entropy_with_logits w.r.t. logits: (sigmoid(x) - t) / numel."""
    fn = "binary_cross_entropy_with_logits_backward"
    logits, targets = pair_inputs(logits, "logits", targets, "targets", fn)
    out = check_out(out, logits.shape, fn, (logits, targets))
    pair_loss(fnn_bce_with_logits, logits, targets, out, False, fn)
    return out


def mse_loss(pred, target):
    """Mean squared error mean((pred - target)**2)."""
    fn = "mse_loss"
    pred, target = pair_inputs(pred, "pred", target, "target", fn)
    return pair_loss(fnn_mse_loss, pred, target, None, True, fn)


def mse_loss_backward(pred, target, *, out=None):
    """Gradient of mse_loss w.r.t. pred: 2 (pred - target) / numel."""
    fn = "mse_loss_backward"
    pred, target = pair_inputs(pred, "pred", target, "target", fn)
    out = check_out(out, pred.shape, fn, (pred, target))
    pair_loss(fnn_mse_loss, pred, target, out, False, fn)
    return out
