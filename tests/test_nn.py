"""fastnn.nn layers against fastnn.reference (float64), on every ISA.

Error bounds: Linear and Conv2d outputs and gradients are sums of products of length
K; each element must satisfy |got - ref| <= gamma_K * f(|inputs|), where f is the same
reference op applied to the absolute values of its operands (the classic dot-product
bound of Higham 3.1, as in test_gemm.py), gamma_K = K*u/(1-K*u), u = 2**-24, and K
the longest sum (+2 for the bias and the FMA-free rounding). Pools and ReLU only select
or average a few values (K = window size + 1). Sigmoid, tanh and softmax go through
exp, which SIMD kernels approximate to a few ulp: rtol 1e-5 of the natural scale.
"""
import inspect
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn import reference as R

U = 2.0 ** -24


def gamma(k):
    return k * U / (1 - k * U)


def assert_within(got, ref, scale, bound):
    """|got - ref| <= bound * scale elementwise (float64 comparison)."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == np.float32
    err = np.abs(got.astype(np.float64) - ref)
    excess = err - bound * scale
    assert np.all(excess <= 1e-30), f"max excess {excess.max()} over bound {bound}"


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n,fin,fout,bias", [(1, 1, 1, True), (7, 13, 5, True),
                                             (32, 784, 64, True), (5, 64, 10, False)])
def test_linear_matches_reference(isa, rng, n, fin, fout, bias):
    layer = nn.Linear(fin, fout, bias=bias, seed=1)
    x, g = randn(rng, n, fin), randn(rng, n, fout)
    w = layer.weight.data
    b = layer.bias.data if bias else None
    y = layer(x)
    x64, w64 = f64(x, w)
    b64 = None if b is None else b.astype(np.float64)
    assert_within(y, R.linear(x64, w64, b64),
                  R.linear(np.abs(x64), np.abs(w64), None if b is None else np.abs(b64)),
                  gamma(fin + 2))
    dx = layer.backward(g)
    rdx, rdw, rdb = R.linear_backward(g.astype(np.float64), x64, w64)
    adx, adw, adb = R.linear_backward(np.abs(g.astype(np.float64)), np.abs(x64), np.abs(w64))
    assert_within(dx, rdx, adx, gamma(fout + 2))
    assert_within(layer.weight.grad, rdw, adw, gamma(n + 2))
    if bias:
        assert_within(layer.bias.grad, rdb, adb, gamma(n + 2))
    assert layer.backward(g, need_input_grad=False) is None


@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,bias", [
    (1, 1, 28, 28, 32, 3, 1, 0, True),
    (3, 32, 13, 13, 64, 3, 1, 0, True),
    (2, 3, 9, 7, 5, (3, 2), (2, 1), (1, 0), False),
    (2, 4, 6, 6, 3, 5, 2, 2, True),
])
def test_conv2d_matches_reference(isa, rng, n, c, h, w, o, k, stride, padding, bias):
    layer = nn.Conv2d(c, o, k, stride=stride, padding=padding, bias=bias, seed=2)
    x = randn(rng, n, c, h, w)
    y = layer(x)
    g = randn(rng, *y.shape)
    x64, w64, g64 = f64(x, layer.weight.data, g)
    b64 = layer.bias.data.astype(np.float64) if bias else None
    kk = layer.kernel_size[0] * layer.kernel_size[1]
    assert_within(y, R.conv2d(x64, w64, b64, stride, padding),
                  R.conv2d(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64),
                           stride, padding), gamma(c * kk + 2))
    dx = layer.backward(g)
    rdx, rdw, rdb = R.conv2d_backward(g64, x64, w64, stride, padding)
    adx, adw, adb = R.conv2d_backward(np.abs(g64), np.abs(x64), np.abs(w64), stride, padding)
    assert_within(dx, rdx, adx, gamma(o * kk + 2))
    assert_within(layer.weight.grad, rdw, adw, gamma(n * y.shape[2] * y.shape[3] + 2))
    if bias:
        assert_within(layer.bias.grad, rdb, adb, gamma(n * y.shape[2] * y.shape[3] + 2))


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
@pytest.mark.parametrize("shape,k,stride,padding", [((2, 3, 8, 8), 2, None, 0),
                                                    ((1, 2, 7, 9), 3, 2, 1),
                                                    ((3, 1, 5, 6), (2, 3), 1, (1, 0))])
def test_pools_match_reference(isa, rng, cls, shape, k, stride, padding):
    layer = cls(k, stride, padding)
    x = randn(rng, *shape)
    y = layer(x)
    g = randn(rng, *y.shape)
    x64, g64 = f64(x, g)
    ref_f = R.max_pool2d if cls is nn.MaxPool2d else R.avg_pool2d
    ref_b = R.max_pool2d_backward if cls is nn.MaxPool2d else R.avg_pool2d_backward
    kk = layer.kernel_size[0] * layer.kernel_size[1]
    assert_within(y, ref_f(x64, k, stride, padding), ref_f(np.abs(x64), k, stride, padding)
                  if cls is nn.AvgPool2d else 0.0, gamma(kk + 1))
    dx = layer.backward(g)
    # Overlapping windows add up to kk gradients into one input element.
    assert_within(dx, ref_b(g64, x64, k, stride, padding),
                  ref_b(np.abs(g64), x64, k, stride, padding), gamma(kk + 1))


def test_maxpool_eval_mode_forward_matches_training_mode(rng):
    layer = nn.MaxPool2d(2)
    x = randn(rng, 2, 3, 6, 6)
    train_y = layer(x).copy()
    assert np.array_equal(layer.eval()(x), train_y)


@pytest.mark.parametrize("cls,args,ref,uses_output", [
    (nn.ReLU, (), "relu", False), (nn.LeakyReLU, (0.2,), "leaky_relu", False),
    (nn.Sigmoid, (), "sigmoid", True), (nn.Tanh, (), "tanh", True),
    (nn.Softmax, (), "softmax", True), (nn.GELU, (), "gelu", False),
    (nn.GELU, ("tanh",), "gelu", False), (nn.SiLU, (), "silu", False),
    (nn.ELU, (0.5,), "elu", False)])
@pytest.mark.parametrize("shape", [(1, 1), (5, 10), (4, 3, 5, 7)])
def test_activations_match_reference(isa, rng, cls, args, ref, uses_output, shape):
    # the reference softmax is over the last dimension (nn.Softmax()'s is torch's implicit one)
    layer = cls(*args, dim=-1) if cls is nn.Softmax else cls(*args)
    x, g = randn(rng, *shape) * 4, randn(rng, *shape)
    x[..., 0] = 0.0  # the kink of relu / leaky_relu
    y = layer(x)
    x64, g64 = f64(x, g)
    ry = getattr(R, ref)(x64, *args)
    exact = cls in (nn.ReLU, nn.LeakyReLU)
    tol = 2 * U if exact else 1e-5
    assert_within(y, ry, np.abs(ry) + (0 if exact else 1e-2), tol)
    dx = layer.backward(g)
    # backward from the float32 y the layer saw, so only the backward's rounding counts
    saved = y.astype(np.float64) if uses_output else x64
    rdx = getattr(R, ref + "_backward")(g64, saved, *args)
    scale = np.abs(g64) if exact else np.abs(g64) + np.abs(g64).sum(-1, keepdims=True)
    assert_within(dx, rdx, scale, tol)


def test_flatten_is_torch_order_and_a_view(rng):
    x = randn(rng, 2, 3, 4, 5)
    layer = nn.Flatten()
    y = layer(x)
    assert np.array_equal(y, R.flatten(x)) and np.shares_memory(y, x)
    assert layer.backward(y).shape == x.shape


def test_dropout_masks_scales_and_is_identity_in_eval(rng):
    layer = nn.Dropout(0.25, seed=0)
    x = np.ones((200, 100), np.float32)
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    assert np.allclose(y[kept], 1 / 0.75)
    g = randn(rng, 200, 100)
    assert np.array_equal(layer.backward(g), np.where(kept, g * np.float32(1 / 0.75), 0))
    layer.eval()
    assert layer(x) is x and layer.backward(g) is g
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("init", ["torch", "he", "glorot"])
def test_init_is_seeded_and_scaled(init):
    a = nn.Linear(400, 300, seed=7, init=init)
    b = nn.Linear(400, 300, seed=7, init=init)
    c = nn.Linear(400, 300, seed=8, init=init)
    assert np.array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    expected_std = {"torch": 1 / np.sqrt(3 * 400), "he": np.sqrt(2 / 400),
                    "glorot": np.sqrt(2 / 700)}[init]
    assert abs(a.weight.data.std() / expected_std - 1) < 0.02
    assert a.weight.data.dtype == np.float32 and a.weight.data.flags.c_contiguous


def test_models_are_seeded():
    for make in (fastnn.models.mlp, fastnn.models.cnn):
        a, b, c = make(seed=3), make(seed=3), make(seed=4)
        for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
            assert np.array_equal(pa.data, pb.data)
            assert pa.data.ndim == 1 or not np.array_equal(pa.data, pc.data)  # zero biases


def test_reference_model_shapes():
    mlp, cnn = fastnn.models.mlp(0), fastnn.models.cnn(0)
    assert [p.shape for p in mlp.parameters()] == [(64, 784), (64,), (64, 64), (64,),
                                                   (10, 64), (10,)]
    assert [p.shape for p in cnn.parameters()] == [(32, 1, 3, 3), (32,), (64, 32, 3, 3),
                                                   (64,), (128, 1600), (128,), (10, 128),
                                                   (10,)]
    assert cnn.output_shape((5, 1, 28, 28)) == (5, 10)
    assert sum(p.data.size for p in cnn.parameters()) == 225034


def test_sequential_skips_input_gradient(rng):
    model = fastnn.models.cnn(0)
    x = randn(rng, 2, 1, 28, 28)
    out = model(x)
    assert model.backward(np.ones_like(out)) is None
    assert "dx" not in model[0].__dict__.get("_buffers", {})  # first conv: no input grad
    dx = model.backward(np.ones_like(out), need_input_grad=True)
    assert dx.shape == x.shape


@pytest.mark.parametrize("padding", [0, 1])
def test_relu_before_maxpool_runs_after_it_with_the_same_bits(rng, padding):
    """Sequential runs a ReLU that precedes a MaxPool2d after it (they commute), and a
    Conv2d with the MaxPool2d and/or the ReLU after it as one kernel call; outputs and
    every gradient equal those of the layers run one by one in the listed order, bit for
    bit, in training and eval mode."""
    def layers():
        return [nn.ReLU(), nn.MaxPool2d(3, 2, padding), nn.Conv2d(2, 3, 3, padding=1, seed=0),
                nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1, seed=1), nn.ReLU(),
                nn.Conv2d(4, 3, 1, seed=2), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(3, 4, seed=3)]
    model = nn.Sequential(*layers())
    steps = model._plan()
    assert [i for i, _ in steps] == [1, 0, 2, 5, 7, 9, 10]
    fused = [runner for _, runner in steps[2:5]]
    assert all(isinstance(r, nn._FusedConv) for r in fused)
    assert [(r.pool, r.relu) for r in fused] == [(model[4], model[3]), (None, model[6]),
                                                 (model[8], None)]
    plain = layers()
    x = randn(rng, 5, 2, 9, 9)
    x[0] = -np.abs(x[0])  # windows whose maximum is negative: no gradient through them
    g = randn(rng, 5, 4)
    out, ref = model(x).copy(), x
    for layer in plain:
        ref = layer(ref)
    assert np.array_equal(out, ref)
    dx = model.backward(g, need_input_grad=True)
    for layer in reversed(plain):
        g = layer.backward(g)
    assert np.array_equal(dx, g)
    for p, q in zip(model.parameters(), [p for layer in plain for p in layer.parameters()]):
        assert np.array_equal(p.grad, q.grad)
    model.eval()
    assert np.array_equal(model(x), out)


def test_zero_grad_and_train_eval_propagate(rng):
    model = fastnn.models.mlp(0)
    out = model(randn(rng, 4, 1, 28, 28))
    model.backward(np.ones_like(out))
    assert any(np.any(p.grad) for p in model.parameters())
    model.zero_grad()
    assert not any(np.any(p.grad) for p in model.parameters())
    model.eval()
    assert not any(layer.training for layer in model.layers)
    model.train()
    assert all(layer.training for layer in model.layers)


@pytest.mark.parametrize("mode", ["False", 0, None])
def test_train_takes_a_bool_as_torchs(mode):
    """model.train("False") set training mode (bool("False") is True) and train(None)
    eval mode, silently; torch refuses a non-bool mode. Now a TypeError naming it."""
    model = fastnn.models.mlp(0).eval()
    with pytest.raises(TypeError, match=r"Sequential.train: mode must be True or False"):
        model.train(mode)
    assert not any(m.training for m in model.modules())


def test_buffers_are_reused_across_steps_of_the_same_shape(rng):
    """The layers' buffers are the same arrays call after call; what model(x) returns is
    the caller's own (as torch's new tensors), which the next call leaves alone."""
    model = fastnn.models.mlp(0)
    x = randn(rng, 8, 1, 28, 28)
    first = model(x)
    kept = {(i, k): b for i, layer in enumerate(model) for k, b in
            layer.__dict__.get("_buffers", {}).items()}
    second = model(randn(rng, 8, 1, 28, 28))
    assert kept and all(model[i]._buffers[k] is b for (i, k), b in kept.items())
    assert second is not first and not np.array_equal(second, first)
    np.testing.assert_array_equal(first, model(x))
    assert model(randn(rng, 3, 1, 28, 28)).shape == (3, 10)


def test_bad_inputs_name_the_layer_and_expected_shape(rng):
    model = fastnn.models.mlp(0)
    with pytest.raises(ValueError, match=r"layer 0 \(Flatten\(start_dim=1, end_dim=-1\)\) "
                                         r"expects input of shape \(N, 1, 28, 28\).*"
                                         r"got \(2, 1, 20, 20\)"):
        model(randn(rng, 2, 1, 20, 20))
    bare = nn.Sequential(nn.Linear(10, 4), nn.ReLU())
    with pytest.raises(ValueError, match=r"layer 0: Linear\(in_features=10, out_features=4, "
                                         r"bias=True\) expects input of shape \(N, 10\)"):
        bare(randn(rng, 2, 11))
    conv = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, H, W\)"):
        conv(randn(rng, 2, 1, 8, 8))
    with pytest.raises(ValueError, match="too small"):
        conv(randn(rng, 2, 3, 2, 2))
    with pytest.raises(TypeError, match="float32"):
        bare(np.zeros((2, 10)))
    with pytest.raises(TypeError, match="layer 1 is int"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="padding at most half"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="positive"):
        nn.Conv2d(1, 0, 3)


@pytest.mark.parametrize("make", [fastnn.models.mlp, fastnn.models.cnn, fastnn.models.tinyvgg,
                                  fastnn.models.vgg_cifar])
def test_matches_torch_with_the_same_weights(rng, make):
    """The layouts are PyTorch's: copy the weights into torch.nn and compare outputs and
    gradients (float32 both sides, different summation orders: rtol 1e-4). On the direct
    convolutions: F(4x4)'s rounding can pass that tolerance across a ReLU or a max pool
    (README, "Winograd"), and the README points users who need this agreement here."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    model = make(seed=5)
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layer.algorithm = "direct"
    tmodel = _torch_twin(torch, model)
    x = randn(rng, 4, *model.input_shape)
    out = model(x)
    tout = tmodel(torch.from_numpy(x))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = randn(rng, *out.shape)
    model.backward(g)
    tout.backward(torch.from_numpy(g))
    for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)


def _torch_twin(torch, model):
    """torch.nn.Sequential with the same layers and a copy of the weights."""
    tnn = torch.nn
    layers = []
    for layer in model.layers:
        if isinstance(layer, nn.Linear):
            layers.append(tnn.Linear(layer.in_features, layer.out_features))
        elif isinstance(layer, nn.Conv2d):
            layers.append(tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                     layer.stride, layer.padding))
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(tnn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
        else:
            layers.append({nn.ReLU: tnn.ReLU, nn.Flatten: tnn.Flatten}[type(layer)]())
    twin = tnn.Sequential(*layers)
    twin.load_state_dict({name: torch.from_numpy(p.data.copy())
                          for name, p in model.named_parameters()})
    return twin


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                       (nn.BatchNorm2d, (4, 3, 5, 6)),
                                       (nn.BatchNorm2d, (2, 3, 1, 1))])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"affine": False},
                                    {"track_running_stats": False}, {"momentum": 0.5, "eps": 0.1},
                                    {"bias": False}, {"bias": False, "momentum": None},
                                    {"affine": False, "bias": False}])
def test_batch_norm_layers_match_torch(rng, cls, shape, kwargs):
    """Three training steps (running statistics, num_batches_tracked, gradients), then eval
    mode, against torch.nn.BatchNorm1d/2d with the same arguments, and the same repr and
    state_dict keys (torch 2.x's bias=False, a weight without a bias, was a TypeError)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    layer = cls(shape[1], **kwargs)
    twin = getattr(torch.nn, cls.__name__)(shape[1], **kwargs)
    assert repr(layer) == repr(twin)
    for p in layer.parameters():
        p.data[:] = rng.standard_normal(shape[1])
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    assert list(layer.state_dict()) == list(twin.state_dict())
    assert [k for k, _ in layer.named_parameters()] == [k for k, _ in twin.named_parameters()]
    for _ in range(3):
        x, g = randn(rng, *shape) * 3 + 1, randn(rng, *shape)
        tx = torch.from_numpy(x).requires_grad_()
        twin.zero_grad()
        ty = twin(tx)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
        for p, tp in zip(layer.parameters(), twin.parameters()):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)
        for (k, v), tv in zip(layer.state_dict().items(), twin.state_dict().values()):
            np.testing.assert_allclose(v, tv.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    layer.eval()
    twin.eval()
    x, g = randn(rng, *shape), randn(rng, *shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty = twin(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-4, atol=1e-5)


NEW_LAYERS = [  # (fastnn layer, its torch.nn twin's constructor, input shape)
    (lambda: nn.GELU(), lambda t: t.GELU(), (4, 7)),
    (lambda: nn.GELU("tanh"), lambda t: t.GELU(approximate="tanh"), (2, 3, 5)),
    (lambda: nn.SiLU(), lambda t: t.SiLU(), (4, 7)),
    (lambda: nn.ELU(), lambda t: t.ELU(), (4, 7)),
    (lambda: nn.ELU(alpha=0.3), lambda t: t.ELU(alpha=0.3), (3, 2, 5)),
    (lambda: nn.LayerNorm(7), lambda t: t.LayerNorm(7), (4, 7)),
    (lambda: nn.LayerNorm([3, 5], eps=1e-3), lambda t: t.LayerNorm([3, 5], eps=1e-3),
     (2, 4, 3, 5)),
    (lambda: nn.LayerNorm(5, bias=False), lambda t: t.LayerNorm(5, bias=False), (3, 5)),
    (lambda: nn.LayerNorm(5, elementwise_affine=False),
     lambda t: t.LayerNorm(5, elementwise_affine=False), (3, 2, 5)),
]


@pytest.mark.parametrize("make, make_twin, shape", NEW_LAYERS)
def test_gelu_silu_elu_layer_norm_layers_match_torch(rng, make, make_twin, shape):
    """repr, state_dict keys and values, then two training steps and an eval step
    (forward, input and parameter gradients) against torch.nn's layer of the same
    arguments; the weights off their defaults, moved from fastnn to torch."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    layer, twin = make(), make_twin(torch.nn)
    assert repr(layer) == repr(twin)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.state_dict().items()})
    assert list(layer.state_dict()) == list(twin.state_dict())
    for mode in (True, True, False):
        layer.train(mode)
        twin.train(mode)
        layer.zero_grad()
        twin.zero_grad()
        x, g = randn(rng, *shape) * 3 + 0.5, randn(rng, *shape)
        tx = torch.from_numpy(x).requires_grad_()
        ty = twin(tx)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
        for p, tp in zip(layer.parameters(), twin.parameters()):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_layer_norm_freezing_and_errors(rng):
    """A frozen weight or bias keeps .grad None (the other one still trains), and a
    normalized_shape the input's trailing dimensions do not end with is named."""
    layer = nn.LayerNorm(4)
    layer.bias.requires_grad = False
    x = randn(rng, 3, 4)
    layer(x)
    dx = layer.backward(randn(rng, 3, 4))
    assert dx.shape == x.shape and layer.weight.grad is not None and layer.bias.grad is None
    assert layer.backward(randn(rng, 3, 4), need_input_grad=False) is None
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4,\).*expects input of shape \(N, \*, 4\)"):
        layer(randn(rng, 3, 5))
    with pytest.raises(ValueError, match="expects input of shape"):
        nn.LayerNorm((2, 4))(randn(rng, 3, 4))
    with pytest.raises(ValueError, match="expects input of shape"):
        nn.LayerNorm(4)(randn(rng, 4))  # no batch dimension
    with pytest.raises(ValueError, match="eps must be positive"):
        nn.LayerNorm(4, eps=0.0)
    with pytest.raises(RuntimeError, match="call the layer on a batch first"):
        nn.LayerNorm(4).backward(randn(rng, 3, 4))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, H, W\) with C = "
                                         r"num_features"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.zeros((1, 3), np.float32))
    assert nn.BatchNorm1d(3).eval()(np.zeros((1, 3), np.float32)).shape == (1, 3)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(3, eps=0.0)


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 4), (7, None)])
def test_adaptive_avg_pool_matches_torch(rng, size):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    layer = nn.AdaptiveAvgPool2d(size)
    x = randn(rng, 2, 3, 7, 9)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.AdaptiveAvgPool2d(size)(tx)
    y = layer(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = randn(rng, *y.shape)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(0)


def test_merge_layers_and_identity(rng):
    a, b = randn(rng, 2, 3, 4, 4), randn(rng, 2, 5, 4, 4)
    cat = nn.Concatenate()
    y = cat([a, b])
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=1))
    ga, gb = cat.backward(y)
    np.testing.assert_array_equal(ga, a)
    np.testing.assert_array_equal(gb, b)
    add = nn.Add()
    c = randn(rng, 2, 3, 4, 4)
    np.testing.assert_allclose(add([a, c, a]), a + c + a, rtol=1e-6)
    assert all(g is c for g in add.backward(c))
    with pytest.raises(ValueError, match="same shape"):
        add([a, b])
    with pytest.raises(ValueError, match="except along axis 1"):
        cat([a, randn(rng, 2, 5, 4, 3)])
    with pytest.raises(TypeError, match="list of at least two"):
        add(a)
    ident = nn.Identity()
    assert ident(a) is a and ident.backward(c) is c
    with pytest.raises(TypeError, match="float32"):
        ident(a.astype(np.float64))


def test_flatten_softmax_and_inplace_take_torchs_arguments(rng):
    """Flatten(start_dim, end_dim), Softmax/LogSoftmax(dim) and the inplace flags of ReLU,
    LeakyReLU and Dropout were missing (TypeError): outputs and gradients are torch's."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for start, end in [(1, -1), (2, 3), (1, 2), (-3, -2), (3, 3)]:
        want = torch.nn.Flatten(start, end)(torch.from_numpy(x)).numpy()
        layer = nn.Flatten(start, end)
        np.testing.assert_array_equal(layer(x), want)
        assert layer.backward(want).shape == x.shape
    with pytest.raises(ValueError, match="start_dim"):
        nn.Flatten(0)
    with pytest.raises(ValueError, match="expects input"):
        nn.Flatten(3, 2)(x)
    for cls, t_cls in [(nn.Softmax, torch.nn.Softmax), (nn.LogSoftmax, torch.nn.LogSoftmax)]:
        for dim in (0, 1, 2, -1, -3):
            tx = torch.tensor(x, requires_grad=True)
            ty = t_cls(dim)(tx)
            g = rng.standard_normal(x.shape).astype(np.float32)
            ty.backward(torch.from_numpy(g))
            layer = cls(dim=dim)
            np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5,
                                       atol=1e-6)
        with pytest.raises(ValueError, match=r"dim must be in \[-4, 4\)"):
            cls(4)(x)
    np.testing.assert_array_equal(nn.ReLU(inplace=True)(x), np.maximum(x, 0))
    np.testing.assert_array_equal(nn.LeakyReLU(0.2, True)(x), nn.LeakyReLU(0.2)(x))
    assert nn.Dropout(0.5, True).eval()(x) is x
    model = nn.Sequential(nn.Linear(3, 2))
    model(x[:, :, 0, 0]), model.backward(np.ones((2, 2), np.float32))
    model.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())


def test_linear_on_leading_dimensions_matches_torch(rng):
    """Linear on (N, *, in_features), as torch's: it raised ValueError for all but 2-D."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    for shape in [(3, 4, 5), (2, 1, 3, 5)]:
        layer, t_layer = nn.Linear(5, 3), torch.nn.Linear(5, 3)
        layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
        x = rng.standard_normal(shape).astype(np.float32)
        tx = torch.tensor(x, requires_grad=True)
        ty = t_layer(tx)
        g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.weight.grad, t_layer.weight.grad.numpy(), rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(layer.bias.grad, t_layer.bias.grad.numpy(), rtol=1e-5,
                                   atol=1e-5)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 5\) or \(N, \*, 5\)"):
        nn.Linear(5, 3)(np.zeros((2, 4), np.float32))


def test_module_and_sequential_api_as_torchs():
    """Sequential slices are Sequentials and append works; apply, named_parameters(prefix,
    recurse), parameters(recurse) and load_state_dict's (missing_keys, unexpected_keys)
    named tuple are torch's (they raised or returned lists and plain tuples)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    x = np.ones((2, 1, 6, 6), np.float32)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and head(x).shape == (2, 2, 4, 4)
    assert [k for k, _ in head.named_parameters()] == ["0.weight", "0.bias"]
    model.append(nn.Softmax(dim=1))
    np.testing.assert_allclose(model(x).sum(axis=1), 1.0, rtol=1e-6)
    assert [k for k, _ in model.named_parameters(prefix="m")][:2] == ["m.0.weight", "m.0.bias"]
    assert list(model.parameters(recurse=False)) == []
    assert len(list(model[3].parameters(False))) == 2
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Conv2d", "ReLU", "Flatten", "Linear", "Softmax", "Sequential"]
    result = model.load_state_dict({"3.bias": np.zeros(3)}, strict=False)
    assert result.missing_keys == ["0.weight", "0.bias", "3.weight"]
    assert result.unexpected_keys == [] and result == (result.missing_keys, [])
    with pytest.raises(TypeError, match="must be a fastnn.nn.Module"):
        model.append(len)


def test_dropout_one_and_parameter_requires_grad_as_torchs(rng):
    """Dropout(p=1.0) drops everything in training, as torch's (it raised ValueError), and
    Parameter.requires_grad_ freezes a parameter as torch's Tensor method does."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    x = rng.standard_normal((3, 4)).astype(np.float32)
    layer = nn.Dropout(1.0)
    np.testing.assert_array_equal(layer(x), torch.nn.Dropout(1.0)(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(layer.backward(x), np.zeros_like(x))
    assert layer.eval()(x) is x
    lin = nn.Linear(4, 2)
    assert lin.weight.requires_grad_(False) is lin.weight and not lin.weight.requires_grad
    assert lin.bias.numel() == 2
    lin(x), lin.backward(np.ones((3, 2), np.float32))
    assert lin.weight.grad is None and lin.bias.grad.all()


@pytest.mark.parametrize("value", ["False", 0, None])
def test_requires_grad_takes_a_bool_as_torchs(value):
    """requires_grad_("False") and requires_grad = 0 were taken by their truth: "False"
    left a weight trainable; torch refuses anything but a bool, as fastnn now does."""
    lin = nn.Linear(4, 2)
    with pytest.raises(TypeError, match="Parameter: requires_grad must be True or False"):
        lin.weight.requires_grad_(value)
    with pytest.raises(TypeError, match="Parameter: requires_grad must be True or False"):
        lin.weight.requires_grad = value
    with pytest.raises(TypeError, match="Linear.requires_grad_: requires_grad must be True"):
        lin.requires_grad_(value)
    with pytest.raises(TypeError, match="Parameter: requires_grad must be True or False"):
        nn.Parameter(np.zeros(2), requires_grad=value)
    assert lin.weight.requires_grad and lin.bias.requires_grad
    lin.requires_grad_(np.bool_(False))
    assert lin.weight.requires_grad is False and lin.bias.requires_grad is False


def test_sequential_of_an_ordered_dict_as_torchs(rng, tmp_path):
    """torch's Sequential(OrderedDict(name=layer)) names its children by the keys
    (state_dict 'conv.weight', model.conv): fastnn raised TypeError. A torch state_dict
    loads, outputs and gradients are torch's, slices keep the names, save/load keeps them."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    from collections import OrderedDict

    def build(m):
        return m.Sequential(OrderedDict([("conv", m.Conv2d(1, 2, 3)), ("bn", m.BatchNorm2d(2)),
                                         ("relu", m.ReLU()), ("flat", m.Flatten()),
                                         ("fc", m.Linear(32, 3))]))

    model, t_model = build(nn), build(torch.nn)
    assert list(model.state_dict()) == list(t_model.state_dict())
    model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = t_model(tx)
    ty.sum().backward()
    np.testing.assert_allclose(model(x), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    dx = model.backward(np.ones(ty.shape, np.float32), need_input_grad=True)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.conv.weight.grad, t_model.conv.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-5)
    assert [k for k, _ in model[1:3].named_children()] == ["bn", "relu"]
    model.save(tmp_path / "m.fastnn")
    again = fastnn.load(tmp_path / "m.fastnn")
    assert list(again.state_dict()) == list(model.state_dict())
    with pytest.raises(AttributeError, match="no attribute 'head'"):
        model.head


def test_state_dict_of_a_shared_layer_has_each_name_as_torchs():
    """A layer held twice (torch's Sequential(lin, relu, lin)) was saved under its first
    name only, so torch's state_dict of the same model (keys 0.* and 2.*) failed to load
    (unexpected keys); torch saves it under every name, as fastnn now does."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    shared = torch.nn.Linear(3, 3)
    twin = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert list(model.state_dict()) == list(twin.state_dict())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in twin.named_parameters()]
    assert [n for n, _ in model.named_modules()] == [n for n, _ in twin.named_modules()]
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == \
        [n for n, _ in twin.named_modules(remove_duplicate=False)]
    model.load_state_dict(twin.state_dict())
    x = np.random.default_rng(21).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), twin(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_module_list_and_module_dict_behave_as_torchs():
    """The same operations on fastnn's and torch's ModuleList and ModuleDict (modules
    told apart by out_features) leave the same modules in the same order under the same
    state_dict keys, and return what torch's return."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")

    def tags(modules):
        return [m.out_features for m in modules]

    ours = nn.ModuleList(nn.Linear(1, k) for k in (1, 2, 3))
    theirs = torch.nn.ModuleList(torch.nn.Linear(1, k) for k in (1, 2, 3))
    for op in [lambda m, L: m.append(L(1, 4)), lambda m, L: m.extend([L(1, 5), L(1, 6)]),
               lambda m, L: m.insert(1, L(1, 7)), lambda m, L: m.__setitem__(-2, L(1, 8)),
               lambda m, L: m.__delitem__(0), lambda m, L: m.__delitem__(slice(1, 3)),
               lambda m, L: m.__iadd__([L(1, 9)]), lambda m, L: m.pop(1),
               lambda m, L: m[-2], lambda m, L: m[::-2], lambda m, L: m + m[:1]]:
        got, want = op(ours, nn.Linear), op(theirs, torch.nn.Linear)
        assert tags(ours) == tags(theirs) and len(ours) == len(theirs)
        assert (got is ours) == (want is theirs) and (got is None) == (want is None)
        if isinstance(want, torch.nn.ModuleList):
            assert isinstance(got, nn.ModuleList) and tags(got) == tags(want)
        elif isinstance(want, torch.nn.Linear):
            assert got.out_features == want.out_features
    assert list(ours.state_dict()) == list(theirs.state_dict())

    ours = nn.ModuleDict({"b": nn.Linear(1, 1), "a": nn.Linear(1, 2)})
    theirs = torch.nn.ModuleDict({"b": torch.nn.Linear(1, 1), "a": torch.nn.Linear(1, 2)})
    for op in [lambda m, L: m.update([("c", L(1, 3))]),
               lambda m, L: m.__setitem__("b", L(1, 4)),
               lambda m, L: m.update({"d": L(1, 5), "a": L(1, 6)}),
               lambda m, L: m.pop("c"), lambda m, L: m.__delitem__("b"),
               lambda m, L: m["d"], lambda m, L: m.a]:
        got, want = op(ours, nn.Linear), op(theirs, torch.nn.Linear)
        assert list(ours) == list(theirs) == list(ours.keys()) == [k for k, _ in ours.items()]
        assert tags(ours.values()) == tags(theirs.values()) and len(ours) == len(theirs)
        assert (got is None) == (want is None)
        if want is not None:
            assert got.out_features == want.out_features
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "a.weight", "a.bias", "d.weight", "d.bias"]
    assert "a" in ours and "b" not in ours and 1 not in ours
    ours.clear()
    assert len(ours) == 0 and ours.state_dict() == {}


def test_module_list_and_module_dict_errors_are_clear(rng):
    """Modules only (a TypeError naming the container and the index or key, nothing
    added), torch's key rule (strings without '.'), torch's IndexError and KeyError, and
    no forward (NotImplementedError, as torch's)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    blocks = nn.ModuleList([nn.ReLU()])
    with pytest.raises(TypeError, match=r"ModuleList\[2\] must be a fastnn.nn.Module, got int"):
        blocks.extend([nn.Tanh(), 3])
    assert len(blocks) == 1
    for bad, match in [(lambda: nn.ModuleList([nn.ReLU(), "relu"]), r"ModuleList\[1\] .* str"),
                       (lambda: nn.ModuleList(nn.ReLU()),
                        "iterable of modules, got fastnn.nn.activation.ReLU"),
                       (lambda: blocks.append(torch.nn.ReLU()), r"ModuleList\[1\] .* "
                                                                r"torch.nn.modules"),
                       (lambda: blocks.__setitem__(-1, None), r"ModuleList\[0\] .* NoneType"),
                       (lambda: blocks.insert(0, np.zeros(2)), r"ModuleList\[0\] .* array"),
                       (lambda: blocks["0"], "ModuleList index must be an integer"),
                       (lambda: blocks.__setitem__(slice(0, 1), [nn.ReLU()]),
                        "integer .* got slice")]:
        with pytest.raises(TypeError, match=match):
            bad()
    with pytest.raises(IndexError, match="index -2 is out of range for 1 modules"):
        blocks[-2]
    blocks.insert(2**64, nn.Tanh())  # past either end: at that end, as list.insert
    blocks.insert(-2**63, nn.Sigmoid())
    assert [type(m).__name__ for m in blocks] == ["Sigmoid", "ReLU", "Tanh"]
    del blocks[::2]
    heads = nn.ModuleDict({"a": nn.ReLU()})
    for bad, error, match in [
            (lambda: heads.__setitem__("b", 1.5), TypeError,
             r"ModuleDict\['b'\] must be a fastnn.nn.Module, got float"),
            (lambda: heads.update({"b": nn.ReLU(), "c.d": nn.ReLU()}), ValueError,
             r"no '\.'.*'c\.d'"),
            (lambda: nn.ModuleDict({"": nn.ReLU()}), ValueError, "non-empty"),
            (lambda: heads.update([(0, nn.ReLU())]), TypeError, "keys must be strings"),
            (lambda: heads.update([("b", nn.ReLU(), 1)]), TypeError,
             r"element 0 must be a \(key, module\) pair"),
            (lambda: nn.ModuleDict(5), TypeError, "mapping or an iterable"),
            (lambda: heads["z"], KeyError, "z"), (lambda: heads.z, AttributeError, "'z'")]:
        with pytest.raises(error, match=match):
            bad()
    assert list(heads) == ["a"]  # nothing added by the failed updates
    x = randn(rng, 2, 3)
    for container, t_container in [(blocks, torch.nn.ModuleList([torch.nn.ReLU()])),
                                   (heads, torch.nn.ModuleDict({"a": torch.nn.ReLU()}))]:
        with pytest.raises(NotImplementedError):
            t_container(torch.from_numpy(x))
        with pytest.raises(NotImplementedError, match=f"{type(container).__name__} has no "
                                                      f"forward"):
            container(x)

    class CallsTheList(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.Linear(3, 3)])

        def forward(self, x):
            return self.blocks(x)

    with pytest.raises(NotImplementedError, match="for block in self.blocks"):
        CallsTheList()(x)


def _tree(m):
    """A model with every kind of child (a layer, a buffer holder, a ModuleList, a
    ModuleDict, a Sequential) in torch.nn (m=torch.nn) or fastnn.nn."""
    class Net(m.Module):
        def __init__(self):
            super().__init__()
            self.conv = m.Conv2d(1, 2, 3)
            self.bn = m.BatchNorm2d(2)
            self.blocks = m.ModuleList([m.Linear(3, 3), m.ReLU()])
            self.heads = m.ModuleDict({"a": m.Linear(3, 2)})
            self.seq = m.Sequential(m.Linear(2, 2), m.Tanh())

        def forward(self, x):
            return x
    return Net()


def test_module_tree_api_as_torchs():
    """The names, order and results of the Module API are torch's on the same tree:
    named_modules/children/parameters/buffers with prefix and recurse, get_submodule,
    get_parameter, apply, train/eval/requires_grad_ returning self, and torch's
    AttributeError messages (named_buffers(prefix, recurse), buffers(recurse),
    get_submodule and get_parameter were missing)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    ours, theirs = _tree(nn), _tree(torch.nn)

    def same(f):
        got, want = f(ours), f(theirs)
        assert got == want, (got, want)

    def names(pairs):
        return [k for k, _ in pairs]

    same(lambda m: names(m.named_modules()))
    same(lambda m: names(m.named_modules(prefix="p")))
    same(lambda m: names(m.named_children()))
    same(lambda m: [type(c).__name__ for c in m.children()])
    same(lambda m: [type(c).__name__ for c in m.modules()])
    same(lambda m: names(m.named_parameters(prefix="x")))
    same(lambda m: names(m.named_parameters(recurse=False)))
    same(lambda m: [tuple(p.shape) for p in m.parameters()])
    same(lambda m: names(m.named_buffers()))
    same(lambda m: names(m.named_buffers(prefix="q")))
    same(lambda m: names(m.bn.named_buffers(recurse=False)))
    same(lambda m: [len(list(m.buffers())), len(list(m.buffers(recurse=False)))])
    same(lambda m: type(m.get_submodule("blocks.0")).__name__)
    same(lambda m: m.get_submodule("") is m)
    same(lambda m: tuple(m.get_parameter("seq.0.weight").shape))
    same(lambda m: [m.train() is m, m.eval() is m, m.requires_grad_(False) is m,
                    m.training, m.seq.training])
    same(lambda m: [p.requires_grad for p in m.parameters()])
    same(lambda m: m.zero_grad())
    seen = {id(m): [] for m in (ours, theirs)}
    same(lambda m: m.apply(lambda mod: seen[id(m)].append(type(mod).__name__)) is m)
    assert seen[id(ours)] == seen[id(theirs)]
    for f in [lambda m: m.get_submodule("blocks.9"), lambda m: m.get_submodule("nope.x"),
              lambda m: m.get_parameter("seq.0.nope"), lambda m: m.get_parameter("bn"),
              lambda m: m.nope, lambda m: m.conv.nope]:
        with pytest.raises(AttributeError) as want:
            f(theirs)
        with pytest.raises(AttributeError) as got:
            f(ours)
        assert str(got.value) == str(want.value)


def _shared(m):
    """A tree reaching one layer by three names (an attribute, and twice in a
    Sequential), a BatchNorm by two, and a Parameter tied into a second layer (torch's
    weight tying), in torch.nn or fastnn.nn."""
    class Net(m.Module):
        def __init__(self):
            super().__init__()
            self.fc = m.Linear(3, 3)
            self.bn = m.BatchNorm1d(3)
            self.seq = m.Sequential(self.fc, m.ReLU(), self.fc, self.bn)
            self.head = m.Linear(3, 3, bias=False)
            self.head.weight = self.fc.weight
            self.again = self.bn

        def forward(self, x):
            return x
    return Net()


ITERATOR_CALLS = {  # label: call(model), each argument torch's iterators take
    "parameters": lambda m: m.parameters(),
    "parameters(recurse=False)": lambda m: m.parameters(recurse=False),
    "seq.parameters(False)": lambda m: m.seq.parameters(False),
    "named_parameters": lambda m: m.named_parameters(),
    "named_parameters(prefix)": lambda m: m.named_parameters(prefix="net"),
    "named_parameters(remove_duplicate=False)":
        lambda m: m.named_parameters(remove_duplicate=False),
    "bn.named_parameters(recurse=False)": lambda m: m.bn.named_parameters(recurse=False),
    "buffers": lambda m: m.buffers(),
    "bn.buffers(False)": lambda m: m.bn.buffers(False),
    "named_buffers": lambda m: m.named_buffers(),
    "named_buffers(prefix, remove_duplicate=False)":
        lambda m: m.named_buffers("net", remove_duplicate=False),
    "children": lambda m: m.children(),
    "named_children": lambda m: m.named_children(),
    "seq.named_children": lambda m: m.seq.named_children(),
    "modules": lambda m: m.modules(),
    "modules(remove_duplicate=False)": lambda m: m.modules(remove_duplicate=False),
    "named_modules": lambda m: m.named_modules(),
    "named_modules(None, prefix)": lambda m: m.named_modules(None, "net"),
    "named_modules(remove_duplicate=False)": lambda m: m.named_modules(remove_duplicate=False),
    "named_modules(memo)": lambda m: m.named_modules(memo={m.seq}, prefix="p"),
}


@pytest.mark.parametrize("build", [_tree, _shared])
@pytest.mark.parametrize("call", ITERATOR_CALLS, ids=str)
def test_module_iterators_are_torchs_generators(build, call):
    """parameters(), buffers(), children(), modules() and their named_ forms returned
    lists, so next(model.parameters()) raised TypeError. Each is now a generator, as
    torch's, spent after one pass, yielding torch's names in torch's order with torch's
    arguments (prefix, recurse, remove_duplicate, named_modules' memo), shared modules
    and tied parameters once or under each name as torch's are."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    ours, theirs = build(nn), build(torch.nn)

    def described(items):
        """Each item's name, what it is (a module's class, an array's shape) and the
        position of its first occurrence (which items are one object)."""
        first, out = {}, []
        for item in items:
            name, value = item if isinstance(item, tuple) else (None, item)
            kind = type(value).__name__ if isinstance(value, (nn.Module, torch.nn.Module)) \
                else tuple(value.shape)
            out.append((name, kind, first.setdefault(id(value), len(out))))
        return out

    got, want = ITERATOR_CALLS[call](ours), ITERATOR_CALLS[call](theirs)
    assert inspect.isgenerator(want) and inspect.isgenerator(got), type(got)
    got_items, want_items = described(got), described(want)
    assert got_items == want_items
    assert list(got) == [] and list(want) == []  # spent, as torch's
    if got_items:  # the idiom torch code uses: next(model.parameters())
        again = ITERATOR_CALLS[call](ours)
        assert described([next(again)]) == got_items[:1]


def test_module_iterators_check_their_arguments():
    """The iterators' arguments are checked when called, not at the first next(), and
    name the method and argument (recurse="False" walked the sub-modules)."""
    model = _tree(nn)
    for bad, match in [(lambda: model.parameters(recurse="False"), "recurse must be True"),
                       (lambda: model.named_parameters(prefix=3), "prefix must be a string"),
                       (lambda: model.named_buffers(remove_duplicate=None),
                        "named_buffers: remove_duplicate must be True"),
                       (lambda: model.modules(remove_duplicate="no"),
                        "named_modules: remove_duplicate must be True"),
                       (lambda: model.named_modules(memo=[model]), "memo must be a set"),
                       (lambda: model.named_modules(prefix=None), "prefix must be a string")]:
        with pytest.raises(TypeError, match=match):
            bad()


def test_registering_and_deleting_as_torchs():
    """register_buffer(persistent=False) keeps a buffer out of state_dict, as torch's
    (persistent was a TypeError); register_parameter, add_module/register_module (on a
    Module and a Sequential) and del of a child, a parameter or a buffer leave torch's
    names, state_dict keys and repr."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")

    def build(m, array, param):
        lin = m.Linear(2, 2)
        lin.register_buffer("kept", array(2))
        lin.register_buffer("cache", array(3), persistent=False)
        lin.register_parameter("scale", param(array(2)))
        lin.register_parameter("unset", None)
        lin.add_module("act", m.ReLU())
        lin.register_module("extra", m.Tanh())
        seq = m.Sequential(m.ReLU())
        seq.add_module("fc", m.Linear(2, 1))
        seq.add_module("0", m.Tanh())  # replaces layer "0", as torch's
        return lin, seq

    lin, seq = build(nn, lambda n: np.zeros(n, np.float32), nn.Parameter)
    t_lin, t_seq = build(torch.nn, torch.zeros, torch.nn.Parameter)

    def same(a, b):
        assert list(a.state_dict()) == list(b.state_dict())
        assert [k for k, _ in a.named_buffers()] == [k for k, _ in b.named_buffers()]
        assert [k for k, _ in a.named_parameters()] == [k for k, _ in b.named_parameters()]
        assert [k for k, _ in a.named_children()] == [k for k, _ in b.named_children()]
        assert repr(a) == repr(b)

    same(lin, t_lin)
    same(seq, t_seq)
    for name in ("act", "scale", "kept", "cache"):
        delattr(lin, name)
        delattr(t_lin, name)
        same(lin, t_lin)
    assert list(lin.state_dict()) == ["weight", "bias"]
    for bad in [lambda m: m.register_buffer("weight", None),
                lambda m: m.register_parameter("extra", None),
                lambda m: m.add_module("bias", None), lambda m: m.add_module("a.b", None),
                lambda m: m.register_buffer("", None), lambda m: m.add_module(1, None),
                lambda m: m.register_parameter("p", np.zeros(2)),
                lambda m: m.add_module("q", np.zeros(2)),
                lambda m: m.register_buffer("train", None)]:
        with pytest.raises((KeyError, TypeError)):
            bad(t_lin)
        with pytest.raises((ValueError, TypeError), match="Linear"):
            bad(lin)
    with pytest.raises(TypeError, match="buffer 'b' must be a NumPy array or None, got list"):
        lin.register_buffer("b", [1.0])
    same(lin, t_lin)  # the refused ones changed nothing


def test_state_dict_arguments_and_load_result_as_torchs():
    """state_dict(destination, prefix, keep_vars) and load_state_dict's printed result
    are torch's (the arguments were TypeErrors); a keep_vars state dict (Parameters)
    loads."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    from collections import OrderedDict

    def build(m):
        return m.Sequential(m.Linear(2, 3), m.BatchNorm1d(3))

    ours, theirs = build(nn), build(torch.nn)
    for kwargs in [{}, {"prefix": "model."}, {"prefix": "m"}, {"keep_vars": True}]:
        got, want = ours.state_dict(**kwargs), theirs.state_dict(**kwargs)
        assert isinstance(got, OrderedDict) and list(got) == list(want)
        assert [type(v).__name__ for v in got.values()] == [
            "Parameter" if isinstance(v, torch.nn.Parameter) else "ndarray"
            for v in want.values()]
    target = {"z": 1}
    assert ours.state_dict(target) is target and list(target) == ["z"] + list(
        theirs.state_dict())
    assert ours.state_dict(keep_vars=True)["0.weight"] is ours[0].weight
    twin = build(nn)
    for s in (1, 2):
        np.copyto(twin[0].weight.data, s)
        result = ours.load_state_dict(twin.state_dict(keep_vars=s == 1))
        assert np.all(ours[0].weight.data == s) and ours[0].weight is not twin[0].weight
        assert repr(result) == str(result) == repr(theirs.load_state_dict(
            theirs.state_dict())) == "<All keys matched successfully>"
    got = ours.load_state_dict({"0.bias": np.zeros(3), "x": np.zeros(1)}, strict=False)
    want = theirs.load_state_dict({"0.bias": torch.zeros(3), "x": torch.zeros(1)}, strict=False)
    assert repr(got) == repr(want) and got == tuple(want)
    for bad, match in [(lambda: ours.state_dict(prefix=1), "prefix must be a string"),
                       (lambda: ours.state_dict(keep_vars="yes"), "keep_vars must be True"),
                       (lambda: ours.state_dict([]), "destination must be a dict")]:
        with pytest.raises(TypeError, match=match):
            bad()


def test_load_state_dict_assign_as_torchs(rng):
    """assign=True (torch's; a TypeError before) makes the given float32 arrays the
    parameters and buffers (a torch tensor's memory shared, as torch's assign shares it),
    keeping each Parameter object and its requires_grad, so an optimizer made before goes
    on training them; any other entry (float64, strided, read-only) is copied with a
    UserWarning naming it."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    twin(torch.randn(8, 3))  # running statistics off their defaults
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    weight = model[0].weight
    weight.requires_grad_(False)
    opt = optim.SGD(model.parameters(), lr=0.1)
    state = twin.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all float32/int64 contiguous: nothing copied
        model.load_state_dict(state, assign=True)
    assert model[0].weight is weight and not weight.requires_grad
    for key, value in state.items():
        assert np.shares_memory(model.state_dict()[key], value.numpy()), key
    with torch.no_grad():
        twin[0].bias.add_(1.0)  # the same memory, as torch's assign
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(model.eval()(x), twin.eval()(torch.from_numpy(x)).detach(),
                               rtol=1e-5, atol=1e-6)
    model.train()
    model(x), model.backward(np.ones((5, 4), np.float32))
    before = model[1].bias.data.copy()
    opt.step()  # the optimizer made before the load trains the assigned array
    np.testing.assert_allclose(model[1].bias.data, before - 0.1 * 5)
    np.testing.assert_array_equal(model[1].bias.data, twin[1].bias.detach().numpy())

    fresh = nn.Linear(3, 4)
    weight64 = rng.standard_normal((4, 3))
    readonly = np.arange(4, dtype=np.float32)
    readonly.flags.writeable = False
    with pytest.warns(UserWarning, match=r"copied weight \(float64\), bias \(float32, "
                                         r"read-only\) instead of assigning"):
        fresh.load_state_dict({"weight": weight64, "bias": readonly}, assign=True)
    np.testing.assert_array_equal(fresh.weight.data, weight64.astype(np.float32))
    assert fresh.weight.data.dtype == np.float32 and fresh.bias.data.flags.writeable
    strided = np.zeros((4, 6), np.float32)[:, ::2]
    with pytest.warns(UserWarning, match=r"weight \(float32, strided\)"):
        fresh.load_state_dict({"weight": strided, "bias": np.zeros(4, np.float32)},
                              assign=True)
    with pytest.raises(TypeError, match="assign must be True or False"):
        fresh.load_state_dict(fresh.state_dict(), assign="yes")
    half = torch.nn.Linear(3, 4).to(torch.bfloat16)  # NumPy has no bfloat16: a new array
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh.load_state_dict(half.state_dict(), assign=True)
    np.testing.assert_array_equal(fresh.weight.data, half.weight.float().detach().numpy())
    assert fresh.weight.data.dtype == np.float32 and fresh.weight.data.flags.writeable


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
def test_softmax_without_dim_is_torchs_implicit_choice(rng, cls):
    """nn.Softmax() / nn.LogSoftmax() take torch's default dim=None: dimension 0 for an
    input of 1 or 3 dimensions, else 1, with torch's UserWarning (fastnn took the last
    one: on (N, C, H, W) another result than torch's); repr and saved files as torch's."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)]:
        x, g = randn(rng, *shape), randn(rng, *shape)
        tx = torch.tensor(x, requires_grad=True)
        with pytest.warns(UserWarning, match="Implicit dimension choice") as want:
            ty = getattr(torch.nn, cls)()(tx)
        ty.backward(torch.from_numpy(g))
        layer = getattr(nn, cls)()
        with pytest.warns(UserWarning) as got:
            y = layer(x)
        assert str(got[0].message) == str(want[0].message)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert repr(getattr(nn, cls)()) == repr(getattr(torch.nn, cls)()) == f"{cls}(dim=None)"
    assert getattr(nn, cls).from_config({}).dim == -1  # a file saved when the default was -1
    restored = fastnn.nn.registry.build(fastnn.nn.registry.spec(getattr(nn, cls)()))
    assert restored.dim is None
    with pytest.raises(TypeError, match=f"{cls}: dim must be an int or None"):
        getattr(nn, cls)("1")


LAYER_ARGS = [  # (class name, args, kwargs): every layer torch.nn has, its arguments varied
    ("Linear", (3, 4), {}), ("Linear", (3, 4), {"bias": False}),
    ("Conv2d", (2, 4, 3), {}),
    ("Conv2d", (2, 4, (3, 1)), {"stride": (2, 1), "padding": (1, 0), "dilation": 2,
                                "groups": 2, "bias": False}),
    ("Conv2d", (2, 4, 3), {"padding": "same", "padding_mode": "reflect"}),
    ("Conv2d", (2, 4, 3), {"padding": 1, "padding_mode": "circular"}),
    ("Conv2d", (2, 4, 3), {"padding": "valid"}),
    ("ConvTranspose2d", (2, 4, 3), {}),
    ("ConvTranspose2d", (2, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                    "groups": 2, "bias": False, "dilation": 2}),
    ("MaxPool2d", (2,), {}), ("MaxPool2d", ((2, 2),), {}),
    ("MaxPool2d", (3,), {"stride": (1, 2), "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", (2,), {}), ("AvgPool2d", ((2, 3), 1, (1, 1)), {}),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True,
                         "count_include_pad": False}),
    ("AdaptiveAvgPool2d", (1,), {}), ("AdaptiveAvgPool2d", ((1, 1),), {}),
    ("AdaptiveAvgPool2d", ((None, 3),), {}),
    ("ReLU", (), {}), ("ReLU", (True,), {}), ("LeakyReLU", (), {}),
    ("LeakyReLU", (0.2, True), {}),
    ("Sigmoid", (), {}), ("Tanh", (), {}), ("Softmax", (1,), {}), ("Softmax", (), {}),
    ("LogSoftmax", (), {"dim": -1}), ("GELU", (), {}), ("GELU", ("tanh",), {}),
    ("SiLU", (), {}), ("SiLU", (True,), {}), ("ELU", (), {}), ("ELU", (0.5, True), {}),
    ("BatchNorm1d", (3,), {}), ("BatchNorm2d", (3, 1e-3, None, False, False), {}),
    ("BatchNorm2d", (3,), {"bias": False}),
    ("BatchNorm1d", (3,), {"track_running_stats": False}),
    ("LayerNorm", (4,), {}),
    ("LayerNorm", ([2, 3],), {"eps": 1e-3, "elementwise_affine": False}),
    ("LayerNorm", (4,), {"bias": False}),
    ("Dropout", (), {}), ("Dropout", (0.3, True), {}), ("Flatten", (), {}),
    ("Flatten", (2, 3), {}),
    ("Identity", (), {}), ("Identity", (3,), {"unused": 1}),
]


@pytest.mark.parametrize("name, args, kwargs", LAYER_ARGS,
                         ids=[f"{n}{a}{k or ''}" for n, a, k in LAYER_ARGS])
def test_each_layer_prints_and_saves_as_torchs(name, args, kwargs):
    """Every fastnn.nn layer torch.nn has, on the same arguments: torch's repr (pooling
    sizes as given: (2, 2) printed as 2 was not; SiLU and ELU hid inplace=True), and
    torch's state_dict keys, shapes and dtypes, parameters and buffers in order."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert [(k, v.shape, str(v.dtype)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in
         theirs.state_dict().items()]
    for method in ("named_parameters", "named_buffers"):
        assert [k for k, _ in getattr(ours, method)()] == \
            [k for k, _ in getattr(theirs, method)()]
    restored = nn.registry.build(nn.registry.spec(ours))  # a saved file prints it again
    assert repr(restored) == repr(ours)


def test_every_torch_layer_is_compared():
    """LAYER_ARGS covers every layer class of fastnn.nn that torch.nn has."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    layers = {n for n in nn.__all__ if isinstance(getattr(nn, n), type) and
              issubclass(getattr(nn, n), nn.Module) and hasattr(torch.nn, n)}
    # the containers: in test_layer_reprs_are_torchs
    containers = {"Module", "Sequential", "ModuleList", "ModuleDict"}
    assert layers - containers == {n for n, _, _ in LAYER_ARGS}


def test_layer_reprs_are_torchs():
    """Every layer prints as torch's with the same arguments (fastnn printed its config:
    Conv2d(in_channels=1, ..., kernel_size=[3, 3], ...)), and models nest them as torch's,
    an empty one as Sequential(), a ModuleList's equal entries as one "(0-2): 3 x" line;
    BatchNorm's with torch 2.13's `bias=` (it was left out)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    makers = [
        lambda m: m.Linear(3, 4), lambda m: m.Linear(3, 4, bias=False),
        lambda m: m.Conv2d(1, 2, 3), lambda m: m.Conv2d(1, 2, 3, stride=2, padding=1, bias=False),
        lambda m: m.Conv2d(4, 4, (3, 5), groups=2, padding="same", padding_mode="reflect"),
        lambda m: m.Conv2d(1, 2, 3, padding="valid", dilation=2),
        lambda m: m.MaxPool2d(2), lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True),
        lambda m: m.MaxPool2d((2, 3)), lambda m: m.AvgPool2d(2),
        lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda m: m.AdaptiveAvgPool2d(1), lambda m: m.AdaptiveAvgPool2d((2, 3)),
        lambda m: m.ReLU(), lambda m: m.ReLU(inplace=True), lambda m: m.LeakyReLU(),
        lambda m: m.LeakyReLU(0.2, True), lambda m: m.Sigmoid(), lambda m: m.Tanh(),
        lambda m: m.Softmax(dim=1), lambda m: m.LogSoftmax(dim=-1), lambda m: m.Flatten(),
        lambda m: m.Flatten(2, 3), lambda m: m.Identity(), lambda m: m.Dropout(),
        lambda m: m.Dropout(0.3, True), lambda m: m.BatchNorm1d(3),
        lambda m: m.BatchNorm2d(4, 1e-3, None, False, False, bias=False),
        lambda m: m.BatchNorm2d(2, momentum=0.5, bias=False), lambda m: m.Sequential(),
        lambda m: m.Sequential(m.Linear(3, 4), m.ReLU()),
        lambda m: m.ModuleList(), lambda m: m.ModuleDict(),
        lambda m: m.ModuleList([m.Linear(2, 2), m.Linear(2, 2), m.Linear(2, 2), m.ReLU(),
                                m.Sequential(m.Tanh()), m.Sequential(m.Tanh())]),
        lambda m: m.ModuleDict({"a": m.Linear(3, 4), "b": m.Sequential(m.Dropout())}),
        lambda m: _tree(m).seq, lambda m: _tree(m).blocks]
    for make in makers:
        assert repr(make(nn)) == repr(make(torch.nn))
    assert repr(_tree(nn)) == repr(_tree(torch.nn))

    class WithExtra(nn.Module):  # a model's own extra_repr comes first, as torch's
        def __init__(self):
            self.fc = nn.Linear(2, 2)

        def extra_repr(self):
            return "scale=2"

        def forward(self, x):
            return self.fc(x)

    assert repr(WithExtra()) == ("WithExtra(\n  scale=2\n  (fc): Linear(in_features=2, "
                                 "out_features=2, bias=True)\n)")


def test_sequential_and_module_dict_edits_as_torchs(rng):
    """Sequential's list methods (insert, extend, pop, +, +=, item assignment and
    deletion, negative indices: AttributeError/TypeError before) and ModuleDict's
    attribute assignment (heads.c = layer added no key) leave torch's layers, names and
    state_dict keys, and a model holding them runs what they hold."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")

    def tags(modules):
        return [getattr(m, "out_features", type(m).__name__) for m in modules]

    ours = nn.Sequential(*(nn.Linear(2, 2) for _ in range(3)))
    theirs = torch.nn.Sequential(*(torch.nn.Linear(2, 2) for _ in range(3)))
    for op in [lambda s, m: s.insert(1, m.ReLU()), lambda s, m: s.insert(-1, m.Tanh()),
               lambda s, m: s.insert(len(s), m.Sigmoid()), lambda s, m: s.extend([m.ReLU()]),
               lambda s, m: s.pop(0), lambda s, m: s.pop(-2), lambda s, m: s[-1],
               lambda s, m: s.__setitem__(-1, m.Tanh()), lambda s, m: s.__delitem__(1),
               lambda s, m: s.__delitem__(slice(0, 1)), lambda s, m: s + m.Sequential(m.Tanh()),
               lambda s, m: s.__iadd__(m.Sequential(m.Linear(2, 2))), lambda s, m: s[1:],
               lambda s, m: s.append(m.Linear(2, 3)), lambda s, m: s.add_module("head", m.ReLU()),
               lambda s, m: s.__setitem__(0, m.Linear(2, 2)), lambda s, m: len(s)]:
        got, want = op(ours, nn), op(theirs, torch.nn)
        assert tags(ours) == tags(theirs) and list(ours) == list(ours.layers)
        assert [k for k, _ in ours.named_children()] == [k for k, _ in theirs.named_children()]
        assert (got is ours) == (want is theirs) and type(got).__name__ == type(want).__name__
        if isinstance(want, torch.nn.Sequential):
            assert tags(got) == tags(want)
            assert [k for k, _ in got.named_children()] == [k for k, _ in want.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    assert ours[0] in ours and nn.ReLU() not in ours
    x = randn(rng, 4, 2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    for bad, error in [(lambda s, m: s.insert(9, m.ReLU()), IndexError),
                       (lambda s, m: s[9], IndexError), (lambda s, m: s.pop(-9), IndexError)]:
        with pytest.raises(error):
            bad(theirs, torch.nn)
        with pytest.raises(error, match="Sequential"):
            bad(ours, nn)
    with pytest.raises(TypeError, match=r"Sequential \+=: takes a Sequential, got list"):
        ours += [nn.ReLU()]
    n = len(ours)
    with pytest.raises(TypeError, match=rf"Sequential\[{n + 1}\] must be a fastnn.nn.Module"):
        ours.extend([nn.ReLU(), "relu"])
    assert len(ours) == n  # all or none

    ours = nn.ModuleDict({"a": nn.Linear(2, 1)})
    theirs = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 1)})
    for m, d in [(nn, ours), (torch.nn, theirs)]:
        d.c = m.Linear(2, 3)
        d.a = m.Linear(2, 4)  # replaces key 'a', in place
        d.note = "plain"  # not a module: a plain attribute, as torch's
        d.add_module("e", m.Tanh())
        del d.c
    assert list(ours) == list(theirs) == ["a", "e"] and ours.note == "plain"
    assert tags(ours.values()) == tags(theirs.values())
    assert list(ours.state_dict()) == list(theirs.state_dict()) and repr(ours) == repr(theirs)
    with pytest.raises(TypeError, match=r"ModuleDict\['a'\] must be a fastnn.nn.Module"):
        ours.a = 3  # a key holds modules only
    with pytest.raises(ValueError, match="ModuleList.add_module"):
        nn.ModuleList().add_module("x", nn.ReLU())

    class Heads(nn.Module):
        def __init__(self):
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 2)})

        def forward(self, x):
            return [head(x) for head in self.heads.values()]

    model = Heads()
    assert len(model(x)) == 1
    model.heads.b = nn.Linear(2, 3)  # traced again: the new head runs
    assert [y.shape for y in model(x)] == [(4, 2), (4, 3)]
    del model.heads.a
    assert [y.shape for y in model(x)] == [(4, 3)]


def test_to_named_duplicates_and_child_assignment_as_torchs():
    """model.to("cpu") / .to(torch.float32) / .cpu() / .float() return the model, as
    torch's (an AttributeError stopped torch scripts at model.to(device)); another device
    or dtype raises naming it. named_parameters/named_buffers(remove_duplicate=False) list
    a shared layer's under each name, and a child module replaced by a non-module is a
    TypeError, as torch's."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")

    def build(m):
        lin = m.Linear(2, 2)
        return m.Sequential(lin, m.BatchNorm1d(2), lin)

    ours, theirs = build(nn), build(torch.nn)
    for args, kwargs in [(("cpu",), {}), ((torch.device("cpu"),), {}), ((torch.float32,), {}),
                         (("cpu", torch.float32), {}), ((), {"device": "cpu"}),
                         ((), {"dtype": torch.float32, "non_blocking": True})]:
        assert ours.to(*args, **kwargs) is ours and theirs.to(*args, **kwargs) is theirs
    assert ours.to(np.float32) is ours.cpu() is ours.float() is ours
    for bad in ["cuda", torch.float64, np.float64, "meta", 3]:
        with pytest.raises(ValueError, match="Sequential.to: fastnn runs on the CPU in "
                                             "float32, got"):
            ours.to(bad)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['memory'\]"):
        ours.to(memory="x")
    for kwargs in [{}, {"remove_duplicate": False}, {"prefix": "p", "remove_duplicate": False}]:
        assert [k for k, _ in ours.named_parameters(**kwargs)] == \
            [k for k, _ in theirs.named_parameters(**kwargs)]
        assert [k for k, _ in ours.named_buffers(**kwargs)] == \
            [k for k, _ in theirs.named_buffers(**kwargs)]
    with pytest.raises(TypeError, match="remove_duplicate must be True or False"):
        ours.named_buffers(remove_duplicate=None)
    for model in (ours, theirs):
        model.head = type(model[0])(2, 1)
        with pytest.raises(TypeError, match="head"):
            model.head = 3
        model.head = None  # allowed by both
        assert model.head is None
