"""Top-k accuracy against a brute-force reference, ties included."""

import numpy as np
import pytest

from retrieval.metrics import topk_accuracy


def brute(logits, labels, k):
    hits = 0
    for row, y in zip(logits, labels):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))  # descending, ties to the lower index
        hits += y in order[:k]
    return hits / len(labels)


def test_hand_case():
    logits = [[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]]
    labels = [1, 2, 0]
    assert topk_accuracy(logits, labels, ks=(1, 2, 3)) == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3),
                                                          "top3": 1.0}


def test_against_brute_force_with_ties():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (200, 6)).astype(float)  # many ties
    labels = rng.integers(0, 6, 200)
    got = topk_accuracy(logits, labels, ks=(1, 2, 5, 10))
    for k in (1, 2, 5, 10):
        assert got[f"top{k}"] == pytest.approx(brute(logits, labels, k))


def test_bad_inputs():
    with pytest.raises(ValueError):
        topk_accuracy(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError):
        topk_accuracy(np.zeros((2, 2)), [0, 2])
