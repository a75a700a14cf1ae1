"""Retrieval evaluation: exact leave-one-out Recall@K, MAP@R and R-Precision (and, for the
classification track, top-k accuracy).

``evaluate(embeddings, labels, ks)`` computes all of them from one batched FAISS
search. This package does not import torch (tensors are still accepted).
"""

from retrieval.metrics.classification import topk_accuracy
from retrieval.metrics.knn import knn_leave_one_out, resolve_metric
from retrieval.metrics.retrieval_metrics import (DEFAULT_BATCH_SIZE, evaluate, map_at_r, r_precision,
                                                 recall_at_k)

__all__ = ["evaluate", "recall_at_k", "map_at_r", "r_precision", "knn_leave_one_out",
           "resolve_metric", "DEFAULT_BATCH_SIZE", "topk_accuracy"]
