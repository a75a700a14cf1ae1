"""Pre-ReLU stage maps (``Backbone.forward_maps(x, preact=True)``): against the maps recomputed by
hand from the modules, in train and eval mode, with the stage maps and the state dict unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

from retrieval.models import create_backbone, create_classifier, create_model


def images(n=3, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _block_sum(block, x):
    """A basic block's residual sum before its final ReLU, recomputed from its modules (every stage of
    the small CNNs changes shape, so each has its 1x1 shortcut)."""
    out = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    shortcut = block.get_submodule("downsample.1")(block.get_submodule("downsample.0")(x))
    return out + shortcut


def test_small_cnn_preact_is_each_stage_sum_before_its_relu():
    torch.manual_seed(0)
    backbone = create_backbone("small_cnn_xs").eval()
    body = backbone.body
    x = images()
    maps = backbone.forward_maps(x, preact=True)
    f = torch.relu(body.get_submodule("stem.1")(body.get_submodule("stem.0")(x)))
    for i, (got, stage) in enumerate(zip(maps["preact"], maps["stages"]), start=1):
        want = _block_sum(getattr(body, f"layer{i}"), f)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.relu(got), stage)
        assert (got < 0).any()  # not overwritten by the in-place ReLU that follows
        f = torch.relu(want)
    for a, b in zip(maps["stages"], backbone(x)):
        torch.testing.assert_close(a, b)


def assert_stage_maps_are_relu_of_preact(maps):
    for pre, stage in zip(maps["preact"], maps["stages"]):
        torch.testing.assert_close(torch.relu(pre), stage)
        assert (pre < 0).any()  # not overwritten by the in-place ReLU that follows


def test_in_train_mode_preact_maps_are_the_stage_maps_before_relu():
    torch.manual_seed(0)
    assert_stage_maps_are_relu_of_preact(create_backbone("small_cnn_s").train().forward_maps(images(), preact=True))


def test_preact_maps_carry_gradients_in_train_mode_and_switch_batchnorm_mode():
    torch.manual_seed(0)
    net = create_classifier("small_cnn_xs", 5).train()
    out = net.forward_features(images(), preact=True)
    out["preact"][2].square().sum().backward()
    assert net.backbone.body.layer3.conv2.weight.grad is not None
    assert net.backbone.body.layer4.conv2.weight.grad is None  # after stage 3's map
    bn = net.backbone.body.layer1.bn1
    before = bn.running_mean.clone()
    net.eval()
    net.forward_features(images(seed=1), preact=True)
    torch.testing.assert_close(bn.running_mean, before)  # eval: no statistics updated
    net.train()
    net.forward_features(images(seed=1), preact=True)
    assert not torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("arch", ["resnet20", "resnet18", "resnet50"])
def test_resnet_preact_maps_are_the_stage_maps_before_relu(arch):
    torch.manual_seed(0)
    net = create_classifier(arch, 10).eval()
    assert_stage_maps_are_relu_of_preact(net.forward_features(images(2), preact=True))


def test_wrn_preact_maps_are_its_block_outputs_and_the_last_before_its_bn_and_relu():
    torch.manual_seed(0)
    net = create_classifier("wrn_16_2", 10).eval()
    out = net.forward_features(images(2), preact=True)
    for pre, stage in zip(out["preact"][:3], out["stages"][:3]):
        torch.testing.assert_close(pre, stage)
    body = net.backbone.body
    torch.testing.assert_close(torch.relu(body.bn1(out["preact"][3])), out["stages"][3])
    assert net.backbone.preact_bns[3] is body.bn1


def test_the_declared_batchnorms_are_the_ones_before_each_relu():
    small = create_backbone("small_cnn_s")
    assert small.preact_bns == [getattr(small.body, f"layer{i}").bn2 for i in (1, 2, 3, 4)]
    r18 = create_backbone("resnet18")
    assert r18.preact_bns[1] is r18.body.get_submodule('layer2.1.bn2')
    r50 = create_backbone("resnet50")
    assert r50.preact_bns[3] is r50.body.get_submodule('layer4.2.bn3')


def test_state_dict_copies_and_dtype_moves_keep_the_preact_maps_in_step():
    torch.manual_seed(0)
    net = create_model("small_cnn_xs", embedding_dim=8).eval()
    keys = set(net.state_dict())
    assert not any("preact" in k for k in keys)
    twin = copy.deepcopy(net).double()
    x = images(2).double()
    out = twin.forward_features(x, preact=True)
    assert out["preact"][0].dtype == torch.float64
    torch.testing.assert_close(torch.relu(out["preact"][1]), out["stages"][1])
    with torch.no_grad():
        twin.backbone.body.layer2.bn2.bias.add_(1.0)  # the preact pass reads the same modules
    again = twin.forward_features(x, preact=True)
    torch.testing.assert_close(torch.relu(again["preact"][1]), again["stages"][1])
    assert not torch.equal(again["preact"][1], out["preact"][1])


def test_a_backbone_without_preact_says_so():
    backbone = create_backbone("mobilenet_v3_small")
    assert not backbone.has_preact
    with pytest.raises(ValueError, match="does not declare its pre-ReLU stage maps"):
        backbone.forward_maps(images(1, 64), preact=True)


def test_the_preact_extractor_is_traced_on_first_use_in_the_backbones_mode():
    torch.manual_seed(0)
    backbone = create_backbone("small_cnn_xs")
    backbone(images(1))
    assert backbone._preact_body is None  # building and plain forwards never trace it
    backbone.eval()
    bn = backbone.body.layer2.bn1
    before = bn.running_mean.clone()
    backbone.forward_maps(images(2), preact=True)  # traced now, from an eval-mode backbone
    assert backbone._preact_body is not None
    assert not any(m.training for m in backbone.body.modules())
    torch.testing.assert_close(bn.running_mean, before)
