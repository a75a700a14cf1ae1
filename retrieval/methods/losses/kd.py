"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015): soft-target KD.

    L_kd = T² · 1/B Σ_b KL(softmax(z_t[b] / T) || softmax(z_s[b] / T))

(KL summed over classes, averaged over the batch; the T² keeps the gradient scale of
the soft term independent of T). The teacher side is detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """L_kd above, for (B, C) logits."""
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(f"kd_loss: expected two (B, C) logit tensors of one shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"kd_loss: the temperature must be positive, got {temperature}")
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    log_pt = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * temperature ** 2
