"""Correlation congruence (Peng et al., "Correlation Congruence for Knowledge Distillation",
ICCV 2019), in the form of the authors' code as RepDistiller ships it.

For embedded features e_s, e_t (B x d, each from its own learned linear embedding) and
δ_b = |e_s,b − e_t,b| (element-wise),

    L_cc = 1/(B − 1) Σ_{b=1}^{B−1} Σ_k δ_b,k · δ_{b+1},k,

the correlation of the errors of consecutive samples of the batch. The paper instead matches the
B x B correlation matrices of the batch under a Taylor-expanded Gaussian kernel; the code the
authors shared with RepDistiller, followed here, is this one. The teacher's embedding is learned
too, so the teacher side keeps its gradient (to its embedding, never to the frozen teacher).
"""

from __future__ import annotations

import torch


def cc_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """L_cc (module docstring) of embedded features ``s`` and ``t`` (B x d, B >= 2)."""
    if s.shape != t.shape or s.ndim != 2 or s.shape[0] < 2:
        raise ValueError(f"cc_loss: expected two B x d tensors of one shape with B >= 2, got {tuple(s.shape)} and "
                         f"{tuple(t.shape)}")
    delta = (s - t).abs()
    return (delta[:-1] * delta[1:]).sum(dim=1).mean()
