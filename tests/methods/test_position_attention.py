"""Position (spatial self-) attention transfer: blocked == plain == explicit loops, in value and gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.methods.losses import position_affinity, position_attention_loss, position_attention_loss_plain



# ----------------------------------------------------------------------------- reference


def ref_loss_torch(fs, ft, tau):
    """Loop reference in float64 torch ops (so autograd gives the reference gradient).

    For each sample b and position i: P[b, i, :] = softmax_j(<f̂_i, f̂_j> / tau) with f̂ the
    feature vector at a position L2-normalised over channels; loss = mean over (b, i) of
    KL(P_t[b, i] || P_s[b, i]).
    """
    b, c = fs.shape[:2]
    ct = ft.shape[1]
    n = fs.shape[2] * fs.shape[3]
    xs, xt = fs.reshape(b, c, n), ft.detach().reshape(b, ct, n)
    total = fs.new_zeros(())
    for bi in range(b):
        hat_s = [xs[bi, :, i] / torch.clamp(torch.sqrt((xs[bi, :, i] ** 2).sum()), min=1e-12) for i in range(n)]
        hat_t = [xt[bi, :, i] / torch.clamp(torch.sqrt((xt[bi, :, i] ** 2).sum()), min=1e-12) for i in range(n)]
        for i in range(n):
            ls = torch.stack([(hat_s[i] * hat_s[j]).sum() / tau for j in range(n)])
            lt = torch.stack([(hat_t[i] * hat_t[j]).sum() / tau for j in range(n)])
            log_ps = ls - torch.logsumexp(ls, 0)
            log_pt = lt - torch.logsumexp(lt, 0)
            total = total + (log_pt.exp() * (log_pt - log_ps)).sum()
    return total / (b * n)


def ref_affinity_np(f, tau):
    f = np.asarray(f, dtype=np.float64)
    b, c, h, w = f.shape
    n = h * w
    x = f.reshape(b, c, n)
    out = np.zeros((b, n, n))
    for bi in range(b):
        for i in range(n):
            fi = x[bi, :, i] / max(np.linalg.norm(x[bi, :, i]), 1e-12)
            logits = np.array([fi @ (x[bi, :, j] / max(np.linalg.norm(x[bi, :, j]), 1e-12)) / tau for j in range(n)])
            e = np.exp(logits - logits.max())
            out[bi, i] = e / e.sum()
    return out


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


B, C, H, W = 2, 3, 4, 4
N = H * W

# block_elements -> rows per block = block_elements // (B * N):
#   1 -> 1 row (16 blocks), 4*B*N -> 4 rows (divides N), 5*B*N -> 5 rows (5+5+5+1), 7*B*N+3 -> 7 rows (7+7+2),
#   huge -> a single block (the unblocked path)
BLOCKS = [1, 4 * B * N, 5 * B * N, 7 * B * N + 3, 1 << 22]


# ----------------------------------------------------------------------------- tests


def test_affinity_matches_loop():
    f = randn(B, C, H, W, seed=1)
    p = position_affinity(f, 0.3)
    np.testing.assert_allclose(p.numpy(), ref_affinity_np(f, 0.3), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(p.sum(-1).numpy(), np.ones((B, N)), rtol=1e-12)


@pytest.mark.parametrize("block_elements", BLOCKS)
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_blocked_equals_plain_and_loop_value_and_gradient(block_elements, tau):
    fs0, ft = randn(B, C, H, W, seed=2), randn(B, 5, H, W, seed=3)

    fs_ref = fs0.clone().requires_grad_(True)
    ref = ref_loss_torch(fs_ref, ft, tau)
    ref.backward()

    fs_plain = fs0.clone().requires_grad_(True)
    plain = position_attention_loss_plain(fs_plain, ft, tau)
    plain.backward()

    fs_blk = fs0.clone().requires_grad_(True)
    blk = position_attention_loss(fs_blk, ft, tau, block_elements=block_elements)
    blk.backward()

    assert ref.item() > 0
    assert plain.item() == pytest.approx(ref.item(), rel=1e-10)
    assert blk.item() == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(fs_plain.grad.numpy(), fs_ref.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fs_blk.grad.numpy(), fs_ref.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_block_rows_bound_the_block_size(monkeypatch):
    """Counting the rows of each block (via the matmul shapes): all N rows, each once, in the expected sizes."""
    import retrieval.methods.losses.position_attention as pa

    assert pa.block_rows(B, N, 5 * B * N) == 5
    assert pa.block_rows(B, N, 1) == 1 and pa.block_rows(B, N, 10 ** 9) == N
    seen = []
    real_log_softmax = torch.log_softmax

    def spy(x, dim):
        seen.append(x.shape[1])
        return real_log_softmax(x, dim=dim)

    monkeypatch.setattr(pa.torch, "log_softmax", spy)
    fs, ft = randn(B, C, H, W, seed=4), randn(B, C, H, W, seed=5)
    pa.position_attention_loss(fs, ft, 0.1, block_elements=5 * B * N)
    assert seen[::2] == [5, 5, 5, 1] and seen[1::2] == [5, 5, 5, 1]  # student and teacher rows of each block


def test_gradcheck_blocked():
    fs = randn(B, C, 3, 3, seed=6).requires_grad_(True)
    ft = randn(B, 2, 3, 3, seed=7)
    # N = 9, B * N = 18: block_elements 36 -> 2 rows per block (2+2+2+2+1)
    assert torch.autograd.gradcheck(lambda x: position_attention_loss(x, ft, 0.5, block_elements=36), (fs,))


def test_independent_of_channel_order_and_count():
    fs, ft = randn(B, 4, H, W, seed=8), randn(B, 6, H, W, seed=9)
    base = position_attention_loss(fs, ft, 0.2, block_elements=3 * B * N).item()
    perm = torch.tensor([2, 0, 3, 1])
    assert position_attention_loss(fs[:, perm], ft, 0.2, block_elements=3 * B * N).item() == pytest.approx(base,
                                                                                                            rel=1e-12)
    perm_t = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert position_attention_loss(fs, ft[:, perm_t], 0.2).item() == pytest.approx(base, rel=1e-12)


def test_invariant_to_positive_per_position_scaling():
    """F̂ normalises each position's channel vector, so scaling any position's vector leaves P unchanged."""
    fs, ft = randn(B, C, H, W, seed=10), randn(B, C, H, W, seed=11)
    scale = torch.rand(B, 1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.1
    base = position_attention_loss(fs, ft).item()
    assert position_attention_loss(fs * scale, ft * 7.0).item() == pytest.approx(base, rel=1e-10)


@pytest.mark.parametrize("block_elements", [1, 1 << 22])
def test_zero_when_student_equals_teacher(block_elements):
    f = randn(B, C, H, W, seed=12)
    assert position_attention_loss(f, f.clone(), 0.1, block_elements).item() == pytest.approx(0.0, abs=1e-13)
    assert position_attention_loss_plain(f, f.clone(), 0.1).item() == pytest.approx(0.0, abs=1e-13)


@pytest.mark.parametrize("block_elements", [B * N, 1 << 22])
def test_teacher_gets_no_gradient(block_elements):
    fs = randn(B, C, H, W, seed=13).requires_grad_(True)
    ft = randn(B, C, H, W, seed=14).requires_grad_(True)
    position_attention_loss(fs, ft, 0.1, block_elements).backward()
    assert ft.grad is None
    assert fs.grad is not None and torch.isfinite(fs.grad).all() and fs.grad.abs().sum() > 0


@pytest.mark.parametrize("student_larger", [True, False])
def test_spatial_mismatch_pools_larger(student_larger):
    big, small = (8, 8), (4, 4)
    fs = randn(B, C, *(big if student_larger else small), seed=15)
    ft = randn(B, 5, *(small if student_larger else big), seed=16)
    if student_larger:
        expected = ref_loss_torch(F.adaptive_avg_pool2d(fs, small), ft, 0.1)
    else:
        expected = ref_loss_torch(fs, F.adaptive_avg_pool2d(ft, small), 0.1)
    got = position_attention_loss(fs, ft, 0.1, block_elements=3 * B * N)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    assert position_attention_loss_plain(fs, ft, 0.1).item() == pytest.approx(expected.item(), rel=1e-10)
    # pooling by 2 on an even grid is the mean of each 2x2 cell
    cell = (fs if student_larger else ft).unflatten(2, (4, 2)).unflatten(4, (4, 2)).mean(dim=(3, 5))
    pooled = F.adaptive_avg_pool2d(fs if student_larger else ft, small)
    assert torch.allclose(cell, pooled, rtol=1e-12)


def test_float32_blocked_close_to_plain():
    fs, ft = randn(3, 8, 6, 6, seed=17).float(), randn(3, 4, 6, 6, seed=18).float()
    plain = position_attention_loss_plain(fs, ft).item()
    assert position_attention_loss(fs, ft, block_elements=3 * 36 * 5).item() == pytest.approx(plain, rel=1e-5)
    assert math.isfinite(plain) and plain > 0
