"""ReviewKD's parts (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR 2021): the
attention-based fusion block (ABF) and the hierarchical context loss (HCL).

ABF, at one level: the student's map is reduced to ``c_mid`` channels (1x1 convolution + BN).
Except at the deepest level, it is fused with the fused map of the level below (nearest-upsampled
to its size) by two per-pixel weights, w = sigmoid(1x1 conv of both, concatenated):
x' = w_0 · x + w_1 · residual. x' is resized (nearest) to the teacher's map at that level and is
the residual handed to the next, shallower level; a 3x3 convolution + BN turns it into the
prediction of the teacher's map.

HCL between a predicted map p and the teacher's map t (H x W):

    HCL(p, t) = [ mse(p, t) + Σ_{l in (4, 2, 1), l < H} 2^-k(l) · mse(pool_l(p), pool_l(t)) ] / (1 + Σ 2^-k(l)),

pool_l an adaptive average pool to l x l and k(l) = 1, 2, 3 for the levels kept in that order.
Both follow the authors' code as mdistiller ships it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOL_LEVELS = (4, 2, 1)


class ABF(nn.Module):
    """One level of the review path: ``forward(x, residual, out_size) -> (prediction, fused)``."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(c_in, c_mid, 1, bias=False), nn.BatchNorm2d(c_mid))
        self.expand = nn.Sequential(nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.attention = nn.Sequential(nn.Conv2d(2 * c_mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.reduce[0].weight, a=1)
        nn.init.kaiming_uniform_(self.expand[0].weight, a=1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, out_size=None):
        x = self.reduce(x)
        if self.attention is not None:
            if residual is None:
                raise ValueError("ABF: a fusing level needs the residual of the level below")
            residual = F.interpolate(residual, size=tuple(x.shape[2:]), mode="nearest")
            w = self.attention(torch.cat([x, residual], dim=1))
            x = x * w[:, 0:1] + residual * w[:, 1:2]
        if out_size is not None and tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="nearest")
        return self.expand(x), x


def hcl_loss(predicted: list[torch.Tensor], teacher: list[torch.Tensor], levels=POOL_LEVELS) -> torch.Tensor:
    """Σ over levels of HCL(p, t) (see the module docstring); each pair of maps has one shape."""
    if len(predicted) != len(teacher):
        raise ValueError(f"hcl_loss: {len(predicted)} predicted maps for {len(teacher)} teacher maps")
    total = 0.0
    for p, t in zip(predicted, teacher):
        if p.shape != t.shape:
            raise ValueError(f"hcl_loss: a predicted map {tuple(p.shape)} and its teacher map {tuple(t.shape)} differ")
        loss, weight, norm = F.mse_loss(p, t), 1.0, 1.0
        for size in levels:
            if size >= p.shape[2]:
                continue
            weight /= 2.0
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(p, (size, size)), F.adaptive_avg_pool2d(t, (size, size))) * weight
            norm += weight
        total = total + loss / norm
    return total
