"""torchvision backbones (ResNet-18/34/50, MobileNetV3) exposed as 4-stage ``Backbone``s.

Pretrained weights are read from the local torch hub cache only (``torch.hub.get_dir()``
/checkpoints); nothing is downloaded, so an offline machine gets a clear error at once
instead of a hanging download.
"""

from __future__ import annotations

import os

import torch
from torchvision.models import get_model, get_model_weights

from retrieval.models.backbone import Backbone
from retrieval.models.registry import register_model

# name -> (stage nodes, channels, strides), ResNet layer1..layer4 and their MobileNetV3 analogues.
_SPECS = {
    "resnet18": (["layer1", "layer2", "layer3", "layer4"], [64, 128, 256, 512], [4, 8, 16, 32]),
    "resnet34": (["layer1", "layer2", "layer3", "layer4"], [64, 128, 256, 512], [4, 8, 16, 32]),
    "resnet50": (["layer1", "layer2", "layer3", "layer4"], [256, 512, 1024, 2048], [4, 8, 16, 32]),
    "mobilenet_v3_small": (["features.1", "features.3", "features.8", "features.12"], [16, 24, 48, 576],
                           [4, 8, 16, 32]),
    "mobilenet_v3_large": (["features.3", "features.6", "features.12", "features.16"], [24, 40, 112, 960],
                           [4, 8, 16, 32]),
}


class PretrainedWeightsNotFound(FileNotFoundError):
    """The ImageNet weights were asked for but are not in the local torch hub cache."""


def cached_weights_path(name: str) -> str:
    """Where torchvision would cache the default ImageNet weights of ``name``."""
    weights = get_model_weights(name).DEFAULT
    filename = os.path.basename(weights.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def load_cached_weights(name: str):
    """The default weights' state dict from the local cache, or ``PretrainedWeightsNotFound``."""
    path = cached_weights_path(name)
    if not os.path.isfile(path):
        url = get_model_weights(name).DEFAULT.url
        raise PretrainedWeightsNotFound(
            f"pretrained weights for {name} are not in the local torch hub cache: expected {path}. "
            f"This suite never downloads at run time; on a machine with internet fetch {url} "
            f"into that folder (or set TORCH_HOME), or run with pretrained=False."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _torchvision_backbone(name: str, pretrained: bool) -> Backbone:
    model = get_model(name, weights=None)
    if pretrained:
        model.load_state_dict(load_cached_weights(name))
    nodes, channels, strides = _SPECS[name]
    return Backbone(model, nodes, channels, strides)


def _register(name: str):
    def factory(pretrained: bool = False):
        return _torchvision_backbone(name, pretrained)

    factory.__name__ = name
    factory.__doc__ = f"torchvision {name}, stages {_SPECS[name][0]}"
    register_model(factory, name=name)


for _name in _SPECS:
    _register(_name)
