"""Loss functions (PyTorch semantics and arguments; mean reduction by default):
`loss_fn(pred, target)` returns a Python float (an array with reduction='none') and
`loss_fn.backward()` the gradient w.r.t. pred of that last call, in a buffer the loss
reuses (valid until the next call)."""
import numpy as np

from . import _core, functional as F
from ._core import as_real as _real

__all__ = ["Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss", "MSELoss",
           "L1Loss", "HuberLoss", "get"]


class Loss:
    name = ""
    has_accuracy = False
    _reduction = "mean"

    @property
    def reduction(self):
        return self._reduction

    @reduction.setter
    def reduction(self, value):
        """Checked as set, as torch checks it at the call: loss.reduction = 'foo' ran as
        'mean' (CrossEntropyLoss) or as 'none' (MSELoss)."""
        if not isinstance(value, str) or value not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                             f"'none', got {value!r}")
        self._reduction = value

    def __call__(self, pred, target):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def _kept(self, name):
        """What the last call kept for backward in attribute `name`; a RuntimeError
        before any call (it was an AttributeError naming the attribute)."""
        value = self.__dict__.get(name)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call the loss on a batch "
                               f"first")
        return value

    def _grad_buffer(self, shape):
        buf = getattr(self, "_grad", None)
        if buf is None or buf.shape != shape:
            buf = self._grad = np.empty(shape, np.float32)
        return buf

    def correct(self, pred, target):
        """Number of correct predictions in a batch (losses with has_accuracy)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


_REDUCTIONS = ("mean", "sum", "none")


def _deprecated(size_average, reduce, name):
    """torch's deprecated size_average and reduce arguments must be None."""
    if size_average is not None or reduce is not None:
        raise ValueError(f"{name}: size_average and reduce are deprecated in torch; pass "
                         f"reduction='mean', 'sum' or 'none' instead")


def _weights(weight, name, arg):
    """An optional float32 weight array (None stays None)."""
    if weight is None:
        return None
    w = _core.as_ndarray(weight, arg, name)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name}: {arg} must be an array of real numbers, got dtype {w.dtype}")
    return w.astype(np.float32)


def _check_broadcast(weights, shape, name):
    """Each (arg, array or None) broadcasts to the loss's elements `shape` (torch expands
    it; a larger one is an error)."""
    for arg, w in weights:
        if w is None:
            continue
        try:
            ok = np.broadcast_shapes(w.shape, shape) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{name}: {arg} of shape {w.shape} does not broadcast to the "
                             f"input's shape {tuple(shape)}")


def _scaled(grad, grad_output, shape, name):
    """grad times grad_output (the gradient of the loss's values, shape `shape`: () for a
    reduced loss, as torch's loss.backward(g) takes; ones when None), broadcast over the
    trailing dimensions grad has beyond the loss's."""
    if grad_output is None:
        return grad
    g = _core.as_ndarray(grad_output, "grad_output", f"{name}.backward")
    if g.dtype.kind not in "biuf":  # "x" failed in NumPy's float conversion, unnamed
        raise TypeError(f"{name}.backward: grad_output must hold real numbers, got {g.dtype}")
    if g.shape != shape:
        raise ValueError(f"{name}.backward: grad_output must have the loss's shape {shape}, "
                         f"got {g.shape}")
    return grad * g.astype(np.float32).reshape(shape + (1,) * (grad.ndim - len(shape)))


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits (N, C), torch's semantics and arguments: targets are
    integer class labels (N,) or class probabilities (N, C) as floats (one-hot or soft);
    `weight` (C,) rescales each class; labels equal to `ignore_index` count for nothing;
    with label_smoothing e the target becomes (1 - e) * target + e / C; reduction 'mean'
    (divided by the summed weights of the counted labels, or by N for probabilities), 'sum'
    or 'none' (the per-sample losses, an array; backward(grad_output) then takes their
    gradient, ones by default). Integer labels without weight, ignored labels or smoothing
    under 'mean' run one fused kernel call (loss and gradient); the other cases run the
    log-softmax kernel, never a softmax followed by a log."""
    name = "cross_entropy"
    has_accuracy = True
    # (subclasses that skip __init__ keep torch's defaults)
    _label_smoothing, weight, _ignore_index = 0.0, None, -100

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        name = type(self).__name__
        _deprecated(size_average, reduce, name)
        self.label_smoothing, self.ignore_index, self.reduction = (label_smoothing,
                                                                   ignore_index, reduction)
        self.weight = _weights(weight, name, "weight")
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(f"{name}: weight must be 1-D (one value per class), got "
                             f"shape {self.weight.shape}")

    # checked as set, like reduction: 2.0 or 'x' set after construction was used as is
    @property
    def label_smoothing(self):
        return self._label_smoothing

    @label_smoothing.setter
    def label_smoothing(self, value):
        name = type(self).__name__
        value = _real(value, "label_smoothing", name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {value!r}")
        self._label_smoothing = float(value)

    @property
    def ignore_index(self):
        return self._ignore_index

    @ignore_index.setter
    def ignore_index(self, value):
        if not _core.is_int(value):
            raise TypeError(f"{type(self).__name__}: ignore_index must be an int, got "
                            f"{value!r}")
        self._ignore_index = int(value)

    def __call__(self, logits, target):
        target = _core.as_ndarray(target, "target", type(self).__name__)
        self._spatial = None
        if getattr(logits, "ndim", 2) > 2:
            logits, target = self._positions(logits, target)
        if target.dtype.kind in "iu" and not self.label_smoothing and self.weight is None \
                and self.reduction == "mean" and not _core.holds_label(target, self.ignore_index):
            loss, self._g = F.cross_entropy_with_grad(
                logits, target, grad=self._grad_buffer(logits.shape))
            self._rows = None
            return float(loss)
        loss = self._soft(logits, *self._distribution(logits, target))
        if self._spatial is not None and self.reduction == "none":
            self._rows = self._spatial[:1] + self._spatial[2:]
            return loss.reshape(self._rows)
        return loss

    def _positions(self, logits, target):
        """Logits (N, C, d1, ...) as torch takes them (each position a sample) as rows
        (N*d1*..., C), and the target to match; backward moves the gradient back."""
        name = type(self).__name__
        if not isinstance(logits, np.ndarray):
            raise TypeError(f"{name}: logits must be a float32 array, got "
                            f"{type(logits).__name__}")
        shape, c = logits.shape, logits.shape[1]
        self._spatial = shape
        rows = np.ascontiguousarray(np.moveaxis(logits, 1, -1)).reshape(-1, c)
        if target.dtype.kind == "f":
            if target.shape != shape:
                raise ValueError(f"{name}: class-probability targets must have the logits' "
                                 f"shape {shape}, got {target.shape}")
            return rows, np.moveaxis(target, 1, -1).reshape(-1, c)
        if target.shape != shape[:1] + shape[2:]:
            raise ValueError(f"{name}: class labels for logits of shape {shape} must have "
                             f"shape {shape[:1] + shape[2:]}, got {target.shape}")
        return rows, target.reshape(-1)

    def _distribution(self, logits, target):
        """The target as weighted class probabilities (N, C) float32, smoothed, and the
        mean's divisor."""
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.dtype != np.float32:
            raise ValueError(f"{type(self).__name__}: logits must be float32 of shape (N, C), got "
                             f"{logits.dtype} of shape {logits.shape}")
        n, c = logits.shape
        w = self.weight
        if w is not None and w.shape != (c,):
            raise ValueError(f"{type(self).__name__}: weight must have one value per class, shape "
                             f"({c},), got {w.shape}")
        e = self.label_smoothing
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ValueError(f"{type(self).__name__}: class labels must have shape ({n},), got "
                                 f"{target.shape}")
            kept = target != self.ignore_index
            labels = target[kept]
            if labels.size and (labels.min() < 0 or labels.max() >= c):
                raise ValueError(f"{type(self).__name__}: labels must lie in [0, {c}) or equal "
                                 f"ignore_index ({self.ignore_index})")
            rows = np.flatnonzero(kept)
            dist = np.zeros((n, c), np.float32)
            dist[rows, labels] = 1.0 - e
            if e:
                dist[rows] += np.float32(e / c)
            if w is not None:
                dist *= w
            # torch's mean: over the counted labels' weights (1 each without weight)
            divisor = float(w[labels].sum(dtype=np.float64)) if w is not None else labels.size
        elif target.dtype.kind == "f":
            if target.shape != (n, c):
                raise ValueError(f"{type(self).__name__}: class-probability targets must have shape "
                                 f"({n}, {c}) like the logits (one column per class), got "
                                 f"{target.shape}")
            if self.ignore_index >= 0:
                raise ValueError(f"{type(self).__name__}: ignore_index is not supported for "
                                 "class-probability targets (as in torch)")
            dist = target.astype(np.float32)
            if e:
                dist = dist * np.float32(1.0 - e) + np.float32(e / c)
            if w is not None:
                dist = dist * w
            divisor = n
        else:
            raise TypeError(f"{type(self).__name__}: targets must be integer class labels or float "
                            f"class probabilities, got dtype {target.dtype}")
        return dist, divisor

    def _soft(self, logits, dist, divisor):
        """-sum(dist * log_softmax(logits)) reduced; the gradient of each row's loss is
        softmax * rowsum(dist) - dist (divided by the mean's divisor)."""
        grad = self._grad_buffer(logits.shape)
        logp = F.log_softmax(logits, out=grad)
        if not np.isfinite(logp).all():
            raise ValueError("CrossEntropyLoss: logits contain NaN or infinity")
        rows = -np.einsum("ij,ij->i", dist, logp, dtype=np.float64)
        np.exp(logp, out=grad)
        grad *= dist.sum(axis=1, keepdims=True)
        grad -= dist
        return self._reduce(rows, grad, divisor)

    def _reduce(self, rows, grad, divisor):
        """The per-sample losses `rows` reduced, and `grad` (their gradients) scaled to
        match: kept for backward."""
        self._g, self._rows = grad, None
        if self.reduction == "none":
            self._rows = (len(grad),)
            return rows.astype(np.float32)
        if self.reduction == "sum":
            return float(rows.sum())
        if not divisor:  # every label ignored: torch's loss is 0 / 0, its gradient 0
            return np.nan
        scale = 1.0 / divisor
        grad *= np.float32(scale)
        return float(rows.sum()) * scale

    def backward(self, grad_output=None):
        """The gradient of the last call's loss w.r.t. the logits, times grad_output (a
        scalar, as torch's loss.backward(g); 1 by default); with reduction='none', of the
        per-sample losses weighted by grad_output (N,) (ones by default)."""
        grad, name = self._kept("_g"), type(self).__name__
        spatial = self.__dict__.get("_spatial")
        if self._rows is not None and spatial is None:
            return _scaled(grad, grad_output, self._rows, name)
        if self._rows is None:  # mean or sum: a scalar grad_output scales the gradient
            grad = _scaled(grad, grad_output, (), name)
            if spatial is None:
                return grad
        elif grad_output is not None:  # per position: as rows
            if np.shape(grad_output) != self._rows:
                raise ValueError(f"{name}.backward: grad_output must have the loss's shape "
                                 f"{self._rows}, got {np.shape(grad_output)}")
            grad = _scaled(grad, np.reshape(grad_output, -1), (len(grad),), name)
        moved = spatial[:1] + spatial[2:] + spatial[1:2]  # (N, d1, ..., C)
        out = self.__dict__.get("_spatial_grad")
        if out is None or out.shape != spatial:
            out = self._spatial_grad = np.empty(spatial, np.float32)
        np.copyto(out, np.moveaxis(grad.reshape(moved), -1, 1))
        return out

    def correct(self, logits, target):
        target = np.asarray(target)
        if target.ndim == 2:
            target = target.argmax(axis=1)
        return int(np.count_nonzero(logits.argmax(axis=1) == target))

    def __repr__(self):
        args = []
        if self.weight is not None:
            args.append(f"weight={self.weight.tolist()}")
        if self.ignore_index != -100:
            args.append(f"ignore_index={self.ignore_index}")
        if self.reduction != "mean":
            args.append(f"reduction={self.reduction!r}")
        if self.label_smoothing:
            args.append(f"label_smoothing={self.label_smoothing}")
        return f"CrossEntropyLoss({', '.join(args)})"


class NLLLoss(CrossEntropyLoss):
    """torch.nn.NLLLoss: -input[i, target[i]] for log-probabilities (N, C) (a LogSoftmax's
    output) and class labels (N,), with CrossEntropyLoss's weight, ignore_index and
    reduction."""
    name = "nll"

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)

    def __call__(self, log_probs, target):
        target = _core.as_ndarray(target, "target", "NLLLoss")
        if target.dtype.kind not in "iu":
            raise TypeError(f"NLLLoss: targets must be integer class labels, got dtype "
                            f"{target.dtype}")
        self._spatial = None
        if getattr(log_probs, "ndim", 2) > 2:
            log_probs, target = self._positions(log_probs, target)
        dist, divisor = self._distribution(log_probs, target)
        rows = -np.einsum("ij,ij->i", dist, log_probs, dtype=np.float64)
        loss = self._reduce(rows, np.negative(dist, out=self._grad_buffer(dist.shape)),
                            divisor)
        if self._spatial is not None and self.reduction == "none":
            self._rows = self._spatial[:1] + self._spatial[2:]
            return loss.reshape(self._rows)
        return loss

    def __repr__(self):
        return super().__repr__().replace("CrossEntropyLoss", "NLLLoss", 1)


class _Elementwise(Loss):
    """A loss whose gradient is computed on demand from the saved (pred, target): the
    kernels' mean, or with reduction 'sum' / 'none' (torch's) the sum or the values."""

    _loss = _backward = None

    def __call__(self, pred, target):
        self._saved = pred, target
        loss = self._loss(pred, target)  # validates, and is the mean
        if self.reduction == "mean":
            return float(loss)
        values = self._values(np.asarray(pred, np.float64), np.asarray(target, np.float64))
        return float(values.sum()) if self.reduction == "sum" else values.astype(np.float32)

    def backward(self, grad_output=None):
        """The gradient of the last call's loss w.r.t. pred, times grad_output (a scalar,
        as torch's loss.backward(g); 1 by default); with reduction='none', of its values
        weighted by grad_output (pred's shape; ones by default)."""
        pred, target = self._kept("_saved")
        grad = self._backward(pred, target, out=self._grad_buffer(pred.shape))
        if self.reduction != "mean":
            grad *= np.float32(max(pred.size, 1))  # the kernels divide by the count
        shape = grad.shape if self.reduction == "none" else ()
        return _scaled(grad, grad_output, shape, type(self).__name__)


class BCEWithLogitsLoss(_Elementwise):
    """Binary cross-entropy on logits and float32 targets in [0, 1] of the same shape,
    torch's arguments: `weight` (broadcast to the logits) rescales each element,
    `pos_weight` (broadcast along the last dimension: one per class) the positive term,
    reduction 'mean', 'sum' or 'none'."""
    name = "binary_cross_entropy"
    has_accuracy = True
    _loss = staticmethod(F.binary_cross_entropy_with_logits)
    _backward = staticmethod(F.binary_cross_entropy_with_logits_backward)
    weight = pos_weight = None

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        self.weight = _weights(weight, "BCEWithLogitsLoss", "weight")
        self.pos_weight = _weights(pos_weight, "BCEWithLogitsLoss", "pos_weight")
        _deprecated(size_average, reduce, "BCEWithLogitsLoss")
        self.reduction = reduction

    def _terms(self, x, t):
        """(loss values, their gradient) in float64: (1 - t) x + lw softplus(-x) with
        lw = (pos_weight - 1) t + 1, times weight (torch's stable form)."""
        lw = 1.0 if self.pos_weight is None else (self.pos_weight - 1.0) * t + 1.0
        softplus = np.logaddexp(0.0, -x)
        values = (1.0 - t) * x + lw * softplus
        grad = (1.0 - t) - lw * np.exp(-x - softplus)  # exp(-softplus(x)) = sigmoid(-x)
        if self.weight is not None:
            values, grad = values * self.weight, grad * self.weight
        return values, grad

    def _values(self, x, t):
        _check_broadcast((("weight", self.weight), ("pos_weight", self.pos_weight)), x.shape,
                         "BCEWithLogitsLoss")
        return self._terms(x, t)[0]

    def __call__(self, pred, target):
        if self.weight is None and self.pos_weight is None:
            return super().__call__(pred, target)
        self._loss(pred, target)  # validates
        self._saved = pred, target
        values = self._values(np.asarray(pred, np.float64), np.asarray(target, np.float64))
        if self.reduction == "none":
            return values.astype(np.float32)
        return float(values.sum() / (max(values.size, 1) if self.reduction == "mean" else 1))

    def backward(self, grad_output=None):
        if self.weight is None and self.pos_weight is None:
            return super().backward(grad_output)
        pred, target = self._kept("_saved")
        grad = self._terms(np.asarray(pred, np.float64), np.asarray(target, np.float64))[1]
        if self.reduction == "mean":
            grad /= max(grad.size, 1)
        shape = grad.shape if self.reduction == "none" else ()
        grad = _scaled(grad, grad_output, shape, "BCEWithLogitsLoss")
        out = self._grad_buffer(np.shape(pred))
        out[...] = grad
        return out

    def correct(self, logits, targets):
        """Per sample, the fraction of its outputs on the right side of 0.5 (summed over
        the batch): counting every output made accuracy exceed 1 with several."""
        hits = (logits > 0) == (targets > 0.5)
        return float(hits.reshape(len(hits), -1).mean(axis=1).sum())


class _Terms(_Elementwise):
    """An elementwise loss computed in float64 NumPy by _terms(pred, target) -> (values,
    their gradient), on float32 pred and target of one shape; torch's reductions."""

    def _check(self, pred, target):
        name = type(self).__name__
        for arg, v in (("pred", pred), ("target", target)):
            if not isinstance(v, np.ndarray) or v.dtype != np.float32:
                raise TypeError(f"{name}: {arg} must be a float32 array, got "
                                f"{getattr(v, 'dtype', type(v).__name__)}")
        if pred.shape != target.shape:
            raise ValueError(f"{name}: target must have pred's shape {pred.shape}, got "
                             f"{target.shape}")

    def __call__(self, pred, target):
        self._check(pred, target)
        self._saved = pred, target
        values = self._terms(pred.astype(np.float64), target.astype(np.float64))[0]
        if self.reduction == "none":
            return values.astype(np.float32)
        return float(values.sum() / (max(values.size, 1) if self.reduction == "mean" else 1))

    def backward(self, grad_output=None):
        pred, target = self._kept("_saved")
        grad = self._terms(pred.astype(np.float64), target.astype(np.float64))[1]
        if self.reduction == "mean":
            grad /= max(grad.size, 1)
        shape = grad.shape if self.reduction == "none" else ()
        grad = _scaled(grad, grad_output, shape, type(self).__name__)
        out = self._grad_buffer(pred.shape)
        out[...] = grad
        return out


class BCELoss(_Terms):
    """torch.nn.BCELoss: binary cross-entropy on probabilities in [0, 1] (a Sigmoid's
    output) and float32 targets of the same shape, each log clamped to >= -100 as torch
    does; `weight` (broadcast) rescales each element; reduction 'mean', 'sum' or 'none'.
    BCEWithLogitsLoss on the logits is the stable form."""
    name = "binary_cross_entropy_probs"
    has_accuracy = True
    weight = None

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        self.weight = _weights(weight, "BCELoss", "weight")
        _deprecated(size_average, reduce, "BCELoss")
        self.reduction = reduction

    def _check(self, pred, target):
        super()._check(pred, target)
        if pred.size and not (pred.min() >= 0 and pred.max() <= 1):
            raise ValueError("BCELoss: pred must hold probabilities in [0, 1] (apply a Sigmoid, "
                             "or use BCEWithLogitsLoss on the logits)")
        if target.size and not (target.min() >= 0 and target.max() <= 1):  # torch's check
            raise ValueError("BCELoss: target must hold values in [0, 1]")
        _check_broadcast((("weight", self.weight),), pred.shape, "BCELoss")

    def _terms(self, p, t):
        """(loss values, their gradient) in float64, torch's clamps."""
        with np.errstate(divide="ignore"):
            values = -(t * np.maximum(np.log(p), -100.0) +
                       (1 - t) * np.maximum(np.log1p(-p), -100.0))
        grad = (p - t) / np.maximum((1 - p) * p, 1e-12)
        if self.weight is not None:
            values, grad = values * self.weight, grad * self.weight
        return values, grad

    def correct(self, probs, targets):
        return int(np.count_nonzero((probs > 0.5) == (targets > 0.5)))


class MSELoss(_Elementwise):
    """Mean squared error between pred and a float32 target of the same shape; torch's
    reduction 'mean', 'sum' or 'none'."""
    name = "mse"
    _loss = staticmethod(F.mse_loss)
    _backward = staticmethod(F.mse_loss_backward)

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        _deprecated(size_average, reduce, "MSELoss")
        self.reduction = reduction

    def _values(self, pred, target):
        return (pred - target) ** 2


class L1Loss(_Terms):
    """torch.nn.L1Loss: mean absolute error |pred - target| on float32 arrays of one
    shape (its gradient sign(pred - target), 0 where they are equal, as torch's);
    reduction 'mean', 'sum' or 'none'. In NumPy: fastnn has no C kernel for it."""
    name = "l1"

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        _deprecated(size_average, reduce, "L1Loss")
        self.reduction = reduction

    def _terms(self, pred, target):
        diff = pred - target
        return abs(diff), np.sign(diff)


class HuberLoss(_Terms):
    """torch.nn.HuberLoss(delta=1.0): 0.5 d**2 where |d| <= delta, else
    delta * (|d| - 0.5 delta), d = pred - target (Keras' Huber too); reduction 'mean',
    'sum' or 'none'. In NumPy: fastnn has no C kernel for it."""
    name = "huber"

    def __init__(self, reduction="mean", delta=1.0):
        self.reduction = reduction
        self.delta = _real(delta, "delta", "HuberLoss")
        if not 0 < self.delta < np.inf:
            raise ValueError(f"HuberLoss: delta must be finite and > 0, got {delta!r}")

    def _terms(self, pred, target):
        diff = pred - target
        small = abs(diff) <= self.delta
        values = np.where(small, 0.5 * diff ** 2, self.delta * (abs(diff) - 0.5 * self.delta))
        return values, np.where(small, diff, self.delta * np.sign(diff))

    def __repr__(self):
        return f"HuberLoss(delta={self.delta})" if self.delta != 1.0 else "HuberLoss()"


_BY_NAME = {"cross_entropy": CrossEntropyLoss, "binary_cross_entropy": BCEWithLogitsLoss,
            "bce": BCEWithLogitsLoss, "mse": MSELoss, "nll": NLLLoss, "l1": L1Loss,
            "huber": HuberLoss}


def get(loss):
    """A Loss from a Loss instance or a name ('cross_entropy', 'binary_cross_entropy'/'bce',
    'mse', 'nll', 'l1', 'huber')."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _BY_NAME:
        return _BY_NAME[loss]()
    raise ValueError(f"loss must be a fastnn.losses.Loss or one of {sorted(_BY_NAME)}, "
                     f"got {loss!r}")
