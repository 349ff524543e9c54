"""model.profile: the table's structure and FLOP counts (timings are not asserted)."""
import io

import numpy as np
import pytest

from fastnn import models, nn, optim, profiling


def small_cnn():
    return nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, seed=0), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 5, seed=1))


def batch(rng, n=2):
    return rng.standard_normal((n, 2, 7, 7), dtype=np.float32), rng.integers(0, 5, n)


def test_rows_flops_and_totals(rng):
    model = small_cnn()
    x, y = batch(rng)
    out = io.StringIO()
    rows = model.profile(x, y, repeat=2, file=out)
    # the steps Sequential runs: the ReLU after the pool, both fused with the conv
    assert [r["layer"] for r in rows] == ["0: Conv2d + MaxPool2d + ReLU", "3: Flatten",
                                          "4: Linear", "loss: CrossEntropyLoss",
                                          "optimizer: Adam", "total"]
    assert [r["output_shape"] for r in rows[:3]] == [(2, 3, 2, 2), (2, 12), (2, 5)]
    # Conv2d: 2*9 MACs per output, 2*3*4*4 outputs; the first layer with parameters
    # computes no input gradient, so forward + weight gradient only
    conv_macs = 2 * 9 * 2 * 3 * 4 * 4
    assert rows[0]["flops"] == 2 * conv_macs * 2
    # Linear: 12*5 MACs per sample; forward, weight and input gradients
    assert rows[2]["flops"] == 2 * (2 * 12 * 5) * 3
    assert all(r["flops"] == 0 and r["gflops"] is None and r["peak_pct"] is None
               for r in rows[1:2] + rows[3:5])
    total = rows[-1]
    assert total["flops"] == rows[0]["flops"] + rows[2]["flops"]
    assert total["flops"] == profiling.training_flops(model, x.shape)
    assert total["ms"] == pytest.approx(sum(r["ms"] for r in rows[:-1]))
    assert total["forward_ms"] == pytest.approx(sum(r["forward_ms"] or 0 for r in rows[:-1]))
    assert rows[-2]["forward_ms"] is None and rows[-2]["ms"] >= 0
    for r in rows[:3]:
        assert r["forward_ms"] >= 0 and r["ms"] >= r["forward_ms"]
    for r in (rows[0], rows[2], total):
        if r["ms"] > 0:
            assert r["gflops"] == pytest.approx(r["flops"] / r["ms"] / 1e6)
            assert r["peak_pct"] == pytest.approx(100 * r["gflops"] / profiling.peak_gflops())
    text = out.getvalue()
    assert all(r["layer"] in text for r in rows)


def test_layers_before_the_first_weights_have_no_backward(rng):
    model = nn.Sequential(nn.Flatten(), nn.Linear(98, 4, seed=0), nn.Tanh(), nn.Linear(4, 5))
    x, y = batch(rng, 3)
    rows = model.profile(x, y, repeat=1, file=io.StringIO())
    assert rows[0]["backward_ms"] is None and rows[2]["backward_ms"] is not None
    assert rows[1]["flops"] == 2 * 3 * 98 * 4 * 2
    assert rows[3]["flops"] == 2 * 3 * 4 * 5 * 3


def test_flop_count_of_the_mlp():
    # 54,912 MACs per sample (784*64 + 64*64 + 64*10), done 3 times (forward, weight and
    # input gradients) except the first layer's 50,176 input-gradient MACs
    flops = profiling.training_flops(models.mlp(0), (128, 1, 28, 28))
    assert flops == 128 * 2 * (3 * 54912 - 50176)


def test_profile_leaves_weights_mode_and_optimizer_unchanged(rng):
    model = small_cnn().eval()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, y = batch(rng)
    model.fit(x, y, optimizer=opt, epochs=1, batch_size=2, verbose=0)
    model.eval()
    weights = [p.data.copy() for p in model.parameters()]
    state = opt.state_dict()
    model.profile(x, y, optimizer=opt, repeat=2, file=io.StringIO())
    assert not model.training
    for p, w in zip(model.parameters(), weights):
        np.testing.assert_array_equal(p.data, w)
    assert opt.steps == state["steps"]
    for key, arrays in state["state"].items():
        for a, b in zip(opt.state_dict()["state"][key], arrays):
            np.testing.assert_array_equal(a, b)


def test_profile_with_another_loss_and_optimizer(rng):
    model = nn.Sequential(nn.Linear(3, 2, seed=0))
    x = rng.standard_normal((4, 3), dtype=np.float32)
    rows = model.profile(x, np.zeros((4, 2), np.float32), loss="mse", optimizer="sgd",
                         repeat=1, file=io.StringIO())
    assert rows[-3]["layer"] == "loss: MSELoss" and rows[-2]["layer"] == "optimizer: SGD"


@pytest.mark.parametrize("repeat", [0, -1, 1.5, True])
def test_bad_repeat(rng, repeat):
    with pytest.raises(ValueError, match="repeat must be a positive int"):
        small_cnn().profile(*batch(rng), repeat=repeat)


def test_bad_labels(rng):
    x, _ = batch(rng)
    with pytest.raises(ValueError, match="labels must lie in"):
        small_cnn().profile(x, np.array([0, 7]))


def test_layer_norm_and_smooth_activations_in_summary_and_profile(rng):
    """summary counts LayerNorm's weight and bias; profile times each new layer (no
    matrix products: no FLOPs) and leaves the weights as they were."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(98, 8, seed=0), nn.LayerNorm(8), nn.GELU(),
                          nn.SiLU(), nn.ELU(), nn.Linear(8, 5, seed=1), input_shape=(2, 7, 7))
    summary = io.StringIO()
    model.summary(file=summary)
    assert "LayerNorm" in summary.getvalue() and "16" in summary.getvalue()
    before = [p.data.copy() for p in model.parameters()]
    x, y = batch(rng, 4)
    rows = model.profile(x, y, repeat=2, file=io.StringIO())
    assert [r["layer"] for r in rows[2:6]] == ["2: LayerNorm", "3: GELU", "4: SiLU", "5: ELU"]
    assert all(r["flops"] == 0 and r["backward_ms"] >= 0 for r in rows[2:6])
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
