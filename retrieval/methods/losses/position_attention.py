"""Position-based (spatial self-) attention transfer, computed in row blocks.

For a map F (C x N, N = H*W) let F̂ be F L2-normalised over channels at each
position. The position affinity is P = softmax_rows(F̂ᵀ F̂ / τ), an N x N row-stochastic
matrix; it does not depend on C, so a student and a teacher compare directly once
their H x W agree. The loss is the row-averaged KL divergence

    L_pos = 1/(B·N) Σ_b Σ_i KL(P_t[b, i, :] || P_s[b, i, :]).

Memory: the plain version holds B·N² values several times over (affinities, softmax,
autograd buffers). Here the rows are processed in blocks of at most ``block_elements``
values (B x rows x N), and the gradient is formed block by block in the same pass,
from the closed form

    ∂L/∂S_s[b, i, j] = (P_s[b, i, j] − P_t[b, i, j]) / (B·N),   S_s = F̂_sᵀ F̂_s / τ,

so ∂L/∂F̂_s = (F̂_s G_bᵀ + F̂_s[:, rows] G_b) summed over the blocks, G_b = ∂L/∂S_s of the
block. Nothing of size N² outlives a block and nothing is recomputed: the value and
gradient are those of the plain version (tested against it in float64 and with
``gradcheck``), at the plain version's O(B·N²·C) arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from retrieval.methods.losses.spatial import check_pair, match_spatial

DEFAULT_BLOCK_ELEMENTS = 1 << 22  # 4M values: 16 MB in fp32 per block and tensor


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


def block_rows(batch: int, n: int, block_elements: int) -> int:
    """Rows per block so that one (batch, rows, n) block holds at most ``block_elements`` values."""
    return max(1, min(n, block_elements // max(1, batch * n)))


class _BlockedPositionKL(torch.autograd.Function):
    """Σ_b Σ_i KL(P_t || P_s) over row blocks, with ∂/∂qs accumulated in the forward pass."""

    @staticmethod
    def forward(ctx, qs, qt, tau: float, rows: int):
        need_grad = ctx.needs_input_grad[0]
        n = qs.shape[2]
        total = qs.new_zeros((), dtype=torch.float64 if qs.dtype == torch.float64 else torch.float32)
        grad = torch.zeros_like(qs) if need_grad else None
        for start in range(0, n, rows):
            sl = slice(start, start + rows)
            # 1/tau goes on the small (B, C, rows) slice, not on the (B, rows, N) block
            log_ps = torch.log_softmax((qs[:, :, sl] / tau).transpose(1, 2) @ qs, dim=-1)
            log_pt = torch.log_softmax((qt[:, :, sl] / tau).transpose(1, 2) @ qt, dim=-1)
            pt = log_pt.exp()
            # Σ pt·(log pt − log ps) as two dot products: no temporary of the block's size
            total += torch.dot(pt.view(-1), log_pt.view(-1)) - torch.dot(pt.view(-1), log_ps.view(-1))
            if need_grad:
                g = log_ps.exp_().sub_(pt)  # tau · ∂/∂(S_s block), B x rows x N, in place
                grad[:, :, sl] += qs @ g.transpose(1, 2)  # S[i, j] through q_i (rows of the block)
                grad += qs[:, :, sl] @ g  # ... and through q_j (all columns)
        if need_grad:
            grad /= tau
        ctx.save_for_backward(grad if need_grad else None)
        return total.to(qs.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return (grad * grad_output if grad is not None else None), None, None, None


def position_attention_loss(fs: torch.Tensor, ft: torch.Tensor, tau: float = 0.1,
                            block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> torch.Tensor:
    """L_pos (see module docstring), exact, in row blocks of at most ``block_elements`` values."""
    check_pair(fs, ft, "position_attention_loss")
    fs, ft = match_spatial(fs, ft)
    qs, qt = F.normalize(fs.flatten(2), dim=1), F.normalize(ft.detach().flatten(2), dim=1)
    b, _, n = qs.shape
    rows = block_rows(b, n, block_elements)
    return _BlockedPositionKL.apply(qs.contiguous(), qt.contiguous(), tau, rows) / (b * n)
