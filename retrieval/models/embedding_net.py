"""Embedding network: 4-stage backbone + global pooling + linear embedding (+ L2 norm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("avg", "max", "avgmax")


class EmbeddingNet(nn.Module):
    """``forward(x)`` returns the output (embedding, or logits when ``num_classes`` is set);
    ``forward_features(x)`` returns ``{"output", "embedding", "stages"}`` from one pass.

    ``embedding`` is the vector before any classifier; ``stages`` are the four stage maps.
    """

    def __init__(self, backbone, embedding_dim: int = 128, normalize: bool = True, pooling: str = "avg",
                 num_classes: int | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize
        self.embedding_dim = embedding_dim
        self.embed = nn.Linear(backbone.out_channels, embedding_dim)
        self.classifier = nn.Linear(embedding_dim, num_classes) if num_classes else None

    @property
    def stages(self):
        return self.backbone.stages

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        if self.pooling == "avg":
            return f.mean(dim=(2, 3))
        if self.pooling == "max":
            return f.amax(dim=(2, 3))
        return f.mean(dim=(2, 3)) + f.amax(dim=(2, 3))

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> dict:
        """``preact``: also ``"preact"``, the stage maps before their last ReLU (``Backbone.forward_maps``)."""
        maps = self.backbone.forward_maps(x, preact)
        return {**self._head(maps["stages"]), **maps}

    def _head(self, stages: list) -> dict:
        embedding = self.embed(self._pool(stages[-1]))
        if self.normalize:
            embedding = F.normalize(embedding, dim=1)
        output = self.classifier(embedding) if self.classifier is not None else embedding
        return {"output": output, "embedding": embedding, "stages": stages}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["output"]
