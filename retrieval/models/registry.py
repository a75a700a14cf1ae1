"""Model registry in the style of timm: ``register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import inspect
from typing import Callable

from retrieval.models.embedding_net import EmbeddingNet

_MODELS: dict[str, Callable] = {}


def register_model(fn: Callable = None, *, name: str | None = None):
    """Register a backbone factory ``fn(pretrained=False, **kw) -> Backbone`` under its name."""

    def wrap(f):
        key = name or f.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is registered twice")
        _MODELS[key] = f
        return f

    return wrap(fn) if fn is not None else wrap


def list_models() -> list[str]:
    _import_builtin()
    return sorted(_MODELS)


def create_backbone(name: str, pretrained: bool = False, weights: str | None = None, **kwargs):
    """Build the 4-stage backbone ``name`` (see ``list_models()``). ``weights`` names torchvision's
    weights of a torchvision architecture (``IMAGENET1K_V1``; default ``DEFAULT``), loaded with
    ``pretrained``; the other backbones have none, and naming some for them is an error."""
    _import_builtin()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(_MODELS)}")
    if weights is not None:
        if "weights" not in inspect.signature(_MODELS[name]).parameters:
            with_weights = sorted(n for n, f in _MODELS.items() if "weights" in inspect.signature(f).parameters)
            raise ValueError(f"{name} has no torchvision weights, so weights={weights!r} cannot apply; "
                             f"weights apply to {with_weights}")
        kwargs["weights"] = weights
    return _MODELS[name](pretrained=pretrained, **kwargs)


def create_model(name: str, embedding_dim: int = 128, normalize: bool = True, pretrained: bool = False,
                 pooling: str = "avg", num_classes: int | None = None, **kwargs):
    """Build an ``EmbeddingNet``: backbone ``name`` + global pooling + linear embedding (+ L2 norm)."""
    backbone = create_backbone(name, pretrained=pretrained, **kwargs)
    return EmbeddingNet(backbone, embedding_dim=embedding_dim, normalize=normalize, pooling=pooling,
                        num_classes=num_classes)


def _import_builtin():
    from retrieval.models import cifar_resnet, cifar_wrn, small_cnn, torchvision_backbones  # noqa: F401
