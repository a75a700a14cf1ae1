"""DKD against loops over the classes, hand-computed cases, invariances, the warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from retrieval.methods import build_method, method_tasks
from retrieval.methods.losses import dkd_loss, dkd_terms, kd_loss
from tests.methods.tiny_nets import make_batch, make_classifiers


def ref_terms(zs, zt, labels, temperature):
    """TCKD and NCKD with the target class dropped exactly, in loops (float64)."""
    def softmax(row):
        m = max(row)
        e = [math.exp((v - m)) for v in row]
        return [v / sum(e) for v in e]

    def kl(q, p):
        return sum(a * math.log(a / b) for a, b in zip(q, p) if a > 0)

    tckd = nckd = 0.0
    for s_row, t_row, y in zip(zs.tolist(), t_rows := zt.tolist(), labels.tolist()):
        ps, pt = softmax([v / temperature for v in s_row]), softmax([v / temperature for v in t_row])
        tckd += kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]])
        others = [c for c in range(len(s_row)) if c != y]
        nckd += kl(softmax([t_row[c] / temperature for c in others]), softmax([s_row[c] / temperature for c in others]))
    b = len(labels)
    return tckd * temperature ** 2 / b, nckd * temperature ** 2 / b


def _logits(seed, b=6, c=5):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(b, c, generator=g, dtype=torch.float64), 2 * torch.randn(b, c, generator=g, dtype=torch.float64),
            torch.randint(0, c, (b,), generator=g))


def test_terms_match_the_loops():
    zs, zt, y = _logits(0)
    tckd, nckd = dkd_terms(zs, zt, y, 4.0)
    ref_t, ref_n = ref_terms(zs, zt, y, 4.0)
    assert tckd.item() == pytest.approx(ref_t, rel=1e-10)
    assert nckd.item() == pytest.approx(ref_n, rel=1e-10)
    assert dkd_loss(zs, zt, y, 2.0, 3.0, 4.0).item() == pytest.approx(2.0 * ref_t + 3.0 * ref_n, rel=1e-10)


def test_two_classes_leave_only_the_target_term_and_it_is_kd():
    zs, zt, y = _logits(1, c=2)
    tckd, nckd = dkd_terms(zs, zt, y, 2.0)
    assert nckd.item() == pytest.approx(0.0, abs=1e-12)  # one non-target class: p̂ = 1 for both
    assert tckd.item() == pytest.approx(kd_loss(zs, zt, 2.0).item(), rel=1e-10)  # the binary split is the softmax


def test_invariances():
    zs, zt, y = _logits(2)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    base = dkd_loss(zs, zt, y).item()
    assert dkd_loss(zs[perm], zt[perm], y[perm]).item() == pytest.approx(base, rel=1e-12)
    assert dkd_loss(zs + 7.0, zt - 3.0, y).item() == pytest.approx(base, rel=1e-9)  # softmax ignores a shift
    assert dkd_loss(zt, zt, y).item() == pytest.approx(0.0, abs=1e-12)
    assert base > 0


def test_gradient_and_no_teacher_gradient():
    zs, zt, y = _logits(4)
    zs.requires_grad_(True)
    zt.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: dkd_loss(z, zt, y), (zs,))
    dkd_loss(zs, zt, y).backward()
    assert zt.grad is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="two \\(B, C\\) logit tensors"):
        dkd_loss(torch.randn(4, 3), torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="3 labels for a batch of 4"):
        dkd_loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(3, dtype=torch.long))


def test_method_ramps_its_term_over_the_warmup_epochs():
    student, teacher = make_classifiers()
    method = build_method("dkd", student=student, teacher=teacher, task_loss=torch.nn.CrossEntropyLoss())
    assert (method.alpha, method.beta, method.temperature, method.warmup, method.task_weight) == (1.0, 8.0, 4.0, 20, 1.0)
    method.train()
    batch = make_batch()
    s, t = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
    full = dkd_loss(s["output"], t["output"], batch["label"]).item()
    for epoch, share in ((1, 0.05), (5, 0.25), (20, 1.0), (30, 1.0)):
        value = method.distill_losses(s, t, {**batch, "epoch": epoch})["dkd"].item()
        assert value == pytest.approx(share * full, rel=1e-5)
    assert method.distill_losses(s, t, batch)["dkd"].item() == pytest.approx(full, rel=1e-5)  # no epoch: full term
    assert method_tasks("dkd") == ("classification",)
