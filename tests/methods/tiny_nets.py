"""Tiny CPU teacher/student pairs and a batch, shared by the method tests."""

from __future__ import annotations

import torch

from retrieval.models import create_classifier, create_model


def make_models(seed=0):
    """An embedding student (small_cnn_xs, 16-d) and teacher (small_cnn_s, 24-d)."""
    torch.manual_seed(seed)
    student = create_model("small_cnn_xs", embedding_dim=16)
    teacher = create_model("small_cnn_s", embedding_dim=24)
    return student, teacher


def make_classifiers(seed=0, classes=10):
    """A classifier student (small_cnn_xs) and teacher (small_cnn_s) over ``classes`` classes."""
    torch.manual_seed(seed)
    return create_classifier("small_cnn_xs", classes), create_classifier("small_cnn_s", classes)


def make_batch(seed=0):
    """10 images of 32x32, two classes of 5."""
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(10, 3, 32, 32, generator=g),
            "label": torch.tensor([0] * 5 + [1] * 5),
            "index": torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])}
