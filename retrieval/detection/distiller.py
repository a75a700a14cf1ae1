"""Any registered KD method on a detector: the detector's own losses stay named terms.

    L = w_det · (L_objectness + L_rpn_box_reg + L_classifier + L_box_reg) + Σ_j L_kd,j

logged as ``det/loss_objectness``, ``det/loss_rpn_box_reg``, ``det/loss_classifier``,
``det/loss_box_reg`` beside the method's own terms (``at``, ``pos1``, ``mimic``, ...).
The method is built from the registry unchanged, with ``task_weight=0``; its
``distill_losses`` reads the detector's ``{"stages", "fpn"}`` as it reads any model's.
"""

from __future__ import annotations

import torch
from torch import nn

from retrieval.methods import build_method


class DetectionDistiller(nn.Module):
    """Wraps a ``Distiller`` ``kd``; the trainer sees the usual ``training_step`` /
    ``trainable_parameters`` / ``student`` interface."""

    def __init__(self, kd: nn.Module, det_weight: float = 1.0):
        super().__init__()
        self.kd, self.det_weight = kd, det_weight

    @property
    def student(self):
        return self.kd.student

    @property
    def teacher(self):
        return self.kd.teacher

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.kd.trainable_parameters()

    def training_step(self, batch: dict):
        device = next(self.student.parameters()).device  # the trainer moves tensors, not lists of them
        images = [img.to(device) for img in batch["image"]]
        targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in batch["target"]]
        student_out = self.student.forward_features(images, targets)
        losses = {f"det/{name}": self.det_weight * value for name, value in student_out["losses"].items()}
        teacher_out = None
        if self.kd.needs_teacher:
            with torch.no_grad():
                teacher_out = self.teacher.forward_features(images, heads=False)
        losses.update(self.kd.distill_losses(student_out, teacher_out, batch))
        return student_out["output"], losses


def build_detection_method(name: str, student, teacher=None, **options) -> DetectionDistiller:
    """Registry method ``name`` on detectors; ``task_weight`` (default 1) weighs the detector's losses."""
    det_weight = options.pop("task_weight", 1.0)
    kd = build_method(name, student=student, teacher=teacher, task_loss=None, task_weight=0.0, **options)
    return DetectionDistiller(kd, det_weight)
