"""Channel-based attention transfer (with a learned connector) against explicit loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.methods.losses import ChannelConnector, channel_affinity, channel_attention_loss



# ----------------------------------------------------------------------------- reference


def ref_affinity(f, tau):
    """Q[b, i, :] = softmax_j(<f̃_i, f̃_j> / tau), f̃_c the channel's response L2-normalised over positions."""
    f = np.asarray(f, dtype=np.float64)
    b, c = f.shape[:2]
    x = f.reshape(b, c, -1)
    q = np.zeros((b, c, c))
    for bi in range(b):
        unit = [x[bi, i] / max(np.sqrt(sum(v * v for v in x[bi, i])), 1e-12) for i in range(c)]
        for i in range(c):
            logits = np.array([sum(unit[i][n] * unit[j][n] for n in range(x.shape[2])) / tau for j in range(c)])
            e = np.exp(logits - logits.max())
            q[bi, i] = e / e.sum()
    return q


def ref_loss(fs, ft, tau):
    qs, qt = ref_affinity(fs, tau), ref_affinity(ft, tau)
    b, c = qt.shape[:2]
    total = 0.0
    for bi in range(b):
        for i in range(c):
            for j in range(c):
                total += qt[bi, i, j] * (np.log(qt[bi, i, j]) - np.log(qs[bi, i, j]))
    return total / (b * c)


def ref_connector_eval(conn, f):
    """1x1 conv then eval-mode batch norm, written out per output channel and pixel."""
    w = conn.proj[0].weight.detach().double().numpy()[:, :, 0, 0]  # (C_t, C_s)
    bn = conn.proj[1]
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    f = np.asarray(f, dtype=np.float64)
    b, cs, h, wd = f.shape
    out = np.zeros((b, w.shape[0], h, wd))
    for bi in range(b):
        for o in range(w.shape[0]):
            for y in range(h):
                for x in range(wd):
                    z = sum(w[o, i] * f[bi, i, y, x] for i in range(cs))
                    out[bi, o, y, x] = (z - mean[o]) / np.sqrt(var[o] + bn.eps) * gamma[o] + beta[o]
    return out


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def randomised_connector(cs, ct, seed=0):
    torch.manual_seed(seed)
    conn = ChannelConnector(cs, ct).double()
    with torch.no_grad():
        bn = conn.proj[1]
        bn.running_mean.copy_(torch.randn(ct, dtype=torch.float64) * 0.3)
        bn.running_var.copy_(torch.rand(ct, dtype=torch.float64) + 0.5)
        bn.weight.copy_(torch.rand(ct, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.randn(ct, dtype=torch.float64) * 0.2)
    return conn


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_affinity_matches_loop(tau):
    f = randn(2, 4, 3, 3, seed=1)
    q = channel_affinity(f, tau)
    np.testing.assert_allclose(q.numpy(), ref_affinity(f, tau), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(q.sum(-1).numpy(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_loss_matches_loop_same_width(tau):
    fs, ft = randn(2, 4, 3, 3, seed=2), randn(2, 4, 3, 3, seed=3)
    got = channel_attention_loss(fs, ft, tau)
    assert got.item() > 0
    assert got.item() == pytest.approx(ref_loss(fs, ft, tau), rel=1e-10)


def test_connector_lets_widths_differ():
    fs, ft = randn(2, 3, 3, 3, seed=4), randn(2, 5, 3, 3, seed=5)
    conn = randomised_connector(3, 5, seed=0).eval()
    mapped = ref_connector_eval(conn, fs)
    np.testing.assert_allclose(conn(fs).detach().numpy(), mapped, rtol=1e-10, atol=1e-12)
    got = channel_attention_loss(fs, ft, 0.2, connector=conn)
    assert got.item() == pytest.approx(ref_loss(mapped, ft, 0.2), rel=1e-9)


def test_connector_and_spatial_mismatch():
    """The connector runs on the student's own grid; then the larger map is pooled."""
    fs, ft = randn(2, 3, 6, 6, seed=6), randn(2, 4, 3, 3, seed=7)
    conn = randomised_connector(3, 4, seed=1).eval()
    mapped = F.adaptive_avg_pool2d(torch.from_numpy(ref_connector_eval(conn, fs)), (3, 3))
    got = channel_attention_loss(fs, ft, 0.1, connector=conn)
    assert got.item() == pytest.approx(ref_loss(mapped, ft, 0.1), rel=1e-9)
    fs2, ft2 = randn(2, 4, 3, 3, seed=8), randn(2, 4, 6, 6, seed=9)
    got2 = channel_attention_loss(fs2, ft2, 0.1)
    assert got2.item() == pytest.approx(ref_loss(fs2, F.adaptive_avg_pool2d(ft2, (3, 3)), 0.1), rel=1e-10)


def test_mismatched_width_without_connector_raises():
    with pytest.raises(ValueError, match="ChannelConnector"):
        channel_attention_loss(randn(2, 3, 3, 3), randn(2, 5, 3, 3))
    conn = ChannelConnector(3, 4).double()
    with pytest.raises(ValueError):  # connector to the wrong width
        channel_attention_loss(randn(2, 3, 3, 3), randn(2, 5, 3, 3), connector=conn)


def test_zero_when_equal():
    f = randn(2, 5, 3, 4, seed=10)
    assert channel_attention_loss(f, f.clone()).item() == pytest.approx(0.0, abs=1e-13)
    # positive per-channel scaling does not change F̃
    scale = torch.tensor([0.5, 2.0, 3.0, 1.0, 9.0], dtype=torch.float64)[None, :, None, None]
    assert channel_attention_loss(f * scale, f).item() == pytest.approx(0.0, abs=1e-13)


def test_equivariant_to_common_channel_permutation():
    fs, ft = randn(2, 4, 3, 3, seed=11), randn(2, 4, 3, 3, seed=12)
    perm = torch.tensor([3, 1, 0, 2])
    assert channel_attention_loss(fs[:, perm], ft[:, perm]).item() == pytest.approx(
        channel_attention_loss(fs, ft).item(), rel=1e-12)


def test_connector_parameters_get_gradients_teacher_does_not():
    torch.manual_seed(0)
    conn = ChannelConnector(3, 4).double().train()
    fs = randn(4, 3, 3, 3, seed=13).requires_grad_(True)
    ft = randn(4, 4, 3, 3, seed=14).requires_grad_(True)
    channel_attention_loss(fs, ft, 0.1, connector=conn).backward()
    assert ft.grad is None
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    for name, p in conn.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert conn.proj[0].weight.grad.abs().sum() > 0
    assert conn.proj[1].weight.grad.abs().sum() > 0


def test_gradcheck_student_side():
    fs = randn(2, 3, 2, 3, seed=15).requires_grad_(True)
    ft = randn(2, 3, 2, 3, seed=16)
    assert torch.autograd.gradcheck(lambda x: channel_attention_loss(x, ft, 0.5), (fs,))
