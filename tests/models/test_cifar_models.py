"""The CIFAR networks of the KD literature: 4-stage shapes, sizes, and the classifier head."""

import pytest
import torch

from retrieval.methods import build_method
from retrieval.models import ClassifierNet, create_backbone, create_classifier, list_models

# name -> (stage channels, parameters with a 100-class head, as reported for RepDistiller's models)
NETS = {
    "resnet20": ((16, 16, 32, 64), 0.28e6),
    "resnet56": ((16, 16, 32, 64), 0.86e6),
    "resnet8x4": ((32, 64, 128, 256), 1.23e6),
    "resnet32x4": ((32, 64, 128, 256), 7.43e6),
    "wrn_16_2": ((16, 32, 64, 128), 0.70e6),
    "wrn_40_2": ((16, 32, 64, 128), 2.26e6),
}
STRIDES = (1, 1, 2, 4)  # stem, stage 1, 2, 3 of a CIFAR network


def test_registered():
    assert set(NETS) <= set(list_models())


@pytest.mark.parametrize("name", sorted(NETS))
def test_stage_shapes_on_32x32(name):
    torch.manual_seed(0)
    model = create_classifier(name, 100).eval()
    channels, _ = NETS[name]
    assert [s.channels for s in model.stages] == list(channels)
    assert [s.stride for s in model.stages] == list(STRIDES)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model.forward_features(x)
    assert [tuple(f.shape) for f in out["stages"]] == [(2, c, 32 // s, 32 // s) for c, s in zip(channels, STRIDES)]
    assert out["output"].shape == (2, 100)
    assert out["embedding"].shape == (2, channels[-1]) == (2, model.embedding_dim)
    assert torch.allclose(out["embedding"], out["stages"][-1].mean(dim=(2, 3)))
    assert torch.allclose(out["output"], model.fc(out["embedding"]))
    with torch.no_grad():
        assert torch.allclose(model(x), out["output"])


@pytest.mark.parametrize("name", sorted(NETS))
def test_parameter_counts_match_the_literature(name):
    count = sum(p.numel() for p in create_classifier(name, 100).parameters())
    assert count == pytest.approx(NETS[name][1], rel=0.02)


def test_small_inputs_keep_four_stages():
    model = create_classifier("resnet20", 10).eval()
    with torch.no_grad():
        out = model.forward_features(torch.randn(3, 3, 8, 8))
    assert [f.shape[-1] for f in out["stages"]] == [8, 8, 4, 2]


def test_resnet_stages_equal_a_manual_forward():
    from retrieval.models.cifar_resnet import CifarResNet

    torch.manual_seed(0)
    backbone = create_backbone("resnet20").eval()
    net = CifarResNet(20, (16, 16, 32, 64)).eval()
    net.load_state_dict(backbone.body.state_dict(), strict=True)  # same modules and names
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stem = net.relu(net.bn1(net.conv1(x)))
        l1 = net.layer1(stem)
        l2 = net.layer2(l1)
        l3 = net.layer3(l2)
        for a, b in zip(backbone(x), (stem, l1, l2, l3)):
            assert torch.allclose(a, b, atol=1e-6)


def test_wrn_last_stage_is_post_activation():
    torch.manual_seed(0)
    backbone = create_backbone("wrn_16_2").eval()
    with torch.no_grad():
        f = backbone(torch.randn(2, 3, 32, 32))
    assert (f[3] >= 0).all() and (f[1] < 0).any()  # relu(bn(block3)) vs a raw block output


def test_bad_depth_and_pretrained():
    from retrieval.models.cifar_resnet import CifarResNet
    from retrieval.models.cifar_wrn import WideResNet

    with pytest.raises(ValueError):
        CifarResNet(21, (16, 16, 32, 64))
    with pytest.raises(ValueError):
        WideResNet(17, 2)
    with pytest.raises(ValueError):
        create_classifier("resnet20", 10, pretrained=True)
    with pytest.raises(ValueError):
        ClassifierNet(create_backbone("resnet20"), 1)


@pytest.mark.parametrize("name", ["none", "kd", "at", "rkd", "crd", "hmat", "hmat+kd"])
def test_every_method_runs_on_classifiers(name):
    """The methods need nothing but the EmbeddingNet interface: the same objects serve classification."""
    torch.manual_seed(0)
    student, teacher = create_classifier("resnet20", 10), create_classifier("resnet8x4", 10)
    opts = {"crd": {"num_negatives": 8, "feat_dim": 8}}.get(name, {})
    method = build_method(name, student=student, teacher=teacher, task_loss=torch.nn.CrossEntropyLoss(),
                          train_labels=[i % 10 for i in range(20)], **opts).train()
    batch = {"image": torch.randn(10, 3, 8, 8), "label": torch.arange(10), "index": torch.arange(10)}
    output, losses = method.training_step(batch)
    assert output.shape == (10, 10) and "task" in losses
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())
