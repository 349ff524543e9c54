"""Model builders, each a seeded Sequential with its `input_shape`: the two reference
models for 28x28 grey images (MNIST, Fashion-MNIST), the same layers as the PyTorch
examples they are benchmarked against, and the architectures the benchmarks' group
compares with PyTorch and Keras (benchmarks/test_bench_architectures.py).

Weights are drawn from one np.random.Generator seeded by `seed` (Dropout masks too):
He-normal (N(0, 2/fan_in), zero biases: the init for ReLU nets), Glorot-uniform for
LeNet-5's tanh layers. In PyTorch runs of the accuracy tests' recipes (seeds 0-2)
He-normal scored about 1 point above PyTorch's default init (kaiming-uniform,
a=sqrt(5)) for the MLPs and the Fashion-MNIST CNN, and the same for the MNIST CNN."""
from ._core import as_rng, is_int
from .nn import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear,
                 MaxPool2d, Module, ReLU, Sequential, Tanh, register)

__all__ = ["mlp", "cnn", "resnet", "BasicBlock", "tinyvgg", "lenet5", "vgg_cifar",
           "strided_cnn", "mlp_dropout"]


def mlp(seed=None):
    """Flatten, Linear(784, 64), ReLU, Linear(64, 64), ReLU, Linear(64, 10)."""
    rng = as_rng(seed, "mlp")
    return Sequential(Flatten(), Linear(784, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


def cnn(seed=None):
    """Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2),
    Flatten, Linear(1600, 128), ReLU, Linear(128, 10)."""
    rng = as_rng(seed, "cnn")
    return Sequential(Conv2d(1, 32, 3, seed=rng, init="he"), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, seed=rng, init="he"), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(1600, 128, seed=rng, init="he"), ReLU(),
                      Linear(128, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


@register
class BasicBlock(Module):
    """torchvision's ResNet basic block, with its attribute names (so its state_dict keys
    are torchvision's): conv3x3(stride) -> bn1 -> relu -> conv3x3 -> bn2, plus the input
    (through a 1x1 conv and a BatchNorm, `downsample`, when the shape changes), -> relu."""

    def __init__(self, in_channels, out_channels, stride=1, *, seed=None):
        rng = as_rng(seed, "BasicBlock")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, seed=rng,
                            init="he")
        self.bn1 = BatchNorm2d(out_channels)
        self.relu = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, seed=rng,
                            init="he")
        self.bn2 = BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = Sequential(Conv2d(in_channels, out_channels, 1, stride,
                                                bias=False, seed=rng, init="he"),
                                         BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "stride": self.stride}


def resnet(channels=(16, 32, 64), blocks=(1, 1, 1), num_classes=10, in_channels=1, seed=None):
    """A small ResNet for 28x28 images: a 3x3 stem convolution (channels[0]) with
    BatchNorm and ReLU, then per stage `blocks[i]` BasicBlocks of channels[i] (each stage
    after the first halving the resolution: 28, 14, 7), global average pooling and a
    Linear head. A Sequential (children "0" the stem conv, "1" its BatchNorm, "2" ReLU,
    "3".. the blocks, then the pool, Flatten and the Linear head), saved and loaded whole.
    Weights He-normal, drawn from one generator seeded by `seed`."""
    if not (isinstance(channels, (tuple, list)) and isinstance(blocks, (tuple, list)) and
            channels and len(channels) == len(blocks) and
            all(is_int(v) and v > 0 for v in (*channels, *blocks))):  # blocks=2 failed in
        # len(), (-1,) built no stage silently, (1.5,) failed in range()
        raise ValueError(f"resnet: channels and blocks must be non-empty sequences of one "
                         f"length of positive ints, got {channels!r} and {blocks!r}")
    rng = as_rng(seed, "resnet")
    layers = [Conv2d(in_channels, channels[0], 3, 1, 1, bias=False, seed=rng, init="he"),
              BatchNorm2d(channels[0]), ReLU()]
    width = channels[0]
    for stage, (c, n) in enumerate(zip(channels, blocks)):
        for b in range(n):
            layers.append(BasicBlock(width, c, 2 if stage > 0 and b == 0 else 1, seed=rng))
            width = c
    layers += [AdaptiveAvgPool2d(1), Flatten(), Linear(width, num_classes, seed=rng, init="he")]
    return Sequential(*layers, input_shape=(in_channels, 28, 28))


def _vgg_block(c_in, c_out, rng):
    """Two 3x3 convolutions (padding 1, each followed by ReLU), then a 2x2 max pool."""
    return [Conv2d(c_in, c_out, 3, padding=1, seed=rng, init="he"), ReLU(),
            Conv2d(c_out, c_out, 3, padding=1, seed=rng, init="he"), ReLU(), MaxPool2d(2)]


def tinyvgg(seed=None, hidden=32):
    """TinyVGG (the CNN Explainer's net) on 1x28x28: two blocks of Conv2d(3x3, padding
    1), ReLU, Conv2d(3x3, padding 1), ReLU, MaxPool2d(2) with `hidden` channels, then
    Flatten and Linear(hidden * 7 * 7, 10)."""
    rng = as_rng(seed, "tinyvgg")
    return Sequential(*_vgg_block(1, hidden, rng), *_vgg_block(hidden, hidden, rng), Flatten(),
                      Linear(hidden * 7 * 7, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


def lenet5(seed=None):
    """LeNet-5 on 1x28x28 (padded to keep the 28x28 maps of its 32x32 original):
    Conv2d(1, 6, 5, padding=2), Tanh, AvgPool2d(2), Conv2d(6, 16, 5), Tanh, AvgPool2d(2),
    Flatten, Linear(400, 120), Tanh, Linear(120, 84), Tanh, Linear(84, 10)."""
    rng = as_rng(seed, "lenet5")
    return Sequential(Conv2d(1, 6, 5, padding=2, seed=rng, init="glorot"), Tanh(), AvgPool2d(2),
                      Conv2d(6, 16, 5, seed=rng, init="glorot"), Tanh(), AvgPool2d(2), Flatten(),
                      Linear(400, 120, seed=rng, init="glorot"), Tanh(),
                      Linear(120, 84, seed=rng, init="glorot"), Tanh(),
                      Linear(84, 10, seed=rng, init="glorot"), input_shape=(1, 28, 28))


def vgg_cifar(seed=None):
    """A VGG-style net for 3x32x32 images (CIFAR-10): blocks of 32 and 64 channels (each
    two 3x3 convolutions with padding 1 and ReLU, then MaxPool2d(2)), Flatten,
    Linear(4096, 256), ReLU, Linear(256, 10)."""
    rng = as_rng(seed, "vgg_cifar")
    return Sequential(*_vgg_block(3, 32, rng), *_vgg_block(32, 64, rng), Flatten(),
                      Linear(4096, 256, seed=rng, init="he"), ReLU(),
                      Linear(256, 10, seed=rng, init="he"), input_shape=(3, 32, 32))


def strided_cnn(seed=None):
    """Downsampling by stride-2 convolutions instead of pooling, on 1x28x28:
    Conv2d(1, 32, 3, stride=2), ReLU, Conv2d(32, 64, 3, stride=2), ReLU, Flatten,
    Linear(2304, 128), ReLU, Linear(128, 10) (no padding: 28 -> 13 -> 6)."""
    rng = as_rng(seed, "strided_cnn")
    return Sequential(Conv2d(1, 32, 3, stride=2, seed=rng, init="he"), ReLU(),
                      Conv2d(32, 64, 3, stride=2, seed=rng, init="he"), ReLU(), Flatten(),
                      Linear(2304, 128, seed=rng, init="he"), ReLU(),
                      Linear(128, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


def mlp_dropout(seed=None, p=0.2):
    """The 784-512-512-10 MLP of the Keras MNIST example: Flatten, Linear(784, 512),
    ReLU, Dropout(p), Linear(512, 512), ReLU, Dropout(p), Linear(512, 10)."""
    rng = as_rng(seed, "mlp_dropout")
    return Sequential(Flatten(), Linear(784, 512, seed=rng, init="he"), ReLU(),
                      Dropout(p, seed=rng), Linear(512, 512, seed=rng, init="he"), ReLU(),
                      Dropout(p, seed=rng),
                      Linear(512, 10, seed=rng, init="he"), input_shape=(1, 28, 28))
