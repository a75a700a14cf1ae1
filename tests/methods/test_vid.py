"""VID: the loss against a loop, the pooling, the starting variance, the variance that minimises
it, and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import VIDRegressor, vid_loss
from retrieval.methods.losses.vid import match_size
from tests.methods.tiny_nets import make_batch, make_models


def ref_vid(mean, variance, t):
    """½ mean of (t - μ)² / σ²_c + log σ²_c, element by element in float64."""
    mean, variance, t = (np.asarray(a, dtype=np.float64) for a in (mean, variance, t))
    b, c, h, w = t.shape
    total = sum(0.5 * ((t[n, k, i, j] - mean[n, k, i, j]) ** 2 / variance[k] + math.log(variance[k]))
                for n in range(b) for k in range(c) for i in range(h) for j in range(w))
    return total / t.size


def test_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    mean, t = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    variance = torch.rand(3, generator=g) + 0.1
    assert vid_loss(mean, variance, t).item() == pytest.approx(ref_vid(mean, variance, t), rel=1e-6)


def test_starts_at_the_initial_variance_and_at_a_perfect_mean_costs_half_its_log():
    reg = VIDRegressor(4, 6)
    torch.testing.assert_close(reg.variance(), torch.full((6,), 5.0))
    t = torch.randn(2, 6, 3, 3)
    assert vid_loss(t, reg.variance(), t).item() == pytest.approx(0.5 * math.log(5.0), rel=1e-6)
    assert VIDRegressor(4, 6, init_pred_var=2.0).variance()[0].item() == pytest.approx(2.0, rel=1e-6)


def test_the_best_variance_of_a_channel_is_its_mean_squared_error():
    g = torch.Generator().manual_seed(1)
    mean, t = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 2, 4, 4, generator=g,
                                                                                       dtype=torch.float64)
    best = ((t - mean) ** 2).mean(dim=(0, 2, 3))
    at_best = vid_loss(mean, best, t).item()
    for scale in (0.8, 1.25):
        assert vid_loss(mean, best * scale, t).item() > at_best
    variance = best.clone().requires_grad_(True)
    vid_loss(mean, variance, t).backward()
    torch.testing.assert_close(variance.grad, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_the_larger_map_is_average_pooled_to_the_smaller():
    x = torch.arange(2 * 16, dtype=torch.float64).view(1, 2, 4, 4)
    small = torch.zeros(1, 5, 2, 2)
    pooled = match_size(x, small)
    assert pooled.shape == (1, 2, 2, 2)
    assert pooled[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert match_size(small, x) is small
    reg = VIDRegressor(2, 5)
    assert reg(x.float(), small).shape == () and reg(small[:, :2], x.float().repeat(1, 3, 1, 1)[:, :5]).shape == ()


def test_gradient_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    variance = (torch.rand(3, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    t = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, v: vid_loss(m, v, t), (mean, variance))
    reg = VIDRegressor(3, 3).double()
    target = t.clone().requires_grad_(True)
    reg(mean.detach(), target).backward()
    assert target.grad is None


def test_shapes_that_differ_are_refused():
    with pytest.raises(ValueError, match=r"predicted mean \(1, 2, 2, 2\) and target \(1, 3, 2, 2\) differ"):
        vid_loss(torch.zeros(1, 2, 2, 2), torch.ones(2), torch.zeros(1, 3, 2, 2))


def test_method_trains_its_regressors_not_the_teacher():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("vid", student=student, teacher=teacher, task_loss=build_task_loss("triplet"))
    method.train()
    assert method.weight == 1.0 and method.stages_used == (2, 3, 4)
    trainable = {id(p) for p in method.trainable_parameters()}
    assert {id(p) for p in method.regressors.parameters()} <= trainable
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "vid"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    expected = sum(reg(s["stages"][i - 1], t["stages"][i - 1]) for reg, i in zip(method.regressors, (2, 3, 4)))
    assert losses["vid"].item() == pytest.approx(expected.item(), rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in method.regressors.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="init_pred_var must exceed eps"):
        build_method("vid", student=student, teacher=teacher, task_loss=None, task_weight=0.0, init_pred_var=1e-6)
