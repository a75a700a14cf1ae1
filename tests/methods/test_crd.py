"""Contrastive representation distillation: NCE numbers by hand, sampling, memory banks, Z, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.methods.losses import CRDLoss, nce_loss



LABELS = [10, 10, 42, 42, 42, 7, 7, 10, 3, 3]  # non-contiguous class ids, n_data = 10
N_DATA = len(LABELS)


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def make_crd(k=4, feat_dim=5, sd=6, td=7, temperature=0.5, momentum=0.5, seed=0):
    torch.manual_seed(seed)
    return CRDLoss(sd, td, LABELS, feat_dim=feat_dim, num_negatives=k, temperature=temperature,
                   momentum=momentum).double()


# ----------------------------------------------------------------------------- reference


def ref_head(linear, x):
    """normalize(W x + b), with loops."""
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    x = np.asarray(x.detach(), dtype=np.float64)
    out = np.zeros((len(x), w.shape[0]))
    for n in range(len(x)):
        for o in range(w.shape[0]):
            out[n, o] = sum(w[o, i] * x[n, i] for i in range(w.shape[1])) + b[o]
        out[n] /= max(math.sqrt(sum(v * v for v in out[n])), 1e-12)
    return out


def ref_raw_scores(bank, idx, v, temperature):
    bank, idx = np.asarray(bank, dtype=np.float64), np.asarray(idx)
    out = np.zeros(idx.shape)
    for b in range(idx.shape[0]):
        for k in range(idx.shape[1]):
            out[b, k] = math.exp(sum(bank[idx[b, k], d] * v[b, d] for d in range(v.shape[1])) / temperature)
    return out


def ref_nce(p, n_data):
    """-1/B Σ_b [log(P_b0 / (P_b0 + K/n)) + Σ_k log((K/n) / (P_bk + K/n))]."""
    bsz, k = p.shape[0], p.shape[1] - 1
    m = k / n_data
    total = 0.0
    for b in range(bsz):
        total += math.log(p[b, 0] / (p[b, 0] + m))
        for j in range(1, k + 1):
            total += math.log(m / (p[b, j] + m))
    return -total / bsz


def ref_crd_loss(crd, bank_s, bank_t, idx, s_emb, t_emb, z=None):
    """Loss and the two Z constants (taken from these scores when ``z`` is None)."""
    v_s, v_t = ref_head(crd.embed_s, s_emb), ref_head(crd.embed_t, t_emb)
    raw_t = ref_raw_scores(bank_t, idx, v_s, crd.temperature)  # teacher bank against the student vector
    raw_s = ref_raw_scores(bank_s, idx, v_t, crd.temperature)  # student bank against the teacher vector
    if z is None:
        z = (raw_t.mean() * crd.n_data, raw_s.mean() * crd.n_data)
    loss = ref_nce(raw_t / z[0], crd.n_data) + ref_nce(raw_s / z[1], crd.n_data)
    return loss, z, v_s, v_t


# ----------------------------------------------------------------------------- nce


def test_nce_hand_case():
    # n_data = 4, K = 2 negatives -> noise m = K / n_data = 0.5
    # row 1: log(0.5/1.0) + log(0.5/0.6) + log(0.5/0.7) = -0.693147 - 0.182322 - 0.336472 = -1.211941
    # row 2: log(1.5/2.0) + log(0.5/1.0) + log(0.5/0.5) = -0.287682 - 0.693147 + 0        = -0.980829
    # loss = (1.211941 + 0.980829) / 2 = 1.096385
    scores = torch.tensor([[0.5, 0.1, 0.2], [1.5, 0.5, 0.0]], dtype=torch.float64)
    assert nce_loss(scores, 4).item() == pytest.approx(1.0963851134934195, rel=1e-6)
    assert nce_loss(scores, 4).item() == pytest.approx(ref_nce(scores.numpy(), 4), rel=1e-6)


def test_nce_random_matches_loop():
    p = torch.rand(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3 + 1e-3
    assert nce_loss(p, 50).item() == pytest.approx(ref_nce(p.numpy(), 50), rel=1e-5)


# ----------------------------------------------------------------------------- sampling


def test_sample_indices_own_index_then_other_classes():
    crd = make_crd(k=200)
    index = torch.tensor([0, 2, 5, 8, 9, 7])
    torch.manual_seed(1)
    idx = crd.sample_indices(index)
    assert idx.shape == (len(index), 201)
    assert idx.dtype == torch.long
    labels = np.array(LABELS)
    for row, i in zip(idx.tolist(), index.tolist()):
        assert row[0] == i
        negatives = row[1:]
        assert all(0 <= j < N_DATA for j in negatives)
        assert all(labels[j] != labels[i] for j in negatives)
        # with 200 draws every other-class sample appears
        assert set(negatives) == {j for j in range(N_DATA) if labels[j] != labels[i]}


def test_needs_two_classes():
    with pytest.raises(ValueError):
        CRDLoss(4, 4, [1, 1, 1], feat_dim=3, num_negatives=2)


# ----------------------------------------------------------------------------- forward, banks, Z


def fixed_indices(crd, idx):
    crd.sample_indices = lambda index: idx.clone()


def test_forward_matches_reference_and_updates_banks():
    crd = make_crd().train()
    index = torch.tensor([1, 4, 6])
    idx = torch.tensor([[1, 2, 5, 8, 3], [4, 0, 9, 5, 1], [6, 0, 2, 9, 4]])
    fixed_indices(crd, idx)
    s_emb, t_emb = randn(3, 6, seed=1), randn(3, 7, seed=2)
    bank_s0, bank_t0 = crd.bank_s.clone(), crd.bank_t.clone()
    assert torch.allclose(bank_s0.norm(dim=1), torch.ones(N_DATA, dtype=torch.float64))
    assert (crd.z < 0).all()

    loss = crd(s_emb, t_emb, index)
    expected, z, v_s, v_t = ref_crd_loss(crd, bank_s0.numpy(), bank_t0.numpy(), idx.numpy(), s_emb, t_emb)
    assert loss.item() == pytest.approx(expected, rel=1e-5)  # the library adds eps = 1e-7 in NCE
    np.testing.assert_allclose(crd.z.numpy(), z, rtol=1e-10)

    # momentum update of the indexed rows only, re-normalised
    mom = crd.momentum
    for bank0, bank, v in ((bank_s0, crd.bank_s, v_s), (bank_t0, crd.bank_t, v_t)):
        for r in range(N_DATA):
            if r in index.tolist():
                b = index.tolist().index(r)
                mixed = bank0[r].numpy() * mom + v[b] * (1 - mom)
                np.testing.assert_allclose(bank[r].numpy(), mixed / np.linalg.norm(mixed), rtol=1e-10)
            else:
                assert torch.equal(bank[r], bank0[r])


def test_eval_mode_leaves_banks_untouched():
    crd = make_crd().eval()
    bank_s0, bank_t0 = crd.bank_s.clone(), crd.bank_t.clone()
    crd(randn(4, 6, seed=3), randn(4, 7, seed=4), torch.tensor([0, 3, 5, 9]))
    assert torch.equal(crd.bank_s, bank_s0) and torch.equal(crd.bank_t, bank_t0)


def test_z_fixed_after_first_call():
    crd = make_crd().train()
    idx1 = torch.tensor([[0, 2, 5, 8, 9], [3, 0, 1, 6, 7]])
    fixed_indices(crd, idx1)
    crd(randn(2, 6, seed=5), randn(2, 7, seed=6), torch.tensor([0, 3]))
    z_first = crd.z.clone()
    assert (z_first > 0).all()

    idx2 = torch.tensor([[5, 0, 2, 3, 4], [8, 9, 1, 2, 0], [2, 5, 9, 8, 6]])
    fixed_indices(crd, idx2)
    s2, t2 = randn(3, 6, seed=7) * 4, randn(3, 7, seed=8) * 4
    bank_s, bank_t = crd.bank_s.clone(), crd.bank_t.clone()
    loss = crd(s2, t2, torch.tensor([5, 8, 2]))
    assert torch.equal(crd.z, z_first)
    expected, _, _, _ = ref_crd_loss(crd, bank_s.numpy(), bank_t.numpy(), idx2.numpy(), s2, t2, z=z_first.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)  # the library adds eps = 1e-7 in NCE


def test_z_survives_state_dict():
    crd = make_crd()
    crd(randn(2, 6, seed=9), randn(2, 7, seed=10), torch.tensor([0, 2]))
    other = make_crd(seed=1)
    other.load_state_dict(crd.state_dict())
    assert torch.equal(other.z, crd.z) and torch.equal(other.bank_s, crd.bank_s)


def test_gradients_reach_student_side_not_teacher_embedding():
    crd = make_crd(k=6).train()
    s_emb = randn(4, 6, seed=11).requires_grad_(True)
    t_emb = randn(4, 7, seed=12).requires_grad_(True)
    crd(s_emb, t_emb, torch.tensor([0, 2, 5, 8])).backward()
    assert t_emb.grad is None
    assert s_emb.grad is not None and torch.isfinite(s_emb.grad).all() and s_emb.grad.abs().sum() > 0
    assert crd.embed_s.weight.grad is not None and crd.embed_s.weight.grad.abs().sum() > 0
    # the teacher head is trained too (it is CRD's, not the teacher's)
    assert crd.embed_t.weight.grad is not None and torch.isfinite(crd.embed_t.weight.grad).all()
    assert not crd.bank_s.requires_grad and not crd.bank_t.requires_grad
