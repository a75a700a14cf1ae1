"""Models: a registry of 4-stage backbones and the embedding and classification networks built on them."""

from retrieval.models.backbone import Backbone, StageInfo
from retrieval.models.classifier_net import ClassifierNet, create_classifier
from retrieval.models.embedding_net import EmbeddingNet
from retrieval.models.registry import create_backbone, create_model, list_models, register_model

__all__ = ["Backbone", "StageInfo", "EmbeddingNet", "ClassifierNet", "create_backbone", "create_classifier",
           "create_model", "list_models", "register_model"]
