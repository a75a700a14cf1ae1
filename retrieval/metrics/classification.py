"""Classification metrics: top-k accuracy from logits (numpy; torch tensors are accepted)."""

from __future__ import annotations

import numpy as np


def topk_accuracy(logits, labels, ks=(1, 5)) -> dict[str, float]:
    """``{"top<k>": share of rows whose label is among the k highest logits}`` for each k.

    Ties are broken towards the lower class index (a stable sort), so a row of equal
    logits counts as correct at k only for labels 0..k-1. k larger than the number of
    classes counts every row as correct.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"expected (N, C) logits and N labels, got {logits.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("no samples to score")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1}")
    # rank of the true class = number of classes ranked before it by the stable descending order
    true = logits[np.arange(len(labels)), labels][:, None]
    cols = np.arange(logits.shape[1])[None, :]
    rank = ((logits > true) | ((logits == true) & (cols < labels[:, None]))).sum(axis=1)
    return {f"top{k}": float((rank < k).mean()) for k in ks}
