"""Activation-based attention transfer against an explicit-loop float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.methods.losses import activation_attention, activation_attention_loss



# ----------------------------------------------------------------------------- reference


def ref_attention(f, p=2.0):
    """a(F) with loops: per sample, per position, the channel mean of |F_c|^p, then L2-normalised."""
    f = np.asarray(f, dtype=np.float64)
    b, c, h, w = f.shape
    out = np.zeros((b, h * w))
    for bi in range(b):
        for y in range(h):
            for x in range(w):
                acc = 0.0
                for ci in range(c):
                    acc += abs(f[bi, ci, y, x]) ** p
                out[bi, y * w + x] = acc / c
        norm = math.sqrt(sum(v * v for v in out[bi]))
        out[bi] /= max(norm, 1e-12)
    return out


def ref_loss(fs, ft, p=2.0):
    a_s, a_t = ref_attention(fs, p), ref_attention(ft, p)
    b, n = a_s.shape
    total = 0.0
    for bi in range(b):
        for i in range(n):
            total += (a_s[bi, i] - a_t[bi, i]) ** 2
    return total / (b * n)


def ref_adaptive_avg_pool(f, out_h, out_w):
    """Adaptive average pooling by its definition: cell i covers [floor(i*H/h), ceil((i+1)*H/h))."""
    f = np.asarray(f, dtype=np.float64)
    b, c, h, w = f.shape
    out = np.zeros((b, c, out_h, out_w))
    for i in range(out_h):
        y0, y1 = (i * h) // out_h, -((-(i + 1) * h) // out_h)
        for j in range(out_w):
            x0, x1 = (j * w) // out_w, -((-(j + 1) * w) // out_w)
            for bi in range(b):
                for ci in range(c):
                    out[bi, ci, i, j] = f[bi, ci, y0:y1, x0:x1].mean()
    return out


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_map_matches_loop(p):
    f = randn(2, 3, 4, 5, seed=1)
    np.testing.assert_allclose(activation_attention(f, p).numpy(), ref_attention(f, p), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_loss_matches_loop(p):
    fs, ft = randn(3, 4, 4, 4, seed=2), randn(3, 6, 4, 4, seed=3)
    got = activation_attention_loss(fs, ft, p).item()
    assert got == pytest.approx(ref_loss(fs, ft, p), rel=1e-12, abs=1e-15)


def test_hand_case_p2():
    # One sample, 2 channels, 1x2 positions.
    # |F|^2 channel means: position 0: (1 + 9)/2 = 5, position 1: (4 + 16)/2 = 10 -> a = (5, 10)/sqrt(125) = (1, 2)/sqrt(5)
    fs = torch.tensor([[[[1.0, 2.0]], [[3.0, -4.0]]]], dtype=torch.float64)
    a = activation_attention(fs, 2.0)
    np.testing.assert_allclose(a.numpy(), [[1 / math.sqrt(5), 2 / math.sqrt(5)]], rtol=1e-14)
    # teacher: one channel (0, 5) -> a_t = (0, 1)
    ft = torch.tensor([[[[0.0, 5.0]]]], dtype=torch.float64)
    expected = ((1 / math.sqrt(5) - 0) ** 2 + (2 / math.sqrt(5) - 1) ** 2) / 2
    assert activation_attention_loss(fs, ft).item() == pytest.approx(expected, rel=1e-14)


def test_invariant_to_channel_permutation():
    fs, ft = randn(2, 5, 3, 3, seed=4), randn(2, 7, 3, 3, seed=5)
    base = activation_attention_loss(fs, ft)
    perm_s, perm_t = torch.randperm(5), torch.randperm(7)
    assert activation_attention_loss(fs[:, perm_s], ft[:, perm_t]).item() == pytest.approx(base.item(), rel=1e-12)


@pytest.mark.parametrize("scale_s, scale_t", [(3.7, 1.0), (1.0, 0.01), (250.0, 1e-3)])
def test_invariant_to_positive_scaling(scale_s, scale_t):
    fs, ft = randn(2, 3, 4, 4, seed=6), randn(2, 3, 4, 4, seed=7)
    base = activation_attention_loss(fs, ft).item()
    assert activation_attention_loss(fs * scale_s, ft * scale_t).item() == pytest.approx(base, rel=1e-10)


def test_zero_when_equal_and_for_rescaled_copy():
    f = randn(2, 3, 4, 4, seed=8)
    assert activation_attention_loss(f, f).item() == 0.0
    assert activation_attention_loss(f, 5.0 * f).item() == pytest.approx(0.0, abs=1e-28)


@pytest.mark.parametrize("cs, ct", [(1, 9), (8, 2), (3, 3)])
def test_different_channel_counts(cs, ct):
    fs, ft = randn(2, cs, 3, 3, seed=9), randn(2, ct, 3, 3, seed=10)
    got = activation_attention_loss(fs, ft)
    assert got.shape == ()
    assert got.item() == pytest.approx(ref_loss(fs, ft), rel=1e-12)


def test_reference_pool_agrees_with_torch():
    f = randn(2, 3, 7, 5, seed=11)
    for size in [(3, 2), (4, 4), (7, 5), (1, 1)]:
        np.testing.assert_allclose(F.adaptive_avg_pool2d(f, size).numpy(), ref_adaptive_avg_pool(f, *size),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("small, large", [((4, 4), (8, 8)), ((3, 3), (5, 5)), ((2, 3), (7, 5))])
@pytest.mark.parametrize("student_larger", [True, False])
def test_spatial_mismatch_pools_larger_map(small, large, student_larger):
    hs, ws = large if student_larger else small
    ht, wt = small if student_larger else large
    fs, ft = randn(2, 3, hs, ws, seed=12), randn(2, 4, ht, wt, seed=13)
    if student_larger:
        expected = ref_loss(ref_adaptive_avg_pool(fs, *small), ft)
    else:
        expected = ref_loss(fs, ref_adaptive_avg_pool(ft, *small))
    assert activation_attention_loss(fs, ft).item() == pytest.approx(expected, rel=1e-12)


def test_teacher_gets_no_gradient_student_does():
    fs = randn(2, 3, 4, 4, seed=14).requires_grad_(True)
    ft = randn(2, 5, 4, 4, seed=15).requires_grad_(True)
    activation_attention_loss(fs, ft).backward()
    assert ft.grad is None
    assert fs.grad is not None and torch.isfinite(fs.grad).all() and fs.grad.abs().sum() > 0


def test_gradcheck_student_side():
    fs = randn(2, 3, 3, 3, seed=16).requires_grad_(True)
    ft = randn(2, 2, 3, 3, seed=17)
    assert torch.autograd.gradcheck(lambda x: activation_attention_loss(x, ft), (fs,))


def test_rejects_non_4d_and_batch_mismatch():
    with pytest.raises(ValueError):
        activation_attention_loss(randn(2, 3, 4), randn(2, 3, 4))
    with pytest.raises(ValueError):
        activation_attention_loss(randn(2, 3, 4, 4), randn(3, 3, 4, 4))
