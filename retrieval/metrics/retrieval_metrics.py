"""Retrieval metrics for deep metric learning: Recall@K, R-Precision and MAP@R.

Protocol (leave-one-out, as in the CUB / Cars196 / SOP literature): every item
queries all *other* items, by exact search (see ``retrieval.metrics.knn`` for the
neighbour order: by distance, ties broken by lower item index).

For a query, R is the number of *other* items with its label. Following Musgrave
et al., "A Metric Learning Reality Check" (ECCV 2020):

* Recall@K: share of queries with at least one same-label item among its K nearest.
* R-Precision: (number of same-label items among the R nearest) / R.
* MAP@R: (1/R) * sum_{i=1..R} P(i) * rel(i), with P(i) the precision of the first
  i neighbours and rel(i) = 1 iff the i-th neighbour has the query's label.

Queries whose label has no other item (R = 0) are excluded from every metric,
both numerator and denominator; if no query remains, ``ValueError`` is raised.

Inputs may be numpy arrays, torch tensors (on any device) or array-likes. This
module does not import torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from retrieval.metrics.knn import knn_leave_one_out, resolve_metric

DEFAULT_BATCH_SIZE = 4096
DEFAULT_KS = (1, 2, 4, 8)


def evaluate(embeddings, labels, ks: Iterable[int] | int = DEFAULT_KS, metric: str = "auto",
             batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """Recall@K for each K in ``ks``, ``"map@r"`` and ``"r_precision"`` from one search.

    ``embeddings``: (N, d) array; ``labels``: N class labels. ``metric``: ``"ip"``
    (inner product), ``"l2"`` (Euclidean), or ``"auto"`` (``"ip"`` when every row
    has unit L2 norm within 1e-3, else ``"l2"``). Each item queries all other items;
    its neighbours are ordered by distance, ties broken by lower item index. Queries
    whose label no other item has (R = 0) are left out of every metric. Every K must
    be < N. ``batch_size`` queries are searched at a time (memory, not results).
    Returns ``{"recall@1": ..., ..., "map@r": ..., "r_precision": ...}``, in [0, 1].
    """
    return _compute(embeddings, labels, _check_ks(ks, allow_empty=False), metric, batch_size,
                    with_r_metrics=True)


def recall_at_k(embeddings, labels, ks: Iterable[int] | int = DEFAULT_KS, metric: str = "auto",
                batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """``{"recall@K": value}`` for each K in ``ks``; see ``evaluate`` for the arguments."""
    return _compute(embeddings, labels, _check_ks(ks, allow_empty=False), metric, batch_size,
                    with_r_metrics=False)


def map_at_r(embeddings, labels, metric: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """MAP@R (Musgrave et al. 2020); see ``evaluate`` for the arguments."""
    return _compute(embeddings, labels, (), metric, batch_size, with_r_metrics=True)["map@r"]


def r_precision(embeddings, labels, metric: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """R-Precision (Musgrave et al. 2020); see ``evaluate`` for the arguments."""
    return _compute(embeddings, labels, (), metric, batch_size, with_r_metrics=True)["r_precision"]


# ----------------------------------------------------------------------------- core


def _compute(embeddings, labels, ks: tuple[int, ...], metric: str, batch_size: int,
             with_r_metrics: bool) -> dict[str, float]:
    """Validate, run one batched leave-one-out search and reduce each batch at once."""
    x = as_embeddings(embeddings)
    codes = as_label_codes(labels, x.shape[0])
    metric = resolve_metric(x, metric)
    batch_size = _check_batch_size(batch_size)
    n = x.shape[0]
    if ks and max(ks) >= n:
        raise ValueError(f"every K in ks must be < the number of items ({n}); got ks={list(ks)}")

    n_others = np.bincount(codes)[codes] - 1  # R of every item
    queries = np.flatnonzero(n_others > 0)
    if queries.size == 0:
        raise ValueError("no query has another item with its label (every class is a singleton); "
                         "retrieval metrics need at least one class with two or more items")
    k_fetch = max(max(ks, default=0), int(n_others.max()) if with_r_metrics else 0)

    totals = _Totals(ks, with_r_metrics)
    for ids, neighbours in knn_leave_one_out(x, queries, k_fetch, metric, batch_size):
        relevant = codes[neighbours] == codes[ids][:, None]
        totals.add(relevant, n_others[ids])
    return totals.result(len(queries))


class _Totals:
    """Per-batch reduction of neighbour relevance into recall hits and per-query AP / RP."""

    def __init__(self, ks: tuple[int, ...], with_r_metrics: bool):
        self.ks = ks
        self.with_r_metrics = with_r_metrics
        self.hits = np.zeros(len(ks), dtype=np.int64)
        self.ap: list[np.ndarray] = []  # per-query values, summed once at the end so that
        self.rp: list[np.ndarray] = []  # the result does not depend on the batch size

    def add(self, relevant: np.ndarray, r: np.ndarray) -> None:
        """``relevant``: (B, k) bool, neighbour i has the query's label; ``r``: (B,) R values."""
        if self.ks:
            self.hits += _recall_hits(relevant[:, :max(self.ks)], self.ks)
        if self.with_r_metrics:
            ap, rp = _ap_and_rp(relevant[:, :int(r.max())], r)
            self.ap.append(ap)
            self.rp.append(rp)

    def result(self, n_queries: int) -> dict[str, float]:
        out = {f"recall@{k}": float(h) / n_queries for k, h in zip(self.ks, self.hits)}
        if self.with_r_metrics:
            out["map@r"] = float(np.concatenate(self.ap).sum()) / n_queries
            out["r_precision"] = float(np.concatenate(self.rp).sum()) / n_queries
        return out


def _recall_hits(relevant: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """Number of queries with a relevant item in their first K neighbours, for each K."""
    found = relevant.any(axis=1)
    first = np.where(found, relevant.argmax(axis=1), relevant.shape[1])  # 0-based rank
    return np.array([np.count_nonzero(first < k) for k in ks], dtype=np.int64)


def _ap_and_rp(relevant: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP@R and R-Precision; ``relevant`` holds at least max(r) columns."""
    ranks = np.arange(1, relevant.shape[1] + 1)
    rel = relevant & (ranks <= r[:, None])
    hits_so_far = np.cumsum(rel, axis=1)
    ap = (hits_so_far / ranks * rel).sum(axis=1) / r
    rp = hits_so_far[:, -1] / r
    return ap, rp


# ----------------------------------------------------------------------------- inputs


def to_numpy(x) -> np.ndarray:
    """numpy view/copy of an array-like; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        try:
            return np.asarray(x)
        except TypeError:  # dtypes numpy lacks, e.g. bfloat16
            return np.asarray(x.float())
    return np.asarray(x)


def as_embeddings(embeddings) -> np.ndarray:
    """C-contiguous float32 (N, d) array with N >= 2, d >= 1 and only finite values."""
    x = to_numpy(embeddings)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"embeddings must be numeric; got dtype {x.dtype}")
    if np.iscomplexobj(x):
        raise ValueError("embeddings must be real-valued; got a complex array")
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (N items x d dimensions); got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"embeddings need at least 2 items and 1 dimension; got shape {x.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"embeddings must be finite, but {bad.size} row(s) hold NaN or inf "
                         f"(after casting to float32), first at row {bad[0]}")
    if not np.isfinite(np.einsum("ij,ij->i", x, x)).all():
        raise ValueError("embeddings are too large: squared norms overflow float32; "
                         "expected values small enough for float32 distances (rescale them)")
    return x


def as_label_codes(labels, n: int) -> np.ndarray:
    """Labels as int32 codes 0..C-1 (equal labels, equal codes); one label per item."""
    y = to_numpy(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be a 1-D array with one label per embedding row "
                         f"(length {n}); got shape {y.shape}")
    try:
        _, codes = np.unique(y, return_inverse=True)
    except TypeError as err:
        raise ValueError(f"labels must be comparable values (ints or strings); {err}") from None
    return codes.reshape(-1).astype(np.int32)


def _check_ks(ks, allow_empty: bool) -> tuple[int, ...]:
    """``ks`` as a tuple of positive ints (a single int is accepted)."""
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        ks = (ks,)
    try:
        ks = tuple(ks)
    except TypeError:
        raise ValueError(f"ks must be a positive int or a sequence of them; got {ks!r}") from None
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1]
    if bad:
        raise ValueError(f"ks must hold positive integers; got invalid value(s) {bad}")
    if not ks and not allow_empty:
        raise ValueError("ks must hold at least one K")
    return tuple(int(k) for k in ks)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    return int(batch_size)
