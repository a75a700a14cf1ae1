"""The CIFAR ResNets of the KD literature (RepDistiller's ``resnet.py`` shapes).

A 3x3 stem (stride 1) and three stages of basic blocks at strides 1, 2, 2 with
``n = (depth - 2) / 6`` blocks each:

| name | depth | widths (stem, stage 1, 2, 3) | parameters (100 classes) |
|---|---|---|---|
| resnet20 | 20 | 16, 16, 32, 64 | 0.28M |
| resnet56 | 56 | 16, 16, 32, 64 | 0.86M |
| resnet8x4 | 8 | 32, 64, 128, 256 | 1.23M |
| resnet32x4 | 32 | 32, 64, 128, 256 | 7.43M |

These networks have a stem and three stages, so the 4-stage interface exposes
``[stem output, layer1, layer2, layer3]`` (strides 1, 1, 2, 4): AT on our stages 2-4 is
RepDistiller's AT on its feature maps 1-3, and the last stage is the map the classifier
pools. The classifier head is not part of the backbone (see ``ClassifierNet``).
"""

from __future__ import annotations

from torch import nn

from retrieval.models.backbone import Backbone
from retrieval.models.basic_block import BasicBlock
from retrieval.models.registry import register_model


def init_cifar_weights(model: nn.Module) -> None:
    """RepDistiller's initialisation: Kaiming-normal (fan_out) convolutions, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CifarResNet(nn.Module):
    """stem (conv3x3 + BN + ReLU) then ``layer1..layer3``; no pooling or classifier."""

    def __init__(self, depth: int, widths, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet of basic blocks has depth 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._layer(widths[0], widths[1], n, 1)
        self.layer2 = self._layer(widths[1], widths[2], n, 2)
        self.layer3 = self._layer(widths[2], widths[3], n, 2)
        init_cifar_weights(self)

    @staticmethod
    def _layer(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride), *(BasicBlock(cout, cout) for _ in range(blocks - 1)))

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


def _cifar_resnet(depth: int, widths, pretrained: bool, in_channels: int) -> Backbone:
    if pretrained:
        raise ValueError("the CIFAR networks have no pretrained weights here; use pretrained=False")
    model = CifarResNet(depth, widths, in_channels)
    last = (depth - 2) // 6 - 1  # the last block of each stage: its sum before the final ReLU, and its bn2
    preact = [("bn1", "bn1")] + [(f"layer{i}.{last}.add", f"layer{i}.{last}.bn2") for i in (1, 2, 3)]
    return Backbone(model, ["relu", "layer1", "layer2", "layer3"], list(widths), [1, 1, 2, 4], preact=preact)


@register_model
def resnet20(pretrained: bool = False, in_channels: int = 3):
    """CIFAR ResNet-20: widths 16, 16, 32, 64; 3 blocks per stage."""
    return _cifar_resnet(20, (16, 16, 32, 64), pretrained, in_channels)


@register_model
def resnet56(pretrained: bool = False, in_channels: int = 3):
    """CIFAR ResNet-56: widths 16, 16, 32, 64; 9 blocks per stage."""
    return _cifar_resnet(56, (16, 16, 32, 64), pretrained, in_channels)


@register_model
def resnet8x4(pretrained: bool = False, in_channels: int = 3):
    """CIFAR ResNet-8, 4x wide: widths 32, 64, 128, 256; 1 block per stage."""
    return _cifar_resnet(8, (32, 64, 128, 256), pretrained, in_channels)


@register_model
def resnet32x4(pretrained: bool = False, in_channels: int = 3):
    """CIFAR ResNet-32, 4x wide: widths 32, 64, 128, 256; 5 blocks per stage."""
    return _cifar_resnet(32, (32, 64, 128, 256), pretrained, in_channels)
