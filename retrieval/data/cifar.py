"""CIFAR-10 and CIFAR-100 in the official python-pickle layout, read by torchvision.

``root`` is the folder holding the unpacked archive's folder, or that folder itself:

- ``cifar10``: ``cifar-10-batches-py/`` with ``data_batch_1`` ... ``data_batch_5``,
  ``test_batch`` and ``batches.meta`` (50,000 train / 10,000 test images, 10 classes).
- ``cifar100``: ``cifar-100-python/`` with ``train``, ``test`` and ``meta``
  (50,000 / 10,000 images, 100 fine classes; the fine labels are used).

torchvision's ``CIFAR10``/``CIFAR100`` classes parse the files (``download=False``:
nothing is fetched). A missing file raises ``DatasetNotFoundError`` naming every
expected file; ``strict=True`` also checks the official MD5 sums (torchvision's check).

Splits: ``train``/``test`` are the official halves, ``val`` a stratified seeded share
(``val_fraction``, default 10%) of the training images and ``fit`` the rest (see
``retrieval.data.classification``). Transforms (DESIGN §4, RepDistiller): training images
get a random 32x32 crop of the zero-padded (4 px) image and a horizontal flip; all are
normalised with the dataset's mean and std.
"""

from __future__ import annotations

import os
import pickle
from functools import lru_cache

import numpy as np
import torch
from torchvision import datasets
from torchvision.transforms import v2

from retrieval.data.base import DatasetNotFoundError
from retrieval.data.classification import make_split
from retrieval.data.folder import README_HINT, dataset_root
from retrieval.data.registry import register_dataset

# name -> (torchvision class, folder, train files, test files, meta file, label key of the meta file, mean, std)
SPECS = {
    "cifar10": (datasets.CIFAR10, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "label_names", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": (datasets.CIFAR100, "cifar-100-python", ["train"], ["test"], "meta", "fine_label_names",
                 (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
DISPLAY = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def cifar_transform(split: str, mean, std):
    """Train/fit: zero-pad 4, random crop 32, horizontal flip; then scale to [0, 1] and normalise."""
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if split in ("train", "fit"):
        return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *tail])
    return v2.Compose(tail)


def expected_files(name: str) -> list[str]:
    """The files ``name`` reads, relative to its folder."""
    _, _, train, test, meta, *_ = SPECS[name]
    return [*train, *test, meta]


def _reader(name: str, strict: bool):
    """torchvision's dataset class reading from the folder itself; MD5 sums only when ``strict``."""
    base_cls, _, _, _, meta, key, _, _ = SPECS[name]

    class Reader(base_cls):
        base_folder = ""  # ``root`` is the folder holding the files

        def _check_integrity(self) -> bool:
            return super()._check_integrity() if strict else True  # presence was checked before

        def _load_meta(self) -> None:
            if strict:
                return super()._load_meta()
            with open(os.path.join(self.root, meta), "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[key]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return Reader


@lru_cache(maxsize=2)
def _load(name: str, base: str, strict: bool):
    """(images (N, 3, 32, 32) uint8, labels, official-train flags, class names) of train + test."""
    reader = _reader(name, strict)
    parts = []
    for train in (True, False):
        try:
            ds = reader(base, train=train, download=False)
        except RuntimeError:  # torchvision's MD5 check (its message suggests a download; we never download)
            raise ValueError(f"{name}: a file under {base} does not match its official MD5 sum (strict=True): "
                             f"a modified or partial copy? Expected the official python version of "
                             f"{', '.join(expected_files(name))}") from None
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
            raise ValueError(f"{name}: cannot parse the pickle files under {base} ({type(exc).__name__}: {exc}); "
                             f"expected the official python version") from None
        parts.append((np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, np.int64)))
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    official_train = np.arange(len(labels)) < len(parts[0][1])
    return images, labels, official_train, tuple(ds.classes)


def _cifar(name: str, root, split: str, transform, val_fraction: float, val_seed: int, strict: bool):
    _, folder, *_, mean, std = SPECS[name]
    if root is None:
        listed = "\n".join(f"  <root>/{folder}/{f}" for f in expected_files(name))
        raise DatasetNotFoundError(f"{name}: no dataset root given (--data-root); expected the official python "
                                   f"version unpacked as\n{listed}\n" + README_HINT.format(name=name))
    base = dataset_root(root, name, folder, expected_files(name))
    images, labels, official_train, classes = _load(name, str(base), strict)
    if transform is None:
        transform = cifar_transform(split, mean, std)
    source = f"{DISPLAY[name]} (official python version, read from the data root)"
    return make_split(name, images, labels, official_train, split, transform, classes, source, val_fraction,
                      val_seed, embedded=False)


@register_dataset("cifar10")
def cifar10(root, split: str = "train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
            strict: bool = False):
    """CIFAR-10 ``split``; labels 0-9. See the module docstring for the layout."""
    return _cifar("cifar10", root, split, transform, val_fraction, val_seed, strict)


@register_dataset("cifar100")
def cifar100(root, split: str = "train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
             strict: bool = False):
    """CIFAR-100 ``split``; fine labels 0-99. See the module docstring for the layout."""
    return _cifar("cifar100", root, split, transform, val_fraction, val_seed, strict)

