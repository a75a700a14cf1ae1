"""Every loss built on pairwise distances, a power, a square root or a normalisation (where each has an
infinite derivative or a division at zero) gives a finite value and a finite gradient in float32 over
its options' ranges, on batches with duplicate samples, an all-zero sample, dead channels and positions,
at embedding scales 0.3, 10 and 30. The fixes that make them so leave the values bit for bit as before."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from retrieval.methods.losses import (ChannelConnector, CRDLoss, activation_attention_loss, cc_loss,
                                      channel_attention_loss, darkrank_loss, nst_loss, pairwise_distances,
                                      pkt_loss, position_attention_loss, rkd_angle_loss, rkd_distance_loss,
                                      sp_loss)
from retrieval.methods.losses.activation_attention import abs_pow
from retrieval.methods.losses.dist import dist_loss
from retrieval.methods.losses.dkd import dkd_loss
from retrieval.methods.losses.kd import kd_loss
from retrieval.methods.losses.pkt import cosine_probabilities

SCALES = (0.3, 10.0, 30.0)
BATCH = 12


def embeddings(scale: float, seed: int = 0, dim: int = 8, zero: bool = False) -> torch.Tensor:
    """A float32 batch whose samples 1, 4 and 9 are one embedding (duplicates), optionally sample 6 all zero."""
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(BATCH, dim, generator=g)
    x[4] = x[1]
    x[9] = x[1]
    if zero:
        x[6] = 0
    return x


def feature_maps(scale: float, seed: int = 0, channels: int = 4, size: int = 4) -> torch.Tensor:
    """Post-ReLU float32 maps (many exact zeros) with duplicate samples, an all-zero sample, a dead channel
    and a position that is zero in every channel."""
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(scale * torch.randn(BATCH, channels, size, size, generator=g))
    x[4] = x[1]
    x[6] = 0
    x[:, 2] = 0
    x[:, :, 0, 0] = 0
    return x


def assert_finite_gradient(loss_fn, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_(True)
    loss = loss_fn(x)
    assert torch.isfinite(loss), f"loss {loss.item()}"
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), "non-finite gradient"


# ---------------------------------------------------------------- values unchanged by the fixes

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_distances_are_those_of_the_masked_product(dtype):
    x = embeddings(10.0).to(dtype)
    sq = x.pow(2).sum(dim=1)
    d = (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp(min=1e-12).sqrt()
    before = d * (1 - torch.eye(len(x), dtype=dtype))
    assert torch.equal(pairwise_distances(x), before)


@pytest.mark.parametrize("p", [0.05, 0.5, 1.0, 2.0, 3.0])
def test_abs_pow_is_abs_then_pow(p):
    f = feature_maps(10.0) - 3.0  # negative, positive and zero entries
    f[0, 0, 1, 1] = 0
    assert torch.equal(abs_pow(f, p), f.abs().pow(p))


def test_pkt_probabilities_are_those_of_the_plain_norm():
    x = embeddings(10.0, zero=True)
    plain = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-7)
    k = (plain @ plain.t() + 1.0) / 2.0
    assert torch.equal(cosine_probabilities(x), k / k.sum(dim=1, keepdim=True))


# ---------------------------------------------------------------- embeddings

DARKRANK_ALPHAS = (0.01, 2.0, 10.0)
DARKRANK_BETAS = (0.01, 0.1, 0.5, 0.99, 1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("normalize", [False, True])
def test_darkrank_gradient_is_finite_for_every_beta(scale, normalize):
    """beta < 1 gave NaN in float32 (the zero diagonal's infinite derivative of d^beta, times 0)."""
    t = embeddings(scale, seed=1)
    failures = []
    for alpha, beta, n in itertools.product(DARKRANK_ALPHAS, DARKRANK_BETAS, (1, 4, BATCH - 1)):
        s = embeddings(scale).requires_grad_(True)
        es, et = (F.normalize(s, dim=1), F.normalize(t, dim=1)) if normalize else (s, t)
        loss = darkrank_loss(es, et, alpha, beta, n)
        loss.backward()
        if not (torch.isfinite(loss) and torch.isfinite(s.grad).all()):
            failures.append((alpha, beta, n))
    assert failures == []


@pytest.mark.parametrize("beta", [0.01, 0.3, 0.99, 3.0])
def test_powers_of_pairwise_distances_have_a_finite_gradient(beta):
    for scale in SCALES:
        assert_finite_gradient(lambda x: pairwise_distances(x).pow(beta).sum(), embeddings(scale, zero=True))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("zero", [False, True])
@pytest.mark.parametrize("loss", [rkd_distance_loss, rkd_angle_loss, pkt_loss, sp_loss], ids=lambda f: f.__name__)
def test_relational_embedding_losses_have_a_finite_gradient(loss, scale, zero):
    t = embeddings(scale, seed=1, zero=zero)
    assert_finite_gradient(lambda x: loss(x, t), embeddings(scale, zero=zero))


@pytest.mark.parametrize("scale", SCALES)
def test_cc_has_a_finite_gradient_where_student_and_teacher_agree(scale):
    t = embeddings(scale, seed=1)
    s = embeddings(scale)
    s[2] = t[2]  # |s - t| = 0: the abs's kink
    assert_finite_gradient(lambda x: cc_loss(x, t), s)
    assert_finite_gradient(lambda x: cc_loss(s, x), t)  # the teacher's embedding learns too


@pytest.mark.parametrize("n_data", [40, 100_000])
@pytest.mark.parametrize("temperature", [0.03, 0.07, 1.0])
def test_crd_has_a_finite_gradient_down_to_its_lowest_temperature(temperature, n_data):
    """The worst case: the constant Z fixed on a batch aligned with every bank entry, then a batch opposite
    to them (every score exp(-2/T) / n_data)."""
    torch.manual_seed(0)
    crd = CRDLoss(6, 6, torch.arange(n_data) % 4, feat_dim=6, num_negatives=16, temperature=temperature).eval()
    u = F.normalize(torch.ones(6), dim=0)
    with torch.no_grad():
        for head in (crd.embed_s, crd.embed_t):
            head.weight.copy_(torch.eye(6))
            head.bias.zero_()
        crd.bank_s[:] = u
        crd.bank_t[:] = u
    index = torch.arange(BATCH)
    crd(u.repeat(BATCH, 1), u.repeat(BATCH, 1), index)
    assert_finite_gradient(lambda x: crd(x, -u.repeat(BATCH, 1), index), -u.repeat(BATCH, 1))
    for scale in SCALES:
        assert_finite_gradient(lambda x: crd(x, embeddings(scale, seed=1)[:, :6], index), embeddings(scale)[:, :6])


def test_crd_temperatures_below_the_range_are_refused():
    from retrieval.methods.crd import ContrastiveRepresentationDistillation
    from retrieval.methods.options import options_model

    model = options_model(ContrastiveRepresentationDistillation)
    model.model_validate({"temperature": 0.03})
    with pytest.raises(ValueError, match="greater than or equal to 0.03"):
        model.model_validate({"temperature": 0.02})


# ---------------------------------------------------------------- feature maps

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.99, 1.0, 2.0, 4.0])
def test_attention_transfer_has_a_finite_gradient_for_every_p(p, scale):
    """p < 1 gave NaN wherever a ReLU map is 0 (|x|^p has an infinite derivative there, times sign(0))."""
    t = feature_maps(scale, seed=1, channels=6)
    assert_finite_gradient(lambda x: activation_attention_loss(x, t, p), feature_maps(scale))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("loss", [nst_loss, sp_loss], ids=lambda f: f.__name__)
def test_map_losses_have_a_finite_gradient(loss, scale):
    t = feature_maps(scale, seed=1, channels=6, size=8)
    assert_finite_gradient(lambda x: loss(x, t), feature_maps(scale))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
def test_hmat_attention_terms_have_a_finite_gradient(tau, scale):
    t = feature_maps(scale, seed=1, channels=6)
    assert_finite_gradient(lambda x: position_attention_loss(x, t, tau, block_elements=64), feature_maps(scale))
    torch.manual_seed(0)
    connector = ChannelConnector(4, 6)
    assert_finite_gradient(lambda x: channel_attention_loss(x, t, tau, connector), feature_maps(scale))
    assert_finite_gradient(lambda x: channel_attention_loss(x, t, tau), feature_maps(scale, channels=6))


# ---------------------------------------------------------------- logits (normalised over classes or the batch)

def logits(scale: float, seed: int = 0, classes: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(BATCH, classes, generator=g)
    z[4] = z[1]  # duplicates
    z[6] = 0     # a uniform distribution
    return z


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("tau", [0.1, 1.0, 4.0])
def test_dist_and_kd_have_a_finite_gradient(tau, scale):
    t = logits(scale, seed=1)
    t[:, 3] = t[:, 3].mean()  # a class whose teacher probability barely moves over the batch
    assert_finite_gradient(lambda x: dist_loss(x, t, 1.0, 1.0, tau), logits(scale))
    assert_finite_gradient(lambda x: dist_loss(x, t, 1.0, 1.0, tau), torch.zeros(BATCH, 5))  # every row uniform
    assert_finite_gradient(lambda x: kd_loss(x, t, tau), logits(scale))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("tau", [0.1, 1.0, 4.0])
def test_dkd_has_a_finite_gradient(tau, scale):
    t = logits(scale, seed=1)
    labels = torch.arange(BATCH) % 5
    assert_finite_gradient(lambda x: dkd_loss(x, t, labels, 1.0, 8.0, tau), logits(scale))
