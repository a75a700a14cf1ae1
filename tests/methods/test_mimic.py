"""``mimic``: MSE between (connected) student and teacher features, checked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from retrieval.methods import build_method
from retrieval.models import StageInfo, create_model


class Plain(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fpn_levels = [StageInfo(f"p{i}", c, 4 * 2 ** i) for i, c in enumerate(channels)]


def test_same_channels_is_the_plain_mean_squared_error():
    method = build_method("mimic", student=Plain([2, 2]), teacher=Plain([2, 2]), task_weight=0.0, weight=3.0)
    fs = [torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]), torch.zeros(1, 2, 1, 1)]
    ft = [torch.tensor([[[[1.0, 0.0]], [[0.0, 4.0]]]]), torch.ones(1, 2, 1, 1)]
    losses = method.distill_losses({"fpn": fs}, {"fpn": ft}, {})
    # level 1: (0 + 4 + 9 + 0) / 4 = 3.25; level 2: (1 + 1) / 2 = 1; times weight 3
    assert losses["mimic"].item() == pytest.approx(3 * (3.25 + 1.0))


def test_a_1x1_connector_maps_student_channels_to_the_teacher_and_learns():
    method = build_method("mimic", student=Plain([1]), teacher=Plain([2]), task_weight=0.0, levels=[1])
    connector = method.connectors["1"]
    assert isinstance(connector, nn.Conv2d) and connector.weight.shape == (2, 1, 1, 1)
    with torch.no_grad():
        connector.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
    fs = torch.tensor([[[[1.0, 3.0]]]])          # (1, 1, 1, 2)
    ft = torch.tensor([[[[2.0, 6.0]], [[0.0, 0.0]]]])
    loss = method.distill_losses({"fpn": [fs]}, {"fpn": [ft]}, {})["mimic"]
    # connected: channel 0 = [2, 6] (exact), channel 1 = [-1, -3]: (1 + 9) / 4 = 2.5
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    assert connector.weight.grad is not None and connector.weight.grad.abs().sum() > 0
    assert connector in [m for m in method.modules()] and connector.weight in method.trainable_parameters()


def test_stages_of_any_backbone_and_clear_errors():
    student, teacher = create_model("small_cnn_xs", embedding_dim=8), create_model("small_cnn_s", embedding_dim=8)
    method = build_method("mimic", student=student, teacher=teacher, task_weight=0.0, features="stages")
    x = torch.randn(2, 3, 32, 32)
    losses = method.distill_losses(student.forward_features(x), teacher.forward_features(x), {})
    assert losses["mimic"].item() > 0
    with pytest.raises(ValueError, match="fpn_levels"):
        build_method("mimic", student=student, teacher=teacher, task_weight=0.0, features="fpn")  # no FPN here
    assert build_method("mimic", student=student, teacher=teacher, task_weight=0.0).features == "stages"  # auto
    with pytest.raises(ValueError, match="unknown features"):
        build_method("mimic", student=Plain([2]), teacher=Plain([2]), task_weight=0.0, features="heads")
    method = build_method("mimic", student=Plain([2]), teacher=Plain([2]), task_weight=0.0)
    with pytest.raises(ValueError, match="level 1 has shape"):
        method.distill_losses({"fpn": [torch.zeros(1, 2, 4, 4)]}, {"fpn": [torch.zeros(1, 2, 2, 2)]}, {})
