"""Any registered KD method on a detector: the detector's own losses stay named terms.

    L = w_det · (L_objectness + L_rpn_box_reg + L_classifier + L_box_reg) + Σ_j L_kd,j

logged as ``det/loss_objectness``, ``det/loss_rpn_box_reg``, ``det/loss_classifier``,
``det/loss_box_reg`` beside the method's own terms (``at``, ``pos1``, ``mimic``, ...).
The method is built from the registry unchanged, with ``task_weight=0``; its
``distill_losses`` reads the detector's ``{"stages", "fpn"}`` as it reads any model's.

``cache_teacher=True`` keeps the frozen teacher's stages and FPN levels of each training image
(by its dataset index) from the first time the image is drawn, so that the teacher runs once per
image rather than once per epoch (torchdistill offers the same for teacher outputs). That is exact
only when an image's features cannot change: the teacher is frozen in eval mode, the data has no
random augmentation and every image has one size (so that no batch pads it differently). Each image
is run alone, so its cached features do not depend on the batch it first came in, and a resumed
run gets the features an uninterrupted one had.
"""

from __future__ import annotations

import torch
from torch import nn

from retrieval.methods import build_method


class DetectionDistiller(nn.Module):
    """Wraps a ``Distiller`` ``kd``; the trainer sees the usual ``training_step`` /
    ``trainable_parameters`` / ``student`` interface."""

    def __init__(self, kd: nn.Module, det_weight: float = 1.0, cache_teacher: bool = False):
        super().__init__()
        self.kd, self.det_weight = kd, det_weight
        self.teacher_cache: dict[int, tuple] | None = {} if cache_teacher and kd.needs_teacher else None

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
        teacher_out = self.teacher_features(images, batch) if self.kd.needs_teacher else None
        losses.update(self.kd.distill_losses(student_out, teacher_out, batch))
        return student_out["output"], losses

    @torch.no_grad()
    def teacher_features(self, images: list, batch: dict) -> dict:
        """The teacher's ``{"stages", "fpn"}`` of the batch: run now, or read from the cache."""
        if self.teacher_cache is None:
            return self.teacher.forward_features(images, heads=False)
        indices = [int(i) for i in batch["index"]]
        for image, index in zip(images, indices):
            if index not in self.teacher_cache:
                out = self.teacher.forward_features([image], heads=False)
                self.teacher_cache[index] = ([f[0] for f in out["stages"]], [f[0] for f in out["fpn"]])
        entries = [self.teacher_cache[i] for i in indices]
        shapes = {tuple(e[0][0].shape) for e in entries}
        if len(shapes) > 1:
            raise ValueError(f"cache_teacher needs training images of one size; the teacher's first stage came in "
                             f"shapes {sorted(shapes)}")
        return {"stages": [torch.stack([e[0][k] for e in entries]) for k in range(len(entries[0][0]))],
                "fpn": [torch.stack([e[1][k] for e in entries]) for k in range(len(entries[0][1]))],
                "output": None, "losses": {}}


def build_detection_method(name: str, student, teacher=None, cache_teacher: bool = False,
                           **options) -> DetectionDistiller:
    """Registry method ``name`` on detectors; ``task_weight`` (default 1) weighs the detector's losses;
    ``cache_teacher``: see the module docstring."""
    det_weight = options.pop("task_weight", 1.0)
    kd = build_method(name, student=student, teacher=teacher, task_loss=None, task_weight=0.0, **options)
    return DetectionDistiller(kd, det_weight, cache_teacher)
