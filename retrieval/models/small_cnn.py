"""CPU-sized residual backbones with the same 4-stage interface as the torchvision ResNets."""

from __future__ import annotations

from torch import nn

from retrieval.models.backbone import Backbone
from retrieval.models.basic_block import BasicBlock
from retrieval.models.registry import register_model


OUTPUT_STRIDES = {16: (2, 2, 2, 2), 8: (2, 2, 2, 1)}
"""``output_stride`` (the stride of stage 4, as timm's ``create_model(..., output_stride=)``) -> stage strides."""


class SmallResNet(nn.Module):
    """stem (3x3, stride 1) + layer1..layer4 of one basic block each, strides 2, 2, 2, 2
    (``output_stride=16``) or 2, 2, 2, 1 (``output_stride=8``).

    On a 32x32 input the stages are 16x16, 8x8, 4x4 and 2x2 (output stride 16) or
    16x16, 8x8, 4x4 and 4x4 (output stride 8).
    """

    def __init__(self, widths=(16, 32, 64, 128), in_channels: int = 3, output_stride: int = 16):
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride {output_stride!r}: expected one of {sorted(OUTPUT_STRIDES)}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        cins = (widths[0],) + tuple(widths[:3])
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            BasicBlock(ci, co, s) for ci, co, s in zip(cins, widths, OUTPUT_STRIDES[output_stride]))

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def _small(widths, in_channels: int = 3, pretrained: bool = False, output_stride: int = 16):
    if pretrained:
        raise ValueError("small CPU backbones have no pretrained weights; use pretrained=False")
    model = SmallResNet(widths, in_channels, output_stride)
    strides = [2, 4, 8, output_stride]
    layers = ["layer1", "layer2", "layer3", "layer4"]
    return Backbone(model, layers, list(widths), strides, preact=[(f"{n}.add", f"{n}.bn2") for n in layers])


@register_model
def small_cnn_xs(pretrained: bool = False, in_channels: int = 3, output_stride: int = 16):
    """Student-sized: widths 8, 16, 32, 64."""
    return _small((8, 16, 32, 64), in_channels, pretrained, output_stride)


@register_model
def small_cnn_s(pretrained: bool = False, in_channels: int = 3, output_stride: int = 16):
    """Widths 16, 32, 64, 128."""
    return _small((16, 32, 64, 128), in_channels, pretrained, output_stride)


@register_model
def small_cnn_m(pretrained: bool = False, in_channels: int = 3, output_stride: int = 16):
    """Teacher-sized: widths 32, 64, 128, 256."""
    return _small((32, 64, 128, 256), in_channels, pretrained, output_stride)
