"""Training and embedding loops, and the evaluators they call."""

from retrieval.engine.classify import evaluate_classifier
from retrieval.engine.embed import compute_embeddings
from retrieval.engine.seeding import seed_everything
from retrieval.engine.trainer import (NonFiniteLossError, TrainConfig, TrainResult, evaluate_model,
                                      make_train_loader, train)

__all__ = ["compute_embeddings", "seed_everything", "TrainConfig", "TrainResult", "train", "evaluate_model",
           "evaluate_classifier", "make_train_loader", "NonFiniteLossError"]
