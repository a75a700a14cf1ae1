"""DIST against loops, hand-computed cases, invariances and the method's loss dict."""

from __future__ import annotations

import math

import pytest
import torch

from retrieval.methods import build_method, method_tasks
from retrieval.methods.losses import dist_loss, dist_terms
from tests.methods.tiny_nets import make_batch, make_classifiers


def ref_terms(zs, zt, tau, eps=1e-8):
    def softmax(row):
        m = max(row)
        e = [math.exp(v / tau - m / tau) for v in row]
        return [v / sum(e) for v in e]

    def pearson(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        da, db = [x - ma for x in a], [x - mb for x in b]
        num = sum(x * y for x, y in zip(da, db))
        return num / (math.sqrt(sum(x * x for x in da)) * math.sqrt(sum(y * y for y in db)) + eps)

    ys, yt = [softmax(r) for r in zs.tolist()], [softmax(r) for r in zt.tolist()]
    inter = 1 - sum(pearson(a, b) for a, b in zip(ys, yt)) / len(ys)
    cols = range(len(ys[0]))
    intra = 1 - sum(pearson([r[c] for r in ys], [r[c] for r in yt]) for c in cols) / len(cols)
    return tau ** 2 * inter, tau ** 2 * intra


def _logits(seed, b=6, c=5):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(b, c, generator=g, dtype=torch.float64), 2 * torch.randn(b, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_terms_match_the_loops(tau):
    zs, zt = _logits(0)
    inter, intra = dist_terms(zs, zt, tau)
    ref_inter, ref_intra = ref_terms(zs, zt, tau)
    assert inter.item() == pytest.approx(ref_inter, rel=1e-10)
    assert intra.item() == pytest.approx(ref_intra, rel=1e-10)
    assert dist_loss(zs, zt, 2.0, 3.0, tau).item() == pytest.approx(2.0 * ref_inter + 3.0 * ref_intra, rel=1e-10)


def test_hand_computed_case():
    # the student's probabilities reverse the teacher's in each row: ρ = -1 per sample, so inter = 2;
    # over the batch, each class's probabilities are also reversed: intra = 2
    zt = torch.log(torch.tensor([[0.7, 0.3], [0.3, 0.7]], dtype=torch.float64))
    zs = zt.flip(1)
    inter, intra = dist_terms(zs, zt, 1.0)
    assert inter.item() == pytest.approx(2.0, rel=1e-6)
    assert intra.item() == pytest.approx(2.0, rel=1e-6)


def test_invariances():
    zs, zt = _logits(1)
    base = dist_loss(zs, zt).item()
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    classes = torch.randperm(5, generator=torch.Generator().manual_seed(3))
    assert dist_loss(zs[perm], zt[perm]).item() == pytest.approx(base, rel=1e-12)
    assert dist_loss(zs[:, classes], zt[:, classes]).item() == pytest.approx(base, rel=1e-12)
    assert dist_loss(zs + 5.0, zt).item() == pytest.approx(base, rel=1e-9)
    assert dist_loss(zt, zt).item() == pytest.approx(0.0, abs=1e-5)  # ρ = ‖a‖² / (‖a‖² + ε): 0 but for ε
    assert base > 0


def test_gradient_and_no_teacher_gradient():
    zs, zt = _logits(4)
    zs.requires_grad_(True)
    zt.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: dist_loss(z, zt, 1.0, 2.0, 4.0), (zs,))
    dist_loss(zs, zt).backward()
    assert zt.grad is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="two \\(B, C\\) logit tensors"):
        dist_loss(torch.randn(4, 3), torch.randn(4, 5))


def test_method_gives_a_weighted_named_loss():
    student, teacher = make_classifiers()
    method = build_method("dist", student=student, teacher=teacher, task_loss=torch.nn.CrossEntropyLoss())
    assert (method.weight, method.beta, method.gamma, method.tau, method.task_weight) == (2.0, 1.0, 1.0, 1.0, 1.0)
    method.train()
    batch = make_batch()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "dist"}
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    assert losses["dist"].item() == pytest.approx(2.0 * dist_loss(s["output"], t["output"]).item(), rel=1e-5)
    assert method_tasks("dist") == ("classification",)
