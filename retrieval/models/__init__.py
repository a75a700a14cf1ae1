"""Models: a registry of 4-stage backbones and the embedding network built on them."""

from retrieval.models.backbone import Backbone, StageInfo
from retrieval.models.embedding_net import EmbeddingNet
from retrieval.models.registry import create_backbone, create_model, list_models, register_model

__all__ = ["Backbone", "StageInfo", "EmbeddingNet", "create_backbone", "create_model", "list_models",
           "register_model"]
