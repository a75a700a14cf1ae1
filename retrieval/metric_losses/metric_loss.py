"""Metric-learning task losses from pytorch-metric-learning, built by name."""

from __future__ import annotations

from pytorch_metric_learning import losses, miners
from torch import nn

from retrieval.engine import distributed

LOSSES = {
    "triplet": lambda margin=0.2, **kw: losses.TripletMarginLoss(margin=margin, **kw),
    "multi_similarity": lambda alpha=2.0, beta=50.0, base=0.5, **kw: losses.MultiSimilarityLoss(alpha, beta, base, **kw),
    "contrastive": lambda pos_margin=0.0, neg_margin=0.5, **kw: losses.ContrastiveLoss(pos_margin, neg_margin, **kw),
    "margin": lambda margin=0.2, **kw: losses.MarginLoss(margin=margin, **kw),
}

MINERS = {
    "none": lambda **kw: None,
    "distance_weighted": lambda cutoff=0.5, nonzero_loss_cutoff=1.4, **kw: miners.DistanceWeightedMiner(
        cutoff, nonzero_loss_cutoff, **kw),
    "multi_similarity": lambda epsilon=0.1, **kw: miners.MultiSimilarityMiner(epsilon=epsilon, **kw),
    "triplet_semihard": lambda margin=0.2, **kw: miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", **kw),
    "batch_hard": lambda **kw: miners.BatchHardMiner(**kw),
}


class MetricLoss(nn.Module):
    """``loss(embeddings, labels)``, optionally with a miner choosing the pairs or triplets."""

    def __init__(self, loss: nn.Module, miner: nn.Module | None = None):
        super().__init__()
        self.loss, self.miner = loss, miner

    def forward(self, embeddings, labels):
        if distributed.is_distributed():  # under torchrun: mine and score the global batch, in rank order
            embeddings, labels = distributed.gather_with_grad(embeddings), distributed.gather(labels)
        pairs = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, pairs)


def build_task_loss(name: str = "triplet", miner: str = "none", loss_options: dict | None = None,
                    miner_options: dict | None = None) -> MetricLoss:
    """e.g. ``build_task_loss("triplet", miner="distance_weighted")``."""
    if name not in LOSSES:
        raise ValueError(f"unknown metric loss {name!r}; expected one of {sorted(LOSSES)}")
    if miner not in MINERS:
        raise ValueError(f"unknown miner {miner!r}; expected one of {sorted(MINERS)}")
    return MetricLoss(LOSSES[name](**(loss_options or {})), MINERS[miner](**(miner_options or {})))
