"""Exact leave-one-out k-nearest-neighbour search, batched, with a deterministic tie rule.

Every query is one of the indexed items and is matched against all *other* items.
One FAISS flat index (``IndexFlatIP`` or ``IndexFlatL2``; on a GPU when FAISS sees
one) holds every item; queries are searched in batches, so memory is
O(batch_size * k + N * d).

Neighbour order
    Items are ranked by distance (ascending squared L2, or descending inner
    product); items at equal distance are ranked by lower item index. The query
    itself is removed by its id, wherever the search returned it, never by its
    position, so an exact duplicate of the query is kept as a neighbour.

How the order is made exact
    FAISS returns the nearest items but breaks ties arbitrarily. For each query we
    fetch ``k + 2`` items (``k`` neighbours, one slot for the query itself, one
    sentinel), re-sort rows that contain equal distances by (distance, index),
    remove the query (or, when it was not returned, the last item), and compare
    the distance of the k-th neighbour with the sentinel's. If they are equal, an
    item that was not fetched could share that distance with a lower index, so
    that query's row is recomputed exactly with numpy over all items, using the
    formula FAISS uses. This is rare except for data with many exact duplicates.

Distances are float32 values, as FAISS computes them; ties are equal float32 values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import faiss
import numpy as np

from retrieval.numerics import pin_faiss

pin_faiss(faiss)  # AVX2 distance kernels on every x86 machine (retrieval.numerics)

METRICS = ("auto", "ip", "l2")
UNIT_NORM_TOLERANCE = 1e-3
GPU_MAX_K = 2048  # largest k that FAISS GPU flat indexes accept
_EXACT_BLOCK_ELEMENTS = 1 << 23  # distance values per block when recomputing rows (32 MB)
_GPU_ALLOWED = [True]


def gpu_available() -> bool:
    """Whether FAISS was built with GPU support and sees a GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@contextlib.contextmanager
def cpu_search():
    """Within the block, searches stay on the CPU even when FAISS sees a GPU (to compare the two)."""
    _GPU_ALLOWED.append(False)
    try:
        yield
    finally:
        _GPU_ALLOWED.pop()


def resolve_metric(x: np.ndarray, metric: str) -> str:
    """Return ``"ip"`` or ``"l2"``; ``"auto"`` picks ``"ip"`` iff every row has unit L2 norm."""
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(repr(m) for m in METRICS)}; got {metric!r}")
    metric = metric.lower()
    if metric != "auto":
        return metric
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    return "ip" if bool(np.all(np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE)) else "l2"


def fetch_count(k: int, n: int) -> int:
    """Number of items requested from FAISS per query to get ``k`` exact neighbours."""
    return min(k + 2, n)


def knn_leave_one_out(x: np.ndarray, query_ids: np.ndarray, k: int, metric: str,
                      batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(ids, neighbours)`` per batch of ``query_ids``.

    ``x`` is a C-contiguous float32 (N, d) array and ``metric`` is ``"ip"`` or ``"l2"``.
    ``neighbours[i]`` holds the ``k`` (< N) nearest *other* items of ``ids[i]``,
    nearest first, ties broken by lower index (see the module docstring).
    """
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} items; got {k}")
    n_fetch = fetch_count(k, n)
    index, _resources = _build_index(x, metric, n_fetch)
    sq_norms = np.einsum("ij,ij->i", x, x) if metric == "l2" else None
    for start in range(0, len(query_ids), batch_size):
        ids = np.asarray(query_ids[start:start + batch_size], dtype=np.int64)
        dist, nbr = index.search(x[ids], n_fetch)
        yield ids, _exact_neighbours(x, sq_norms, ids, dist, nbr, k, metric)


def _build_index(x: np.ndarray, metric: str, n_fetch: int):
    """Flat index over ``x``; moved to GPU 0 when FAISS has a GPU and ``n_fetch`` fits.

    Returns ``(index, resources)``; keep ``resources`` alive as long as the index.
    """
    index = faiss.IndexFlatIP(x.shape[1]) if metric == "ip" else faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    if n_fetch <= GPU_MAX_K and _GPU_ALLOWED[-1] and gpu_available():
        resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(resources, 0, index), resources
    return index, None


def _exact_neighbours(x, sq_norms, ids, dist, nbr, k, metric) -> np.ndarray:
    """Turn one batch of raw FAISS results into exact, self-excluded neighbour rows."""
    _sort_ties(dist, nbr, x.shape[0])
    keep = _without_self(nbr, ids)
    neighbours = nbr[keep].reshape(len(ids), -1)
    if nbr.shape[1] < x.shape[0]:  # some items were not fetched; k + 1 kept, last = sentinel
        suspect = _ties_across_cutoff(dist, keep, k)
        if suspect.size:
            neighbours[suspect, :k] = _exact_rows(x, sq_norms, ids[suspect], k, metric)
    return neighbours[:, :k]


def _sort_ties(dist: np.ndarray, nbr: np.ndarray, n_items: int) -> None:
    """In place, order the items at equal distance in each row by index.

    Rows come sorted by distance, so only runs of equal distances need re-sorting,
    and ``dist`` itself does not change. Each row is sorted by the single integer key
    (run number, index).
    """
    rows = np.flatnonzero((dist[:, 1:] == dist[:, :-1]).any(axis=1))
    if rows.size == 0:
        return
    d = dist[rows]
    run = np.zeros(d.shape, dtype=np.int64)
    np.cumsum(d[:, 1:] != d[:, :-1], axis=1, out=run[:, 1:])
    key = run * n_items + nbr[rows]
    key.sort(axis=1)
    nbr[rows] = key % n_items


def _without_self(nbr: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mask of the fetched entries to keep: all but the query itself (or the last entry)."""
    drop = nbr == ids[:, None]
    missing = ~drop.any(axis=1)
    drop[missing, -1] = True
    return ~drop


def _ties_across_cutoff(dist: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Rows whose k-th kept distance equals the next kept (sentinel) distance."""
    self_pos = np.argmin(keep, axis=1)  # the one dropped entry per row
    rows = np.arange(len(dist))
    last = k - 1 + (k - 1 >= self_pos)
    sentinel = k + (k >= self_pos)
    return np.flatnonzero(dist[rows, last] == dist[rows, sentinel])


def _exact_rows(x, sq_norms, ids, k, metric) -> np.ndarray:
    """Exact ``k`` nearest other items of each id, by (distance, index), over all items."""
    n = x.shape[0]
    out = np.empty((len(ids), k), dtype=np.int64)
    block = max(1, _EXACT_BLOCK_ELEMENTS // n)
    for start in range(0, len(ids), block):
        chunk = ids[start:start + block]
        key = _distance_keys(x, sq_norms, chunk, metric)
        key[np.arange(len(chunk)), chunk] = np.inf  # exclude the query itself
        cut = np.partition(key, k - 1, axis=1)[:, k - 1]
        for row, threshold in enumerate(cut):
            cand = np.flatnonzero(key[row] <= threshold)  # ascending index
            out[start + row] = cand[np.argsort(key[row, cand], kind="stable")[:k]]
    return out


def _distance_keys(x, sq_norms, ids, metric) -> np.ndarray:
    """(len(ids), N) float32 keys, smaller = nearer, computed as FAISS flat indexes do."""
    ip = x[ids] @ x.T
    if metric == "ip":
        return np.negative(ip, out=ip)
    dist = sq_norms[ids, None] + sq_norms[None, :] - 2 * ip
    return np.maximum(dist, 0, out=dist)
