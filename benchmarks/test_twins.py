"""The benchmarks' PyTorch and Keras twins (benchmarks.twins) are the fastnn models:
same parameter count, and the same outputs in eval mode from the copied weights (Keras
on the NHWC copy of the input, in its own process like its benchmarks)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fastnn import models

from . import keras_runner
from .twins import inputs, torch_twin

NAMES = ["mlp", "cnn", "tinyvgg", "lenet5", "vgg_cifar", "strided_cnn", "mlp_dropout"]


def fastnn_outputs(name, batch=4):
    model = getattr(models, name)(seed=0).eval()
    x, _ = inputs(model, batch, seed=1)
    return model, x, model(x).copy()


@pytest.mark.parametrize("name", NAMES)
def test_torch_twin(name):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    model, x, expected = fastnn_outputs(name)
    twin = torch_twin(model).eval()
    assert (sum(p.numel() for p in twin.parameters()) ==
            sum(p.data.size for p in model.parameters()))
    with torch.no_grad():
        out = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_torch_twin_keeps_every_torch_argument():
    """torch_twin dropped groups, padding_mode, ceil_mode, count_include_pad=False,
    Softmax's dim and Flatten's dims (another network, silently, or a shape error) and
    had no BatchNorm, AdaptiveAvgPool2d, LogSoftmax or Identity (KeyError)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    from fastnn import nn
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, groups=2, padding_mode="reflect"), nn.BatchNorm2d(4),
        nn.LeakyReLU(0.2), nn.MaxPool2d(2, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(4, 4, 2, padding="same", dilation=2, bias=False), nn.Softmax(dim=1),
        nn.AdaptiveAvgPool2d((None, 2)), nn.Flatten(2), nn.Identity(), nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(4 * 4 * 2, 5), nn.BatchNorm1d(5, momentum=None),
        nn.Tanh(), nn.LogSoftmax(), input_shape=(2, 11, 11))
    x = np.random.default_rng(0).standard_normal((6, 2, 11, 11)).astype(np.float32)
    for _ in range(2):  # running statistics off their defaults
        model(x)
    model.eval()
    twin = torch_twin(model).eval()
    with torch.no_grad():
        out = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, model(x), rtol=1e-5, atol=1e-6)


def test_torch_twin_maps_layer_norm_and_smooth_activations():
    """GELU (approximate), SiLU, ELU (alpha) and LayerNorm (normalized_shape, eps,
    elementwise_affine, bias) map from config() to torch.nn's classes with the weights."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    from fastnn import nn
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm((3, 8), eps=1e-3), nn.GELU("tanh"),
                          nn.Linear(8, 8), nn.LayerNorm(8, bias=False), nn.SiLU(),
                          nn.Linear(8, 6), nn.ELU(0.4), nn.LayerNorm(6, elementwise_affine=False),
                          nn.GELU(), nn.Flatten(), nn.Linear(18, 3), input_shape=(3, 6))
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    twin = torch_twin(model).eval()
    new = (nn.LayerNorm, nn.GELU, nn.SiLU, nn.ELU)  # whose reprs are torch's
    assert [repr(t) for t, m in zip(twin, model.layers) if isinstance(m, new)] == \
        [repr(m) for m in model.layers if isinstance(m, new)]
    x = rng.standard_normal((5, 3, 6)).astype(np.float32) * 3
    with torch.no_grad():
        out = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, model(x), rtol=1e-5, atol=1e-5)


KERAS_CHECK = """
import json, sys
import keras
from fastnn import models
from benchmarks.twins import inputs, keras_twin, nhwc
result = {}
for name in sys.argv[1:]:
    model = models.__dict__[name](seed=0)
    twin = keras_twin(model, keras)
    x, _ = inputs(model, 4, seed=1)
    result[name] = {"params": twin.count_params(),
                    "out": keras.ops.convert_to_numpy(twin(nhwc(x), training=False)).tolist()}
print(json.dumps(result))
"""


def test_keras_twins():
    if keras_runner.missing():
        pytest.skip(keras_runner.missing())
    proc = subprocess.run([sys.executable, "-c", KERAS_CHECK, *NAMES], capture_output=True,
                          text=True, cwd=keras_runner.ROOT,
                          env=dict(keras_runner.os.environ, KERAS_BACKEND="tensorflow",
                                   TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    for name in NAMES:
        model, _, expected = fastnn_outputs(name)
        assert result[name]["params"] == sum(p.data.size for p in model.parameters()), name
        np.testing.assert_allclose(np.array(result[name]["out"], np.float32), expected,
                                   rtol=1e-4, atol=1e-5, err_msg=name)
