"""Shape alignment shared by the feature losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def match_spatial(fs: torch.Tensor, ft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool the larger of two (B, C, H, W) maps down to the other's H x W."""
    if fs.shape[-2:] == ft.shape[-2:]:
        return fs, ft
    hs, ws = fs.shape[-2:]
    ht, wt = ft.shape[-2:]
    if hs * ws > ht * wt:
        return F.adaptive_avg_pool2d(fs, (ht, wt)), ft
    return fs, F.adaptive_avg_pool2d(ft, (hs, ws))


def check_pair(fs: torch.Tensor, ft: torch.Tensor, name: str) -> None:
    if fs.ndim != 4 or ft.ndim != 4:
        raise ValueError(f"{name}: expected (B, C, H, W) feature maps, got {tuple(fs.shape)} and {tuple(ft.shape)}")
    if fs.shape[0] != ft.shape[0]:
        raise ValueError(f"{name}: student batch {fs.shape[0]} != teacher batch {ft.shape[0]}")
