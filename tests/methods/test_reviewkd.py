"""ReviewKD: HCL against a loop and a hand-computed case, the fusion block, the review path's
shapes and the method's warm-up and loss dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import ABF, hcl_loss
from tests.methods.tiny_nets import make_batch, make_models


def block_mean(x, size):
    """Average over size x size equal blocks of each (H, W) map (H divisible by size), in loops."""
    b, c, h, w = x.shape
    k = h // size
    out = np.zeros((b, c, size, size))
    for i in range(size):
        for j in range(size):
            out[:, :, i, j] = x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k].mean(axis=(2, 3))
    return out


def ref_hcl(ps, ts):
    total = 0.0
    for p, t in zip(ps, ts):
        p, t = np.asarray(p, dtype=np.float64), np.asarray(t, dtype=np.float64)
        terms, weights, w = [((p - t) ** 2).mean()], [1.0], 1.0
        for size in (4, 2, 1):
            if size < p.shape[2]:
                w /= 2
                terms.append(((block_mean(p, size) - block_mean(t, size)) ** 2).mean())
                weights.append(w)
        total += sum(a * b for a, b in zip(terms, weights)) / sum(weights)
    return total


def test_hcl_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 3, 8, 8), (2, 4, 4, 4), (2, 5, 2, 2), (2, 5, 1, 1)]
    ps = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    ts = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    assert hcl_loss(ps, ts).item() == pytest.approx(ref_hcl(ps, ts), rel=1e-12)


def test_hcl_hand_computed_case_and_zero():
    t = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 1, 1)]
    shifted = [x + 0.5 for x in t]  # every full-size and pooled difference is 0.5
    assert hcl_loss(shifted, t).item() == pytest.approx(2 * 0.25, rel=1e-6)
    assert hcl_loss(t, t).item() == 0.0


def test_hcl_refuses_maps_that_do_not_pair():
    with pytest.raises(ValueError, match="2 predicted maps for 1 teacher maps"):
        hcl_loss([torch.zeros(1, 1, 2, 2)] * 2, [torch.zeros(1, 1, 2, 2)])
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\) and its teacher map \(1, 1, 4, 4\) differ"):
        hcl_loss([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 4, 4)])


def test_abf_fuses_with_the_upsampled_residual_and_resizes_to_the_teacher():
    torch.manual_seed(0)
    abf = ABF(3, 4, 6, fuse=True).eval()
    with torch.no_grad():  # weights of 1 and 1: x' = reduce(x) + upsampled residual
        abf.attention[0].weight.zero_()
        abf.attention[0].bias.fill_(50.0)
    x, residual = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 2, 2)
    out, fused = abf(x, residual, (8, 8))
    expected = abf.reduce(x) + residual.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(fused, expected.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    assert out.shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="needs the residual"):
        abf(x)
    deepest = ABF(3, 4, 6, fuse=False)
    assert deepest.attention is None and deepest(torch.randn(2, 3, 1, 1), out_size=(1, 1))[0].shape == (2, 6, 1, 1)


def test_method_review_path_warm_up_and_losses():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("reviewkd", student=student, teacher=teacher, task_loss=build_task_loss("triplet"))
    method.train()
    assert (method.weight, method.warmup, method.stages_used) == (5.0, 20, (2, 3, 4))
    assert len(method.abfs) == 4 and method.abfs[-1].attention is None
    assert {id(p) for p in method.abfs.parameters()} <= {id(p) for p in method.trainable_parameters()}
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "reviewkd"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in method.abfs.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    method.eval()  # fixed BN statistics: the warm-up is then an exact factor
    full = method.distill_losses(student.forward_features(batch["image"]), teacher.forward_features(batch["image"]),
                                 {})["reviewkd"]
    early = method.distill_losses(student.forward_features(batch["image"]), teacher.forward_features(batch["image"]),
                                  {"epoch": 5})["reviewkd"]
    assert early.item() == pytest.approx(full.item() * 5 / 20, rel=1e-6)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    permuted = method.distill_losses(student.forward_features(batch["image"][perm]),
                                     teacher.forward_features(batch["image"][perm]), {})["reviewkd"]
    assert permuted.item() == pytest.approx(full.item(), rel=1e-5)
    with pytest.raises(ValueError, match="stages must increase"):
        build_method("reviewkd", student=student, teacher=teacher, task_loss=None, task_weight=0.0, stages=(3, 2))


def test_teacher_preact_compares_with_the_teachers_maps_before_their_relu():
    from retrieval.models import create_model

    student, teacher = make_models()
    batch = make_batch()
    kw = dict(student=student, teacher=teacher, task_loss=None, task_weight=0.0)
    plain = build_method("reviewkd", **kw).eval()
    pre = build_method("reviewkd", teacher_preact=True, **kw).eval()
    pre.abfs.load_state_dict(plain.abfs.state_dict())
    assert plain.feature_options == {} and pre.feature_options == {"preact": True}
    t = teacher.forward_features(batch["image"], preact=True)
    levels = pre._levels(t, preact=True)  # stages 2-4 before their ReLU, then the pooled (post-ReLU) last stage
    for got, want in zip(levels, t["preact"][1:] + [t["stages"][3].mean(dim=(2, 3), keepdim=True)]):
        assert torch.equal(got, want)
    s = student.forward_features(batch["image"], preact=True)
    with_preact = pre.distill_losses(s, t, {})["reviewkd"]
    assert with_preact.item() != pytest.approx(plain.distill_losses(s, t, {})["reviewkd"].item(), rel=1e-4)
    _, losses = pre.training_step(batch)
    assert losses["reviewkd"].item() == pytest.approx(with_preact.item(), rel=1e-5)
    mobile = create_model("mobilenet_v3_small", embedding_dim=24)
    with pytest.raises(ValueError, match="teacher_preact reads the teacher's stage maps before their last ReLU"):
        build_method("reviewkd", student=student, teacher=mobile, task_loss=None, task_weight=0.0, teacher_preact=True)
