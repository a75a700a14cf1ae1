"""The classification evaluator: top-k accuracy of a model's logits on a dataset."""

from __future__ import annotations

from retrieval.engine.embed import compute_embeddings
from retrieval.metrics.classification import topk_accuracy


def evaluate_classifier(model, dataset, cfg, desc: str = "eval") -> dict:
    """``{"top1": ..., "top5": ...}`` (one entry per k of ``cfg.ks``), as fractions.

    The trainer's evaluator hook: ``train(..., evaluator=evaluate_classifier)``.
    """
    logits, labels = compute_embeddings(model, dataset, num_workers=cfg.num_workers, device=cfg.device,
                                        progress=cfg.progress, desc=desc)
    return topk_accuracy(logits, labels, ks=cfg.ks)
