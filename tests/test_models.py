"""fastnn.models: every builder is seeded, has the documented shapes and trains."""
import numpy as np
import pytest

from fastnn import losses, models

# builder: (input shape per sample, parameter count)
BUILDERS = {"mlp": ((1, 28, 28), 55050), "cnn": ((1, 28, 28), 225034),
            "tinyvgg": ((1, 28, 28), 43754), "lenet5": ((1, 28, 28), 61706),
            "vgg_cifar": ((3, 32, 32), 1116970), "strided_cnn": ((1, 28, 28), 315146),
            "mlp_dropout": ((1, 28, 28), 669706), "resnet": ((1, 28, 28), 77754)}


def test_all_builders_listed():
    assert sorted(models.__all__) == sorted([*BUILDERS, "BasicBlock"])


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_shapes_and_seed(name):
    make = getattr(models, name)
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    shape, count = BUILDERS[name]
    assert a.input_shape == shape and a.output_shape((5,) + shape) == (5, 10)
    assert sum(p.data.size for p in a.parameters()) == count
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert np.array_equal(pa.data, pb.data)
        assert pa.data.ndim == 1 or not np.array_equal(pa.data, pc.data)  # zero biases


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_trains(name):
    model = getattr(models, name)(seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((4,) + model.input_shape, dtype=np.float32)
    y = rng.integers(0, 10, 4)
    loss_fn = losses.CrossEntropyLoss()
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    assert np.isfinite(loss)
    assert all(np.isfinite(p.grad).all() and np.abs(p.grad).sum() > 0
               for p in model.parameters())


def test_mlp_dropout_is_seeded_and_off_in_eval():
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    a, b = models.mlp_dropout(seed=1), models.mlp_dropout(seed=1)
    assert np.array_equal(a(x), b(x))  # the same masks from the same seed
    a.eval()
    assert np.array_equal(a(x), a(x)) and not np.array_equal(a(x), b(x))
