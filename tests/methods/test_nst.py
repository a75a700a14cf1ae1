"""NST against a loop over channel pairs, its invariances, and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import nst_loss
from tests.methods.tiny_nets import make_batch, make_models


def ref_nst(s, t):
    """Squared MMD with k(a, b) = (a·b)² over the unit-normalised channels, written out in float64."""
    s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)

    def channels(x):
        out = []
        for sample in x:
            rows = [c.ravel() for c in sample]
            out.append([r / max(math.sqrt(float(r @ r)), 1e-12) for r in rows])
        return out

    def mean_kernel(a, b):
        values = [float(x @ y) ** 2 for sa, sb in zip(a, b) for x in sa for y in sb]
        return sum(values) / len(values)

    cs, ct = channels(s), channels(t)
    return mean_kernel(ct, ct) + mean_kernel(cs, cs) - 2 * mean_kernel(cs, ct)


def test_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64), torch.randn(3, 6, 3, 3, generator=g, dtype=torch.float64)
    assert nst_loss(s, t).item() == pytest.approx(ref_nst(s.numpy(), t.numpy()), rel=1e-10)


def test_the_larger_map_is_pooled_to_the_smaller():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    pooled = torch.nn.functional.avg_pool2d(s, 2)  # 8x8 -> 4x4 in 2x2 blocks
    assert nst_loss(s, t).item() == pytest.approx(ref_nst(pooled.numpy(), t.numpy()), rel=1e-10)
    assert nst_loss(t, s).item() == pytest.approx(ref_nst(t.numpy(), pooled.numpy()), rel=1e-10)


def test_hand_computed_case():
    # one sample, H·W = 2: student channels e1, e2 (orthogonal), teacher one channel (1, 1)/√2.
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)
    t = torch.tensor([[[[1.0, 1.0]]]], dtype=torch.float64)
    # k(t,t) = 1; k(s,s) = mean(1, 0, 0, 1) = 1/2; k(s,t) = mean(1/2, 1/2) = 1/2
    assert nst_loss(s, t).item() == pytest.approx(1 + 0.5 - 2 * 0.5, rel=1e-12)


def test_invariances():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64), torch.randn(4, 5, 2, 2, generator=g, dtype=torch.float64)
    perm, channels = torch.randperm(4, generator=g), torch.randperm(3, generator=g)
    assert nst_loss(s[perm], t[perm]).item() == pytest.approx(nst_loss(s, t).item(), rel=1e-12)
    assert nst_loss(s[:, channels], t).item() == pytest.approx(nst_loss(s, t).item(), rel=1e-12)  # channel order
    assert nst_loss(2.5 * s, t).item() == pytest.approx(nst_loss(s, t).item(), rel=1e-12)
    assert nst_loss(s, s).item() == pytest.approx(0.0, abs=1e-12)
    assert nst_loss(s, t).item() > 0


def test_gradient_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 4, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: nst_loss(x, t), (s,))
    nst_loss(s, t).backward()
    assert t.grad is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="B x C x H x W"):
        nst_loss(torch.randn(2, 3), torch.randn(2, 3, 2, 2))


def test_method_sums_its_stages_under_one_weight():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("nst", student=student, teacher=teacher, task_loss=build_task_loss("triplet"), weight=3.0)
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "nst"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    expected = 3.0 * sum(nst_loss(s["stages"][i], t["stages"][i]).item() for i in (1, 2, 3))
    assert losses["nst"].item() == pytest.approx(expected, rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    default = build_method("nst", student=student, teacher=teacher, task_loss=None, task_weight=0.0)
    assert default.weight == 50.0 and default.stages_used == (2, 3, 4)
