"""DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022): the
relations of the class probabilities, matched by Pearson correlation instead of KL.

With Y = softmax(Z / τ) (B x C) for student and teacher, and ρ(a, b) the Pearson correlation of
two vectors, (a − ā)·(b − b̄) / (‖a − ā‖ ‖b − b̄‖ + ε), ε = 1e-8 (the authors' code):

    inter = τ² · (1 − 1/B Σ_b ρ(Y_s[b, :], Y_t[b, :]))   (each sample's distribution over the classes),
    intra = τ² · (1 − 1/C Σ_c ρ(Y_s[:, c], Y_t[:, c]))   (each class's probabilities over the batch),
    L_dist = beta · inter + gamma · intra.

The teacher side is detached.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """ρ of each row of ``a`` with the same row of ``b`` (both B x C)."""
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0,
               eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(inter, intra) of the module docstring, for (B, C) logits."""
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(f"dist: expected two (B, C) logit tensors of one shape, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    ys = torch.softmax(student_logits / tau, dim=1)
    yt = torch.softmax(teacher_logits.detach() / tau, dim=1)
    inter = tau ** 2 * (1 - pearson_rows(ys, yt, eps).mean())
    intra = tau ** 2 * (1 - pearson_rows(ys.t(), yt.t(), eps).mean())
    return inter, intra


def dist_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float = 1.0, gamma: float = 1.0,
              tau: float = 1.0) -> torch.Tensor:
    """L_dist = beta · inter + gamma · intra (module docstring)."""
    inter, intra = dist_terms(student_logits, teacher_logits, tau)
    return beta * inter + gamma * intra
