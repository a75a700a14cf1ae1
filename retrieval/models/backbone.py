"""A 4-stage backbone: any module plus the names of its stage outputs.

Stage features are captured with torchvision's ``create_feature_extractor`` (an FX
graph rewrite that returns the named intermediate nodes), so no model is edited to
leak features and every backbone, torchvision or ours, is read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor


@dataclass(frozen=True)
class StageInfo:
    """What a method needs to build connectors without running a batch (cf. timm's feature_info)."""

    name: str
    channels: int
    stride: int


class Backbone(nn.Module):
    """``forward(x) -> [f1, f2, f3, f4]``: the four stage feature maps of ``model``."""

    def __init__(self, model: nn.Module, stage_nodes: list[str], channels: list[int], strides: list[int]):
        super().__init__()
        if not (len(stage_nodes) == len(channels) == len(strides) == 4):
            raise ValueError("a backbone declares exactly 4 stages (nodes, channels, strides)")
        self.stages = [StageInfo(n, c, s) for n, c, s in zip(stage_nodes, channels, strides)]
        self.body = create_feature_extractor(model, return_nodes={n: str(i) for i, n in enumerate(stage_nodes)})

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(x)
        return [out[str(i)] for i in range(4)]
