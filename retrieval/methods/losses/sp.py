"""Similarity-preserving KD (Tung & Mori, ICCV 2019) on a batch of feature maps.

For features F (B x d, each map flattened), the batch's similarity G = F Fᵀ is L2-normalised row by
row, Ĝ_i = G_i / max(‖G_i‖, 1e-12) (``F.normalize``), and

    L_sp = 1/B² · ‖Ĝ_t − Ĝ_s‖²_F.

Student and teacher features may differ in channels and size: only the B x B matrices are
compared. The teacher side carries no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_matrix(f: torch.Tensor) -> torch.Tensor:
    """Ĝ (B x B): the row-normalised Gram matrix of the batch's flattened features ``f`` (B x ...)."""
    f = f.flatten(1)
    return F.normalize(f @ f.t(), dim=1)


def sp_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L_sp (see module docstring) between student features ``s`` and teacher features ``t`` (B x ...)."""
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"sp_loss: student and teacher batches differ ({s.shape[0]} vs {t.shape[0]})")
    gs = similarity_matrix(s)
    with torch.no_grad():
        gt = similarity_matrix(t)
    b = s.shape[0]
    return (gt - gs).pow(2).sum() / (b * b)
