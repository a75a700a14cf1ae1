"""Base class of every KD method: a student, a frozen teacher and named losses.

``training_step(batch)`` returns ``(student_output, {"name": weighted loss tensor})``;
the trainer sums the dict and logs each term, and never asks which method it runs.
The task loss is one more named term (``task``), so a method serves any task whose
model returns ``forward_features(x) -> {"output", "embedding", "stages"}``.
"""

from __future__ import annotations

import torch
from torch import nn

from retrieval.methods.options import Weight


TASKS = ("retrieval", "classification", "detection")


class Distiller(nn.Module):
    """Subclasses implement ``distill_losses(student_out, teacher_out, batch) -> dict``.

    ``tasks``: the tasks a method runs on (of ``TASKS``): retrieval (embeddings and stage features),
    classification (logits too) and detection (backbone stages and FPN levels, no embedding). The
    default is that of a method on embeddings or stages; the runner refuses a method on a suite of
    another task."""

    needs_teacher = True
    tasks: tuple[str, ...] = ("retrieval", "classification")
    feature_options: dict = {}
    """Keywords of ``forward_features`` for the student and the teacher (``{"preact": True}``: OFD's maps)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None, task_loss=None,
                 task_weight: Weight = 1.0, train_labels=None, **unused):
        """``train_labels``: label of every training sample by dataset index (for memory-bank methods)."""
        super().__init__()
        if unused:
            raise TypeError(f"{type(self).__name__}: unknown option(s) {sorted(unused)}")
        if self.needs_teacher and teacher is None:
            raise ValueError(f"{type(self).__name__} needs a teacher model")
        if task_weight and task_loss is None:
            raise ValueError("task_weight > 0 but no task_loss was given")
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        self.task_loss = task_loss
        self.task_weight = task_weight
        self.train_labels = train_labels

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # BN statistics and dropout of the teacher stay fixed
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The student's parameters and those of any connector, head or loss module."""
        return [p for name, p in self.named_parameters() if not name.startswith("teacher.") and p.requires_grad]

    def distill_losses(self, student_out: dict, teacher_out: dict | None, batch: dict) -> dict:
        return {}

    def training_step(self, batch: dict):
        images = batch["image"]
        student_out = self.student.forward_features(images, **self.feature_options)
        losses = {}
        if self.task_weight:
            task_out = student_out.get("task_input", student_out["output"])
            losses["task"] = self.task_weight * self.task_loss(task_out, batch["label"])
        teacher_out = None
        if self.needs_teacher:
            with torch.no_grad():
                teacher_out = self.teacher.forward_features(images, **self.feature_options)
        losses.update(self.distill_losses(student_out, teacher_out, batch))
        return student_out["output"], losses
