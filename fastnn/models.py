"""Reference models for 28x28 grey images (MNIST, Fashion-MNIST), the same layers as
the PyTorch examples they are benchmarked against. Weights are He-normal (N(0, 2/fan_in),
zero biases: the init for ReLU nets), drawn from one np.random.Generator seeded by
`seed`. In PyTorch runs of the accuracy tests' recipes (seeds 0-2) it scored about 1 point
above PyTorch's default init (kaiming-uniform, a=sqrt(5)) for the MLPs and the
Fashion-MNIST CNN, and the same for the MNIST CNN."""
import numpy as np

from .nn import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module,
                 ReLU, Sequential, register)

__all__ = ["mlp", "cnn", "resnet", "BasicBlock"]


def mlp(seed=None):
    """Flatten, Linear(784, 64), ReLU, Linear(64, 64), ReLU, Linear(64, 10)."""
    rng = np.random.default_rng(seed)
    return Sequential(Flatten(), Linear(784, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 64, seed=rng, init="he"), ReLU(),
                      Linear(64, 10, seed=rng, init="he"), input_shape=(1, 28, 28))


def cnn(seed=None):
    """Conv2d(1, 32, 3), ReLU, MaxPool2d(2), Conv2d(32, 64, 3), ReLU, MaxPool2d(2),
    Flatten, Linear(1600, 128), ReLU, Linear(128, 10)."""
    rng = np.random.default_rng(seed)
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
        rng = np.random.default_rng(seed)
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
    if len(channels) != len(blocks) or not channels:
        raise ValueError(f"resnet: channels and blocks must be non-empty and of one length, "
                         f"got {channels!r} and {blocks!r}")
    rng = np.random.default_rng(seed)
    layers = [Conv2d(in_channels, channels[0], 3, 1, 1, bias=False, seed=rng, init="he"),
              BatchNorm2d(channels[0]), ReLU()]
    width = channels[0]
    for stage, (c, n) in enumerate(zip(channels, blocks)):
        for b in range(n):
            layers.append(BasicBlock(width, c, 2 if stage > 0 and b == 0 else 1, seed=rng))
            width = c
    layers += [AdaptiveAvgPool2d(1), Flatten(), Linear(width, num_classes, seed=rng, init="he")]
    return Sequential(*layers, input_shape=(in_channels, 28, 28))
