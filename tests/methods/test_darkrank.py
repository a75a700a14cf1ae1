"""Hard DarkRank against a loop over samples and ranks, a hand-computed case, its invariances,
and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import darkrank_loss
from tests.methods.tiny_nets import make_batch, make_models


def ref_darkrank(s, t, alpha, beta, n):
    """The loss written out sample by sample in float64: the teacher's top-n order and the student's
    Plackett-Luce log-likelihood of it."""
    s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
    b = len(s)
    total = 0.0
    for i in range(b):
        others = [j for j in range(b) if j != i]
        teacher_score = {j: -alpha * math.dist(t[i], t[j]) ** beta for j in others}
        order = sorted(others, key=lambda j: -teacher_score[j])[:n]
        score = [-alpha * math.dist(s[i], s[j]) ** beta for j in order]
        total += sum(score[k] - math.log(sum(math.exp(v) for v in score[k:])) for k in range(n))
    return -total / b


@pytest.mark.parametrize("alpha,beta,n", [(2.0, 3.0, 4), (3.0, 1.0, 2), (1.0, 2.0, 6)])
def test_matches_the_loop(alpha, beta, n):
    g = torch.Generator().manual_seed(n)
    s, t = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randn(9, 7, generator=g, dtype=torch.float64)
    assert darkrank_loss(s, t, alpha, beta, n).item() == pytest.approx(ref_darkrank(s, t, alpha, beta, n), rel=1e-10)


def test_hand_computed_case():
    # three points on a line, alpha = beta = 1, lists of 2. Teacher 0, 1, 3: sample 0 ranks (1, 2),
    # sample 1 ranks (0, 2), sample 2 ranks (1, 0). Student 0, 2, 1: distances 0-1: 2, 0-2: 1, 1-2: 1.
    s = torch.tensor([[0.0], [2.0], [1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)

    def nll(a, b):  # -log P(order a then b) for scores a, b
        return -(a - math.log(math.exp(a) + math.exp(b)))

    expected = (nll(-2, -1) + nll(-2, -1) + nll(-1, -1)) / 3
    assert darkrank_loss(s, t, alpha=1.0, beta=1.0, list_length=2).item() == pytest.approx(expected, rel=1e-12)


def test_invariances():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(10, 6, generator=g, dtype=torch.float64)
    base = darkrank_loss(s, t).item()
    perm = torch.randperm(10, generator=g)
    assert darkrank_loss(s[perm], t[perm]).item() == pytest.approx(base, rel=1e-12)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert darkrank_loss(s @ q + 3.0, t - 1.0).item() == pytest.approx(base, rel=1e-10)  # rigid motions
    assert base > 0
    # a student whose distances are the teacher's, scaled up, makes the teacher's order certain
    assert darkrank_loss(2.0 * t, t).item() < darkrank_loss(t, t).item() < base
    assert darkrank_loss(6.0 * t, t).item() < 1e-6


def test_gradient_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: darkrank_loss(x, t, 2.0, 3.0, 3), (s,))
    darkrank_loss(s, t).backward()
    assert t.grad is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="batches differ"):
        darkrank_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"list_length must be in \[1, batch - 1\] = \[1, 3\]; got 4"):
        darkrank_loss(torch.randn(4, 3), torch.randn(4, 3), list_length=4)


def test_method_gives_a_weighted_named_loss():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("darkrank", student=student, teacher=teacher, task_loss=build_task_loss("triplet"),
                          weight=0.5)
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "darkrank"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    assert losses["darkrank"].item() == pytest.approx(0.5 * darkrank_loss(s["embedding"], t["embedding"]).item(),
                                                      rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    default = build_method("darkrank", student=student, teacher=teacher, task_loss=None, task_weight=0.0)
    assert (default.weight, default.alpha, default.beta, default.list_length) == (1.0, 2.0, 3.0, 4)
    assert default.normalize is False


def test_normalize_ranks_the_unit_embeddings_of_a_classifier():
    from tests.methods.tiny_nets import make_classifiers

    student, teacher = make_classifiers()
    batch = make_batch()
    method = build_method("darkrank", student=student, teacher=teacher, task_loss=None, task_weight=0.0,
                          normalize=True).eval()
    _, losses = method.training_step(batch)
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    unit = [e / e.norm(dim=1, keepdim=True) for e in (s["embedding"], t["embedding"])]
    assert losses["darkrank"].item() == pytest.approx(darkrank_loss(*unit).item(), rel=1e-5)
    raw = darkrank_loss(s["embedding"], t["embedding"]).item()
    assert raw != pytest.approx(losses["darkrank"].item(), rel=1e-3)
