"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018) on a batch of feature vectors.

For features x_i (flattened), x̂_i = x_i / (‖x_i‖ + ε) and the cosine kernel scaled to [0, 1],
K_ij = (x̂_i·x̂_j + 1) / 2, gives each sample a conditional distribution over the batch,
P_ij = K_ij / Σ_k K_ik (the diagonal included). The loss is

    L_pkt = 1/B² Σ_i Σ_j P_t,ij · log((P_t,ij + ε) / (P_s,ij + ε)),   ε = 1e-7,

a KL divergence between the teacher's and the student's distributions, averaged over all B²
entries (the authors' code, also in RepDistiller and mdistiller, takes the mean of the matrix,
not a per-row sum). The teacher side carries no gradient.
"""

from __future__ import annotations

import torch

from retrieval.methods.losses.safe import where_positive

EPS = 1e-7  # the authors' code


def _norms(x: torch.Tensor) -> torch.Tensor:
    """‖x_i‖ of each row (B x 1), as ``x.pow(2).sum(1).sqrt()``, with a zero gradient at a zero row (where
    sqrt's derivative is infinite, and 0 · inf = NaN)."""
    return where_positive(x.pow(2).sum(dim=1, keepdim=True), torch.sqrt)


def cosine_probabilities(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """P (B x B): the rows of the [0, 1]-scaled cosine kernel of ``x`` (B x ...), each summing to 1."""
    x = x.flatten(1)
    x = x / (_norms(x) + eps)
    x = torch.where(torch.isnan(x), torch.zeros_like(x), x)  # as the authors' code: a NaN feature counts as 0
    k = (x @ x.t() + 1.0) / 2.0
    return k / k.sum(dim=1, keepdim=True)


def pkt_loss(s: torch.Tensor, t: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """L_pkt (see module docstring) between student features ``s`` and teacher features ``t`` (B x ...)."""
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"pkt_loss: student and teacher batches differ ({s.shape[0]} vs {t.shape[0]})")
    ps = cosine_probabilities(s, eps)
    with torch.no_grad():
        pt = cosine_probabilities(t, eps)
    return (pt * torch.log((pt + eps) / (ps + eps))).mean()
