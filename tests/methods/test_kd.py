"""Hinton KD loss against a hand-computed case, and the kd / hmat+kd methods."""

import math

import pytest
import torch

from retrieval.methods import build_method
from retrieval.methods.losses import kd_loss
from retrieval.models import create_classifier

# teacher p = softmax([ln 3, 0]) = [3/4, 1/4], student p = [1/2, 1/2]:
# KL(p_t || p_s) = 3/4 ln(3/2) + 1/4 ln(1/2)
KL_HAND = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def test_hand_computed_case_at_t1():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert KL_HAND == pytest.approx(0.1308120, abs=1e-6)
    assert kd_loss(s, t, temperature=1.0).item() == pytest.approx(KL_HAND, rel=1e-6)


def test_temperature_divides_logits_and_scales_by_t_squared():
    """Logits scaled by T give the same softened distributions; the loss is T^2 times the KL."""
    for temperature in (2.0, 4.0):
        s = torch.tensor([[0.0, 0.0]])
        t = torch.tensor([[temperature * math.log(3.0), 0.0]])
        assert kd_loss(s, t, temperature).item() == pytest.approx(temperature ** 2 * KL_HAND, rel=1e-6)


def test_batchmean_and_zero_when_equal():
    s = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    t = torch.tensor([[4 * math.log(3.0), 0.0], [1.0, -2.0]])  # second row: equal logits, KL 0
    assert kd_loss(s, t, 4.0).item() == pytest.approx(16 * KL_HAND / 2, rel=1e-6)
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    assert kd_loss(x, x.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(x, x + 3.0, 4.0).item() == pytest.approx(0.0, abs=1e-5)  # softmax ignores a shift


def test_against_explicit_sum_and_teacher_gets_no_gradient():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 10, generator=g, requires_grad=True)
    t = torch.randn(6, 10, generator=g, requires_grad=True)
    T = 4.0
    pt, ps = torch.softmax(t / T, 1), torch.softmax(s / T, 1)
    reference = (pt * (pt.log() - ps.log())).sum(1).mean() * T * T
    loss = kd_loss(s, t, T)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    loss.backward()
    assert s.grad is not None and t.grad is None


def test_bad_inputs():
    with pytest.raises(ValueError):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)


def _pair():
    torch.manual_seed(0)
    return create_classifier("resnet20", 10), create_classifier("wrn_16_2", 10)


def _batch():
    g = torch.Generator().manual_seed(2)
    return {"image": torch.randn(8, 3, 8, 8, generator=g), "label": torch.arange(8) % 10, "index": torch.arange(8)}


def test_kd_method_terms_and_defaults():
    student, teacher = _pair()
    method = build_method("kd", student=student, teacher=teacher, task_loss=torch.nn.CrossEntropyLoss()).train()
    assert (method.task_weight, method.weight, method.temperature) == (0.1, 0.9, 4.0)  # DESIGN §2
    batch = _batch()
    out, losses = method.training_step(batch)
    assert set(losses) == {"task", "kd"} and out.shape == (8, 10)
    method.eval()  # fixed BN statistics, so the reference below sees the same logits
    _, losses = method.training_step(batch)
    with torch.no_grad():
        s, t = student(batch["image"]), teacher(batch["image"])
    assert losses["kd"].item() == pytest.approx(0.9 * kd_loss(s, t, 4.0).item(), rel=1e-5)
    assert losses["task"].item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(s, batch["label"]).item(),
                                                  rel=1e-5)


def test_hmat_kd_adds_the_kd_term_to_hmat():
    student, teacher = _pair()
    method = build_method("hmat+kd", student=student, teacher=teacher, task_loss=torch.nn.CrossEntropyLoss(),
                          kd_weight=0.5, temperature=2.0).train()
    _, losses = method.training_step(_batch())
    assert set(losses) == {"task", "pos1", "act2", "act3", "act4", "cha4", "kd"}
    assert method.task_weight == 0.1
    sum(losses.values()).backward()
    assert method.connectors["4"].proj[0].weight.grad is not None
