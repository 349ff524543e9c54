"""Optimizers against fastnn.reference.sgd_step / adam_step (float64), schedules against
torch's formulas. Tolerance: parameters and gradients are O(1) (standard normal) and each
step is a handful of float32 operations per element, each rounding by at most half an
ulp of an O(1) value (<= 2.4e-7 near 4); over 5 steps an element can drift ~1e-6 from the
float64 reference in absolute terms, even where cancellation leaves it near zero:
rtol 1e-6, atol 1e-6."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import _core, optim
from fastnn import reference as R
from fastnn.nn import Parameter

SHAPES = [(64, 784), (64,), (3, 5, 7), (1,)]
STEPS = 5


def make_params(rng):
    params = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def run(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.05, momentum=0.9),
                                    dict(lr=0.05, momentum=0.9, nesterov=True),
                                    dict(lr=0.01, momentum=0.5, weight_decay=1e-2),
                                    dict(lr=0.01, momentum=0.5, dampening=0.3)])
def test_sgd_matches_reference(isa, rng, kwargs):
    params, grads = make_params(rng)
    ref = [p.data.astype(np.float64) for p in params]
    bufs = [np.zeros_like(r) for r in ref]
    opt = optim.SGD(params, **kwargs)
    run(opt, params, grads)
    for step, step_grads in enumerate(grads):
        for r, b, g in zip(ref, bufs, step_grads):
            R.sgd_step(r, g.astype(np.float64), b, first_step=step == 0, **kwargs)
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=1e-6, atol=1e-6)
    if kwargs.get("momentum"):
        for b, r in zip(opt.state_dict()["state"]["momentum_buffer"], bufs):
            np.testing.assert_allclose(b, r, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", [(optim.Adam, dict(lr=1e-3)),
                                        (optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99),
                                                          weight_decay=1e-2)),
                                        (optim.AdamW, dict(lr=1e-3)),
                                        (optim.AdamW, dict(lr=1e-2, weight_decay=0.1))])
def test_adam_matches_reference(isa, rng, cls, kwargs):
    params, grads = make_params(rng)
    opt = cls(params, **kwargs)
    ref = [p.data.astype(np.float64) for p in params]
    ms, vs = [np.zeros_like(r) for r in ref], [np.zeros_like(r) for r in ref]
    run(opt, params, grads)
    beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
    for step, step_grads in enumerate(grads, 1):
        for r, m, v, g in zip(ref, ms, vs, step_grads):
            R.adam_step(r, g.astype(np.float64), m, v, step=step, lr=kwargs["lr"], beta1=beta1,
                        beta2=beta2, weight_decay=opt.weight_decay, decoupled=cls is optim.AdamW)
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=1e-6, atol=1e-6)
    state = opt.state_dict()
    assert state["steps"] == STEPS
    for got, want in zip(state["state"]["exp_avg"] + state["state"]["exp_avg_sq"], ms + vs):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=1e-3, alpha=0.9, eps=1e-7),
                                    dict(momentum=0.9, weight_decay=1e-2),
                                    dict(centered=True, momentum=0.5)])
def test_rmsprop_matches_reference(isa, rng, kwargs):
    params, grads = make_params(rng)
    opt = optim.RMSprop(params, **kwargs)
    ref = [p.data.astype(np.float64) for p in params]
    state = [[np.zeros_like(r) for r in ref] for _ in range(3)]
    run(opt, params, grads)
    for step_grads in grads:
        for r, s, a, b, g in zip(ref, *state, step_grads):
            R.rmsprop_step(r, g.astype(np.float64), s, a, b, **kwargs)
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=1e-6, atol=1e-6)
    got = opt.state_dict()["state"]
    assert sorted(got) == sorted(["square_avg"] + ["grad_avg"] * bool(kwargs.get("centered")) +
                                 ["momentum_buffer"] * bool(kwargs.get("momentum")))
    for a, b in zip(got["square_avg"], state[0]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=1e-3, alpha=0.9, eps=1e-7),
                                    dict(momentum=0.9, weight_decay=1e-2, centered=True)])
def test_rmsprop_matches_torch(rng, kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    params, grads = make_params(rng)
    tparams = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
    steps_side_by_side(torch, optim.RMSprop(params, **kwargs), params,
                       torch.optim.RMSprop(tparams, **kwargs), tparams, grads)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def steps_side_by_side(torch, opt, params, topt, tparams, grads):
    """The same gradients into a fastnn and a torch optimizer, one step per list."""
    for step_grads in grads:
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad = g.copy()
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()


def test_optimizer_by_name_lists_the_known_ones(rng):
    params, _ = make_params(rng)
    assert type(optim.get("RMSprop", params)) is optim.RMSprop
    with pytest.raises(ValueError, match=r"'adam', 'adamw', 'rmsprop', 'sgd'.*'lion'"):
        optim.get("lion", params)


@pytest.mark.parametrize("cls,kernel", [(optim.SGD, "sgd_step"), (optim.Adam, "adam_step"),
                                        (optim.RMSprop, "rmsprop_step")])
def test_one_fused_kernel_call_per_step(rng, monkeypatch, cls, kernel):
    params, grads = make_params(rng)
    calls = []
    real = getattr(_core, kernel)

    def counting(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, kernel, counting)
    run(cls(params, lr=0.01), params, grads)
    assert calls == [len(SHAPES)] * STEPS


@pytest.mark.parametrize("cls,kwargs", [(optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (optim.AdamW, dict(lr=1e-2)),
                                        (optim.RMSprop, dict(lr=1e-2, momentum=0.9,
                                                             centered=True))])
def test_state_dict_round_trip_resumes_identically(rng, cls, kwargs):
    params, grads = make_params(rng)
    opt = cls(params, **kwargs)
    run(opt, params, grads[:2])
    state = opt.state_dict()
    twin_params = [Parameter(p.data.copy()) for p in params]
    twin = cls(twin_params, lr=123.0)
    twin.load_state_dict(state)
    assert twin.lr == kwargs["lr"] and twin.steps == 2
    run(opt, params, grads[2:])
    run(twin, twin_params, grads[2:])
    for a, b in zip(params, twin_params):
        assert np.array_equal(a.data, b.data)


def test_load_state_dict_rejects_mismatches(rng):
    params, _ = make_params(rng)
    state = optim.Adam(params).state_dict()
    with pytest.raises(ValueError, match="from a 'Adam' optimizer"):
        optim.SGD(params, lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="shapes"):
        optim.Adam(params[:1] + [Parameter(np.zeros(3))] + params[2:]).load_state_dict(state)


def test_zero_grad_and_bad_hyperparameters(rng):
    params, grads = make_params(rng)
    for p, g in zip(params, grads[0]):
        p.grad = g.copy()
    opt = optim.SGD(params, lr=0.1)
    opt.zero_grad()
    assert not any(np.any(p.grad) for p in params)
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        optim.Adam(params, lr=-1e-3)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.get("adagrad", params)
    assert isinstance(optim.get("AdamW", params), optim.AdamW)


def test_lr_zero_is_allowed_and_its_state_loads(rng):
    """torch allows lr=0, which CosineAnnealingLR with eta_min=0 reaches at T_max: the
    optimizer's state saved then must load back (it raised 'lr must be positive')."""
    params, grads = make_params(rng)
    opt = optim.Adam(params, lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=2)
    sched.step(), sched.step()
    assert opt.lr == 0.0
    before = [p.data.copy() for p in params]
    for p, g in zip(params, grads[0]):
        p.grad = g.copy()
    opt.step()  # lr 0: nothing moves
    assert all(np.array_equal(p.data, b) for p, b in zip(params, before))
    again = optim.Adam(params, lr=0.1)
    again.load_state_dict(opt.state_dict())
    assert again.lr == 0.0 and again.steps == 1
    assert optim.SGD(params, lr=0).lr == 0.0


def test_schedules_follow_torch_formulas(rng):
    params, _ = make_params(rng)
    opt = optim.SGD(params, lr=0.1)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        step.step()
        lrs.append(opt.lr)
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025])
    opt = optim.Adam(params, lr=0.01)
    cos = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.001)
    got = []
    for _ in range(4):
        cos.step()
        got.append(cos.get_last_lr()[0])
    want = [0.001 + 0.009 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)]
    assert got == pytest.approx(want)


def test_schedules_match_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    params, _ = make_params(rng)
    w = torch.nn.Parameter(torch.zeros(1))
    for ours, theirs in [(lambda o: optim.StepLR(o, 3, 0.3),
                          lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.3)),
                         (lambda o: optim.CosineAnnealingLR(o, 7, 1e-4),
                          lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 1e-4))]:
        opt, topt = optim.SGD(params, lr=0.1), torch.optim.SGD([w], lr=0.1)
        sched, tsched = ours(opt), theirs(topt)
        for _ in range(7):
            topt.step()
            sched.step()
            tsched.step()
            assert opt.lr == pytest.approx(tsched.get_last_lr()[0], rel=1e-9)


def test_adam_matches_torch_on_a_model(rng):
    """Same weights and gradients into torch.optim.Adam: same parameters after 3 steps."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    params, grads = make_params(rng)
    tparams = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
    steps_side_by_side(torch, optim.Adam(params, lr=1e-2, weight_decay=1e-3), params,
                       torch.optim.Adam(tparams, lr=1e-2, weight_decay=1e-3), tparams, grads[:3])
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls,kwargs", [(optim.Adam, dict(lr=1e-2)),
                                        (optim.AdamW, dict(lr=1e-2, betas=(0.8, 0.99))),
                                        (optim.SGD, dict(lr=0.1, momentum=0.9,
                                                         dampening=0.5))])
def test_a_parameter_unfrozen_later_counts_its_own_steps_as_in_torch(rng, cls, kwargs):
    """torch skips a parameter without a gradient (frozen), so its state['step'] counts
    only the steps it took: Adam's bias correction, and SGD's first momentum step (the
    buffer set to the gradient, undampened), start when it is unfrozen. The counts
    survive state_dict; a state saved without them takes every step as taken."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    params, _ = make_params(rng)
    tparams = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
    opt = cls(params, **kwargs)
    topt = getattr(torch.optim, cls.__name__)(tparams, **kwargs)
    params[0].requires_grad = params[2].requires_grad = False
    for step in range(12):
        if step in (4, 7):  # unfreeze one parameter, then the other
            params[0 if step == 4 else 2].requires_grad = True
        for p, tp in zip(params, tparams):
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
            tp.grad = torch.from_numpy(p.grad.copy()) if p.requires_grad else None
        opt.step()
        topt.step()
        if step == 9:  # resume from a state_dict mid-way
            state, opt = opt.state_dict(), cls(params, **kwargs)
            opt.load_state_dict(state)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    if cls is not optim.SGD:
        assert [int(a) for a in opt.state_dict()["state"]["step"]] == [8, 12, 5, 12]
        old = opt.state_dict()
        del old["state"]["step"]
        opt.load_state_dict(old)
        assert [int(a) for a in opt.state_dict()["state"]["step"]] == [12] * 4


def test_threads_do_not_change_the_step(rng, threads):
    results = []
    for n in (1, 2):
        threads(n)
        params, grads = make_params(np.random.default_rng(0))
        run(optim.Adam(params, lr=1e-2), params, grads)
        results.append([p.data.copy() for p in params])
    for a, b in zip(*results):
        assert np.array_equal(a, b)
    assert fastnn.get_num_threads() == 2


@pytest.mark.parametrize("cls, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, maximize=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, maximize=True)),
])
def test_maximize_and_amsgrad_follow_torch(rng, cls, kwargs):
    """torch's maximize (SGD, Adam, AdamW, RMSprop) and amsgrad (Adam, AdamW) were
    missing (TypeError). The trajectory is torch's, also after a state_dict round trip
    halfway (amsgrad's max_exp_avg_sq is saved)."""
    torch = pytest.importorskip("torch")
    params, grads = make_params(rng)
    theirs = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    opt = getattr(optim, cls)(params, **kwargs)
    t_opt = getattr(torch.optim, cls)(theirs, **kwargs)
    for i, step_grads in enumerate(grads):
        if i == len(grads) // 2:
            again = getattr(optim, cls)(params, lr=1.0)
            again.load_state_dict(opt.state_dict())
            opt = again
        for p, t, g in zip(params, theirs, step_grads):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        t_opt.step()
    for p, t in zip(params, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sgd_takes_torchs_positional_order(rng):
    """SGD(params, lr, momentum, dampening, weight_decay, nesterov), torch's order: fastnn's
    (lr, momentum, nesterov, weight_decay, dampening) read a dampening as nesterov."""
    params, _ = make_params(rng)
    opt = optim.SGD(params, 0.1, 0.9, 0.5, 0.01)
    assert (opt.momentum, opt.dampening, opt.weight_decay, opt.nesterov) == (0.9, 0.5, 0.01,
                                                                               False)
    assert optim.SGD(params, 0.1, 0.9, 0, 0, True).nesterov


GROUPED = [  # (fastnn's, torch's) optimizer over [params[:2], params[2:]], own options
    (lambda o, g: o.SGD([{"params": g[0]}, {"params": g[1], "lr": 0.3, "weight_decay": 0.1,
                                            "nesterov": True}], lr=0.1, momentum=0.9)),
    (lambda o, g: o.Adam([{"params": g[0], "betas": (0.8, 0.99), "lr": 0.02},
                          {"params": g[1], "weight_decay": 0.05, "maximize": True}], lr=0.01)),
    (lambda o, g: o.AdamW([{"params": g[0], "weight_decay": 0.0}, {"params": g[1]}], lr=0.01,
                          amsgrad=True)),
    (lambda o, g: o.RMSprop([{"params": g[0], "alpha": 0.9}, {"params": g[1], "eps": 1e-3}],
                            lr=0.01, momentum=0.5, centered=True)),
]


@pytest.mark.parametrize("make", GROUPED, ids=["sgd", "adam", "adamw-amsgrad", "rmsprop"])
def test_param_groups_as_torchs(rng, make, tmp_path):
    """torch's param groups, each with its own lr, weight decay, betas, ... (a lower lr for
    a pretrained backbone, no decay on biases): the same trajectory as torch's, through a
    per-group lr change by hand, a scheduler (per-group base lrs) and a resume from
    state_dicts. They raised ValueError unless every group repeated the optimizer's values."""
    torch = pytest.importorskip("torch")
    params, grads = make_params(rng)
    theirs = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    opt, t_opt = make(optim, [params[:2], params[2:]]), make(torch.optim, [theirs[:2], theirs[2:]])
    assert opt.params == params and opt.param_groups[1]["params"] == params[2:]
    for group, t_group in zip(opt.param_groups, t_opt.param_groups):
        assert {k: group[k] for k in group if k != "params"} == pytest.approx(
            {k: list(v) if isinstance(v, tuple) else v for k, v in t_group.items() if k in group
             and k != "params"})
    opt.param_groups[1]["lr"] *= 0.5  # by hand, before the scheduler takes its base lrs
    t_opt.param_groups[1]["lr"] *= 0.5
    sched = optim.StepLR(opt, 2, 0.5)
    t_sched = torch.optim.lr_scheduler.StepLR(t_opt, 2, 0.5)
    for i, step_grads in enumerate(grads):
        for p, t, g in zip(params, theirs, step_grads):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        if i == 2:  # resumed from the state_dicts into fresh objects
            state, sched_state = opt.state_dict(), sched.state_dict()
            opt = type(opt)(params)
            opt.load_state_dict(state)
            sched = optim.StepLR(opt, 2, 0.5)
            sched.load_state_dict(sched_state)
            assert opt.state_dict()["param_groups"] == state["param_groups"]
        opt.step()
        t_opt.step()
        sched.step()
        t_sched.step()
        assert sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12)
    for p, t in zip(params, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_param_groups_add_save_and_refuse(rng, tmp_path):
    """add_param_group (torch's: a head added later starts from fresh state); a model file
    keeps the groups; a group may not change what sizes the state; setting opt.lr sets
    every group's (Keras' callbacks and fastnn's fit set it). The parameters come as
    torch code passes them: generators (model[0].parameters())."""
    torch = pytest.importorskip("torch")
    model = fastnn.nn.Sequential(fastnn.nn.Linear(4, 3), fastnn.nn.Linear(3, 2))
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    t_model.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    first, head = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = optim.SGD(model[0].parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model[0].parameters(), lr=0.1, momentum=0.9)
    x, y = rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 2, 5)
    loss_fn = fastnn.losses.CrossEntropyLoss()
    for step in range(4):
        if step == 1:
            opt.add_param_group({"params": model[1].parameters(), "lr": 0.05,
                                 "weight_decay": 0.01})
            t_opt.add_param_group({"params": t_model[1].parameters(), "lr": 0.05,
                                   "weight_decay": 0.01})
        opt.zero_grad()
        t_opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        t_opt.step()
    for (k, v), t in zip(model.state_dict().items(), t_model.state_dict().values()):
        np.testing.assert_allclose(v, t.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    path = tmp_path / "m.fastnn"
    fastnn.save(model, path, optimizer=opt)
    loaded = fastnn.load(path).optimizer
    assert [dict(g) | {"params": len(g["params"])} for g in loaded.param_groups] == \
        [dict(g) | {"params": len(g["params"])} for g in opt.param_groups]
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    with pytest.raises(ValueError, match="param group 1 sets momentum=0.5 but the optimizer "
                                         "has momentum=0.9: momentum shapes"):
        optim.SGD([{"params": first}, {"params": head, "momentum": 0.5}], momentum=0.9)
    with pytest.raises(ValueError, match=r"param group 0 has an unknown option 'betas'; "
                                         r"known: \['dampening', 'lr'"):
        optim.SGD([{"params": first, "betas": (0.9, 0.9)}])
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        optim.Adam([{"params": first, "lr": -1.0}])
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        opt.param_groups[1]["lr"] = float("nan")
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['momentum'\] cannot be set"):
        opt.param_groups[1]["momentum"] = 0.5
    with pytest.raises(ValueError, match="is params.* again"):
        opt.add_param_group({"params": head})
    with pytest.raises(TypeError, match="add_param_group: group must be a dict with 'params'"):
        opt.add_param_group(head)
    state = opt.state_dict()
    state["param_groups"][0]["params"] = [1, 0]
    with pytest.raises(ValueError, match="must number this optimizer's 4 parameters in order"):
        optim.SGD(model.parameters()).load_state_dict(state)


def test_adam_decoupled_weight_decay_and_named_parameters_as_torchs(rng):
    """torch 2.13's Adam(decoupled_weight_decay=True) is AdamW, and torch's optimizers take
    model.named_parameters(): both raised TypeError."""
    torch = pytest.importorskip("torch")
    model = fastnn.nn.Linear(4, 3)
    t_model = torch.nn.Linear(4, 3)
    model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    opt = optim.Adam(model.named_parameters(), lr=0.05, weight_decay=0.3,
                     decoupled_weight_decay=True)
    t_opt = torch.optim.Adam(t_model.named_parameters(), lr=0.05, weight_decay=0.3,
                             decoupled_weight_decay=True)
    assert opt.params == list(model.parameters())
    for _ in range(4):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in opt.params]
        for p, t, g in zip(model.parameters(), t_model.parameters(), grads):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        t_opt.step()
    for p, t in zip(model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)
    again = optim.Adam(model.parameters())
    again.load_state_dict(opt.state_dict())
    assert again._decoupled and again.hyperparameters()["decoupled_weight_decay"]


def test_scheduler_state_dict_resumes_as_torchs(rng):
    """Schedulers had no state_dict / load_state_dict (torch's checkpointing) nor
    last_epoch: a scheduler resumed from a state continues the same lrs as torch's."""
    torch = pytest.importorskip("torch")
    params, _ = make_params(rng)
    w = torch.nn.Parameter(torch.zeros(1))
    opt, t_opt = optim.SGD(params, lr=0.1), torch.optim.SGD([w], lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=6, eta_min=0.01)
    t_sched = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, T_max=6, eta_min=0.01)
    for _ in range(3):
        t_opt.step()
        sched.step()
        t_sched.step()
    state, opt_state = sched.state_dict(), opt.state_dict()
    assert sched.last_epoch == t_sched.last_epoch == 3
    opt = optim.SGD(params, lr=0.5)
    opt.load_state_dict(opt_state)
    sched = optim.CosineAnnealingLR(opt, T_max=2)
    sched.load_state_dict(state)
    for _ in range(5):
        t_opt.step()
        sched.step()
        t_sched.step()
        assert opt.lr == pytest.approx(t_sched.get_last_lr()[0], rel=1e-9)
    with pytest.raises(ValueError, match="expected a dict with keys"):
        optim.StepLR(opt, 2).load_state_dict(state)


def keras_adam(w, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    """keras.optimizers.Adam / AdamW's update_step (Keras 3), in float64."""
    if decoupled:
        w -= w * wd * lr
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m += (g - m) * (1 - b1)
    v += (g * g - v) * (1 - b2)
    w -= m * alpha / (np.sqrt(v) + eps)


def keras_rmsprop(w, g, v, avg, buf, lr, rho, eps, momentum, centered):
    """keras.optimizers.RMSprop's update_step (Keras 3), in float64."""
    v[...] = rho * v + (1 - rho) * g * g
    if centered:
        avg[...] = rho * avg + (1 - rho) * g
        increment = lr * g / np.sqrt(v - avg * avg + eps)
    else:
        increment = lr * g / np.sqrt(v + eps)
    if momentum > 0:
        buf[...] = momentum * buf + increment
        w -= buf
    else:
        w -= increment


@pytest.mark.parametrize("make,keras_step", [
    (lambda p: optim.KerasAdam(p, 1e-2, (0.9, 0.999), 1e-7),
     lambda w, g, s, t: keras_adam(w, g, *s[:2], t, 1e-2, 0.9, 0.999, 1e-7, 0, False)),
    (lambda p: optim.KerasAdamW(p, 1e-2, (0.8, 0.99), 1e-3, 0.004),
     lambda w, g, s, t: keras_adam(w, g, *s[:2], t, 1e-2, 0.8, 0.99, 1e-3, 0.004, True)),
    (lambda p: optim.KerasRMSprop(p, 1e-2, alpha=0.9, eps=1e-7),
     lambda w, g, s, t: keras_rmsprop(w, g, *s, 1e-2, 0.9, 1e-7, 0.0, False)),
    (lambda p: optim.KerasRMSprop(p, 1e-2, alpha=0.9, eps=1e-3, momentum=0.5, centered=True),
     lambda w, g, s, t: keras_rmsprop(w, g, *s, 1e-2, 0.9, 1e-3, 0.5, True)),
], ids=["adam", "adamw", "rmsprop", "rmsprop-centered-momentum"])
def test_keras_optimizers_follow_keras_update_rules(isa, rng, make, keras_step):
    """fastnn.keras' Adam and RMSprop ran torch's rules (eps added after Adam's bias
    correction; RMSprop's eps outside the square root): with small gradients, as near a
    minimum, the steps differed by far more than float32 noise. Keras' own formulas."""
    params, grads = make_params(rng)
    grads = [[g * 1e-4 for g in step] for step in grads]  # where eps matters
    opt = make(params)
    ref = [p.data.astype(np.float64) for p in params]
    state = [[np.zeros_like(r) for _ in range(3)] for r in ref]
    run(opt, params, grads)
    for t, step_grads in enumerate(grads, 1):
        for r, s, g in zip(ref, state, step_grads):
            keras_step(r, g.astype(np.float64), s, t)
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.data, r, rtol=1e-5, atol=1e-6)
    again = make([Parameter(p.data.copy()) for p in params])  # the type survives a state_dict
    again.load_state_dict(opt.state_dict())
    assert type(again) is type(opt)


SCHEDULERS = [  # (name, args): fastnn.optim's and torch.optim.lr_scheduler's
    ("StepLR", (3, 0.5)), ("MultiStepLR", ([2, 5, 5, 9], 0.5)), ("ExponentialLR", (0.8,)),
    ("CosineAnnealingLR", (7, 1e-4)), ("LinearLR", (0.25, 0.9, 4)), ("LinearLR", ()),
    ("LambdaLR", (lambda e: 1 / (1 + e),)),
    ("LambdaLR", ([lambda e: 0.9 ** e, lambda e: min(1.0, (e + 1) / 3)],)),
]


@pytest.mark.parametrize("name,args", SCHEDULERS, ids=lambda v: v if isinstance(v, str) else "")
def test_schedulers_match_torchs_over_param_groups(rng, name, args):
    """Every scheduler's lrs, per param group, from construction (LinearLR and LambdaLR
    set epoch 0's there, as torch's do) through 12 epochs, resumed from its state_dict
    into a new instance at epoch 5."""
    torch = pytest.importorskip("torch")
    params, _ = make_params(rng)
    w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], lr=0.1)
    t_opt = torch.optim.SGD([{"params": w[:1]}, {"params": w[1:], "lr": 0.02}], lr=0.1)
    sched = getattr(optim, name)(opt, *args)
    t_sched = getattr(torch.optim.lr_scheduler, name)(t_opt, *args)
    assert sched.get_last_lr() == pytest.approx([g["lr"] for g in t_opt.param_groups])
    for epoch in range(1, 13):
        if epoch == 5:
            state = sched.state_dict()
            sched = getattr(optim, name)(opt, *args)
            sched.load_state_dict(state)
        t_opt.step()
        sched.step()
        t_sched.step()
        assert sched.last_epoch == t_sched.last_epoch == epoch
        assert sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-9), epoch


@pytest.mark.parametrize("kwargs", [{}, {"mode": "max", "threshold_mode": "abs", "threshold":
                                         0.05, "patience": 1, "cooldown": 2, "factor": 0.5},
                                    {"patience": 0, "min_lr": [0.05, 0.001], "eps": 0.01}])
def test_reduce_lr_on_plateau_matches_torchs(rng, kwargs):
    torch = pytest.importorskip("torch")
    params, _ = make_params(rng)
    w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], lr=0.1)
    t_opt = torch.optim.Adam([{"params": w[:1]}, {"params": w[1:], "lr": 0.02}], lr=0.1)
    sched = optim.ReduceLROnPlateau(opt, **kwargs)
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kwargs)
    metrics = rng.permutation(np.r_[np.linspace(1, 0.5, 8), np.full(12, 0.7), [np.nan]])
    for i, metric in enumerate(metrics.tolist() + [0.6] * 15):
        if i == 10:
            state = sched.state_dict()
            sched = optim.ReduceLROnPlateau(opt, **kwargs)
            sched.load_state_dict(state)
        sched.step(metric)
        t_sched.step(metric)
        assert sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12), i
        assert sched.num_bad_epochs == t_sched.num_bad_epochs
    assert sched.get_last_lr() != [0.1, 0.02]


def test_schedulers_in_fit_and_their_bad_arguments(rng):
    """As fit() callbacks: ReduceLROnPlateau follows val_loss (loss without validation);
    hostile arguments raise naming the scheduler."""
    model = fastnn.nn.Sequential(fastnn.nn.Linear(3, 2))
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    opt = optim.SGD(model.parameters(), lr=0.0)  # the loss stays put: a plateau
    plateau = optim.ReduceLROnPlateau(opt, patience=1)
    model.fit(x, y, optimizer=opt, epochs=4, verbose=0, callbacks=[plateau])
    assert plateau.last_epoch == 4 and plateau.num_bad_epochs == 1
    opt.lr = 0.1
    warm = optim.LinearLR(opt, 0.5, total_iters=2)
    assert opt.lr == 0.05  # epoch 0's, at construction
    for make, error, match in [
            (lambda: optim.MultiStepLR(opt, 3), ValueError, "MultiStepLR: milestones must be"),
            (lambda: optim.MultiStepLR(opt, [1, -2]), ValueError, "MultiStepLR: milestones"),
            (lambda: optim.MultiStepLR(opt, [1], gamma=0), ValueError, "MultiStepLR: gamma"),
            (lambda: optim.ExponentialLR(opt, float("nan")), ValueError, "ExponentialLR: gamma"),
            (lambda: optim.LinearLR(opt, 0.0), ValueError, "LinearLR: start_factor must lie"),
            (lambda: optim.LinearLR(opt, total_iters=0), ValueError, "LinearLR: total_iters"),
            (lambda: optim.LambdaLR(opt, 0.5), TypeError, "LambdaLR: lr_lambda must be a func"),
            (lambda: optim.LambdaLR(opt, [abs, abs]), TypeError, "a list of 1 functions"),
            (lambda: optim.LambdaLR(opt, lambda e: -1), ValueError,
             r"LambdaLR: the lr of epoch 0 is -0.05, not >= 0"),
            (lambda: optim.LambdaLR(opt, lambda e: "x"), TypeError, r"LambdaLR: lr_lambda\(0\)"),
            (lambda: optim.ReduceLROnPlateau(opt, factor=1.0), ValueError, "factor must lie"),
            (lambda: optim.ReduceLROnPlateau(opt, mode="up"), ValueError, "mode must be"),
            (lambda: optim.ReduceLROnPlateau(opt, patience=-1), ValueError, "patience must"),
            (lambda: optim.ReduceLROnPlateau(opt, min_lr=[0, 0]), ValueError, "a list of 1"),
            (lambda: plateau.step("x"), TypeError, "ReduceLROnPlateau.step: metrics must be"),
            (lambda: plateau.load_state_dict({**plateau.state_dict(), "best": float("nan")}),
             ValueError, "best must be a number"),
            (lambda: warm.load_state_dict({**warm.state_dict(), "start_factor": 2}), ValueError,
             "LinearLR: start_factor must lie")]:
        with pytest.raises(error, match=match):
            make()


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.05)),
                                          ("AdamW", dict(lr=0.05, amsgrad=True)),
                                          ("RMSprop", dict(lr=0.01, centered=True))])
def test_step_takes_torchs_closure(rng, name, kwargs):
    """torch's optimizer.step(closure) runs closure() (zero_grad, forward, loss,
    backward) before the update and returns its loss; fastnn's step() took no argument
    (TypeError). A closure that is not callable raises naming it."""
    torch = pytest.importorskip("torch")
    from fastnn import losses
    model, t_model = fastnn.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    t_opt = getattr(torch.optim, name)(t_model.parameters(), **kwargs)
    loss_fn, t_loss_fn = losses.MSELoss(), torch.nn.MSELoss()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        return loss

    def t_closure():
        t_opt.zero_grad()
        loss = t_loss_fn(t_model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        return loss

    for _ in range(3):
        np.testing.assert_allclose(opt.step(closure), t_opt.step(t_closure).item(), rtol=1e-5)
    for p, t in zip(model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert opt.step() is None
    with pytest.raises(TypeError, match=rf"{name}.step: closure must be a function"):
        opt.step(1.0)
