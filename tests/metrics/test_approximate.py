"""Approximate-index Recall@K: equal to the exact value when the index is exhaustive,
close to it on clustered data, and the query-subset and self-removal rules hold."""

import numpy as np
import pytest

from retrieval.metrics import recall_at_k
from retrieval.metrics.approximate import _relevant_without_self, approximate_recall_at_k


def clustered(n_classes=40, per_class=10, d=16, noise=0.35, seed=0, normalize=True):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d))
    labels = np.repeat(np.arange(n_classes), per_class)
    x = centers[labels] + noise * rng.normal(size=(len(labels), d))
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


@pytest.mark.parametrize("normalize", [True, False])
def test_exhaustive_ivf_equals_exact(normalize):
    # every cell probed: the IVF search is exact (up to ties, which random data does not have)
    x, y = clustered(normalize=normalize, noise=1.0)
    exact = recall_at_k(x, y, ks=(1, 2, 4, 8))
    approx = approximate_recall_at_k(x, y, ks=(1, 2, 4, 8), index="ivf", nlist=8, nprobe=8)
    assert approx == pytest.approx(exact, abs=1e-12)


def test_hnsw_with_a_wide_beam_equals_exact():
    x, y = clustered(noise=1.0)
    exact = recall_at_k(x, y, ks=(1, 4))
    approx = approximate_recall_at_k(x, y, ks=(1, 4), index="hnsw", hnsw_m=16, ef_search=400)
    assert approx == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_cheap_settings_stay_close_to_exact(index):
    x, y = clustered(n_classes=200, per_class=10, d=32, noise=0.5, seed=1)
    exact = recall_at_k(x, y, ks=(1,))["recall@1"]
    opts = {"nlist": 64, "nprobe": 2} if index == "ivf" else {"hnsw_m": 8, "ef_search": 16}
    approx = approximate_recall_at_k(x, y, ks=(1,), index=index, **opts)["recall@1"]
    assert approx <= exact + 0.01 and approx >= exact - 0.15


def test_query_subset_uses_the_whole_gallery():
    x, y = clustered(noise=1.0)
    subset = np.arange(0, len(x), 3)
    exact = approximate_recall_at_k(x, y, ks=(1,), index="ivf", nlist=4, nprobe=4, query_ids=subset)
    # brute force over the subset, each query against all other items
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    hits = [y[np.argmax(sims[q])] == y[q] for q in subset]
    assert exact["recall@1"] == pytest.approx(np.mean(hits))


def test_self_is_dropped_by_id_and_missing_results_are_misses():
    codes = np.array([0, 0, 1, 1])
    ids = np.array([0, 2])
    nbr = np.array([[1, 0, 3], [3, -1, -1]])  # query 0 returned second; query 2 not returned at all
    rel = _relevant_without_self(nbr, ids, codes, k=2)
    assert rel.tolist() == [[True, False], [True, False]]


def test_bad_index_name_is_rejected():
    x, y = clustered()
    with pytest.raises(ValueError, match="expected one of"):
        approximate_recall_at_k(x, y, index="lsh")


def test_a_prebuilt_index_is_used_as_given():
    from retrieval.metrics.approximate import build_approximate_index
    x, y = clustered(noise=1.0)
    idx = build_approximate_index(x, "ip", "ivf", nlist=8, nprobe=8)
    assert approximate_recall_at_k(x, y, ks=(1, 2), index=idx) == approximate_recall_at_k(
        x, y, ks=(1, 2), index="ivf", nlist=8, nprobe=8)
    with pytest.raises(ValueError, match="holds 400 vectors"):
        approximate_recall_at_k(x[:100], y[:100], ks=(1,), index=idx)
