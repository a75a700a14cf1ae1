"""CC (the authors' code's form) against a loop, a hand-computed case, its order properties."""

from __future__ import annotations

import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import cc_loss
from tests.methods.tiny_nets import make_batch, make_models


def ref_cc(s, t):
    s, t = s.tolist(), t.tolist()
    delta = [[abs(a - b) for a, b in zip(rs, rt)] for rs, rt in zip(s, t)]
    pairs = [sum(x * y for x, y in zip(delta[i], delta[i + 1])) for i in range(len(delta) - 1)]
    return sum(pairs) / len(pairs)


def test_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert cc_loss(s, t).item() == pytest.approx(ref_cc(s, t), rel=1e-12)


def test_hand_computed_case():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=torch.float64)
    t = torch.zeros(3, 2, dtype=torch.float64)
    # δ = s; pairs: (1,0)·(0,2) = 0, (0,2)·(3,3) = 6; mean 3
    assert cc_loss(s, t).item() == pytest.approx(3.0)


def test_order_properties():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    assert cc_loss(s.flip(0), t.flip(0)).item() == pytest.approx(cc_loss(s, t).item(), rel=1e-12)  # reversal
    perm = torch.tensor([0, 2, 4, 1, 3, 5])
    assert cc_loss(s[perm], t[perm]).item() != pytest.approx(cc_loss(s, t).item(), rel=1e-6)  # neighbours matter
    assert cc_loss(s, s).item() == 0.0
    assert cc_loss(s, t).item() > 0


def test_gradient_and_bad_shapes():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: cc_loss(x, t), (s,))
    with pytest.raises(ValueError, match="B >= 2"):
        cc_loss(torch.randn(1, 3), torch.randn(1, 3))


def test_method_learns_both_embeddings_and_leaves_the_teacher():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("cc", student=student, teacher=teacher, task_loss=build_task_loss("triplet"))
    assert method.weight == 0.02 and method.embed_s.out_features == method.embed_t.out_features == 128
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "cc"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    expected = 0.02 * cc_loss(method.embed_s(s["embedding"]), method.embed_t(t["embedding"])).item()
    assert losses["cc"].item() == pytest.approx(expected, rel=1e-5)
    sum(losses.values()).backward()
    assert method.embed_s.weight.grad is not None and method.embed_t.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    trainable = {id(p) for p in method.trainable_parameters()}
    assert {id(p) for p in [*method.embed_s.parameters(), *method.embed_t.parameters()]} <= trainable
