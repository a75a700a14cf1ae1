"""FitNet: the regressor's shapes, the hint loss against a loop, invariance, and the method's dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.methods.fitnet import HintRegressor
from tests.methods.tiny_nets import make_batch, make_models


@pytest.mark.parametrize("size_s,stride_s,stride_t,size_t", [(8, 4, 4, 8), (8, 2, 4, 4), (4, 4, 2, 8)])
def test_the_regressor_maps_the_student_onto_the_teachers_shape(size_s, stride_s, stride_t, size_t):
    out = HintRegressor(6, 10, stride_s, stride_t)(torch.randn(2, 6, size_s, size_s))
    assert tuple(out.shape) == (2, 10, size_t, size_t)
    assert (out >= 0).all()  # BatchNorm then ReLU


def test_other_stride_ratios_are_refused():
    with pytest.raises(ValueError, match="stride 2 to one of stride 8"):
        HintRegressor(4, 4, 2, 8)


def ref_hint(x, weight, bias, gamma, beta, target, eps=1e-5):
    """1x1 conv + BatchNorm (batch statistics) + ReLU, then the mean squared error, in loops."""
    b, _, h, w = x.shape
    c_out = weight.shape[0]
    y = np.zeros((b, c_out, h, w))
    for n in range(b):
        for c in range(c_out):
            for i in range(h):
                for j in range(w):
                    y[n, c, i, j] = sum(weight[c, k] * x[n, k, i, j] for k in range(x.shape[1])) + bias[c]
    total = 0.0
    for c in range(c_out):
        values = y[:, c].ravel()
        mean, var = values.mean(), ((values - values.mean()) ** 2).mean()
        z = np.maximum(gamma[c] * (y[:, c] - mean) / np.sqrt(var + eps) + beta[c], 0.0)
        total += ((z - target[:, c]) ** 2).sum()
    return total / target.size


def test_the_hint_loss_matches_the_loop():
    student, teacher = make_models()
    method = build_method("fitnet", student=student, teacher=teacher, task_loss=None, task_weight=0.0, weight=2.0)
    method.train()
    for p in method.regressor.parameters():
        torch.nn.init.normal_(p)
    g = torch.Generator().manual_seed(1)
    fs, ft = torch.randn(3, 32, 4, 4, generator=g), torch.randn(3, 64, 4, 4, generator=g)  # stage 3 of each
    stages = lambda f: {"stages": [None, None, f, None]}  # noqa: E731
    loss = method.distill_losses(stages(fs), stages(ft), {})["fitnet"]
    conv, bn = method.regressor[0], method.regressor[1]
    expected = ref_hint(fs.double().numpy(), conv.weight.detach().double().numpy()[:, :, 0, 0],
                        conv.bias.detach().double().numpy(), bn.weight.detach().double().numpy(),
                        bn.bias.detach().double().numpy(), ft.double().numpy())
    assert loss.item() == pytest.approx(2.0 * expected, rel=1e-4)
    perm = torch.randperm(3, generator=g)
    permuted = method.distill_losses(stages(fs[perm]), stages(ft[perm]), {})["fitnet"]
    assert permuted.item() == pytest.approx(loss.item(), rel=1e-5)  # batch statistics do not see the order


def test_method_trains_the_regressor_not_the_teacher():
    student, teacher = make_models()
    batch = make_batch()
    method = build_method("fitnet", student=student, teacher=teacher, task_loss=build_task_loss("triplet"))
    method.train()
    assert method.weight == 100.0 and method.stage == 3  # RepDistiller's hint layer 2 = our stage 3
    assert {id(p) for p in method.regressor.parameters()} <= {id(p) for p in method.trainable_parameters()}
    _, losses = method.training_step(batch)
    assert set(losses) == {"task", "fitnet"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in method.regressor.parameters())
    assert all(p.grad is None for p in teacher.parameters())
