"""Dataset classes shared by every loader: items are dicts ``image``, ``label``, ``index``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2.functional import pil_to_tensor

from retrieval.data.fingerprint import sampled_indices, update


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root is missing files; the message lists what was expected where."""


class ImageReadError(OSError):
    """An image file exists in the index but cannot be decoded."""


class CorruptImageError(ValueError):
    """Image files that cannot be decoded, found by ``check_images`` before any training."""


MAX_NAMED = 5  # bad files named in a CorruptImageError message (then the count)
CHECK_DRAFT = 64  # check_images decodes JPEGs at a reduced DCT scale: the same data is parsed, faster


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

    def fingerprint(self) -> str:
        """A digest of the data (``retrieval.data.fingerprint``): the labels and a fixed sample of the loaded
        images (before any transform). Subclasses holding their images in memory hash all of them."""
        h = hashlib.sha256(type(self).__name__.encode())
        update(h, self.labels)
        for i in sampled_indices(len(self)):
            update(h, self.load(i))
        return h.hexdigest()

    def __getitem__(self, i: int) -> dict:
        image = self.load(i)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": int(self.labels[i]), "index": int(i)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, images={len(self)}, classes={self.num_classes})"


def to_rgb(img, background=(255, 255, 255)):
    """A PIL image of any mode as an 8-bit RGB image.

    Greyscale (``L``, ``1``), palette (``P``), ``CMYK``, ``YCbCr`` ... convert as PIL converts
    them; images with transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a
    transparency key) are composited over ``background`` (white), so that the colour hidden
    under transparent pixels does not matter; 16- and 32-bit greyscale (``I;16``, ``I``) is
    scaled to 8 bits from its 16-bit range, float greyscale (``F``) clipped to 0-255.
    """
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode.startswith("I;16"):  # 16-bit greyscale: 65535 -> 255
        img = Image.fromarray(np.rint(np.asarray(img, dtype=np.float64) / 257.0).astype(np.uint8))
    elif img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if img.mode != "F" and values.max(initial=0) > 255:  # 32-bit "I" holding 16-bit values
            values = values / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def open_rgb(path, draft: int | None = None, exif_transpose: bool = False):
    """Decode the image file ``path`` as 8-bit RGB (see ``to_rgb``). With ``draft`` N, a JPEG
    is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides >= N pixels,
    much faster for large photos that are resized to N anyway; other formats decode in full.
    With ``exif_transpose`` the EXIF orientation tag (phone photos) is applied, as image
    viewers do. Exceptions are PIL's."""
    with Image.open(path) as img:
        if draft and img.format == "JPEG":
            img.draft("RGB", (int(draft), int(draft)))
        img.load()
        if exif_transpose:
            img = ImageOps.exif_transpose(img)
        return to_rgb(img)


def check_images(paths, limit: int | None = None, seed: int = 0) -> int:
    """Decode image files before training; raise ``CorruptImageError`` if any fails.

    ``limit=None`` checks every file, an int N a fixed random sample of N of them (drawn
    with ``seed`` from the sorted paths, so the same files every time). Each file is opened, checked by PIL's
    ``verify`` (which also catches a PNG's bad checksums), then decoded as the datasets
    decode it (``open_rgb``; JPEGs at a reduced scale, which parses the same data).
    About a millisecond per small image. Returns the number of files checked. The
    one-line message names the first bad files, each with PIL's reason, and their count.
    """
    paths = sorted(Path(p) for p in paths)  # the sample does not depend on the order given
    total = len(paths)
    if limit is not None:
        if int(limit) < 0:
            raise ValueError(f"limit {limit!r}: expected None (every file) or a number of files >= 0")
        if int(limit) < len(paths):
            chosen = np.random.default_rng(seed).choice(len(paths), size=int(limit), replace=False)
            paths = [paths[i] for i in sorted(chosen)]
    bad = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.verify()
            open_rgb(path, draft=CHECK_DRAFT, exif_transpose=True)
        except Exception as exc:  # PIL raises several types (UnidentifiedImageError, OSError, SyntaxError...)
            reason = str(exc).replace(repr(str(path)), "").replace(str(path), "")
            reason = " ".join(reason.split()).rstrip(" :") or type(exc).__name__
            bad.append(f"{path} ({reason})")
    if bad:
        named = ", ".join(bad[:MAX_NAMED])
        more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
        of = f"a sample of {len(paths)} of {total}" if len(paths) < total else f"{total}"
        raise CorruptImageError(f"{len(bad)} of {of} image files cannot be decoded: {named}{more}; expected image "
                                f"files that PIL can read (PNG, JPEG, ...): replace or delete them")
    return len(paths)


JPEG_SUFFIXES = (".jpg", ".jpeg")


def pil_to_uint8(img) -> torch.Tensor:
    """An RGB PIL image as a uint8 (3, H, W) tensor (torchvision's ``pil_to_tensor``)."""
    return pil_to_tensor(img)


class ImageFileDataset(RetrievalDataset):
    """Images read from files with PIL, as 8-bit RGB (any mode: see ``to_rgb``).

    ``draft``: decode JPEGs at a reduced scale that keeps both sides >= ``draft`` pixels
    (see ``open_rgb``); None (the default) decodes every image in full. ``exif_transpose``:
    apply the EXIF orientation tag.

    A JPEG given to a torchvision v2 transform (the default photo transforms) is handed over
    as the decoded uint8 tensor rather than the PIL image (``tensor_jpeg``, True by default):
    the same pixels, but the transform then resizes with torch's antialiased kernel, about
    1.4x faster per image than PIL's resize, whose output it matches to within one grey
    level (``benchmarks.bench_data``). ``load(i)`` still returns the PIL image, and other
    formats and other transforms get PIL images as before.
    """

    tensor_jpeg = True

    def __init__(self, paths, labels, transform=None, split: str = "train", draft: int | None = None,
                 exif_transpose: bool = False):
        super().__init__(labels, transform, split)
        self.paths = [Path(p) for p in paths]
        self.draft, self.exif_transpose = draft, exif_transpose
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def load(self, i: int):
        path = self.paths[i]
        try:
            return open_rgb(path, self.draft, self.exif_transpose)
        except Exception as exc:  # PIL raises several types; name the file whatever it was
            raise ImageReadError(f"cannot read image {path}: {exc}") from exc

    def fingerprint(self) -> str:
        """The labels, the files' names (not their folder: a moved root is the same data) and a fixed sample
        of decoded images."""
        h = hashlib.sha256(super().fingerprint().encode())
        update(h, [p.name for p in self.paths])
        return h.hexdigest()

    def __getitem__(self, i: int) -> dict:
        image = self.load(i)
        if self.transform is not None:
            if self.tensor_jpeg and self.paths[i].suffix.lower() in JPEG_SUFFIXES and _is_v2(self.transform):
                image = pil_to_uint8(image)
            image = self.transform(image)
        return {"image": image, "label": int(self.labels[i]), "index": int(i)}


def _is_v2(transform) -> bool:
    """Whether ``transform`` is a torchvision v2 transform (they take tensors and PIL images alike)."""
    return isinstance(transform, Transform)


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

    def fingerprint(self) -> str:
        """The labels and every image."""
        h = hashlib.sha256(type(self).__name__.encode())
        update(h, self.labels)
        update(h, self.images)
        return h.hexdigest()
