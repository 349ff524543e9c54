"""Losses against fastnn.reference in float64 on the same float32 inputs.

Cross-entropy: each row's exp(x - max) is within (|x - max| + 3)u of exact (rounding
x - max, then fastnn's expf, 3u), the sums run in double, so a row's loss is within
(max|x - max| + 4)u of the float64 value and so is the mean; the gradient
(softmax - onehot)/N is within (|x - max| + 8)u * p/N + 2u/N per element.
BCE and MSE terms are evaluated in double from the float32 inputs (errors ~1e-16);
their float32 gradients take 3-4 roundings (sigmoid: 4u relative, then - t and / n).
Loss sums run over fixed blocks, so the bits do not depend on the thread count.
"""
import numpy as np
import pytest

from fastnn import functional as F, losses, reference as ref

U = 2.0 ** -24


def ce_case(rng, n, c, scale=3.0):
    logits = (rng.standard_normal((n, c)) * scale).astype(np.float32)
    labels = rng.integers(0, c, size=n)
    return logits, labels


def assert_within(actual, expected, bound):
    err = np.abs(np.asarray(actual, np.float64) - expected)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


@pytest.mark.parametrize("n, c", [(1, 1), (1, 10), (128, 10), (7, 33), (300, 1000)])
def test_cross_entropy_matches_reference(isa, rng, n, c):
    logits, labels = ce_case(rng, n, c)
    x64 = logits.astype(np.float64)
    z = np.abs(x64 - x64.max(axis=1, keepdims=True))
    loss = F.cross_entropy(logits, labels)
    assert isinstance(loss, float)
    assert_within(loss, ref.cross_entropy(x64, labels), (z.max() + 4) * U * max(1.0, abs(loss)))
    grad = F.cross_entropy_backward(logits, labels)
    assert grad.dtype == np.float32 and grad.shape == (n, c)
    p = ref.softmax(x64)
    assert_within(grad, ref.cross_entropy_backward(x64, labels), ((z + 8) * p + 2) * U / n)
    fused_loss, fused_grad = F.cross_entropy_with_grad(logits, labels)
    assert fused_loss == loss
    np.testing.assert_array_equal(fused_grad, grad)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64,
                                   np.uint64])
def test_cross_entropy_accepts_any_integer_labels(rng, dtype):
    logits, labels = ce_case(rng, 9, 5)
    expected = F.cross_entropy_with_grad(logits, labels)
    got = F.cross_entropy_with_grad(logits, labels.astype(dtype))
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert F.cross_entropy(logits, list(labels)) == expected[0]


def test_cross_entropy_grad_buffer_and_layouts(rng):
    logits, labels = ce_case(rng, 12, 6)
    grad = np.full_like(logits, np.nan)
    loss, g = F.cross_entropy_with_grad(logits, labels, grad=grad)
    assert g is grad
    out = np.empty_like(logits)
    assert F.cross_entropy_backward(logits, labels, out=out) is out
    np.testing.assert_array_equal(out, grad)
    t = np.asfortranarray(logits)
    assert F.cross_entropy(t, labels[::-1][::-1]) == loss
    assert F.cross_entropy(logits, np.repeat(labels, 2)[::2]) == loss  # strided labels


def test_cross_entropy_uniform_logits():
    logits = np.zeros((3, 7), np.float32)
    assert F.cross_entropy(logits, np.array([0, 3, 6])) == pytest.approx(np.log(7), rel=1e-7)


def test_cross_entropy_empty_batch():
    loss, grad = F.cross_entropy_with_grad(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert np.isnan(loss) and grad.shape == (0, 4)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4, 5), (1,)])
def test_bce_and_mse_match_reference(isa, rng, shape):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    t = rng.random(shape).astype(np.float32)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    n = x.size
    bce = F.binary_cross_entropy_with_logits(x, t)
    assert isinstance(bce, float)
    assert bce == pytest.approx(ref.binary_cross_entropy_with_logits(x64, t64), rel=1e-12)
    s = ref.sigmoid(x64)
    assert_within(F.binary_cross_entropy_with_logits_backward(x, t),
                  ref.binary_cross_entropy_with_logits_backward(x64, t64),
                  4 * U * (s + np.abs(s - t64)) / n)
    mse = F.mse_loss(x, t)
    assert mse == pytest.approx(ref.mse_loss(x64, t64), rel=1e-12)
    assert_within(F.mse_loss_backward(x, t), ref.mse_loss_backward(x64, t64),
                  4 * U * 2 * np.abs(x64 - t64) / n)


def test_bce_is_stable_for_large_logits():
    x = np.array([1000.0, -1000.0, 80.0, -80.0], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    assert F.binary_cross_entropy_with_logits(x, t) == pytest.approx(500.0, rel=1e-12)
    g = F.binary_cross_entropy_with_logits_backward(x, t)
    np.testing.assert_allclose(g, [0.25, -0.25, 0.0, 0.0], atol=1e-30)


def test_thread_count_does_not_change_bits(isa, rng, threads):
    logits, labels = ce_case(rng, 3000, 100)
    x = rng.standard_normal(400_000).astype(np.float32)
    t = rng.random(400_000).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append((*F.cross_entropy_with_grad(logits, labels),
                        F.binary_cross_entropy_with_logits(x, t),
                        F.binary_cross_entropy_with_logits_backward(x, t),
                        F.mse_loss(x, t), F.mse_loss_backward(x, t)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


LOGITS = np.zeros((3, 4), np.float32)


def with_value(value, at=(1, 2)):
    x = LOGITS.copy()
    x[at] = value
    return x


@pytest.mark.parametrize("fn", [F.cross_entropy, F.cross_entropy_backward,
                                F.cross_entropy_with_grad])
@pytest.mark.parametrize("logits, labels, exc, msg", [
    (LOGITS, np.array([0, 4, 1]), ValueError, r"labels must lie in \[0, 4\)"),
    (LOGITS, np.array([0, -1, 1]), ValueError, r"labels must lie in \[0, 4\)"),
    (LOGITS, np.array([0, 2 ** 63, 1], np.uint64), ValueError, "labels must lie"),
    (LOGITS, np.array([0.0, 1.0, 2.0]), TypeError, "labels must be an integer array"),
    (LOGITS, np.array([True, False, True]), TypeError, "labels must be an integer array"),
    (LOGITS, np.array([0, 1]), ValueError, r"labels must have shape \(3,\)"),
    (LOGITS, np.array([[0, 1, 2]]), ValueError, r"labels must have shape \(3,\)"),
    (with_value(np.nan), np.array([0, 1, 2]), ValueError, "logits contain NaN or inf"),
    (with_value(np.inf, (2, 0)), np.array([0, 1, 2]), ValueError, "logits contain NaN or inf"),
    (with_value(-np.inf), np.array([0, 1, 2]), ValueError, "logits contain NaN or inf"),
    (LOGITS.astype(np.float64), np.array([0, 1, 2]), TypeError, "logits must be a float32"),
    (LOGITS[0], np.array([0]), ValueError, "logits must be 2-D"),
    (np.zeros((3, 0), np.float32), np.array([0, 0, 0]), ValueError, "at least one class"),
])
def test_cross_entropy_bad_inputs(fn, logits, labels, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(logits, labels)


def test_cross_entropy_bad_grad_buffers():
    labels = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"grad must have shape \(3, 4\)"):
        F.cross_entropy_with_grad(LOGITS, labels, grad=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="overlaps"):
        F.cross_entropy_with_grad(LOGITS, labels, grad=LOGITS)
    with pytest.raises(TypeError, match="out must be a float32"):
        F.cross_entropy_backward(LOGITS, labels, out=np.empty((3, 4)))


@pytest.mark.parametrize("fn", [F.binary_cross_entropy_with_logits, F.mse_loss,
                                F.binary_cross_entropy_with_logits_backward, F.mse_loss_backward])
def test_pair_losses_bad_inputs(fn):
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"must have the shape of .* \(2, 3\), got \(3, 2\)"):
        fn(a, np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="must be a float32"):
        fn(a, np.zeros((2, 3)))


def test_error_does_not_depend_on_thread_count(rng, threads):
    # A NaN early and a bad label late: every thread count reports the labels.
    logits, labels = ce_case(rng, 4000, 100)
    logits[3, 5] = np.nan
    labels[-1] = 100
    for n in (1, 2, 3):
        threads(n)
        with pytest.raises(ValueError, match="labels must lie"):
            F.cross_entropy_with_grad(logits, labels)


# ---- CrossEntropyLoss: class-probability targets and label smoothing (torch's semantics) ----

def _torch_ce(logits, target, **kw):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(target) if target.dtype.kind in "iu" else torch.tensor(target,
                                                                          dtype=torch.float64)
    loss = torch.nn.functional.cross_entropy(z, t, **kw)
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("kind", ["one-hot", "soft", "unnormalised", "labels"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_loss_probability_targets_match_torch(rng, kind, smoothing):
    from fastnn.losses import CrossEntropyLoss
    n, c = 7, 5
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    labels = rng.integers(0, c, n)
    target = {"one-hot": np.eye(c, dtype=np.float32)[labels],
              "soft": rng.dirichlet(np.ones(c), n).astype(np.float32),
              "unnormalised": rng.random((n, c)).astype(np.float32),
              "labels": labels}[kind]
    loss_fn = CrossEntropyLoss(label_smoothing=smoothing)
    loss = loss_fn(logits, target)
    want_loss, want_grad = _torch_ce(logits.astype(np.float64), target, label_smoothing=smoothing)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(loss_fn.backward(), want_grad, rtol=1e-5, atol=1e-7)
    if kind == "one-hot" and smoothing == 0.0:  # the same as integer labels, fused kernel
        np.testing.assert_allclose(loss, CrossEntropyLoss()(logits, labels), rtol=1e-6)


def test_cross_entropy_loss_probability_targets_are_stable():
    from fastnn.losses import CrossEntropyLoss
    logits = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    loss = loss_fn(logits, np.array([[0.0, 1.0, 0.0]], np.float32))
    assert np.isfinite(loss) and np.isfinite(loss_fn.backward()).all()


def test_cross_entropy_loss_target_errors():
    from fastnn.losses import CrossEntropyLoss
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"must have shape \(3, 4\).*\(3, 5\)"):
        CrossEntropyLoss()(logits, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        CrossEntropyLoss(label_smoothing=0.1)(logits, np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="targets must be integer class labels or float"):
        CrossEntropyLoss()(logits, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="NaN or infinity"):
        CrossEntropyLoss()(np.full((3, 4), np.nan, np.float32), np.eye(4, dtype=np.float32)[:3])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("targets", ["labels", "probabilities"])
def test_loss_weights_ignore_index_and_reduction_match_torch(rng, reduction, targets):
    """torch's weight, ignore_index and reduction (CrossEntropyLoss), weight, pos_weight
    and reduction (BCEWithLogitsLoss) and reduction (MSELoss) were missing (TypeError).
    Values and gradients (through grad_output for 'none') are torch's; a mean over
    ignored labels divides by the counted labels' weights, as torch's does."""
    torch = pytest.importorskip("torch")
    from fastnn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
    n, c = 6, 4
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, c).astype(np.float32)
    if targets == "labels":
        y, kwargs = np.array([0, 3, 1, 3, 2, 1]), {"ignore_index": 3}
    else:
        y, kwargs = rng.random((n, c)).astype(np.float32), {}
    cases = [(CrossEntropyLoss, torch.nn.CrossEntropyLoss, y,
              dict(weight=weight, reduction=reduction, label_smoothing=0.2, **kwargs)),
             (CrossEntropyLoss, torch.nn.CrossEntropyLoss, y, dict(reduction=reduction, **kwargs))]
    t = rng.random((n, c)).astype(np.float32)
    cases += [(BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, t,
               dict(weight=weight, pos_weight=weight[::-1].copy(), reduction=reduction)),
              (BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, t, dict(reduction=reduction)),
              (MSELoss, torch.nn.MSELoss, t, dict(reduction=reduction))]
    for cls, t_cls, target, args in cases:
        tx = torch.tensor(x, requires_grad=True)
        t_args = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                  for k, v in args.items()}
        want = t_cls(**t_args)(tx, torch.from_numpy(target))
        g = rng.standard_normal(tuple(want.shape)).astype(np.float32)
        want.backward(torch.from_numpy(g) if reduction == "none" else None)
        loss_fn = cls(**args)
        got = loss_fn(x, target)
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{cls.__name__}{args}")
        grad = loss_fn.backward(g) if reduction == "none" else loss_fn.backward()
        np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{cls.__name__}{args}")
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="size_average and reduce are deprecated"):
        CrossEntropyLoss(size_average=False)
    with pytest.raises(ValueError, match=r"weight must have one value per class, shape \(4,\)"):
        CrossEntropyLoss(weight=np.ones(3))(x, np.zeros(n, np.int64))


def torch_args(torch, args):
    """A loss's keyword arguments with its arrays (weight) as torch tensors."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}


def assert_loss_like_torch(torch, loss_fn, t_loss_fn, x, y, rng):
    """The loss of (x, y) and its gradient (for a random output gradient when the
    reduction is "none") are the torch loss's, the loss's shape too."""
    tx = torch.tensor(x, requires_grad=True)
    want = t_loss_fn(tx, torch.from_numpy(y))
    g = rng.standard_normal(tuple(want.shape)).astype(np.float32)
    unreduced = loss_fn.reduction == "none"
    want.backward(torch.from_numpy(g) if unreduced else None)
    got = loss_fn(x, y)
    assert np.shape(got) == tuple(want.shape)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    grad = loss_fn.backward(g) if unreduced else loss_fn.backward()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_bce_on_probabilities_match_torch(rng, reduction):
    """NLLLoss (after a LogSoftmax) and BCELoss (after a Sigmoid; logs clamped at -100,
    probabilities 0 and 1 included) did not exist: values and gradients are torch's."""
    torch = pytest.importorskip("torch")
    from fastnn import nn
    from fastnn.losses import BCELoss, NLLLoss
    n, c = 6, 4
    weight = rng.uniform(0.5, 2.0, c).astype(np.float32)
    log_probs = nn.LogSoftmax(dim=1)((rng.standard_normal((n, c)) * 3).astype(np.float32))
    labels = np.array([0, 3, 1, 3, 2, 1])
    probs = rng.random((n, c)).astype(np.float32)
    probs[0, 0], probs[1, 1] = 0.0, 1.0
    target = rng.random((n, c)).astype(np.float32)
    for cls, t_cls, x, y, args in [
            (NLLLoss, torch.nn.NLLLoss, log_probs, labels, dict(weight=weight, ignore_index=3)),
            (NLLLoss, torch.nn.NLLLoss, log_probs, labels, {}),
            (BCELoss, torch.nn.BCELoss, probs, target, dict(weight=weight)),
            (BCELoss, torch.nn.BCELoss, probs, target, {})]:
        assert_loss_like_torch(torch, cls(reduction=reduction, **args),
                               t_cls(reduction=reduction, **torch_args(torch, args)), x, y, rng)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        BCELoss()(np.full((2, 2), 1.5, np.float32), target[:2, :2])
    with pytest.raises(TypeError, match="NLLLoss: targets must be integer class labels"):
        NLLLoss()(log_probs, probs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_l1_and_huber_match_torch(rng, reduction):
    """L1Loss and HuberLoss (NumPy, no kernel): values and gradients are torch's, on
    both sides of delta and where pred equals the target (gradient 0); the mean's
    gradient also agrees with central finite differences in float64."""
    torch = pytest.importorskip("torch")
    from fastnn.losses import HuberLoss, L1Loss
    x = (rng.standard_normal((5, 3, 2)) * 2).astype(np.float32)
    y = rng.standard_normal((5, 3, 2)).astype(np.float32)
    y[0, 0, 0] = x[0, 0, 0]
    for loss_fn, t_loss_fn in [
            (L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction)),
            (HuberLoss(reduction=reduction), torch.nn.HuberLoss(reduction=reduction)),
            (HuberLoss(reduction=reduction, delta=0.3),
             torch.nn.HuberLoss(reduction=reduction, delta=0.3))]:
        assert_loss_like_torch(torch, loss_fn, t_loss_fn, x, y, rng)
    if reduction == "mean":
        x64 = rng.standard_normal((3, 4))
        for loss_fn in (L1Loss(), HuberLoss(delta=0.5)):
            loss_fn(x64.astype(np.float32), np.zeros((3, 4), np.float32))
            grad = loss_fn.backward()
            num = np.zeros_like(x64)
            for i in np.ndindex(x64.shape):
                d = np.zeros_like(x64)
                d[i] = 1e-6
                num[i] = (loss_fn._terms(x64 + d, 0)[0].mean() -
                          loss_fn._terms(x64 - d, 0)[0].mean()) / 2e-6
            np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="HuberLoss: delta must be finite and > 0"):
        HuberLoss(delta=0)
    with pytest.raises(ValueError, match=r"L1Loss: target must have pred's shape"):
        L1Loss()(x, y[:2])
    with pytest.raises(TypeError, match="HuberLoss: pred must be a float32 array"):
        HuberLoss()(x.astype(np.float64), y)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_and_nll_on_positions_match_torch(rng, reduction):
    """Logits (N, C, d1, ...) with labels (N, d1, ...) or probabilities of the logits'
    shape, each position a sample (segmentation), as torch's: it raised ValueError."""
    torch = pytest.importorskip("torch")
    from fastnn.losses import CrossEntropyLoss, NLLLoss
    x = (rng.standard_normal((2, 4, 3, 5)) * 3).astype(np.float32)
    labels = rng.integers(0, 4, (2, 3, 5))
    labels[0, 0] = 2
    probs = rng.random(x.shape).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    log_probs = torch.log_softmax(torch.from_numpy(x), 1).numpy()
    for cls, t_cls, inputs, target, args in [
            (CrossEntropyLoss, torch.nn.CrossEntropyLoss, x, labels,
             dict(weight=weight, ignore_index=2, label_smoothing=0.1)),
            (CrossEntropyLoss, torch.nn.CrossEntropyLoss, x, labels, {}),
            (CrossEntropyLoss, torch.nn.CrossEntropyLoss, x, probs, dict(weight=weight)),
            (NLLLoss, torch.nn.NLLLoss, log_probs, labels, dict(ignore_index=2))]:
        assert_loss_like_torch(torch, cls(reduction=reduction, **args),
                               t_cls(reduction=reduction, **torch_args(torch, args)), inputs,
                               target, rng)
    with pytest.raises(ValueError, match=r"class labels for logits of shape \(2, 4, 3, 5\) "
                                         r"must have shape \(2, 3, 5\)"):
        CrossEntropyLoss()(x, labels[:, :2])


@pytest.mark.parametrize("args", [{}, dict(label_smoothing=0.1),
                                  dict(weight=np.array([1.0, 2.0, 0.5], np.float32))])
@pytest.mark.parametrize("cls", ["CrossEntropyLoss", "NLLLoss"])
def test_mean_over_only_ignored_labels_has_torch_zero_gradient(rng, cls, args):
    """Every label ignore_index under 'mean': the loss is NaN (0 / 0) as torch's, but
    the gradient was NaN everywhere (0 * NaN) where torch's is 0."""
    torch = pytest.importorskip("torch")
    if cls == "NLLLoss" and "label_smoothing" in args:
        pytest.skip("NLLLoss has no label_smoothing")
    x = (rng.standard_normal((4, 3)) * 3).astype(np.float32)
    labels = np.full(4, 1)
    loss_fn = getattr(losses, cls)(ignore_index=1, **args)
    t_loss_fn = getattr(torch.nn, cls)(ignore_index=1, **torch_args(torch, args))
    tx = torch.tensor(x, requires_grad=True)
    want = t_loss_fn(tx, torch.from_numpy(labels))
    want.backward()
    assert np.isnan(loss_fn(x, labels)) and np.isnan(want.item())
    np.testing.assert_array_equal(loss_fn.backward(), tx.grad.numpy())


@pytest.mark.parametrize("cls", [losses.CrossEntropyLoss, losses.NLLLoss, losses.BCELoss,
                                 losses.BCEWithLogitsLoss, losses.MSELoss])
def test_loss_arguments_set_after_construction_are_checked(cls):
    """loss.reduction = 'foo' ran as 'mean' (CrossEntropyLoss) or 'none' (MSELoss);
    label_smoothing = 2.0 gave negative target weights, ignore_index = 'x' ignored
    nothing: each is checked as set, as the constructor checks it."""
    loss_fn = cls()
    with pytest.raises(ValueError, match=rf"{cls.__name__}: reduction must be 'mean', 'sum' "
                                         r"or 'none', got 'foo'"):
        loss_fn.reduction = "foo"
    loss_fn.reduction = "sum"
    assert loss_fn.reduction == "sum"
    if issubclass(cls, losses.CrossEntropyLoss):
        for key, value, error in [("label_smoothing", 2.0, ValueError),
                                  ("label_smoothing", "x", TypeError),
                                  ("ignore_index", "x", TypeError),
                                  ("ignore_index", 1.5, TypeError)]:
            with pytest.raises(error, match=rf"{cls.__name__}: {key} must be"):
                setattr(loss_fn, key, value)
        assert (loss_fn.label_smoothing, loss_fn.ignore_index) == (0.0, -100)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name, args, kind", [
    ("CrossEntropyLoss", {}, "labels"), ("CrossEntropyLoss", {}, "positions"),
    ("CrossEntropyLoss", dict(label_smoothing=0.1), "probabilities"),
    ("NLLLoss", {}, "labels"), ("BCELoss", {}, "probs"),
    ("BCEWithLogitsLoss", {}, "binary"),
    ("BCEWithLogitsLoss", dict(pos_weight=np.array([2.0, 0.5, 1.5], np.float32)), "binary"),
    ("MSELoss", {}, "real"), ("L1Loss", {}, "real"), ("HuberLoss", {}, "real")])
def test_reduced_loss_backward_scales_by_grad_output_as_torch(rng, name, args, kind,
                                                              reduction):
    """loss.backward(g) of a 'mean' or 'sum' loss is g times the gradient, as torch's
    loss.backward(torch.tensor(g)); fastnn ignored g and returned the gradient of the
    loss itself. A g of another shape than the scalar loss's () raises, as torch does."""
    torch = pytest.importorskip("torch")
    shape = (4, 3, 2) if kind == "positions" else (4, 3)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    y = {"labels": rng.integers(0, 3, 4), "positions": rng.integers(0, 3, (4, 2)),
         "probabilities": rng.dirichlet(np.ones(3), 4).astype(np.float32),
         "probs": rng.uniform(0, 1, shape).astype(np.float32),
         "binary": rng.integers(0, 2, shape).astype(np.float32),
         "real": rng.standard_normal(shape).astype(np.float32)}[kind]
    if name == "BCELoss":
        x = rng.uniform(0.05, 0.95, shape).astype(np.float32)
    if name == "NLLLoss":
        x = torch.log_softmax(torch.from_numpy(x), 1).numpy()
    loss_fn = getattr(losses, name)(reduction=reduction, **args)
    tx = torch.tensor(x, requires_grad=True)
    want = getattr(torch.nn, name)(reduction=reduction, **torch_args(torch, args))(
        tx, torch.from_numpy(y))
    want.backward(torch.tensor(-2.5))
    np.testing.assert_allclose(loss_fn(x, y), want.item(), rtol=1e-5)
    np.testing.assert_allclose(loss_fn.backward(np.float32(-2.5)), tx.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss_fn.backward(), tx.grad.numpy() / -2.5, rtol=1e-5,
                               atol=1e-6)  # the kept gradient is not scaled in place
    with pytest.raises(ValueError, match=r"grad_output must have the loss's shape \(\)"):
        loss_fn.backward(np.ones(1, np.float32))


@pytest.mark.parametrize("bad", [1.5, -0.25, np.nan])
def test_bce_loss_target_outside_0_1_raises_as_torch(bad):
    """torch's BCELoss raises "all elements of target should be between 0 and 1" (NaN
    included); fastnn's checked only pred and returned a loss (negative for a target
    above 1). (torch is not called on the bad target: its C++ exception aborts the
    sanitizer run, whose preloaded ASan runtime has no __cxa_throw to hand it to.)"""
    torch = pytest.importorskip("torch")
    pred = np.full((2, 3), 0.5, np.float32)
    target = np.full((2, 3), 0.5, np.float32)
    target[1, 2] = bad
    with pytest.raises(ValueError, match=r"BCELoss: target must hold values in \[0, 1\]"):
        losses.BCELoss()(pred, target)
    target[1, 2] = 1.0  # the bounds themselves are targets
    np.testing.assert_allclose(losses.BCELoss()(pred, target), torch.nn.BCELoss()(
        torch.from_numpy(pred), torch.from_numpy(target)).item(), rtol=1e-6)
