"""The metric losses and miners (pytorch-metric-learning) that train the embedding networks: the retrieval
task loss. The KD methods' own losses are in ``retrieval.methods.losses``."""

from retrieval.metric_losses.metric_loss import LOSSES, MINERS, MetricLoss, build_task_loss

__all__ = ["build_task_loss", "MetricLoss", "LOSSES", "MINERS"]
