"""SP against a loop over the batch, its invariances, and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import similarity_matrix, sp_loss
from tests.methods.tiny_nets import make_batch, make_models


def ref_sp(s, t):
    """The loss written out entry by entry in float64."""
    def normalised_gram(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        g = [[float(np.dot(a, b)) for b in x] for a in x]
        return [[v / max(math.sqrt(sum(w * w for w in row)), 1e-12) for v in row] for row in g]

    gs, gt = normalised_gram(s), normalised_gram(t)
    n = len(gs)
    return sum((gt[i][j] - gs[i][j]) ** 2 for i in range(n) for j in range(n)) / n ** 2


def test_matches_the_loop_on_maps_of_other_shapes():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 4, 2, 2, generator=g, dtype=torch.float64)
    t = torch.randn(6, 8, 3, 3, generator=g, dtype=torch.float64)
    assert sp_loss(s, t).item() == pytest.approx(ref_sp(s.numpy(), t.numpy()), rel=1e-10)


def test_hand_computed_case():
    # s: orthogonal unit rows -> Ĝ = I; t: equal rows -> Ĝ = all 1/√2; ‖Ĝ_t − Ĝ_s‖² = 2(1/√2 − 1)² + 2·½
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    expected = (2 * (1 / math.sqrt(2) - 1) ** 2 + 2 * 0.5) / 4
    assert sp_loss(s, t).item() == pytest.approx(expected, rel=1e-12)


def test_rows_have_unit_norm():
    gram = similarity_matrix(torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(gram.norm(dim=1), torch.ones(5))


def test_invariances():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 9, generator=g, dtype=torch.float64)
    perm = torch.randperm(7, generator=g)
    assert sp_loss(s[perm], t[perm]).item() == pytest.approx(sp_loss(s, t).item(), rel=1e-12)
    assert sp_loss(4.0 * s, t).item() == pytest.approx(sp_loss(s, t).item(), rel=1e-12)  # the scale of the features
    assert sp_loss(s, s).item() == pytest.approx(0.0, abs=1e-30)
    assert sp_loss(s, t).item() > 0


def test_gradient_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 5, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sp_loss(x, t), (s,))
    sp_loss(s, t).backward()
    assert t.grad is None


def test_method_sums_its_stages_under_one_weight():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("sp", student=student, teacher=teacher, task_loss=build_task_loss("triplet"), weight=10.0,
                          stages=(3, 4))
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "sp"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    expected = 10.0 * sum(sp_loss(s["stages"][i], t["stages"][i]).item() for i in (2, 3))
    assert losses["sp"].item() == pytest.approx(expected, rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    default = build_method("sp", student=student, teacher=teacher, task_loss=None, task_weight=0.0)
    assert default.weight == 3000.0 and default.stages_used == (4,)
