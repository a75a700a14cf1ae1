"""Channel-based attention transfer with a learned connector.

For a map F (C x N) let F̃ be each channel's response L2-normalised over positions.
The channel affinity is Q = softmax_rows(F̃ F̃ᵀ / τ), a C x C row-stochastic matrix.
Student and teacher widths differ, so the student map first goes through a learned
1x1 convolution (+ BN) to the teacher's width; the loss is the row-averaged KL

    L_ch = 1/(B·C_t) Σ_b Σ_i KL(Q_t[b, i, :] || Q_s[b, i, :]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from retrieval.methods.losses.spatial import check_pair, match_spatial


class ChannelConnector(nn.Module):
    """1x1 convolution + batch norm from the student's width to the teacher's."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                                  nn.BatchNorm2d(teacher_channels))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)


def channel_affinity(f: torch.Tensor, tau: float) -> torch.Tensor:
    """The (B, C, C) channel affinity Q."""
    q = F.normalize(f.flatten(2), dim=2)  # B x C x N, each channel unit-norm over positions
    return torch.softmax(q @ q.transpose(1, 2) / tau, dim=-1)


def channel_attention_loss(fs: torch.Tensor, ft: torch.Tensor, tau: float = 0.1,
                           connector: nn.Module | None = None) -> torch.Tensor:
    """L_ch (see module docstring). ``connector`` maps the student to the teacher's width;
    without one the widths must already agree."""
    check_pair(fs, ft, "channel_attention_loss")
    if connector is not None:
        fs = connector(fs)
    if fs.shape[1] != ft.shape[1]:
        raise ValueError(f"channel_attention_loss: student has {fs.shape[1]} channels, teacher {ft.shape[1]}; "
                         f"pass a ChannelConnector({fs.shape[1]}, {ft.shape[1]})")
    fs, ft = match_spatial(fs, ft)
    qs, qt = F.normalize(fs.flatten(2), dim=2), F.normalize(ft.detach().flatten(2), dim=2)
    log_qs = torch.log_softmax(qs @ qs.transpose(1, 2) / tau, dim=-1)
    log_qt = torch.log_softmax(qt @ qt.transpose(1, 2) / tau, dim=-1)
    b, c = qt.shape[:2]
    return (log_qt.exp() * (log_qt - log_qs)).sum() / (b * c)
