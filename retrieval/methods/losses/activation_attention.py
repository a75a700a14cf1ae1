"""Activation-based attention transfer (Zagoruyko & Komodakis, ICLR 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from retrieval.methods.losses.safe import where_positive
from retrieval.methods.losses.spatial import check_pair, match_spatial


def abs_pow(f: torch.Tensor, p: float) -> torch.Tensor:
    """|f|^p for p > 0, with a zero gradient where f is 0. For p < 1 the derivative p·|f|^(p−1) is
    infinite at 0 (and a ReLU's maps hold many exact zeros): ``abs().pow(p)`` would give inf · 0 = NaN
    there. The values are those of ``f.abs().pow(p)``."""
    a = f.abs()
    return a.pow(p) if p >= 1 else where_positive(a, lambda v: v.pow(p))


def activation_attention(f: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """a(F) = normalize(flatten(mean_c |F_c|^p)): one unit vector of length H*W per sample."""
    return F.normalize(abs_pow(f, p).mean(dim=1).flatten(1), dim=1)


def activation_attention_loss(fs: torch.Tensor, ft: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """L_act = mean over batch and positions of (a(F_s) - a(F_t))^2.

    Channel counts may differ (the attention map averages over channels); if the
    spatial sizes differ, the larger map is average-pooled to the smaller first.
    The teacher side is detached.
    """
    check_pair(fs, ft, "activation_attention_loss")
    fs, ft = match_spatial(fs, ft)
    return (activation_attention(fs, p) - activation_attention(ft.detach(), p)).pow(2).mean()
