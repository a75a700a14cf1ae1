"""Variational information distillation (Ahn et al., "Variational Information Distillation for
Knowledge Transfer", CVPR 2019) at one pair of feature maps.

The student's map passes through a regressor μ(·) of three 1x1 convolutions (c_s → c_t → c_t →
c_t, ReLU between, no bias) that predicts the mean of a Gaussian over the teacher's map, whose
variance σ²_c = softplus(a_c) + ε is learned per teacher channel. The loss is that Gaussian's
negative log-likelihood of the teacher's values, without its constant:

    L_vid = mean over (b, c, h, w) of ½ [ (t_bchw − μ(s)_bchw)² / σ²_c + log σ²_c ],

a variational lower bound on the mutual information between the two networks' features. The
larger map is first average-pooled to the smaller one's size. a_c starts where σ²_c = 5
(``init_pred_var``); ε = 1e-5. These follow the authors' code as RepDistiller and mdistiller
ship it, except that the pooling keeps the smaller map's height and width, where that code
pools to a square of its height (the same for square maps). The teacher side carries no
gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5
INIT_PRED_VAR = 5.0


class VIDRegressor(nn.Module):
    """μ(·) and the per-channel variances of one pair of maps (c_s student, c_t teacher channels)."""

    def __init__(self, c_s: int, c_t: int, init_pred_var: float = INIT_PRED_VAR, eps: float = EPS):
        super().__init__()
        self.mean = nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.ReLU(),
                                  nn.Conv2d(c_t, c_t, 1, bias=False), nn.ReLU(),
                                  nn.Conv2d(c_t, c_t, 1, bias=False))
        # softplus(a) + eps = init_pred_var at the start
        self.log_scale = nn.Parameter(torch.full((c_t,), math.log(math.expm1(init_pred_var - eps))))
        self.eps = eps

    def variance(self) -> torch.Tensor:
        return torch.log(1.0 + torch.exp(self.log_scale)) + self.eps

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return vid_loss(self.mean(match_size(s, t)), self.variance(), match_size(t, s).detach())


def match_size(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x`` average-pooled to ``other``'s height and width where it is larger, else unchanged."""
    h, w = min(x.shape[2], other.shape[2]), min(x.shape[3], other.shape[3])
    return x if (h, w) == tuple(x.shape[2:]) else F.adaptive_avg_pool2d(x, (h, w))


def vid_loss(mean: torch.Tensor, variance: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L_vid of the predicted ``mean`` (B, C, H, W) and per-channel ``variance`` (C,) at target ``t``."""
    if mean.shape != t.shape:
        raise ValueError(f"vid_loss: predicted mean {tuple(mean.shape)} and target {tuple(t.shape)} differ")
    var = variance.view(1, -1, 1, 1)
    return (0.5 * ((mean - t) ** 2 / var + torch.log(var))).mean()
