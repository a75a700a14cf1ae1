"""PKT against a loop over the batch, its invariances, and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import cosine_probabilities, pkt_loss
from tests.methods.tiny_nets import make_batch, make_models

EPS = 1e-7


def ref_pkt(s, t):
    """The loss written out entry by entry in float64."""
    def probabilities(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        unit = [v / (math.sqrt(sum(c * c for c in v)) + EPS) for v in x]
        k = [[(float(np.dot(a, b)) + 1.0) / 2.0 for b in unit] for a in unit]
        return [[kij / sum(row) for kij in row] for row in k]

    ps, pt = probabilities(s), probabilities(t)
    n = len(ps)
    return sum(pt[i][j] * math.log((pt[i][j] + EPS) / (ps[i][j] + EPS)) for i in range(n) for j in range(n)) / n ** 2


def test_matches_the_loop_on_vectors_and_maps():
    g = torch.Generator().manual_seed(0)
    for shape_s, shape_t in [((7, 5), (7, 9)), ((4, 3, 2, 2), (4, 6, 3, 3))]:
        s, t = torch.randn(*shape_s, generator=g, dtype=torch.float64), torch.randn(*shape_t, generator=g, dtype=torch.float64)
        assert pkt_loss(s, t).item() == pytest.approx(ref_pkt(s.numpy(), t.numpy()), rel=1e-10, abs=1e-14)


def test_hand_computed_case():
    # s: two orthogonal vectors -> K = [[1, .5], [.5, 1]], P = [[2/3, 1/3], [1/3, 2/3]];
    # t: two equal vectors -> P = [[.5, .5], [.5, .5]]
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    expected = (2 * 0.5 * math.log(0.5 / (2 / 3)) + 2 * 0.5 * math.log(0.5 / (1 / 3))) / 4
    assert pkt_loss(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_rows_are_distributions():
    p = cosine_probabilities(torch.randn(6, 4, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(p.sum(dim=1), torch.ones(6))
    assert (p >= 0).all()


def test_invariances():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(8, generator=g)
    assert pkt_loss(s[perm], t[perm]).item() == pytest.approx(pkt_loss(s, t).item(), rel=1e-12)
    assert pkt_loss(3.0 * s, t).item() == pytest.approx(pkt_loss(s, t).item(), rel=1e-6)  # the scale of a feature
    assert pkt_loss(s, s).item() == 0.0
    assert pkt_loss(s, t).item() > 0


def test_gradient_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: pkt_loss(x, t), (s,))
    pkt_loss(s, t).backward()
    assert t.grad is None


def test_mismatched_batches_are_refused():
    with pytest.raises(ValueError, match="batches differ"):
        pkt_loss(torch.randn(4, 3), torch.randn(5, 3))


def test_method_gives_a_weighted_named_loss():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("pkt", student=student, teacher=teacher, task_loss=build_task_loss("triplet"), weight=2.0)
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "pkt"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    assert losses["pkt"].item() == pytest.approx(2.0 * pkt_loss(s["embedding"], t["embedding"]).item(), rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert build_method("pkt", student=student, teacher=teacher, task_loss=None, task_weight=0.0).weight == 30000.0
