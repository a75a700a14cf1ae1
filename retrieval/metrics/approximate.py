"""Leave-one-out Recall@K with an approximate FAISS index, for galleries too large for exact search.

``approximate_recall_at_k(embeddings, labels, ks, index="ivf" | "hnsw")`` follows the
protocol of ``retrieval.metrics.evaluate`` (every item queries all other items, the
query removed by its id, queries whose label no other item has left out) but finds
the neighbours with

* ``ivf``: ``IndexIVFFlat`` with ``nlist`` cells (default ~4·sqrt(N)), trained on up to
  ``nlist * 64`` items, searching ``nprobe`` cells (default 16);
* ``hnsw``: ``IndexHNSWFlat`` with ``hnsw_m`` links per node (default 32) and
  ``ef_search`` (default 128).

Both can miss true neighbours, so their Recall@K can be lower than the exact one;
report it beside the exact value (``recall_gap``), never instead of it. Ties are
broken as FAISS returns them (approximate search has no exact order to keep).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import faiss
import numpy as np

from retrieval.metrics.knn import resolve_metric
from retrieval.metrics.retrieval_metrics import (DEFAULT_BATCH_SIZE, DEFAULT_KS, _check_ks, _recall_hits,
                                                 as_embeddings, as_label_codes)

INDEXES = ("ivf", "hnsw")


def build_approximate_index(x: np.ndarray, metric: str, index: str, nlist: int | None = None, nprobe: int = 16,
                            hnsw_m: int = 32, ef_search: int = 128, seed: int = 0):
    """An IVF-flat or HNSW-flat FAISS index over the float32 rows of ``x`` (``metric`` "ip" or "l2")."""
    if index not in INDEXES:
        raise ValueError(f"unknown approximate index {index!r}; expected one of {list(INDEXES)}")
    n, d = x.shape
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if index == "hnsw":
        idx = faiss.IndexHNSWFlat(d, hnsw_m, faiss_metric)
        idx.hnsw.efSearch = ef_search
        idx.add(x)
        return idx
    nlist = nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))  # faiss wants >= 39 training points per cell
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    idx = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
    sample = np.random.default_rng(seed).choice(n, size=min(n, nlist * 64), replace=False)
    idx.train(x[np.sort(sample)])
    idx.add(x)
    idx.nprobe = min(nprobe, nlist)
    return idx


def approximate_recall_at_k(embeddings, labels, ks: Iterable[int] | int = DEFAULT_KS, index="ivf",
                            metric: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, query_ids=None,
                            **index_options) -> dict[str, float]:
    """``{"recall@K": value}`` under the leave-one-out protocol, neighbours from an approximate index.

    ``index``: "ivf" or "hnsw" (built here), or a FAISS index already built over exactly
    these embeddings, in order. ``query_ids`` (optional) restricts the queries to a subset
    of the items (the gallery is always every item), to estimate the recall of a very
    large set from a sample. ``index_options`` go to ``build_approximate_index`` (nlist,
    nprobe, hnsw_m, ef_search).
    """
    x = as_embeddings(embeddings)
    codes = as_label_codes(labels, x.shape[0])
    ks = _check_ks(ks, allow_empty=False)
    n = x.shape[0]
    if max(ks) >= n:
        raise ValueError(f"every K in ks must be < the number of items ({n}); got ks={list(ks)}")
    metric = resolve_metric(x, metric)
    n_others = np.bincount(codes)[codes] - 1
    candidates = np.arange(n) if query_ids is None else np.unique(np.asarray(query_ids, dtype=np.int64))
    queries = candidates[n_others[candidates] > 0]
    if queries.size == 0:
        raise ValueError("no query has another item with its label; retrieval metrics need a class with two items")
    if isinstance(index, str):
        idx = build_approximate_index(x, metric, index, **index_options)
    elif index.ntotal != n:
        raise ValueError(f"the given index holds {index.ntotal} vectors; expected the {n} embeddings")
    else:
        idx = index
    k = max(ks)
    hits = np.zeros(len(ks), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        ids = queries[start:start + batch_size]
        _, nbr = idx.search(x[ids], k + 1)
        hits += _recall_hits(_relevant_without_self(nbr, ids, codes, k), ks)
    return {f"recall@{kk}": float(h) / len(queries) for kk, h in zip(ks, hits)}


def _relevant_without_self(nbr: np.ndarray, ids: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(B, k) bool: the k first returned items other than the query have its label.

    The query is dropped by id (or the last item when it was not returned); missing
    results (id -1, when a probe finds fewer than k + 1 items) count as not relevant.
    """
    drop = nbr == ids[:, None]
    drop[~drop.any(axis=1), -1] = True
    kept = nbr[~drop].reshape(len(ids), k)
    return (kept >= 0) & (codes[np.maximum(kept, 0)] == codes[ids][:, None])
