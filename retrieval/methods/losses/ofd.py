"""OFD's pieces (Heo et al., "A Comprehensive Overhaul of Feature Distillation", ICCV 2019): the
margin of a teacher channel and the partial L2 distance between pre-ReLU maps.

The margin of a channel is the expected value of its negative responses, were the BatchNorm's
output Gaussian with the BN's scale γ and shift β as standard deviation and mean:

    m = β − |γ| φ(β/|γ|) / Φ(−β/|γ|)   where Φ(−β/|γ|) > 0.001,   else −3 |γ|.

The teacher's map is taken as max(t, m) and the partial L2 distance skips the elements where
the student is already below a non-positive target: per element,

    (s − m)²  where s > m ≥ t;   (s − t)²  where s > t > m and t ≤ 0;   (s − t)²  where t > 0;   else 0,

summed over channels and positions and averaged over the batch (mdistiller's ``feat_loss``): the
squared distance to max(t, m), skipped where the student is below that non-positive target.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def ofd_margin(bn: nn.BatchNorm2d) -> torch.Tensor:
    """The margin of each channel of ``bn`` (float32, shape ``(C,)``), from its affine weight and bias."""
    if bn.weight is None or bn.bias is None:
        raise ValueError("ofd: the BatchNorm before the ReLU has no affine weight and bias to take a margin from")
    s = bn.weight.detach().double().abs().clamp_min(1e-12)
    m = bn.bias.detach().double()
    below = torch.special.ndtr(-m / s)  # P(x < 0) for x ~ N(m, s²)
    expected_negative = m - s * torch.exp(-0.5 * (m / s) ** 2) / math.sqrt(2 * math.pi) / below.clamp_min(1e-300)
    return torch.where(below > 0.001, expected_negative, -3 * s).float()


def ofd_loss(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """Partial L2 between the student's connected map ``source`` and the teacher's pre-ReLU map ``target``
    (both ``(B, C, H, W)``), with the teacher's per-channel ``margin`` ``(C,)``: the sum over channels and
    positions, averaged over the batch."""
    if source.shape != target.shape:
        raise ValueError(f"ofd: student map {tuple(source.shape)} and teacher map {tuple(target.shape)} differ")
    if margin.shape != (target.shape[1],):
        raise ValueError(f"ofd: {margin.numel()} margins for a map of {target.shape[1]} channels")
    margin = margin.to(source).view(1, -1, 1, 1)
    to_margin = (source > margin) & (target <= margin)
    to_target = ((source > target) & (target > margin) & (target <= 0)) | (target > 0)
    loss = torch.where(to_margin, (source - margin) ** 2, torch.zeros_like(source)) \
        + torch.where(to_target, (source - target) ** 2, torch.zeros_like(source))
    return loss.sum() / source.shape[0]
