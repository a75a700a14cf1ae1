"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016; RepDistiller's ``wrn.py`` shapes).

WRN-d-k: a 3x3 stem of 16 channels, then three stages of pre-activation blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3) of widths 16k, 32k, 64k at strides 1, 2, 2 with
``n = (d - 4) / 6`` blocks each, then a final BN + ReLU:

| name | widths (stem, stage 1, 2, 3) | parameters (100 classes) |
|---|---|---|
| wrn_16_2 | 16, 32, 64, 128 | 0.70M |
| wrn_40_2 | 16, 32, 64, 128 | 2.26M |

The 4-stage interface exposes ``[stem output, block1, block2, relu(bn(block3))]``
(strides 1, 1, 2, 4): the last stage is the post-activation map the classifier pools.
Stages 2 and 3 are block outputs before the next block's BN-ReLU, as in the
pre-activation design.
"""

from __future__ import annotations

from torch import nn

from retrieval.models.backbone import Backbone
from retrieval.models.cifar_resnet import init_cifar_weights
from retrieval.models.registry import register_model


class WideBlock(nn.Module):
    """Pre-activation basic block; a 1x1 shortcut conv when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        # as in the reference: an identity shortcut adds x, a projection reads the activated input
        return out + (x if self.equal else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WRN has depth 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.block1 = self._stage(widths[0], widths[1], n, 1)
        self.block2 = self._stage(widths[1], widths[2], n, 2)
        self.block3 = self._stage(widths[2], widths[3], n, 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        init_cifar_weights(self)

    @staticmethod
    def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(WideBlock(cin, cout, stride), *(WideBlock(cout, cout, 1) for _ in range(blocks - 1)))

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn1(x))


def _wrn(depth: int, widen: int, pretrained: bool, in_channels: int) -> Backbone:
    if pretrained:
        raise ValueError("the CIFAR networks have no pretrained weights here; use pretrained=False")
    model = WideResNet(depth, widen, in_channels)
    # pre-activation blocks: a stage's map is already pre-ReLU, and the BN that precedes its ReLU is the next
    # block's bn1 (the final bn1 after block3), as mdistiller's get_bn_before_relu
    preact = [("conv1", "block1.0.bn1"), ("block1", "block2.0.bn1"), ("block2", "block3.0.bn1"), ("block3", "bn1")]
    return Backbone(model, ["conv1", "block1", "block2", "relu"], [16, 16 * widen, 32 * widen, 64 * widen],
                    [1, 1, 2, 4], preact=preact)


@register_model
def wrn_16_2(pretrained: bool = False, in_channels: int = 3):
    """WRN-16-2: widths 16, 32, 64, 128; 2 blocks per stage."""
    return _wrn(16, 2, pretrained, in_channels)


@register_model
def wrn_40_2(pretrained: bool = False, in_channels: int = 3):
    """WRN-40-2: widths 16, 32, 64, 128; 6 blocks per stage."""
    return _wrn(40, 2, pretrained, in_channels)
