"""Contrastive representation distillation (Tian et al., ICLR 2020) with memory banks.

Student and teacher embeddings go through heads Linear -> ``feat_dim`` -> L2 norm
(v_s, v_t). Two memory banks of shape (n_data, feat_dim) hold the latest v_s and v_t
of every training sample (momentum update, re-normalised). For each sample, its own
index is the positive and ``num_negatives`` indices are drawn, with replacement, from
samples of *other classes* (the exact mode of the reference code). Scores
exp(<bank, v> / T) are divided by a constant Z fixed from the first batch
(Z = mean score x n_data), and each side gets the NCE loss

    L = -1/B Σ_b [ log h(s_b0) + Σ_k log(1 - h(s_bk)) ],  h(x) = x / (x + K/n_data),

once for the teacher bank against v_s and once for the student bank against v_t.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval.engine import distributed

NCE_EPS = 1e-7


def nce_loss(scores: torch.Tensor, n_data: int) -> torch.Tensor:
    """NCE loss of (B, K+1) normalised scores whose column 0 is the positive."""
    k = scores.shape[1] - 1
    noise = k / n_data
    log_pos = torch.log(scores[:, 0] / (scores[:, 0] + noise + NCE_EPS))
    log_neg = torch.log(noise / (scores[:, 1:] + noise + NCE_EPS))
    return -(log_pos.sum() + log_neg.sum()) / scores.shape[0]


class CRDLoss(nn.Module):
    """Both-direction NCE loss with memory banks; call with (student emb, teacher emb, index, label)."""

    def __init__(self, student_dim: int, teacher_dim: int, train_labels, feat_dim: int = 128,
                 num_negatives: int = 16384, temperature: float = 0.07, momentum: float = 0.5):
        super().__init__()
        labels = np.asarray(train_labels)
        self.n_data = len(labels)
        if self.n_data < 2 or len(np.unique(labels)) < 2:
            raise ValueError("CRD needs a training set with at least two classes")
        self.embed_s = nn.Linear(student_dim, feat_dim)
        self.embed_t = nn.Linear(teacher_dim, feat_dim)
        self.k, self.temperature, self.momentum = num_negatives, temperature, momentum
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("bank_s", F.normalize(torch.rand(self.n_data, feat_dim) * 2 * stdv - stdv, dim=1))
        self.register_buffer("bank_t", F.normalize(torch.rand(self.n_data, feat_dim) * 2 * stdv - stdv, dim=1))
        self.register_buffer("z", torch.full((2,), -1.0))  # normalisation constants, set on first use
        # other-class pools, one padded row per class: pools[c, :sizes[c]] are the indices not in class c
        classes, inverse = np.unique(labels, return_inverse=True)
        pools = [np.flatnonzero(inverse != c) for c in range(len(classes))]
        padded = np.zeros((len(pools), max(len(p) for p in pools)), dtype=np.int64)
        for c, p in enumerate(pools):
            padded[c, :len(p)] = p
        self.register_buffer("class_index", torch.as_tensor(inverse, dtype=torch.long), persistent=False)
        self.register_buffer("pools", torch.as_tensor(padded), persistent=False)
        self.register_buffer("pool_sizes", torch.as_tensor([len(p) for p in pools]), persistent=False)

    def sample_indices(self, index: torch.Tensor) -> torch.Tensor:
        """(B, K+1) bank indices: the sample itself, then K other-class samples."""
        cls = self.class_index[index]
        draw = (torch.rand(len(index), self.k, device=index.device) * self.pool_sizes[cls][:, None]).long()
        draw = torch.minimum(draw, self.pool_sizes[cls][:, None] - 1)  # guard against rand() rounding to 1
        return torch.cat([index[:, None], self.pools[cls[:, None], draw]], dim=1)

    def _scores(self, bank: torch.Tensor, idx: torch.Tensor, v: torch.Tensor, which: int) -> torch.Tensor:
        weights = bank[idx]  # B x (K+1) x d, no grad (a buffer)
        scores = torch.exp(torch.bmm(weights, v[:, :, None]).squeeze(2) / self.temperature)
        if self.z[which] < 0:
            self.z[which] = scores.mean().detach() * self.n_data
        return scores / self.z[which].clone()

    def forward(self, s_emb: torch.Tensor, t_emb: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.long()
        v_s = F.normalize(self.embed_s(s_emb), dim=1)
        v_t = F.normalize(self.embed_t(t_emb.detach()), dim=1)
        if distributed.is_distributed():  # under torchrun: the global batch, so every rank updates the same banks
            index = distributed.gather(index)
            v_s, v_t = distributed.gather_with_grad(v_s), distributed.gather_with_grad(v_t)
        idx = distributed.broadcast(self.sample_indices(index))  # rank 0's negatives (each rank drew as many)
        loss = nce_loss(self._scores(self.bank_t, idx, v_s, 0), self.n_data) \
            + nce_loss(self._scores(self.bank_s, idx, v_t, 1), self.n_data)
        if self.training:
            with torch.no_grad():
                self._update(self.bank_s, index, v_s)
                self._update(self.bank_t, index, v_t)
        return loss

    def _update(self, bank: torch.Tensor, index: torch.Tensor, v: torch.Tensor) -> None:
        bank[index] = F.normalize(bank[index] * self.momentum + v.detach() * (1 - self.momentum), dim=1)
