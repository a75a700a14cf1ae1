"""Hard DarkRank (Chen et al., "DarkRank: Accelerating Deep Metric Learning via Cross Sample
Similarities Transfer", AAAI 2018) on a batch of embeddings.

Every sample i scores the others by S_ij = −α · ‖x_i − x_j‖^β. The teacher's scores rank them;
π_i = (π_1, ..., π_n) are the n samples the teacher ranks closest to i (i itself, at score 0,
excluded). The loss is the negative log-likelihood of that order under the student's
Plackett-Luce model of its own scores s_ij:

    L = −1/B Σ_i Σ_{k=1..n} [ s_{i,π_k} − log Σ_{m=k..n} exp(s_{i,π_m}) ],

the "hard" variant of the paper: the teacher's one best permutation, not the expectation over
all of them (the soft variant). Like the RKD authors' code (``HardDarkRank``), which this
follows, the list is the n = 4 nearest, not the whole batch, and the distances are Euclidean
with a zero diagonal. The teacher side carries no gradient.
"""

from __future__ import annotations

import torch

from retrieval.methods.losses.rkd import pairwise_distances


def darkrank_scores(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """S (B x B): −α · d_ij^β over the Euclidean distances of the rows of ``x``, 0 on the diagonal."""
    return -alpha * pairwise_distances(x).pow(beta)


def darkrank_loss(s: torch.Tensor, t: torch.Tensor, alpha: float = 2.0, beta: float = 3.0,
                  list_length: int = 4) -> torch.Tensor:
    """Hard DarkRank between student embeddings ``s`` and teacher embeddings ``t`` (B x d each)."""
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"darkrank_loss: student and teacher batches differ ({s.shape[0]} vs {t.shape[0]})")
    if not 1 <= list_length < s.shape[0]:
        raise ValueError(f"darkrank_loss: list_length must be in [1, batch - 1] = [1, {s.shape[0] - 1}]; "
                         f"got {list_length}")
    with torch.no_grad():
        order = darkrank_scores(t, alpha, beta).sort(dim=1, descending=True).indices[:, 1:list_length + 1]
    ranked = darkrank_scores(s, alpha, beta).gather(1, order)  # student scores in the teacher's order
    tails = torch.stack([ranked[:, k:].logsumexp(dim=1) for k in range(list_length)], dim=1)  # log Σ_{m>=k} exp
    return -(ranked - tails).sum(dim=1).mean()
