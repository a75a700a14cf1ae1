"""Task losses (pytorch-metric-learning) for the embedding networks."""

from retrieval.losses.metric_loss import LOSSES, MINERS, MetricLoss, build_task_loss

__all__ = ["build_task_loss", "MetricLoss", "LOSSES", "MINERS"]
