"""The graph engine: functional and subclassed models, fan-out, rewrites, tracing errors,
state_dict, freezing, buffer reuse, save/load."""
import copy
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import functional as F, losses, nn, optim


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def tiny_residual_functional(seed=0):
    """conv -> relu -> conv, added to the input, relu, pool, linear head."""
    rng = np.random.default_rng(seed)
    x = fastnn.Input(shape=(3, 8, 8))
    h = nn.ReLU()(nn.Conv2d(3, 3, 3, padding=1, seed=rng)(x))
    h = nn.Conv2d(3, 3, 3, padding="same", seed=rng)(h)
    h = nn.ReLU()(h + x)
    h = nn.MaxPool2d(2)(h)
    out = nn.Linear(48, 5, seed=rng)(nn.Flatten()(h))
    return fastnn.Model(x, out)


class TinyResidual(nn.Module):
    """The same network as a PyTorch-style subclass (one ReLU module used twice)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1, seed=rng)
        self.conv2 = nn.Conv2d(3, 3, 3, padding="same", seed=rng)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(48, 5, seed=rng)

    def forward(self, x):
        h = self.conv2(self.relu(self.conv1(x)))
        h = self.relu(h + x)
        return self.fc(self.flatten(self.pool(h)))


def eager(model_layers, x, g):
    """The residual network run layer by layer on arrays, its backward by hand: the
    input's gradient sums the two paths."""
    c1, r1, c2, r2, pool, flat, fc = model_layers
    a = c1(x)
    b = r1(a).copy()
    c = c2(b).copy()
    s = (c + x).astype(np.float32)
    d = r2(s)
    out = fc(flat(pool(d))).copy()
    gd = pool.backward(flat.backward(fc.backward(g)))
    gs = r2.backward(gd).copy()
    gb = c2.backward(gs)
    gx = c1.backward(r1.backward(gb)) + gs
    return out, gx


def test_functional_and_subclass_agree_with_the_layers_run_by_hand(rng):
    f, s = tiny_residual_functional(), TinyResidual()
    s.load_state_dict(dict(zip(s.state_dict(), f.state_dict().values())))
    x, g = randn(rng, 4, 3, 8, 8), randn(rng, 4, 5)
    ref_layers = [nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding="same"),
                  nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48, 5)]
    ref = nn.Sequential(*ref_layers)
    ref.load_state_dict(dict(zip(ref.state_dict(), f.state_dict().values())))
    out_ref, gx_ref = eager(ref_layers, x, g)
    grads_ref = [p.grad.copy() for p in ref.parameters()]
    for model in (f, s):
        out = model(x)
        np.testing.assert_array_equal(out, out_ref)
        gx = model.backward(g, need_input_grad=True)
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)
        for p, q in zip(model.parameters(), grads_ref):
            np.testing.assert_array_equal(p.grad, q)


def test_state_dict_keys_are_torch_names():
    s = TinyResidual()
    assert list(s.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight",
                                    "conv2.bias", "fc.weight", "fc.bias"]
    f = tiny_residual_functional()
    assert list(f.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "7.weight",
                                    "7.bias"]
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3)), nn.ReLU(), nn.Linear(3, 1))
    assert list(nested.state_dict()) == ["0.0.weight", "0.0.bias", "2.weight", "2.bias"]
    assert [name for name, _ in nested.named_modules()] == ["", "0", "0.0", "1", "2"]
    assert len(list(nested.children())) == 3


def test_rewrites_apply_inside_a_graph(rng):
    """A ReLU feeding only a MaxPool2d runs after it; a Conv2d feeding only a MaxPool2d
    (or a ReLU) is fused with it and the ReLU after it; a ReLU whose output also goes
    elsewhere stays, and so does a Conv2d whose output does."""
    x = fastnn.Input(shape=(2, 8, 8))
    a = nn.Conv2d(2, 2, 3, padding=1, seed=0)(x)
    p = nn.MaxPool2d(2)(nn.ReLU()(a))          # relu feeds only the pool: swapped, fused
    r = nn.ReLU()(x)                           # feeds two pools: kept in place
    q = nn.MaxPool2d(2)(r) + nn.MaxPool2d(2, 2)(r)
    b = nn.Conv2d(2, 2, 3, padding=1, seed=1)(x)  # feeds the relu and the add: alone
    c = nn.ReLU()(b) + b
    out = nn.Concatenate()([nn.Flatten()(p + q), nn.Flatten()(c)])
    model = fastnn.Model(x, out)
    kinds = [type(s.runner).__name__ for s in model._graph_fixed.steps]
    assert kinds.count("_FusedConv") == 1 and kinds.count("Conv2d") == 1
    assert kinds.count("ReLU") == 2 and kinds.count("MaxPool2d") == 2
    xv = randn(rng, 3, 2, 8, 8)
    y = model(xv).copy()
    c1, c2 = [layer for layer in model._layers if isinstance(layer, nn.Conv2d)]
    rx = F.relu(xv)
    ref_p = F.max_pool2d(F.relu(F.conv2d(xv, c1.weight.data, c1.bias.data, 1, 1)), 2) + \
        (F.max_pool2d(rx, 2) + F.max_pool2d(rx, 2))
    conv_b = F.conv2d(xv, c2.weight.data, c2.bias.data, 1, 1)
    ref_c = F.relu(conv_b) + conv_b
    np.testing.assert_array_equal(y, np.concatenate([ref_p.reshape(3, -1),
                                                     ref_c.reshape(3, -1)], 1))


def test_batch_norm_feeding_only_a_relu_runs_with_it(rng):
    """A BatchNorm2d (or 1d) whose output feeds only a ReLU runs with it as one kernel
    call each way (_FusedNorm): outputs, gradients and running statistics bitwise those
    of the layers run one by one, in training and eval mode; one whose output also goes
    elsewhere stays apart."""
    def net():
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, seed=0), nn.BatchNorm2d(4),
                             nn.ReLU(), nn.Conv2d(4, 3, 3, seed=1), nn.BatchNorm2d(3),
                             nn.ReLU(), nn.Flatten(), nn.Linear(48, 5, seed=2),
                             nn.BatchNorm1d(5), nn.ReLU())

    model, twin = net(), net()
    x = randn(rng, 6, 2, 6, 6)
    kinds = [type(s.runner).__name__ for s in model._graph_for((x.shape,)).steps]
    assert kinds == ["Conv2d", "_FusedNorm", "Conv2d", "_FusedNorm", "Flatten", "Linear",
                     "_FusedNorm"]
    for mode in (True, False):
        model.train(mode)
        twin.train(mode)
        y, h = model(x), x
        for layer in twin:
            h = layer.forward(h)
        assert np.array_equal(y, h)
        g = randn(rng, *y.shape)
        model.zero_grad()
        gx = model.backward(g, need_input_grad=True)
        for layer in reversed(list(twin)):
            g = layer.backward(g)
        assert np.array_equal(gx, g)
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            assert np.array_equal(p.grad, q.grad), name
        for (name, b), c in zip(model.named_buffers(), twin.buffers()):
            assert np.array_equal(b, c), name
    inp = fastnn.Input(shape=(3, 4, 4))
    bn = nn.BatchNorm2d(3)(inp)
    branched = fastnn.Model(inp, nn.ReLU()(bn) + bn)  # the norm's output goes to the add too
    assert [type(s.runner).__name__ for s in branched._graph_fixed.steps] == \
        ["BatchNorm2d", "ReLU", "Add"]


@pytest.mark.parametrize("size", [6, 20])  # pooled rows of 3 (scalar loop) and 10 (vectors)
def test_fused_and_swapped_relus_pass_the_gradient_at_nan_as_torchs(isa, rng, size):
    """A ReLU's gradient passes where its input is NaN (torch's threshold_backward):
    the fused conv + pool + relu kernel, the conv + relu one and the ReLU run after a
    MaxPool2d (the rewrites) as the ReLU layer, gradients equal to torch's. A NaN bias
    makes one channel NaN, the gradients finite."""
    torch = pytest.importorskip("torch")

    def net(m):
        return m.Sequential(m.Conv2d(2, 3, 3, padding=1), m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(3, 2, 3, padding=1), m.ReLU(), m.ReLU(),
                            m.MaxPool2d(2), m.Flatten())

    model, twin = net(nn), net(torch.nn)
    for p in model.parameters():  # from the seeded rng: the same data every run
        p.data[...] = randn(rng, *p.shape)
    model[0].bias.data[1] = np.nan
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                          model.state_dict().items()})
    x, tx = randn(rng, 2, 2, size, size), None
    out = model(x)
    kinds = [type(s.runner).__name__ for s in model._graph_for((x.shape,)).steps]
    assert kinds == ["_FusedConv", "_FusedConv", "MaxPool2d", "ReLU", "Flatten"]
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out = twin(tx)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = randn(rng, *out.shape)
    gx = model.backward(g, need_input_grad=True)
    t_out.backward(torch.from_numpy(g))
    assert np.isfinite(gx).all()
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (name, p), tp in zip(model.named_parameters(), twin.parameters()):
        # sums over 2 x size^2 pixels that cancel: atol scaled by the largest finite element
        want = tp.grad.numpy()
        np.testing.assert_allclose(p.grad, want, rtol=1e-4, atol=1e-5 * np.nanmax(np.abs(want)),
                                   err_msg=name)


def test_backward_after_an_eval_forward_matches_torch(rng):
    """Input gradients in eval mode (saliency maps): a MaxPool2d, alone or fused with the
    Conv2d before it, saves no argmax in eval mode; backward finds it then, rather than
    reading none (KeyError) or the last training batch's."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 2))
    tmodel = tnn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(18, 2)).eval()
    model.load_state_dict(tmodel.state_dict())
    kinds = [type(s.runner).__name__ for s in model._graph_for(((1, 2, 8, 12),)).steps]
    assert kinds[:2] == ["_FusedConv", "MaxPool2d"]
    pool = nn.MaxPool2d(2)
    for trained_first in (False, True):
        if trained_first:  # leaves the argmax of another batch in the layers' buffers
            model.train()(randn(rng, 2, 2, 8, 12))
            pool.train().forward(randn(rng, 2, 2, 8, 12))
        x = randn(rng, 2, 2, 8, 12)
        g = randn(rng, 2, 2)
        model.eval()(x)
        dx = model.backward(g, need_input_grad=True)
        tx = torch.from_numpy(x).requires_grad_()
        tmodel(tx).backward(torch.from_numpy(g))
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
        for name, p in tmodel.named_parameters():
            np.testing.assert_allclose(dict(model.named_parameters())[name].grad,
                                       p.grad.numpy(), rtol=1e-4, atol=1e-5)
        tmodel.zero_grad()
        model.zero_grad()
        gp = randn(rng, 2, 2, 4, 6)
        pool.eval().forward(x)
        tx = torch.from_numpy(x).requires_grad_()
        torch.nn.functional.max_pool2d(tx, 2).backward(torch.from_numpy(gp))
        np.testing.assert_array_equal(pool.backward(gp), tx.grad.numpy())


def test_tracing_errors_are_clear(rng):
    class Branchy(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            h = self.fc(x)
            if h:  # control flow on data
                return h
            return x

    with pytest.raises(nn.TracingError, match="cannot trace a truth test"):
        Branchy()(randn(rng, 2, 4))

    class Reshaper(nn.Module):
        def forward(self, x):
            return x.reshape(len(x), -1)

    with pytest.raises(nn.TracingError, match=r"cannot trace the attribute \.reshape.*Flatten"):
        Reshaper()(randn(rng, 2, 4))

    class NumPyOp(nn.Module):
        def forward(self, x):
            return np.maximum(x, 0)

    with pytest.raises(nn.TracingError, match="cannot trace"):
        NumPyOp()(randn(rng, 2, 4))

    class Untracked(nn.Module):
        def forward(self, x):
            return nn.Linear(4, 2)(x)

    with pytest.raises(ValueError, match="not an attribute of the model"):
        Untracked()(randn(rng, 2, 4))


def test_graph_errors_cycle_disconnected_add_shapes():
    x = fastnn.Input(shape=(4,))
    other = fastnn.Input(shape=(4,))
    with pytest.raises(ValueError, match="disconnected"):
        fastnn.Model(x, nn.Linear(4, 2)(other))
    with pytest.raises(ValueError, match=r"Add: inputs must all have the same shape, got "
                                         r"\(None, 2\), \(None, 4\)"):
        nn.Linear(4, 2)(x) + x
    a = nn.ReLU()(x)
    b = nn.ReLU()(a)
    a.node.inputs = [b]  # a cycle can only be made by hand
    with pytest.raises(ValueError, match="cycle"):
        fastnn.Model(x, b)
    with pytest.raises(TypeError, match="list of at least two"):
        nn.Add()(x)


def test_fan_out_gradients_sum_and_multiple_outputs(rng):
    x = fastnn.Input(shape=(6,))
    h = nn.Linear(6, 6, seed=1)(x)
    o1 = nn.Linear(6, 3, seed=2)(h)
    o2 = nn.Tanh()(h)
    model = fastnn.Model(x, [o1, o2])
    xv = randn(rng, 5, 6)
    y1, y2 = (a.copy() for a in model(xv))
    g1, g2 = randn(rng, 5, 3), randn(rng, 5, 6)
    gx = model.backward([g1, g2], need_input_grad=True)
    lin1, lin2, tanh = model._layers
    # by hand
    hv = F.linear(xv, lin1.weight.data, lin1.bias.data)
    np.testing.assert_array_equal(y1, F.linear(hv, lin2.weight.data, lin2.bias.data))
    np.testing.assert_array_equal(y2, F.tanh(hv))
    gh = F.linear_backward(g1, hv, lin2.weight.data)[0] + F.tanh_backward(g2, F.tanh(hv))
    np.testing.assert_allclose(lin1.weight.grad, gh.T @ xv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gh @ lin1.weight.data, rtol=1e-5, atol=1e-5)


def test_backward_without_a_gradient_is_torchs_implicit_one_or_an_error(rng):
    """model.backward(None) computed nothing, silently. As torch's out.backward(): an
    output of one element gets the gradient 1, any other raises torch's RuntimeError
    naming grad_out; a list of None for every output of a multi-output model too."""
    torch = pytest.importorskip("torch")
    model = nn.Sequential(nn.Linear(3, 2, seed=1))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 2))
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                          model.state_dict().items()})
    x = randn(rng, 4, 3)
    model(x)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        twin(torch.from_numpy(x)).backward()
    with pytest.raises(RuntimeError, match=r"grad_out is None.*only for scalar outputs"):
        model.backward(None)
    assert model[0].weight.grad is None
    model(x[:1])  # batch 1: still (1, 2) elements
    with pytest.raises(RuntimeError, match="grad_out"):
        model.backward()

    scalar = nn.Sequential(nn.Linear(3, 1, seed=2))
    t_scalar = torch.nn.Sequential(torch.nn.Linear(3, 1))
    t_scalar.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                              scalar.state_dict().items()})
    scalar(x[:1])
    gx = scalar.backward(None, need_input_grad=True)
    tx = torch.from_numpy(x[:1].copy()).requires_grad_()
    t_scalar(tx).backward()
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-6)
    for p, tp in zip(scalar.parameters(), t_scalar.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-6)

    inp = fastnn.Input(shape=(3,))
    two = fastnn.Model(inp, [nn.Linear(3, 2, seed=3)(inp), nn.Linear(3, 1, seed=4)(inp)])
    two(x)
    for none in (None, [None, None]):
        with pytest.raises(RuntimeError, match="grad_out is None for every output"):
            two.backward(none)
    two.backward([np.ones((4, 2), np.float32), None])  # one output's loss only
    assert two._layers[0].weight.grad is not None and two._layers[1].weight.grad is None
    relu = nn.ReLU()
    relu(x)
    with pytest.raises(TypeError, match="grad_out"):
        relu.backward(None)


def test_load_state_dict_errors_and_array_likes(rng):
    model = TinyResidual()
    state = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing keys \['fc.bias'\], unexpected keys "
                                       r"\['fc.b'\]"):
        model.load_state_dict({**{k: v for k, v in state.items() if k != "fc.bias"},
                               "fc.b": np.zeros(5)})
    with pytest.raises(ValueError, match=r"shape mismatch for fc.weight: the state_dict has "
                                         r"\(5, 47\), the model \(5, 48\)"):
        model.load_state_dict({**state, "fc.weight": np.zeros((5, 47))})
    for bad in ({"fc.b": np.zeros(5)}, {**state, "fc.weight": np.zeros((5, 47))}):
        with pytest.raises(RuntimeError):  # torch's type: code ported from torch catches it
            model.load_state_dict(bad)
    with pytest.raises(TypeError, match="fc.bias has dtype"):
        model.load_state_dict({**state, "fc.bias": np.array(["a"] * 5)})
    missing, unexpected = model.load_state_dict({"fc.bias": [1, 2, 3, 4, 5]}, strict=False)
    assert "fc.weight" in missing and unexpected == []
    assert model.fc.bias.data.tolist() == [1, 2, 3, 4, 5]
    torch = pytest.importorskip("torch")
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in state.items()})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_frozen_parameters_get_no_gradient_and_no_update(rng):
    model = TinyResidual()
    model.conv1.requires_grad_(False)
    model.conv2.weight.requires_grad = False
    frozen = [p.data.copy() for p in (model.conv1.weight, model.conv1.bias, model.conv2.weight)]
    x, y = randn(rng, 8, 3, 8, 8), rng.integers(0, 5, 8)
    for opt in (optim.Adam(model.parameters(), weight_decay=0.1),
                optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)):
        model.fit(x, y, optimizer=opt, epochs=2, batch_size=4, verbose=0)
    for p, before in zip((model.conv1.weight, model.conv1.bias, model.conv2.weight), frozen):
        assert np.array_equal(p.data, before)
        assert p.grad is None  # the weight-gradient GEMM never wrote it, as in torch
    assert np.any(model.conv2.bias.grad != 0) and np.any(model.fc.weight.grad != 0)
    text = model.summary(input_shape=(3, 8, 8), file=None)
    n_frozen = 3 * 3 * 9 * 2 + 3
    assert f"Non-trainable params: {n_frozen:,}" in text
    total = sum(p.data.size for p in model.parameters())
    assert f"Trainable params: {total - n_frozen:,}" in text


def test_fully_frozen_backbone_runs_no_backward(rng):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[0].requires_grad_(False)
    model(randn(rng, 2, 4))
    plan = model._active_graph("backward").backward_plan(False)
    assert [step.name for step, _ in plan] == ["2"]
    assert plan[0][1] is False  # the head computes no input gradient


def test_steady_state_graph_step_allocates_nothing(rng):
    """After warm-up, forward + loss + backward + Adam of a model with fan-out (the input
    feeds a conv and the add: its gradient is a sum) reuses every buffer: the same arrays
    each step, and under 4 KiB of peak traced memory besides the one new array, the output
    model(x) returns, the caller's own copy of the last layer's buffer (the (64, 5) logits,
    1.25 KiB; a fresh input-sized gradient would be 48 KiB)."""
    model = TinyResidual()
    loss_fn = losses.CrossEntropyLoss()
    opt = optim.Adam(model.parameters())
    x, y = randn(rng, 64, 3, 8, 8), rng.integers(0, 5, 64)

    def step():
        out = model(x)
        loss_fn(out, y)
        model.backward(loss_fn.backward(), need_input_grad=True)
        opt.step()
        return out

    first = step()
    graph = model._active_graph("step")
    sums = dict(graph._sums)
    step()
    tracemalloc.start()
    try:
        for _ in range(3):
            out = step()
            assert out is not first and out.shape == first.shape
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(graph._sums[k] is v for k, v in sums.items()) and sums
    assert peak < 4096 + first.nbytes + 256, f"a steady-state step allocated up to {peak} bytes"


def test_fit_evaluate_predict_save_load_every_kind(tmp_path, rng):
    x, y = randn(rng, 32, 3, 8, 8), rng.integers(0, 5, 32)
    for model in (tiny_residual_functional(), TinyResidual(),
                  nn.Sequential(tiny_residual_functional(), nn.ReLU())):
        h = model.fit(x, y, optimizer=optim.Adam(model.parameters()), batch_size=8, verbose=0)
        assert len(h.history["loss"]) == 1
        assert 0 <= model.evaluate(x, y)["accuracy"] <= 1
        pred = model.predict(x)
        path = tmp_path / "m.fnn"
        model.save(path)
        if isinstance(model, TinyResidual):
            with pytest.raises(ValueError, match=r"model=TinyResidual\(\.\.\.\)"):
                fastnn.load(path)
            loaded = fastnn.load(path, model=TinyResidual(seed=9))
        else:
            loaded = fastnn.load(path)
            assert repr(loaded) == repr(model)
        np.testing.assert_array_equal(loaded.predict(x), pred)
        assert loaded.optimizer.steps == 4


def test_conv2d_padding_same_and_valid_match_torch(rng):
    torch = pytest.importorskip("torch")
    for k, d in [(3, 1), (4, 1), (2, 1), (5, 2), ((2, 3), (1, 2))]:
        layer = nn.Conv2d(2, 3, k, padding="same", dilation=d, seed=0)
        tl = torch.nn.Conv2d(2, 3, k, padding="same", dilation=d)
        tl.load_state_dict({k_: torch.from_numpy(v) for k_, v in layer.state_dict().items()})
        x = randn(rng, 2, 2, 7, 6)
        y = layer(x)
        tx = torch.from_numpy(x).requires_grad_()
        ty = tl(tx)
        assert y.shape == (2, 3, 7, 6)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
        g = randn(rng, *y.shape)
        gx = layer.backward(g)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-4,
                                   atol=1e-4)
    valid = nn.Conv2d(2, 3, 3, padding="valid")
    assert valid.output_shape((1, 2, 7, 6)) == (1, 3, 5, 4)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        nn.Conv2d(2, 3, 3, padding="full")


def test_profile_rows_follow_the_graph_and_frozen_weights(rng):
    """A subclassed model's profile: rows named as in the model (the ReLU after the add
    feeds only the pool, so it runs after it), and a frozen conv's backward counting only
    its input gradient's FLOPs."""
    model = TinyResidual()
    x, y = randn(rng, 4, 3, 8, 8), rng.integers(0, 5, 4)
    rows = model.profile(x, y, repeat=1, file=None)
    names = [r["layer"] for r in rows[:-3]]
    assert names == ["conv1: Conv2d + ReLU", "conv2: Conv2d", "+: Add", "pool: MaxPool2d",
                     "relu (call 2): ReLU", "flatten: Flatten", "fc: Linear"]
    macs = 3 * 27 * 4 * 64  # per conv: 27 MACs per output, 4*3*8*8 outputs
    assert rows[0]["flops"] == 2 * macs * 2  # forward, weight gradient (no input gradient)
    assert rows[1]["flops"] == 2 * macs * 3
    model.conv2.requires_grad_(False)
    rows = model.profile(x, y, repeat=1, file=None)
    assert rows[1]["flops"] == 2 * macs * 2  # forward and input gradient only


def test_layers_created_in_forward_follow_the_models_mode(rng):
    class InlineDropout(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(8, 8, seed=0)

        def forward(self, x):
            return nn.Dropout(0.5, seed=0)(self.fc(x))

    model = InlineDropout()
    x = randn(rng, 4, 8)
    assert np.any(model(x) == 0)
    model.eval()
    np.testing.assert_array_equal(model(x), model.fc(x))
    model.train()
    np.testing.assert_array_equal(model.predict(x), model.fc(x))  # predict: eval mode
    assert model.training and np.any(model(x) == 0)


def test_predict_and_evaluate_restore_each_modules_own_mode(rng):
    """Eval mode while they run; after, a frozen (eval) BatchNorm inside a training model
    stays in eval and everything else goes back to training."""
    model = nn.Sequential(nn.Linear(6, 8, seed=0), nn.BatchNorm1d(8), nn.Dropout(0.5, seed=1),
                          nn.Linear(8, 3, seed=2), input_shape=(6,))
    model.train()
    model.layers[1].eval()
    x, y = randn(rng, 5, 6), rng.integers(0, 3, 5)
    reference = model.layers[3](model.layers[1](model.layers[0](x)).copy())
    for run in (lambda: model.predict(x), lambda: model.evaluate(x, y)):
        run()
        assert [m.training for m in model.modules()] == [True, True, False, True, True]
    np.testing.assert_allclose(model.predict(x), reference, rtol=1e-6)
    model.eval()
    model.predict(x)
    assert not any(m.training for m in model.modules())


def test_a_layer_replaced_after_the_first_call_is_the_one_that_runs_and_trains(rng):
    """The fine-tuning workflow: call (or load and evaluate) a model, then swap its head,
    append a layer or replace a sub-module or parameter; the next call traces again."""
    x, y = randn(rng, 6, 1, 28, 28), rng.integers(0, 3, 6)
    model = fastnn.models.mlp(seed=0)
    assert model(x).shape == (6, 10)
    head = nn.Linear(64, 3, seed=1)
    model.layers[-1] = head
    np.testing.assert_array_equal(model(x), head(model.layers[-2](model.layers[-3](
        model.layers[-4](model.layers[-5](model.layers[0](x)))))))
    before = head.weight.data.copy()
    model.fit(x, y, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1, verbose=0)
    assert not np.array_equal(head.weight.data, before)
    model.layers.append(nn.Softmax())
    np.testing.assert_allclose(model(x).sum(axis=1), 1.0, rtol=1e-5)

    class Net(nn.Module):
        def __init__(self):
            self.body = nn.Sequential(nn.Linear(4, 4, seed=0), nn.ReLU())
            self.fc = nn.Linear(4, 2, seed=1)

        def forward(self, x):
            return self.fc(self.body(x))

    net, v = Net(), randn(rng, 3, 4)
    assert net(v).shape == (3, 2)
    net.fc = nn.Linear(4, 5, seed=2)
    assert net(v).shape == (3, 5)
    net.body.layers[0] = nn.Linear(4, 4, seed=3)  # nested, in place
    np.testing.assert_array_equal(net(v), net.fc(net.body.layers[1](net.body.layers[0](v))))
    net.fc.weight = nn.Parameter(np.zeros((5, 4), np.float32))  # a parameter replaced
    np.testing.assert_array_equal(net(v), np.broadcast_to(net.fc.bias.data, (3, 5)))
    net.fc.weight.requires_grad = False
    net(v)
    net.backward(np.ones((3, 5), np.float32))
    assert net.fc.bias.grad.any() and net.fc.weight.grad is None  # torch's: never computed
    twin = copy.deepcopy(net)  # a copy watches its own attributes
    twin.fc = nn.Linear(4, 7, seed=4)
    assert twin(v).shape == (3, 7) and net(v).shape == (3, 5)
    del net.fc
    with pytest.raises(AttributeError, match="fc"):
        net(v)


def test_a_forward_branching_on_the_mode_or_a_flag_is_traced_per_branch(rng):
    """PyTorch-style `if self.training:` and `if self.flag:` in a forward: each mode has
    its own graph, and a changed flag traces again (the first trace is never reused for
    the other branch)."""
    class Net(nn.Module):
        def __init__(self):
            self.fc1 = nn.Linear(4, 8, seed=0)
            self.fc2 = nn.Linear(8, 2, seed=1)
            self.aux = nn.Linear(8, 8, seed=2)
            self.double = False

        def forward(self, x):
            h = self.fc1(x)
            if self.training:
                h = self.aux(h)
            if self.double:
                h = h + h
            return self.fc2(h)

    net, x = Net(), randn(rng, 3, 4)
    plain = net.fc2(net.fc1(x).copy())
    net.eval()
    np.testing.assert_array_equal(net(x), plain)
    net.train()
    with_aux = net.fc2(net.aux(net.fc1(x)).copy())
    np.testing.assert_array_equal(net(x), with_aux)
    np.testing.assert_array_equal(net.predict(x), plain)  # predict: eval mode
    assert net.training
    net.double = True
    h = net.aux(net.fc1(x))
    np.testing.assert_allclose(net(x), net.fc2(h + h), rtol=1e-6)
    net.double = False
    np.testing.assert_array_equal(net(x), with_aux)
    net.eval()
    rows = net.profile(x, np.array([0, 1, 0]), repeat=1, file=None)  # a training step
    assert any(r["layer"].startswith("aux") for r in rows) and not net.training


def test_a_flag_or_mode_set_after_the_first_call_on_a_sub_module_traces_again(rng):
    """A sub-module's `training` left at the class default when traced, then set by
    `sub.eval()`, and a flag first set after the call (read with getattr), take their
    branch at the next call, as in torch."""
    class Block(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(4, 4, seed=0)
            self.extra = nn.Linear(4, 4, seed=1)

        def forward(self, x):
            x = self.fc(x)
            if self.training:
                x = self.extra(x)
            return self.extra(x) if getattr(self, "twice", False) else x

    class Net(nn.Module):
        def __init__(self):
            self.block = Block()

        def forward(self, x):
            return self.block(x)

    net, x = Net(), randn(rng, 3, 4)
    block = net.block
    np.testing.assert_array_equal(net(x), block.extra(block.fc(x).copy()))
    block.eval()
    np.testing.assert_array_equal(net(x), block.fc(x))
    block.twice = True
    np.testing.assert_array_equal(net(x), block.extra(block.fc(x).copy()))


def test_a_list_or_tuple_of_plain_values_changed_after_the_first_call_traces_again(rng):
    """A list or tuple of plain values a forward reads (which layers run, in what order,
    how many times), replaced or changed in place after the first call, nested too: the
    graph kept the old values; now each call runs torch's eager result."""
    torch = pytest.importorskip("torch")

    def net(m):
        class Net(m.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.act = m.Linear(4, 4), m.LeakyReLU(0.1)
                self.order = ("fc", "act")
                self.repeats = [1, 0]
                self.nested = [[False], ("a",)]

            def forward(self, x):
                for name in self.order:
                    x = getattr(self, name)(x)
                for _ in range(self.repeats[1]):
                    x = self.act(x)
                return self.fc(x) if self.nested[0][0] else x
        return Net()

    model, twin = net(nn), net(torch.nn)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                          model.state_dict().items()})
    x = randn(rng, 3, 4)

    def check():
        np.testing.assert_allclose(model(x), twin(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)

    check()
    for change in (lambda m: setattr(m, "order", ("act", "fc")),  # a new tuple
                   lambda m: m.repeats.__setitem__(1, 2),          # in place
                   lambda m: setattr(m, "repeats", [1, 1]),        # a new list
                   lambda m: m.nested[0].__setitem__(0, True),     # nested, in place
                   lambda m: setattr(m, "order", ["fc"])):         # a list for the tuple
        change(model), change(twin)
        check()


def test_a_list_of_layers_is_tracked_with_torchs_module_list_keys(rng):
    """Keras tracks a list of layers assigned in __init__; the keys are nn.ModuleList's,
    so the torch twin's weights load as they are and give the same outputs."""
    torch = pytest.importorskip("torch")

    class Net(nn.Module):
        def __init__(self):
            self.blocks = [nn.Linear(4, 4, seed=i) for i in range(3)]
            self.head = nn.Linear(4, 2, seed=9)

        def forward(self, x):
            for block in self.blocks:
                x = nn.ReLU()(block(x))
            return self.head(x)

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            for block in self.blocks:
                x = torch.relu(block(x))
            return self.head(x)

    torch.manual_seed(0)  # unseeded, an init could leave every ReLU dead on the 5 samples
    net, twin, x = Net(), Twin(), randn(rng, 5, 4)
    assert list(net.state_dict()) == list(twin.state_dict())
    assert len(list(net.parameters())) == 8
    net.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    np.testing.assert_allclose(net(x), twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    before = net.blocks[0].weight.data.copy()
    net.fit(x, rng.integers(0, 2, 5), optimizer=optim.SGD(net.parameters(), lr=0.5),
            epochs=1, verbose=0)
    assert not np.array_equal(net.blocks[0].weight.data, before)


def torch_twin(torch, model):
    """TinyResidual in torch, with the same weights."""
    tnn = torch.nn

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 3, 3, padding=1)
            self.conv2 = tnn.Conv2d(3, 3, 3, padding="same")
            self.fc = tnn.Linear(48, 5)

        def forward(self, x):
            h = self.conv2(torch.relu(self.conv1(x)))
            h = torch.relu(h + x)
            return self.fc(torch.flatten(torch.nn.functional.max_pool2d(h, 2), 1))

    twin = Twin()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return twin


def assert_grads_like_torch(model, twin):
    for (name, p), (tname, tp) in zip(model.named_parameters(), twin.named_parameters()):
        assert name == tname
        if tp.grad is None:
            assert p.grad is None, name
        else:
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=name)


def test_gradients_accumulate_over_backward_calls_until_zero_grad_as_torchs(rng):
    """backward wrote each parameter's .grad afresh: two backward calls (gradient
    accumulation over micro-batches) left the last one's gradient, and zero_grad left
    zeros where torch leaves None. Now .grad is None until a backward and after
    zero_grad, and a backward adds to it, as in torch."""
    torch = pytest.importorskip("torch")
    model = TinyResidual()
    twin = torch_twin(torch, model)
    assert all(p.grad is None for p in model.parameters())
    for _ in range(2):
        x, g = randn(rng, 4, 3, 8, 8), randn(rng, 4, 5)
        model(x)
        model.backward(g)
        twin(torch.from_numpy(x)).backward(torch.from_numpy(g))
        assert_grads_like_torch(model, twin)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    opt.step(), topt.step()
    opt.zero_grad(), topt.zero_grad()
    assert_grads_like_torch(model, twin)
    model.zero_grad(set_to_none=False)  # stays None, as torch's
    assert all(p.grad is None for p in model.parameters())
    x, g = randn(rng, 4, 3, 8, 8), randn(rng, 4, 5)
    model(x)
    model.backward(g)
    twin(torch.from_numpy(x)).backward(torch.from_numpy(g))
    model.zero_grad(set_to_none=False), twin.zero_grad(set_to_none=False)
    assert_grads_like_torch(model, twin)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    with pytest.raises(TypeError, match="zero_grad: set_to_none must be True or False"):
        opt.zero_grad(set_to_none="no")


def test_optimizers_skip_a_parameter_no_backward_reached_as_torchs(rng):
    """A layer the forward did not use in a step (a branch switched off) kept its last
    .grad, so SGD's momentum, weight decay and Adam went on moving it every step; torch
    skips a parameter whose .grad is None (set by zero_grad), as fastnn now does."""
    torch = pytest.importorskip("torch")

    class Branches(nn.Module):
        def __init__(self):
            self.a, self.b, self.use_b = nn.Linear(4, 3, seed=1), nn.Linear(4, 3, seed=2), True

        def forward(self, x):
            return self.b(x) if self.use_b else self.a(x)

    class TorchBranches(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.use_b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3), True

        def forward(self, x):
            return self.b(x) if self.use_b else self.a(x)

    for make in (lambda ps, o: o.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                 lambda ps, o: o.Adam(ps, lr=0.1, weight_decay=0.1)):
        model, twin = Branches(), TorchBranches()
        twin.load_state_dict({k: torch.from_numpy(v.copy())
                              for k, v in model.state_dict().items()})
        opt, topt = make(model.parameters(), optim), make(twin.parameters(), torch.optim)
        for step in range(5):
            model.use_b = twin.use_b = step in (0, 3)
            x, g = randn(rng, 2, 4), randn(rng, 2, 3)
            opt.zero_grad(), topt.zero_grad()
            model(x)
            model.backward(g)
            twin(torch.from_numpy(x)).backward(torch.from_numpy(g))
            opt.step(), topt.step()
            for k, v in twin.state_dict().items():
                np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-5,
                                           atol=1e-6, err_msg=f"step {step}: {k}")


def test_a_layer_called_twice_uses_buffers_assigned_after_the_trace(rng):
    """load_state_dict(assign=True) replaces a BatchNorm's running statistics: both calls
    of the BatchNorm, traced before, normalise with the new ones."""
    class Net(nn.Module):
        def __init__(self):
            self.bn = nn.BatchNorm1d(4)
            self.fc = nn.Linear(4, 4, seed=0)

        def forward(self, x):
            return self.bn(self.fc(self.bn(x)))

    net, x = Net().eval(), randn(rng, 3, 4)
    net(x)
    state = net.state_dict()
    state["bn.running_mean"] = randn(rng, 4)
    state["bn.running_var"] = 1 + rng.random(4).astype(np.float32)
    net.load_state_dict(state, assign=True)
    np.testing.assert_array_equal(net(x), net.bn(net.fc(net.bn(x).copy()).copy()))


def test_a_layer_called_twice_uses_a_hyperparameter_changed_after_the_trace(rng):
    """Both calls of a LeakyReLU whose slope is set after the first call use the new one."""
    class Net(nn.Module):
        def __init__(self):
            self.act = nn.LeakyReLU(0.1)

        def forward(self, x):
            return self.act(self.act(x))

    net, x = Net(), -np.ones((2, 3), np.float32)
    np.testing.assert_allclose(net(x), -0.01, rtol=1e-6)
    net.act.negative_slope = 0.5
    np.testing.assert_allclose(net(x), -0.25, rtol=1e-6)


def test_a_functional_models_layer_called_twice_uses_a_changed_hyperparameter(rng):
    """As the subclassed model above: a functional Model whose LeakyReLU is called twice
    ran its second call (the copy) with the old slope after the slope was set; its
    graph now traces again, and switching train/eval does not (the copies follow the
    layer's mode)."""
    torch = pytest.importorskip("torch")
    act = nn.LeakyReLU(0.1)
    x_in = fastnn.Input(shape=(3,))
    model = fastnn.Model(x_in, act(act(x_in)))
    t_act = torch.nn.LeakyReLU(0.1)
    x = randn(rng, 2, 3)
    np.testing.assert_allclose(model(x), t_act(t_act(torch.from_numpy(x))).numpy(), rtol=1e-6)
    act.negative_slope = t_act.negative_slope = 0.5
    np.testing.assert_allclose(model(x), t_act(t_act(torch.from_numpy(x))).numpy(), rtol=1e-6)
    graph = model._graph_fixed
    model.eval()
    model(x)
    model.train()
    model(x)
    assert model._graph_fixed is graph


def test_a_layer_called_twice_shares_its_weights_as_torchs(rng):
    """Calling a layer with parameters at two places of a forward (weight sharing, as
    torch allows) was refused; now both calls run on the same parameters and buffers
    and the backward sums both calls' gradients: outputs, gradients and weights after
    SGD steps match torch's, BatchNorm's running statistics updated by both calls."""
    torch = pytest.importorskip("torch")

    class Shared(nn.Module):
        def __init__(self):
            self.fc, self.bn, self.head = nn.Linear(4, 4, seed=1), nn.BatchNorm1d(4), \
                nn.Linear(8, 2, seed=2)

        def forward(self, x):
            h = self.bn(self.fc(x))
            return self.head(nn.Concatenate()([h, self.bn(self.fc(h))]))

    class TorchShared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn, self.head = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), \
                torch.nn.Linear(8, 2)

        def forward(self, x):
            h = self.bn(self.fc(x))
            return self.head(torch.cat([h, self.bn(self.fc(h))], 1))

    model, twin = Shared(), TorchShared()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x, g = randn(rng, 5, 4), randn(rng, 5, 2)
        opt.zero_grad(), topt.zero_grad()
        out = model(x)
        tout = twin(torch.from_numpy(x))
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-5, atol=1e-6)
        model.backward(g)
        tout.backward(torch.from_numpy(g))
        assert_grads_like_torch(model, twin)
        opt.step(), topt.step()
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


def residual_heads(m):
    """A stem, a ModuleList of two residual blocks and a ModuleDict of two heads, built
    from fastnn.nn or torch.nn (m): one class body for both."""
    class Block(m.Module):
        def __init__(self):
            super().__init__()
            self.conv = m.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn = m.BatchNorm2d(4)
            self.relu = m.ReLU()

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)) + x)

    class Net(m.Module):
        def __init__(self):
            super().__init__()
            self.stem = m.Conv2d(3, 4, 3, padding=1)
            self.blocks = m.ModuleList([Block() for _ in range(2)])
            self.pool = m.AdaptiveAvgPool2d(2)
            self.flatten = m.Flatten()
            self.heads = m.ModuleDict({"digit": m.Linear(16, 10), "parity": m.Linear(16, 2)})

        def forward(self, x):
            h = self.stem(x)
            for block in self.blocks:
                h = block(h)
            h = self.flatten(self.pool(h))
            return tuple(head(h) for head in self.heads.values())

    return Net()


def test_module_list_and_module_dict_train_as_torchs(rng):
    """nn.ModuleList and nn.ModuleDict were missing (a torch model holding them could not
    be ported): the same model in both libraries has the same state_dict keys in the same
    order, takes torch's state_dict, and gives torch's outputs, losses, gradients, running
    statistics and weights over 3 Adam steps (float32 rounding: 1e-5 on outputs and the
    loss, 1e-4 on gradients and weights, the tolerances of the other torch tests)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net, twin = residual_heads(nn), residual_heads(torch.nn)
    assert list(net.state_dict()) == list(twin.state_dict())
    assert list(net.state_dict())[:4] == ["stem.weight", "stem.bias", "blocks.0.conv.weight",
                                          "blocks.0.bn.weight"]
    assert [k for k, _ in net.named_parameters()][-4:] == [
        "heads.digit.weight", "heads.digit.bias", "heads.parity.weight", "heads.parity.bias"]
    net.load_state_dict(twin.state_dict())
    opt = optim.Adam(net.parameters(), lr=1e-2)
    t_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    loss_fns = [losses.CrossEntropyLoss(), losses.CrossEntropyLoss()]
    for _ in range(3):
        x = randn(rng, 8, 3, 8, 8)
        ys = [rng.integers(0, 10, 8), rng.integers(0, 2, 8)]
        opt.zero_grad()
        outs = net(x)
        loss = sum(fn(out, y) for fn, out, y in zip(loss_fns, outs, ys))
        net.backward([fn.backward() for fn in loss_fns])
        t_opt.zero_grad()
        t_outs = twin(torch.from_numpy(x))
        t_loss = sum(torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
                     for out, y in zip(t_outs, ys))
        t_loss.backward()
        for out, t_out in zip(outs, t_outs):
            np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
        assert loss == pytest.approx(t_loss.item(), rel=1e-5)
        t_grads = dict(twin.named_parameters())
        for name, p in net.named_parameters():
            np.testing.assert_allclose(p.grad, t_grads[name].grad.numpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=name)
        opt.step()
        t_opt.step()
    state = net.state_dict()
    for name, value in twin.state_dict().items():
        np.testing.assert_allclose(state[name], value.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_a_dict_of_layers_is_tracked_with_torchs_module_dict_keys(rng):
    """Keras tracks a dict of layers assigned in __init__ (it was ignored: its weights
    were neither trained nor saved); the keys are nn.ModuleDict's ("heads.a.weight"), so
    the torch twin's weights load as they are and give the same outputs."""
    torch = pytest.importorskip("torch")

    class Net(nn.Module):
        def __init__(self):
            self.body = nn.Linear(4, 6, seed=0)
            self.heads = {"a": nn.Linear(6, 2, seed=1), "b": nn.Linear(6, 3, seed=2)}
            self.notes = {"a": nn.ReLU(), "size": 4}  # not only modules: not tracked

        def forward(self, x):
            h = self.body(x)
            return self.heads["a"](h), self.heads["b"](h)

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(4, 6)
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(6, 2),
                                              "b": torch.nn.Linear(6, 3)})

    net, twin, x = Net(), Twin(), randn(rng, 5, 4)
    assert list(net.state_dict()) == list(twin.state_dict()) == [
        "body.weight", "body.bias", "heads.a.weight", "heads.a.bias", "heads.b.weight",
        "heads.b.bias"]
    net.load_state_dict(twin.state_dict())
    with torch.no_grad():
        h = twin.body(torch.from_numpy(x))
        want = [twin.heads["a"](h).numpy(), twin.heads["b"](h).numpy()]
    for got, expected in zip(net(x), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    net.heads = {"a.b": nn.Linear(6, 2)}
    with pytest.raises(ValueError, match=r"Net\.heads, a dict of modules: keys must be "
                                         r"non-empty and contain no '\.'.*'a\.b'"):
        net.state_dict()
    net.heads = {1: nn.Linear(6, 2)}
    with pytest.raises(TypeError, match=r"Net\.heads, a dict of modules: keys must be "
                                        r"strings .*got int 1"):
        list(net.parameters())  # a generator: raised at its first step


def test_a_functional_model_runs_a_sub_model_changed_after_its_first_call(rng):
    """A layer of a Sequential inside a functional Model replaced or appended after the
    model ran: the model's next call runs (and trains) the new one, which its
    parameters() and state_dict() already list."""
    x_in = fastnn.Input(shape=(4,))
    body = nn.Sequential(nn.Linear(4, 4, seed=0), nn.ReLU())
    head = nn.Linear(4, 2, seed=1)
    model = fastnn.Model(x_in, head(body(x_in)))
    x = randn(rng, 3, 4)
    np.testing.assert_array_equal(model(x), head(body(x)))
    body[0] = nn.Linear(4, 4, seed=2)
    np.testing.assert_array_equal(model(x), head(body(x)))
    model.backward(np.ones((3, 2), np.float32))
    assert body[0].weight.grad is not None
    body.append(nn.Tanh())
    np.testing.assert_array_equal(model(x), head(body(x)))


def test_containers_changed_after_a_call_are_traced_again(rng):
    """A block appended to, inserted in, replaced in or deleted from a ModuleList, an
    entry of a ModuleDict or of a plain dict replaced or added, after the model has run:
    the next call runs (and trains) the new structure, as for attributes and lists; an
    empty Sequential or plain list filled after the first call too (the graph of the
    empty one ran on)."""
    class Net(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.Linear(4, 4, seed=0)])
            self.extra = nn.ModuleList()  # empty when first traced
            self.tail = nn.Sequential()  # the same
            self.more = []  # the same
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2, seed=1)})
            self.taps = {"t": nn.Identity()}

        def forward(self, x):
            for block in list(self.blocks) + list(self.extra) + self.more:
                x = block(x)
            x = self.taps["t"](self.tail(x))
            return [head(x) for head in self.heads.values()]

    def by_hand(x):
        for block in list(net.blocks) + list(net.extra) + net.more + list(net.tail):
            x = block(x).copy()
        x = net.taps["t"](x)
        return [head(x).copy() for head in net.heads.values()]

    def check():
        for got, want in zip(net(x), by_hand(x), strict=True):
            np.testing.assert_array_equal(got, want)

    net, x = Net(), randn(rng, 3, 4)
    check()
    net.blocks.append(nn.Linear(4, 4, seed=2))
    check()
    net.blocks[0] = nn.Linear(4, 4, seed=3)
    check()
    net.blocks.insert(0, nn.Tanh())
    check()
    del net.blocks[-1]
    check()
    net.blocks += [nn.ReLU()]
    check()
    net.extra.append(nn.Linear(4, 4, seed=4))
    check()
    net.tail.append(nn.Linear(4, 4, seed=7))
    check()
    net.more.append(nn.Tanh())
    check()
    net.heads["a"] = nn.Linear(4, 5, seed=5)
    net.heads["b"] = nn.Linear(4, 1, seed=6)
    assert [out.shape for out in net(x)] == [(3, 5), (3, 1)]
    check()
    net.heads.pop("a")
    check()
    net.taps["t"] = nn.Sigmoid()
    check()
    head = net.heads["b"]
    before = head.weight.data.copy()
    net(x)
    net.backward([np.ones((3, 1), np.float32)])
    optim.SGD(net.parameters(), lr=0.1).step()
    assert not np.array_equal(head.weight.data, before)


def test_a_model_holding_containers_saves_and_loads(tmp_path, rng):
    """As any unregistered subclass: its weights, buffers and optimizer state are saved,
    load without a model says how to pass one, and an instance passed takes them."""
    net, x = residual_heads(nn), randn(rng, 8, 3, 8, 8)
    opt = optim.Adam(net.parameters())
    net(x)
    net.backward([np.ones((8, 10), np.float32), np.ones((8, 2), np.float32)])
    opt.step()
    fastnn.save(net, tmp_path / "net.fnn", optimizer=opt)
    with pytest.raises(ValueError, match=r"model=Net\(\.\.\.\)"):
        fastnn.load(tmp_path / "net.fnn")
    loaded = fastnn.load(tmp_path / "net.fnn", model=residual_heads(nn))
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)
    assert loaded.optimizer.steps == 1
    net.eval(), loaded.eval()
    for got, want in zip(loaded(x), net(x)):
        np.testing.assert_array_equal(got, want)
