"""Tests of retrieval.metrics against an independent brute-force numpy reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.metrics import evaluate, knn, map_at_r, r_precision, recall_at_k, resolve_metric
from retrieval.metrics.knn import knn_leave_one_out

# ----------------------------------------------------------------------------- reference


def reference_orders(x, metric):
    """Per query: all other items sorted by (distance, index), via a full distance matrix."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "ip":
        key = -(x @ x.T)
    else:
        key = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    orders = []
    for q in range(len(x)):
        others = np.array([j for j in range(len(x)) if j != q])
        orders.append(others[np.argsort(key[q, others], kind="stable")])
    return orders


def reference_metrics(x, labels, ks, metric):
    """Recall@K, MAP@R and R-Precision with plain per-query loops (R = 0 queries skipped)."""
    labels = np.asarray(labels)
    recall = {k: [] for k in ks}
    aps, rps = [], []
    for q, order in enumerate(reference_orders(x, metric)):
        rel = labels[order] == labels[q]
        r = int(rel.sum())
        if r == 0:
            continue
        for k in ks:
            recall[k].append(bool(rel[:k].any()))
        rps.append(rel[:r].sum() / r)
        hits, ap = 0, 0.0
        for i in range(r):
            if rel[i]:
                hits += 1
                ap += hits / (i + 1)
        aps.append(ap / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recall.items()}
    out["map@r"] = float(np.mean(aps))
    out["r_precision"] = float(np.mean(rps))
    return out


def assert_metrics_equal(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


# ----------------------------------------------------------------------------- data


def random_data(n=300, d=16, n_classes=40, seed=0, unit=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.integers(0, n_classes, n)


def integer_data(n=240, d=3, n_classes=12, seed=0):
    """Small integer vectors: many exact duplicates and cross-class distance ties."""
    rng = np.random.default_rng(seed)
    return rng.integers(-2, 3, size=(n, d)).astype(np.float32), rng.integers(0, n_classes, n)


KS = (1, 2, 4, 8, 16, 32)

# ----------------------------------------------------------------------------- vs reference


@pytest.mark.parametrize("metric,unit", [("ip", True), ("l2", False), ("auto", True), ("auto", False)])
def test_random_data_matches_reference(metric, unit):
    x, y = random_data(unit=unit)
    ref_metric = "ip" if unit else "l2"
    assert_metrics_equal(evaluate(x, y, ks=KS, metric=metric, batch_size=64),
                         reference_metrics(x, y, KS, ref_metric))


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_integer_data_with_ties_matches_reference(metric, seed):
    x, y = integer_data(seed=seed)
    expected = reference_metrics(x, y, KS, metric)
    for batch_size in (1, 17, 4096):
        assert_metrics_equal(evaluate(x, y, ks=KS, metric=metric, batch_size=batch_size), expected)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_neighbour_ids_follow_distance_then_index(metric, monkeypatch):
    """The exact neighbour lists, not just the metrics, and the tie recomputation is used."""
    calls = []
    exact_rows = knn._exact_rows
    monkeypatch.setattr(knn, "_exact_rows", lambda *a: calls.append(len(a[2])) or exact_rows(*a))
    x, _ = integer_data(n=200, seed=3)
    k = 20
    expected = reference_orders(x, metric)
    got = {}
    for ids, nbrs in knn_leave_one_out(x, np.arange(len(x)), k, metric, batch_size=33):
        got.update(zip(ids.tolist(), nbrs))
    assert sorted(got) == list(range(len(x)))
    for q, nbrs in got.items():
        np.testing.assert_array_equal(nbrs, expected[q][:k], err_msg=f"query {q}")
    assert sum(calls) > 0  # ties across the cut-off occurred and were recomputed


def test_collapsed_embeddings_all_tied():
    """Every item identical: neighbours are simply the other items in index order."""
    x = np.ones((50, 4), dtype=np.float32)
    y = np.arange(50) % 5
    assert_metrics_equal(evaluate(x, y, ks=(1, 5, 10), metric="l2", batch_size=16),
                         reference_metrics(x, y, (1, 5, 10), "l2"))


# ----------------------------------------------------------------------------- hand-computed


def test_hand_computed_points_on_a_line():
    # positions 0, 1, 3, 7, 15 with labels A B A B A; neighbour orders (labels):
    #   q@0:  1 3 7 15 (B A B A)  R=2  first hit 2  RP 1/2  AP (1/2)(1/2) = 1/4
    #   q@1:  0 3 7 15 (A A B A)  R=1  first hit 3  RP 0    AP 0
    #   q@3:  1 0 7 15 (B A B A)  R=2  first hit 2  RP 1/2  AP 1/4
    #   q@7:  3 1 0 15 (A B A A)  R=1  first hit 2  RP 0    AP 0
    #   q@15: 7 3 1 0  (B A B A)  R=2  first hit 2  RP 1/2  AP 1/4
    x = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    y = np.array(["A", "B", "A", "B", "A"])
    expected = {"recall@1": 0.0, "recall@2": 0.8, "recall@3": 1.0, "recall@4": 1.0,
                "map@r": 0.15, "r_precision": 0.3}
    for metric in ("l2", "auto"):
        assert_metrics_equal(evaluate(x, y, ks=(1, 2, 3, 4), metric=metric), expected)
    assert map_at_r(x, y) == pytest.approx(0.15)
    assert r_precision(x, y) == pytest.approx(0.3)


def test_singleton_classes_are_excluded():
    # the same five points plus a far-away item alone in its class: it is no query, and it
    # is the last neighbour of every other query, so the metrics do not change
    x = np.array([[0.0], [1.0], [3.0], [7.0], [15.0], [100.0]])
    y = np.array([0, 1, 0, 1, 0, 9])
    expected = {"recall@1": 0.0, "recall@2": 0.8, "recall@3": 1.0, "recall@4": 1.0,
                "map@r": 0.15, "r_precision": 0.3}
    assert_metrics_equal(evaluate(x, y, ks=(1, 2, 3, 4)), expected)


def test_self_is_removed_by_id_not_by_position():
    # items 0 and 1 are identical; sorted by (distance, index) query 1 sees item 0 before
    # itself. Removing the first position would keep query 1 as its own (relevant) neighbour.
    #   q0: others 1(0) 2(5) 3(20), labels 0 0 1, R=1 -> first hit 3
    #   q1: others 0(0) 2(5) 3(20), labels 1 0 1, R=1 -> first hit 2
    #   q2: others 0(5) 1(5) 3(15), tie -> index order, labels 1 0 1 -> first hit 2
    #   q3: others 2(15) 0(20) 1(20), labels 0 1 0 -> first hit 2
    x = np.array([[0.0], [0.0], [5.0], [20.0]])
    y = np.array([1, 0, 0, 1])
    expected = {"recall@1": 0.0, "recall@2": 0.75, "recall@3": 1.0, "map@r": 0.0, "r_precision": 0.0}
    assert_metrics_equal(evaluate(x, y, ks=(1, 2, 3), metric="l2"), expected)


# ----------------------------------------------------------------------------- invariances


def test_permuting_items_leaves_metrics_unchanged():
    x, y = random_data(seed=5)
    perm = np.random.default_rng(6).permutation(len(x))
    assert_metrics_equal(evaluate(x[perm], y[perm], ks=KS), evaluate(x, y, ks=KS))


def test_scaling_leaves_l2_metrics_unchanged():
    x, y = random_data(seed=7)
    base = evaluate(x, y, ks=KS, metric="l2")
    for scale in (0.25, 3.0, 1000.0):
        assert_metrics_equal(evaluate(x * scale, y, ks=KS, metric="l2"), base)


def test_batch_size_does_not_change_results():
    x, y = random_data(seed=8, unit=True)
    base = evaluate(x, y, ks=KS, batch_size=4096)
    for batch_size in (1, 7, 100):
        assert evaluate(x, y, ks=KS, batch_size=batch_size) == base


def test_recall_at_k_agrees_with_evaluate():
    x, y = random_data(seed=9)
    full = evaluate(x, y, ks=(1, 4))
    assert recall_at_k(x, y, ks=(1, 4)) == {k: v for k, v in full.items() if k.startswith("recall@")}
    assert recall_at_k(x, y, ks=4) == {"recall@4": full["recall@4"]}
    assert map_at_r(x, y) == pytest.approx(full["map@r"], abs=1e-12)
    assert r_precision(x, y) == pytest.approx(full["r_precision"], abs=1e-12)


def test_auto_metric_detects_unit_norm():
    x, _ = random_data(unit=True)
    assert resolve_metric(x, "auto") == "ip"
    assert resolve_metric(x * 1.01, "auto") == "l2"
    assert resolve_metric(x * 1.0005, "auto") == "ip"  # within the 1e-3 tolerance
    assert resolve_metric(x, "L2") == "l2"


# ----------------------------------------------------------------------------- inputs


def test_torch_tensor_input():
    torch = pytest.importorskip("torch")
    x, y = random_data(seed=10, unit=True)
    expected = evaluate(x, y, ks=KS)
    tx = torch.from_numpy(x).requires_grad_(True)
    assert evaluate(tx, torch.from_numpy(y), ks=KS) == expected
    assert evaluate(tx.double(), torch.from_numpy(y), ks=KS) == expected
    assert evaluate(tx.to(torch.bfloat16), y, ks=(1,))["recall@1"] >= 0.0


def test_import_does_not_import_torch():
    code = "import sys, retrieval.metrics; assert 'torch' not in sys.modules, 'torch was imported'"
    repo_root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)


@pytest.mark.parametrize("kwargs,message", [
    ({"x": np.zeros(10)}, "2-D"),
    ({"x": np.zeros((1, 4)), "y": [0]}, "at least 2 items"),
    ({"y": np.zeros(9)}, "one label per embedding row"),
    ({"y": np.zeros((10, 1))}, "one label per embedding row"),
    ({"x": np.where(np.eye(10, 4) > 0, np.nan, 1.0)}, "finite"),
    ({"x": np.full((10, 4), np.inf)}, "NaN or inf"),
    ({"x": np.full((10, 4), 1e300)}, "finite"),  # overflows float32
    ({"x": np.full((10, 4), 1e30)}, "too large"),  # squared norms overflow float32
    ({"x": np.array([["a"] * 4] * 10)}, "numeric"),
    ({"ks": (0, 1)}, "positive integers"),
    ({"ks": (1.5,)}, "positive integers"),
    ({"ks": (True,)}, "positive integers"),
    ({"ks": ()}, "at least one K"),
    ({"ks": (1, 10)}, r"< the number of items \(10\)"),
    ({"metric": "cosine"}, "'auto', 'ip', 'l2'"),
    ({"batch_size": 0}, "batch_size"),
    ({"y": np.arange(10)}, "singleton"),
])
def test_bad_inputs_raise_helpful_value_errors(kwargs, message):
    args = {"x": np.random.default_rng(0).standard_normal((10, 4)), "y": np.arange(10) % 3}
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=message):
        evaluate(x, y, **{"ks": (1, 2), **args})
