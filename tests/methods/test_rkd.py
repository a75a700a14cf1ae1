"""Relational KD (distance and angle terms) against loops over pairs and triplets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrieval.methods.losses import pairwise_distances, rkd_angle_loss, rkd_distance_loss



# ----------------------------------------------------------------------------- reference


def smooth_l1(a, b):
    """PyTorch's default smooth-L1 (beta = 1), averaged over all entries."""
    a, b = np.ravel(a), np.ravel(b)
    total = 0.0
    for x, y in zip(a, b):
        d = abs(x - y)
        total += 0.5 * d * d if d < 1.0 else d - 0.5
    return total / len(a)


def ref_distances(x):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                d[i, j] = math.sqrt(sum((x[i, k] - x[j, k]) ** 2 for k in range(x.shape[1])))
    return d


def ref_normalised_distances(x):
    d = ref_distances(x)
    nonzero = [d[i, j] for i in range(len(d)) for j in range(len(d)) if d[i, j] > 0]
    return d / (sum(nonzero) / len(nonzero))


def ref_distance_loss(s, t):
    return smooth_l1(ref_normalised_distances(s), ref_normalised_distances(t))


def unit(v):
    """F.normalize's convention: v / max(||v||, 1e-12), so a zero vector maps to zero."""
    return v / max(math.sqrt(float(v @ v)), 1e-12)


def ref_angles(x):
    """cos of the angle at x_j between x_i - x_j and x_k - x_j, for all (j, i, k) (0 when i == j or k == j)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    a = np.zeros((n, n, n))
    for j in range(n):
        for i in range(n):
            for k in range(n):
                a[j, i, k] = unit(x[i] - x[j]) @ unit(x[k] - x[j])
    return a


def ref_angle_loss(s, t):
    return smooth_l1(ref_angles(s), ref_angles(t))


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def random_orthogonal(d, seed=0):
    q, r = torch.linalg.qr(randn(d, d, seed=seed))
    return q * torch.sign(torch.diagonal(r))[None, :]


# ----------------------------------------------------------------------------- tests


def test_pairwise_distances_match_loop():
    x = randn(6, 4, seed=1)
    d = pairwise_distances(x)
    np.testing.assert_allclose(d.numpy(), ref_distances(x), rtol=1e-10, atol=1e-12)
    assert (torch.diagonal(d) == 0).all()


def test_normalize_of_zero_vector_is_zero():
    """The reference's convention for i == j (or k == j) in the angle term, checked on torch itself."""
    z = torch.nn.functional.normalize(torch.zeros(1, 3, dtype=torch.float64), dim=1)
    assert (z == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_loss_matches_loop(seed):
    s, t = randn(7, 5, seed=10 + seed), randn(7, 3, seed=20 + seed) * 2.0
    assert rkd_distance_loss(s, t).item() == pytest.approx(ref_distance_loss(s, t), rel=1e-10)


def test_distance_loss_uses_both_smooth_l1_branches():
    """One far outlier in the student gives normalised-distance differences above and below 1."""
    s, t = randn(6, 3, seed=30), randn(6, 3, seed=31)
    s[0] += 40.0
    diff = np.abs(ref_normalised_distances(s) - ref_normalised_distances(t))
    assert (diff > 1).any() and ((diff > 0) & (diff < 1)).any()
    assert rkd_distance_loss(s, t).item() == pytest.approx(ref_distance_loss(s, t), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_angle_loss_matches_triple_loop(seed):
    s, t = randn(6, 4, seed=40 + seed), randn(6, 7, seed=50 + seed)
    diff = np.abs(ref_angles(s) - ref_angles(t))
    assert (diff > 1).any()  # both smooth-L1 branches exercised
    assert rkd_angle_loss(s, t).item() == pytest.approx(ref_angle_loss(s, t), rel=1e-10)


def test_angle_loss_with_duplicate_teacher_points():
    """Coincident teacher embeddings: their difference vector normalises to 0 (F.normalize convention)."""
    s, t = randn(5, 3, seed=60), randn(5, 3, seed=61)
    t[3] = t[1]
    assert rkd_angle_loss(s, t).item() == pytest.approx(ref_angle_loss(s, t), rel=1e-10)


def test_zero_when_student_equals_teacher():
    x = randn(8, 4, seed=70)
    assert rkd_distance_loss(x, x.clone()).item() == 0.0
    assert rkd_angle_loss(x, x.clone()).item() == 0.0


def test_distance_loss_invariant_to_uniform_scaling():
    s, t = randn(7, 4, seed=80), randn(7, 4, seed=81)
    base = rkd_distance_loss(s, t).item()
    assert rkd_distance_loss(3.7 * s, t).item() == pytest.approx(base, rel=1e-10)
    assert rkd_distance_loss(s, 0.02 * t).item() == pytest.approx(base, rel=1e-10)
    assert rkd_angle_loss(3.7 * s, 0.5 * t).item() == pytest.approx(rkd_angle_loss(s, t).item(), rel=1e-10)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_invariant_to_translation(loss):
    s, t = randn(7, 4, seed=90), randn(7, 6, seed=91)
    base = loss(s, t).item()
    shifted = loss(s + randn(1, 4, seed=92) * 3, t + randn(1, 6, seed=93) * 3).item()
    assert shifted == pytest.approx(base, rel=1e-8)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_invariant_to_rotation(loss):
    s, t = randn(7, 4, seed=100), randn(7, 6, seed=101)
    qs, qt = random_orthogonal(4, seed=102), random_orthogonal(6, seed=103)
    assert torch.allclose(qs.T @ qs, torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert loss(s @ qs, t @ qt).item() == pytest.approx(loss(s, t).item(), rel=1e-8)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_invariant_to_batch_permutation(loss):
    s, t = randn(7, 4, seed=110), randn(7, 6, seed=111)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    assert loss(s[perm], t[perm]).item() == pytest.approx(loss(s, t).item(), rel=1e-12)


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_teacher_gets_no_gradient(loss):
    s = randn(6, 4, seed=120).requires_grad_(True)
    t = randn(6, 4, seed=121).requires_grad_(True)
    loss(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss])
def test_gradcheck_student_side(loss):
    s = randn(5, 3, seed=130).requires_grad_(True)
    t = randn(5, 3, seed=131)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (s,))
