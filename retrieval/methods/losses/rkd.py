"""Relational knowledge distillation losses (Park et al., CVPR 2019) on embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distances(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance matrix with an exact zero diagonal and no gradient through it.

    The squared distances are clamped at ``eps`` (off the diagonal, duplicate rows get sqrt(eps), not 0,
    so a power of them has a finite derivative). The diagonal is set to 0 with ``masked_fill``, whose
    backward drops the diagonal's gradient: a function of the result whose derivative is infinite at 0
    (``pow(beta)`` with beta < 1, as DarkRank's) would otherwise send inf there, and 0 · inf = NaN
    (multiplying by 1 − I, as before, did that in float32, where the diagonal's rounding noise exceeds
    ``eps``). The values are those of ``d * (1 − I)``."""
    sq = x.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp(min=eps)
    d = d2.sqrt()
    return d.masked_fill(torch.eye(len(x), device=x.device, dtype=torch.bool), 0.0)


def _normalised_distances(x: torch.Tensor) -> torch.Tensor:
    d = pairwise_distances(x)
    positive = d[d > 0]
    if positive.numel() == 0:
        return d
    return d / positive.mean()


def rkd_distance_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """smooth-L1 between the student's and teacher's distance matrices, each divided by
    the mean of its non-zero entries (teacher side without grad)."""
    with torch.no_grad():
        td = _normalised_distances(t)
    return F.smooth_l1_loss(_normalised_distances(s), td)


def _angles(x: torch.Tensor) -> torch.Tensor:
    e = F.normalize(x[None, :, :] - x[:, None, :], dim=2)  # e[j, i] = normalize(x_i - x_j)
    return torch.bmm(e, e.transpose(1, 2)).flatten()  # <e_ij, e_kj> for all i, j, k (B^3 values)


def rkd_angle_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """smooth-L1 between the cosines of the angles <x_i - x_j, x_k - x_j> of all triplets."""
    with torch.no_grad():
        ta = _angles(t)
    return F.smooth_l1_loss(_angles(s), ta)
