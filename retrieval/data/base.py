"""Dataset classes shared by every loader: items are dicts ``image``, ``label``, ``index``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root is missing files; the message lists what was expected where."""


class ImageReadError(OSError):
    """An image file exists in the index but cannot be decoded."""


def require_files(root: Path, relative: list[str], dataset: str, hint: str = "") -> None:
    """Raise ``DatasetNotFoundError`` naming every file of ``relative`` missing under ``root``."""
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        listed = "\n".join(f"  {root / m}" for m in missing)
        raise DatasetNotFoundError(
            f"{dataset}: expected files are missing under {root}:\n{listed}" + (f"\n{hint}" if hint else "")
        )


def class_split_mask(labels: np.ndarray, official_train: np.ndarray, split: str,
                     val_fraction: float = 0.2, min_val_classes: int = 2, val_fold: int | None = None) -> np.ndarray:
    """Boolean mask of the samples in ``split`` given each sample's official train/test flag.

    ``val`` holds the last ``val_fraction`` of the sorted training classes (at least
    ``min_val_classes``, and never all of them); ``fit`` holds the other training classes.
    With ``val_fold`` k, ``val`` is instead the k-th block of that many sorted training
    classes (class-disjoint cross-validation folds: k = 0 .. 1/val_fraction - 1; the last
    fold is the default split when the classes divide evenly).
    """
    labels = np.asarray(labels)
    official_train = np.asarray(official_train, dtype=bool)
    if split == "train":
        return official_train
    if split == "test":
        return ~official_train
    train_classes = np.unique(labels[official_train])
    if len(train_classes) < 2:
        raise ValueError(f"cannot carve a validation split from {len(train_classes)} training class(es)")
    n_val = max(min_val_classes, int(round(val_fraction * len(train_classes))))
    n_val = min(n_val, len(train_classes) - 1)
    if val_fold is None:
        val_classes = train_classes[-n_val:]
    else:
        folds = len(train_classes) // n_val
        if not isinstance(val_fold, (int, np.integer)) or not 0 <= val_fold < folds:
            raise ValueError(f"val_fold {val_fold!r}: expected an integer in 0..{folds - 1} ({folds} folds of "
                             f"{n_val} of the {len(train_classes)} training classes)")
        val_classes = train_classes[val_fold * n_val:(val_fold + 1) * n_val]
    in_val = np.isin(labels, val_classes) & official_train
    if split == "val":
        return in_val
    if split == "fit":
        return official_train & ~in_val
    raise ValueError(f"unknown split {split!r}; expected train, fit, val or test")


class RetrievalDataset(Dataset):
    """Base class. Subclasses set ``labels`` (int64 array) and implement ``load(i)``."""

    name = "dataset"

    def __init__(self, labels, transform=None, split: str = "train"):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.split = split

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int):
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        image = self.load(i)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": int(self.labels[i]), "index": int(i)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, images={len(self)}, classes={self.num_classes})"


class ImageFileDataset(RetrievalDataset):
    """Images read from files with PIL (RGB)."""

    def __init__(self, paths, labels, transform=None, split: str = "train"):
        super().__init__(labels, transform, split)
        self.paths = [Path(p) for p in paths]
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def load(self, i: int):
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except Exception as exc:  # PIL raises several types; name the file whatever it was
            raise ImageReadError(f"cannot read image {path}: {exc}") from exc


class TensorImageDataset(RetrievalDataset):
    """Images held in memory as a uint8 tensor of shape (N, C, H, W)."""

    def __init__(self, images, labels, transform=None, split: str = "train"):
        super().__init__(labels, transform, split)
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(self.labels):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
        self.images = images

    def load(self, i: int):
        return self.images[i]
