"""Position-based (spatial self-) attention transfer, computed in row blocks.

For a map F (C x N, N = H*W) let F̂ be F L2-normalised over channels at each
position. The position affinity is P = softmax_rows(F̂ᵀ F̂ / τ), an N x N row-stochastic
matrix; it does not depend on C, so a student and a teacher compare directly once
their H x W agree. The loss is the row-averaged KL divergence

    L_pos = 1/(B·N) Σ_b Σ_i KL(P_t[b, i, :] || P_s[b, i, :]).

Memory: the plain version holds B·N² values (plus the same again for autograd). Here
rows are processed in blocks of at most ``block_elements`` values (B x rows x N), and
each block runs under activation checkpointing, so its intermediate values are freed
after the forward and recomputed in the backward pass: the value and the gradient
are those of the plain version, while peak memory is one block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from retrieval.methods.losses.spatial import check_pair, match_spatial

DEFAULT_BLOCK_ELEMENTS = 1 << 20  # 1M values: 4 MB in fp32 per block and tensor


def position_affinity(f: torch.Tensor, tau: float) -> torch.Tensor:
    """The full (B, N, N) position affinity P (for inspection and small maps)."""
    q = F.normalize(f.flatten(2), dim=1)  # B x C x N
    return torch.softmax(q.transpose(1, 2) @ q / tau, dim=-1)


def _block_kl_sum(qs_rows, qs, qt_rows, qt, tau: float) -> torch.Tensor:
    log_ps = torch.log_softmax(qs_rows.transpose(1, 2) @ qs / tau, dim=-1)
    log_pt = torch.log_softmax(qt_rows.transpose(1, 2) @ qt / tau, dim=-1)
    return (log_pt.exp() * (log_pt - log_ps)).sum()


def position_attention_loss_plain(fs: torch.Tensor, ft: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Reference implementation that materialises every N x N matrix at once."""
    check_pair(fs, ft, "position_attention_loss")
    fs, ft = match_spatial(fs, ft)
    qs, qt = F.normalize(fs.flatten(2), dim=1), F.normalize(ft.detach().flatten(2), dim=1)
    b, _, n = qs.shape
    return _block_kl_sum(qs, qs, qt, qt, tau) / (b * n)


def position_attention_loss(fs: torch.Tensor, ft: torch.Tensor, tau: float = 0.1,
                            block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> torch.Tensor:
    """L_pos (see module docstring), exact, in row blocks of at most ``block_elements`` values."""
    check_pair(fs, ft, "position_attention_loss")
    fs, ft = match_spatial(fs, ft)
    qs, qt = F.normalize(fs.flatten(2), dim=1), F.normalize(ft.detach().flatten(2), dim=1)
    b, _, n = qs.shape
    rows = max(1, min(n, block_elements // max(1, b * n)))
    if rows >= n:
        return _block_kl_sum(qs, qs, qt, qt, tau) / (b * n)
    total = qs.new_zeros(())
    for start in range(0, n, rows):
        sl = slice(start, start + rows)
        total = total + checkpoint(_block_kl_sum, qs[:, :, sl], qs, qt[:, :, sl], qt, tau, use_reentrant=False)
    return total / (b * n)
