"""Model registry, 4-stage feature capture and the offline pretrained-weights contract."""

from __future__ import annotations

import os
import socket
import time
import urllib.request

import pytest
import torch
import torch.nn.functional as F

from retrieval.models import create_backbone, create_model, list_models
from retrieval.models.small_cnn import SmallResNet
from retrieval.models.torchvision_backbones import PretrainedWeightsNotFound, cached_weights_path



SMALL = {"small_cnn_xs": (8, 16, 32, 64), "small_cnn_s": (16, 32, 64, 128), "small_cnn_m": (32, 64, 128, 256)}
# independent expectations (torchvision architecture facts), not read from the library's table
TORCHVISION = {"resnet18": ((64, 128, 256, 512), (4, 8, 16, 32)),
               "mobilenet_v3_small": ((16, 24, 48, 576), (4, 8, 16, 32))}


def images(n, size, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def check_stages(model, x, channels, strides):
    info = model.stages
    assert [s.channels for s in info] == list(channels)
    assert [s.stride for s in info] == list(strides)
    out = model.forward_features(x)
    assert set(out) >= {"output", "embedding", "stages"}
    assert len(out["stages"]) == 4
    for f, c, s in zip(out["stages"], channels, strides):
        assert f.shape == (x.shape[0], c, x.shape[2] // s, x.shape[3] // s)
    return out


def test_list_models():
    names = list_models()
    assert names == sorted(names)
    for name in ("small_cnn_xs", "small_cnn_s", "small_cnn_m", "resnet18", "resnet34", "resnet50",
                 "mobilenet_v3_small", "mobilenet_v3_large"):
        assert name in names


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_cnn_stage_shapes(name):
    torch.manual_seed(0)
    model = create_model(name, embedding_dim=12).eval()
    with torch.no_grad():
        out = check_stages(model, images(2, 32), SMALL[name], (2, 4, 8, 16))
    assert out["embedding"].shape == (2, 12)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_stage_shapes(name):
    torch.manual_seed(0)
    model = create_model(name, embedding_dim=10).eval()
    channels, strides = TORCHVISION[name]
    with torch.no_grad():
        out = check_stages(model, images(2, 64), channels, strides)
    assert out["output"].shape == (2, 10)
    assert model.backbone.out_channels == channels[-1]


@pytest.mark.parametrize("pooling", ["avg", "max", "avgmax"])
def test_embedding_normalised_when_asked(pooling):
    torch.manual_seed(0)
    x = images(3, 32, seed=1)
    model = create_model("small_cnn_xs", embedding_dim=8, normalize=True, pooling=pooling).eval()
    with torch.no_grad():
        emb = model(x)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-6)

    torch.manual_seed(0)
    raw = create_model("small_cnn_xs", embedding_dim=8, normalize=False, pooling=pooling).eval()
    with torch.no_grad():
        raw_emb = raw(x)
    assert not torch.allclose(raw_emb.norm(dim=1), torch.ones(3), atol=1e-3)
    assert torch.allclose(F.normalize(raw_emb, dim=1), emb, atol=1e-6)


def test_embedding_head_by_hand():
    """embed(pool(stage 4)) then L2 norm, and the classifier (when asked) on top of the embedding."""
    torch.manual_seed(0)
    model = create_model("small_cnn_xs", embedding_dim=8, num_classes=5).eval()
    x = images(3, 32, seed=2)
    with torch.no_grad():
        out = model.forward_features(x)
        f4 = out["stages"][3]
        emb = F.normalize(f4.mean(dim=(2, 3)) @ model.embed.weight.T + model.embed.bias, dim=1)
        assert torch.allclose(out["embedding"], emb, atol=1e-6)
        assert out["output"].shape == (3, 5)
        assert torch.allclose(out["output"], emb @ model.classifier.weight.T + model.classifier.bias, atol=1e-6)
        assert torch.allclose(model(x), out["output"])


def test_bad_pooling():
    with pytest.raises(ValueError):
        create_model("small_cnn_xs", pooling="median")


@pytest.mark.parametrize("train", [False, True])
def test_feature_capture_equals_manual_forward(train):
    """The captured stages are those of a plain forward through the same weights, and capture edits nothing."""
    torch.manual_seed(0)
    backbone = create_backbone("small_cnn_s")
    reference = SmallResNet((16, 32, 64, 128))
    reference.load_state_dict(backbone.body.state_dict(), strict=True)  # same modules, same names, nothing added
    with torch.no_grad():  # non-trivial BN statistics so eval mode is exercised for real
        for m in list(backbone.body.modules()) + list(reference.modules()):
            if isinstance(m, torch.nn.BatchNorm2d):
                g = torch.Generator().manual_seed(m.num_features)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    backbone.train(train)
    reference.train(train)
    params_before = {k: v.clone() for k, v in backbone.named_parameters()}
    state_before = {k: v.clone() for k, v in backbone.state_dict().items()}

    x = images(2, 32, seed=3)
    with torch.no_grad():
        stages = backbone(x)
        h = reference.stem(x)
        manual = []
        for layer in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
            h = layer(h)
            manual.append(h)
    for a, b in zip(stages, manual):
        assert torch.allclose(a, b, atol=1e-5)
    for k, v in backbone.named_parameters():
        assert torch.equal(v, params_before[k]), k
    if not train:
        for k, v in backbone.state_dict().items():
            assert torch.equal(v, state_before[k]), k


def test_unknown_model():
    with pytest.raises(ValueError, match="small_cnn_xs"):
        create_model("no_such_net")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_pretrained_small_cnn_rejected(name):
    with pytest.raises(ValueError):
        create_model(name, pretrained=True)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: any connection attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", getattr(torch.hub, "_hub_dir", None))  # restored afterwards
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return tmp_path / "torch" / "hub"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_pretrained_missing_raises_naming_file(empty_hub, name):
    from torchvision.models import get_model_weights

    filename = os.path.basename(get_model_weights(name).DEFAULT.url)
    expected = os.path.join(str(empty_hub), "checkpoints", filename)
    assert cached_weights_path(name) == expected
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsNotFound) as err:
        create_model(name, pretrained=True)
    assert time.perf_counter() - start < 30
    assert expected in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert not os.path.exists(expected)


def test_pretrained_loads_from_local_cache(empty_hub):
    """A state dict placed where torchvision caches the default weights is what the backbone gets."""
    from torchvision.models import get_model

    torch.manual_seed(123)
    source = get_model("mobilenet_v3_small", weights=None)
    path = cached_weights_path("mobilenet_v3_small")
    os.makedirs(os.path.dirname(path))
    torch.save(source.state_dict(), path)
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", pretrained=True).eval()
    loaded = model.backbone.body.state_dict()
    for k, v in loaded.items():
        assert torch.equal(v, source.state_dict()[k]), k


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_cnn_output_stride_8_keeps_stage_4_at_stage_3_size(name):
    torch.manual_seed(0)
    model = create_model(name, embedding_dim=12, output_stride=8).eval()
    with torch.no_grad():
        out = check_stages(model, images(2, 32), SMALL[name], (2, 4, 8, 8))
    assert [tuple(f.shape[-2:]) for f in out["stages"]] == [(16, 16), (8, 8), (4, 4), (4, 4)]
    # the same weights as output stride 16 (only the stride of layer4 differs)
    assert ([p.shape for p in model.parameters()] ==
            [p.shape for p in create_model(name, embedding_dim=12).parameters()])


def test_small_cnn_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride 32: expected one of \\[8, 16\\]"):
        create_model("small_cnn_xs", output_stride=32)
