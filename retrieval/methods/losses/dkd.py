"""Decoupled knowledge distillation (Zhao et al., CVPR 2022) on (B, C) logits with labels y.

With p = softmax(z / T): the target-class term compares the binary split (p_y, 1 − p_y), the
non-target term the distribution over the other classes, p̂_c = p_c / (1 − p_y) for c ≠ y:

    TCKD = T² · 1/B Σ_b KL((p_y, 1 − p_y)_t || (p_y, 1 − p_y)_s),
    NCKD = T² · 1/B Σ_b KL(p̂_t || p̂_s),
    L_dkd = alpha · TCKD + beta · NCKD.

As in the authors' code (mdistiller), p̂ is the softmax of z / T − 1000·[c = y]: the target class
is pushed out of the softmax rather than dropped (a difference of order e^(−1000) from p̂ above).
KL(q || p) = Σ q (log q − log p), with 0 · log 0 = 0. The teacher side is detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _target_mask(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels.reshape(-1), logits.shape[1]).to(torch.bool)


def _kl_sum(q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    return (torch.xlogy(q, q) - q * log_p).sum()


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD) of the module docstring."""
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(f"dkd: expected two (B, C) logit tensors of one shape, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    if labels.reshape(-1).shape[0] != student_logits.shape[0]:
        raise ValueError(f"dkd: {labels.numel()} labels for a batch of {student_logits.shape[0]}")
    zs, zt = student_logits / temperature, teacher_logits.detach() / temperature
    gt = _target_mask(zs, labels)
    b = zs.shape[0]

    def binary(z):
        p = torch.softmax(z, dim=1)
        target = (p * gt).sum(dim=1, keepdim=True)
        return torch.cat([target, (p * ~gt).sum(dim=1, keepdim=True)], dim=1)

    def log_binary(z):  # log(p_y, 1 − p_y) from log-sum-exps: log of a binary() that underflows to 0 is -inf
        # (a low temperature or large logits), and its gradient NaN
        target = torch.logsumexp(z.masked_fill(~gt, -torch.inf), dim=1, keepdim=True)
        rest = torch.logsumexp(z.masked_fill(gt, -torch.inf), dim=1, keepdim=True)
        return torch.cat([target, rest], dim=1) - torch.logsumexp(z, dim=1, keepdim=True)

    tckd = _kl_sum(binary(zt), log_binary(zs)) * temperature ** 2 / b
    nckd = _kl_sum(torch.softmax(zt - 1000.0 * gt, dim=1),
                   F.log_softmax(zs - 1000.0 * gt, dim=1)) * temperature ** 2 / b
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, alpha: float = 1.0,
             beta: float = 8.0, temperature: float = 4.0) -> torch.Tensor:
    """L_dkd = alpha · TCKD + beta · NCKD (module docstring)."""
    tckd, nckd = dkd_terms(student_logits, teacher_logits, labels, temperature)
    return alpha * tckd + beta * nckd
