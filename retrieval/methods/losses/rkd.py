"""Relational knowledge distillation losses (Park et al., CVPR 2019) on embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distances(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance matrix with an exact zero diagonal (safe gradient at 0)."""
    sq = x.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp(min=eps)
    d = d2.sqrt()
    return d * (1 - torch.eye(len(x), device=x.device, dtype=x.dtype))


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
