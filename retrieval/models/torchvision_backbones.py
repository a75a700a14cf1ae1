"""torchvision backbones (ResNet-18/34/50, MobileNetV3) exposed as 4-stage ``Backbone``s.

Pretrained weights are read from the local torch hub cache only (``torch.hub.get_dir()``
/checkpoints); nothing is downloaded, so an offline machine gets a clear error at once
instead of a hanging download. ``weights`` names which of torchvision's weights of the
architecture (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ...; default ``DEFAULT``, torchvision's
current best, e.g. V2 for resnet50): a published number was measured with particular ones.
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


# ResNet name -> (blocks per stage, the BN before each block's final ReLU): the pre-ReLU map of a stage is the
# residual sum of its last block (torchvision's ``out += identity``, traced as ``add``).
_RESNET_BLOCKS = {"resnet18": ((2, 2, 2, 2), "bn2"), "resnet34": ((3, 4, 6, 3), "bn2"),
                  "resnet50": ((3, 4, 6, 3), "bn3")}


def _preact(name: str) -> list[tuple[str, str]] | None:
    """The ResNets' pre-ReLU stage nodes and BNs (``Backbone``'s ``preact``); None for MobileNetV3."""
    if name not in _RESNET_BLOCKS:
        return None
    blocks, bn = _RESNET_BLOCKS[name]
    return [(f"layer{i}.{n - 1}.add", f"layer{i}.{n - 1}.{bn}") for i, n in enumerate(blocks, start=1)]


class PretrainedWeightsNotFound(FileNotFoundError):
    """The ImageNet weights were asked for but are not in the local torch hub cache."""


def has_torchvision_weights(name: str) -> bool:
    """Whether ``name`` is one of the torchvision architectures here (the only ones with ``weights``)."""
    return name in _SPECS


def known_weights(name: str) -> list[str]:
    """The weights names torchvision knows for ``name`` (``torchvision.models.get_model_weights``),
    e.g. ``['IMAGENET1K_V1', 'IMAGENET1K_V2', 'DEFAULT']`` for resnet50."""
    return [w.name for w in get_model_weights(name)] + ["DEFAULT"]


def resolve_weights(name: str, weights: str | None = None):
    """The torchvision weights ``weights`` of architecture ``name``: a member name of its enum
    (``IMAGENET1K_V1``), the same qualified by the enum (``ResNet50_Weights.IMAGENET1K_V1``) or
    ``DEFAULT`` (also when None). ``ValueError`` listing the known names otherwise."""
    if not has_torchvision_weights(name):
        raise ValueError(f"{name} has no torchvision weights (it is not a torchvision architecture); "
                         f"weights apply to {sorted(_SPECS)}")
    enum = get_model_weights(name)
    key = "DEFAULT" if weights is None else str(weights)
    if key.startswith(enum.__name__ + "."):
        key = key[len(enum.__name__) + 1:]
    try:
        return enum[key]
    except KeyError:
        raise ValueError(f"unknown weights {weights!r} for {name}; torchvision knows {known_weights(name)} "
                         f"(torchvision.models.get_model_weights({name!r}))") from None


def cached_weights_path(name: str, weights: str | None = None) -> str:
    """Where torchvision would cache the ImageNet weights ``weights`` (default: DEFAULT) of ``name``:
    ``torch.hub.get_dir()/checkpoints/<basename of the weights' url>``."""
    filename = os.path.basename(resolve_weights(name, weights).url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def load_cached_weights(name: str, weights: str | None = None):
    """The state dict of ``weights`` (default: DEFAULT) from the local cache, or ``PretrainedWeightsNotFound``."""
    resolved = resolve_weights(name, weights)
    path = cached_weights_path(name, weights)
    if not os.path.isfile(path):
        raise PretrainedWeightsNotFound(
            f"pretrained weights {type(resolved).__name__}.{resolved.name} for {name} are not in the local torch "
            f"hub cache: expected {path}. This suite never downloads at run time; on a machine with internet "
            f"fetch {resolved.url} into that folder (or set TORCH_HOME), or run with pretrained=False."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _torchvision_backbone(name: str, pretrained: bool, weights: str | None = None) -> Backbone:
    if weights is not None:
        resolve_weights(name, weights)  # a bad name fails even without pretrained
    state = load_cached_weights(name, weights) if pretrained else None  # a missing file fails before the build
    model = get_model(name, weights=None)
    if state is not None:
        model.load_state_dict(state)
    nodes, channels, strides = _SPECS[name]
    return Backbone(model, nodes, channels, strides, preact=_preact(name))


def _register(name: str):
    def factory(pretrained: bool = False, weights: str | None = None):
        return _torchvision_backbone(name, pretrained, weights)

    factory.__name__ = name
    factory.__doc__ = f"torchvision {name}, stages {_SPECS[name][0]}"
    register_model(factory, name=name)


for _name in _SPECS:
    _register(_name)
