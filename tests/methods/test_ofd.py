"""OFD: the margin against the Gaussian's negative mean computed by quadrature, the partial L2
against an element loop in the paper's max(t, m) form, its invariances, and the method's loss dict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.losses import ofd_loss, ofd_margin
from tests.methods.tiny_nets import make_batch, make_classifiers, make_models


def bn_with(weight, bias):
    bn = nn.BatchNorm2d(len(weight))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(weight))
        bn.bias.copy_(torch.tensor(bias))
    return bn


def negative_mean_by_quadrature(m, s):
    """E[x | x < 0] for x ~ N(m, s²), by the trapezoid rule on a fine grid."""
    x = np.linspace(m - 12 * s, 0.0, 400001)
    density = np.exp(-0.5 * ((x - m) / s) ** 2)
    return np.trapezoid(x * density, x) / np.trapezoid(density, x)


def test_margin_is_the_mean_of_the_negative_responses():
    pairs = [(1.0, 0.0), (0.5, 0.3), (2.0, -1.0), (-1.5, 0.7)]  # the sign of the BN weight plays no part
    margin = ofd_margin(bn_with([w for w, _ in pairs], [b for _, b in pairs]))
    for got, (w, b) in zip(margin.tolist(), pairs):
        assert got == pytest.approx(negative_mean_by_quadrature(b, abs(w)), rel=1e-5)
    assert margin[0].item() == pytest.approx(-math.sqrt(2 / math.pi), rel=1e-6)  # half-normal mean


def test_margin_of_a_channel_almost_never_negative_is_minus_three_sigma():
    margin = ofd_margin(bn_with([1.0, 0.5], [4.0, 1.6]))  # P(x < 0) = Φ(-4) = 3e-5, Φ(-3.2) = 7e-4
    torch.testing.assert_close(margin, torch.tensor([-3.0, -1.5]))
    just_above = ofd_margin(bn_with([1.0], [3.0]))  # Φ(-3) = 1.3e-3 > 0.001: the Gaussian formula
    assert just_above.item() == pytest.approx(negative_mean_by_quadrature(3.0, 1.0), rel=1e-5)


def ref_partial_l2(source, target, margin):
    """The paper's form: the target max(t, m); (s - t')² unless s <= t' <= 0; summed, over the batch."""
    s, t = np.asarray(source, np.float64), np.asarray(target, np.float64)
    total = 0.0
    for n, c, i, j in np.ndindex(*s.shape):
        tt = max(t[n, c, i, j], float(margin[c]))
        if not (s[n, c, i, j] <= tt and tt <= 0):
            total += (s[n, c, i, j] - tt) ** 2
    return total / s.shape[0]


def random_case(seed, shape=(3, 4, 3, 2), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=dtype), torch.randn(*shape, generator=g, dtype=dtype),
            -torch.rand(shape[1], generator=g, dtype=dtype))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_l2_matches_the_loop(seed):
    s, t, m = random_case(seed)
    assert ofd_loss(s, t, m).item() == pytest.approx(ref_partial_l2(s, t, m), rel=1e-6)


def test_zero_when_the_student_equals_the_teacher_or_lies_below_a_negative_target():
    s, t, m = random_case(3)
    assert ofd_loss(t, t, m).item() == 0.0
    below = torch.minimum(t, m.view(1, -1, 1, 1)) - 1.0  # under both the map and the margin
    assert ofd_loss(torch.where(t <= 0, below, t), t, m).item() == 0.0


def test_invariant_to_the_order_of_the_batch():
    s, t, m = random_case(4, shape=(6, 3, 2, 2))
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert ofd_loss(s[perm], t[perm], m).item() == pytest.approx(ofd_loss(s, t, m).item(), rel=1e-6)


def test_gradient():
    s, t, m = random_case(5, dtype=torch.float64)
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: ofd_loss(x, t, m), (s,))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"student map \(1, 2, 2, 2\) and teacher map \(1, 3, 2, 2\) differ"):
        ofd_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="2 margins for a map of 3 channels"):
        ofd_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(2))


@pytest.mark.parametrize("pair", ["embedding", "classifier"])
def test_method_sums_the_stages_with_halving_weights_and_trains_only_its_connectors(pair):
    student, teacher = make_models() if pair == "embedding" else make_classifiers()
    batch = make_batch()
    task = build_task_loss("triplet") if pair == "embedding" else torch.nn.CrossEntropyLoss()
    method = build_method("ofd", student=student, teacher=teacher, task_loss=task)
    assert method.weight == 0.001 and method.stages_used == (2, 3, 4)
    method.train()
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "ofd"}
    method.eval()  # the same maps without touching the BN statistics again
    s = student.forward_features(batch["image"], preact=True)
    t = teacher.forward_features(batch["image"], preact=True)
    bns = teacher.backbone.preact_bns
    expected = 0.0
    for k, (i, w) in enumerate(zip((2, 3, 4), (0.25, 0.5, 1.0))):
        source = method.connectors[k](s["preact"][i - 1])
        target = nn.functional.adaptive_avg_pool2d(t["preact"][i - 1], source.shape[-2:])
        expected += w * ref_partial_l2(source.detach(), target, ofd_margin(bns[i - 1]).numpy())
    _, again = method.training_step(batch)
    assert again["ofd"].item() == pytest.approx(0.001 * expected, rel=1e-5)
    method.train()
    sum(method.training_step(batch)[1].values()).backward()
    assert all(p.grad is not None for p in method.connectors.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    trainable = {id(p) for p in method.trainable_parameters()}
    assert {id(p) for p in method.connectors.parameters()} <= trainable


def test_connector_initialisation_follows_the_authors():
    student, teacher = make_models()
    method = build_method("ofd", student=student, teacher=teacher, task_loss=None, task_weight=0.0, stages=[4])
    conv, bn = method.connectors[0]
    assert conv.bias is None and conv.kernel_size == (1, 1) and conv.weight.shape == (128, 64, 1, 1)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.1)
    assert torch.equal(bn.weight, torch.ones(128)) and torch.equal(bn.bias, torch.zeros(128))


def test_refuses_a_backbone_without_pre_relu_maps_and_an_even_kernel():
    from retrieval.models import create_classifier

    student, teacher = make_classifiers()
    mobile = create_classifier("mobilenet_v3_small", 10)
    with pytest.raises(ValueError, match="ofd reads the teacher's stage maps before their last ReLU"):
        build_method("ofd", student=student, teacher=mobile, task_loss=None, task_weight=0.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        build_method("ofd", student=student, teacher=teacher, task_loss=None, task_weight=0.0, kernel_size=2)
