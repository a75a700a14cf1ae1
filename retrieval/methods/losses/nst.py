"""Neuron selectivity transfer (Huang & Wang, "Like What You Like: Knowledge Distill via Neuron
Selectivity Transfer", arXiv 1707.01219, 2017): maximum mean discrepancy between the
distributions of the student's and the teacher's channels, with a polynomial kernel.

For maps F (B x C x H x W), each channel's spatial response f_c (H·W values) is L2-normalised;
with k(a, b) = (aᵀb)² (the paper's polynomial kernel, d = 2, c = 0),

    L_nst = mean_{c,c'} k(t_c, t_c') + mean_{c,c'} k(s_c, s_c') − 2 · mean_{c,c'} k(s_c, t_c'),

each mean over the batch and all channel pairs (the authors' code, as in RepDistiller and
mdistiller; the teacher's own term carries no gradient). Channel counts may differ; the larger
map is average-pooled to the smaller one's size first (the code pools to (H, H), for square
maps; here to (H, W)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _channels(f: torch.Tensor) -> torch.Tensor:
    return F.normalize(f.flatten(2), dim=2)  # B x C x HW, each channel a unit vector


def poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B x Cb x Ca) squared dot products of the channels of ``a`` (B x Ca x N) and ``b`` (B x Cb x N)."""
    return (b @ a.transpose(1, 2)).pow(2)


def nst_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L_nst (see module docstring) between student maps ``s`` and teacher maps ``t`` (B x C x H x W)."""
    if s.dim() != 4 or t.dim() != 4 or s.shape[0] != t.shape[0]:
        raise ValueError(f"nst_loss: expected two B x C x H x W maps of one batch, got {tuple(s.shape)} and "
                         f"{tuple(t.shape)}")
    size = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
    if tuple(s.shape[2:]) != size:
        s = F.adaptive_avg_pool2d(s, size)
    if tuple(t.shape[2:]) != size:
        t = F.adaptive_avg_pool2d(t, size)
    s, t = _channels(s), _channels(t.detach())
    return poly_kernel(t, t).mean() + poly_kernel(s, s).mean() - 2 * poly_kernel(s, t).mean()
