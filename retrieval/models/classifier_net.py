"""Classification network: 4-stage backbone + global average pooling + linear classifier.

It has the interface of ``EmbeddingNet``, so every KD method works on it unchanged:
``forward_features(x) -> {"output": logits, "embedding": pooled last stage, "stages": [f1..f4]}``,
``forward(x) -> logits``, and the attributes ``stages`` and ``embedding_dim``. The
``embedding`` is the pooled penultimate feature (what RepDistiller's RKD and CRD read).
"""

from __future__ import annotations

import torch
from torch import nn

from retrieval.models.registry import create_backbone


class ClassifierNet(nn.Module):
    def __init__(self, backbone, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.backbone = backbone
        self.embedding_dim = backbone.out_channels
        self.num_classes = num_classes
        self.fc = nn.Linear(self.embedding_dim, num_classes)

    @property
    def stages(self):
        return self.backbone.stages

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> dict:
        """``preact``: also ``"preact"``, the stage maps before their last ReLU (``Backbone.forward_maps``)."""
        maps = self.backbone.forward_maps(x, preact)
        return {**self._head(maps["stages"]), **maps}

    def _head(self, stages: list) -> dict:
        embedding = stages[-1].mean(dim=(2, 3))
        return {"output": self.fc(embedding), "embedding": embedding, "stages": stages}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["output"]


def create_classifier(name: str, num_classes: int, pretrained: bool = False, **kwargs) -> ClassifierNet:
    """``ClassifierNet`` on the registered backbone ``name`` (see ``list_models()``)."""
    return ClassifierNet(create_backbone(name, pretrained=pretrained, **kwargs), num_classes)
