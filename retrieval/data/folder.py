"""Generic image-folder dataset, plus the helpers shared by the file-based loaders.

Folder layout: ``root/<class_name>/<image files>`` (``.jpg .jpeg .png .bmp .gif .webp``,
any case, nested sub-folders allowed; hidden files are skipped). Classes are sorted by
name and labelled by their index in that order; the first ``ceil(n/2)`` classes are the
training half, the rest the test half. Images of any size and mode load as 8-bit RGB.
See ``folder`` for the splits and ``datasets/README.md`` ("Your own folder").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from retrieval.data.base import DatasetNotFoundError, ImageFileDataset, class_split_mask, require_files
from retrieval.data.registry import register_dataset
from retrieval.data.transforms import photo_transform

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
README_HINT = "See datasets/README.md for where to obtain {name} and the expected layout under --data-root."
MAX_LISTED = 10


# --------------------------------------------------------------------------- shared helpers

def dataset_root(root, name: str, folder: str | None, index_files: list[str]) -> Path:
    """Return the folder holding ``index_files``: ``root`` itself or ``root/folder``.

    Raises ``DatasetNotFoundError`` naming every missing file with its full expected path.
    """
    hint = README_HINT.format(name=name)
    if root is None:
        raise DatasetNotFoundError(f"{name}: no dataset root given (--data-root). {hint}")
    root = Path(root).expanduser()
    base = root
    if folder is not None and root.name != folder and not any((root / f).exists() for f in index_files):
        base = root / folder  # ``root`` is taken to be the parent of the dataset folder
    if not root.exists():
        hint = f"(the folder {root} does not exist)\n{hint}"
    elif folder is not None and base != root:
        hint = f"(or directly under {root} if that is the {folder} folder itself)\n{hint}"
    require_files(base, index_files, name, hint)
    return base


def read_table(path: Path, types: tuple, header: str | None = None) -> list[tuple[int, list]]:
    """Parse a whitespace-separated text file, one row per line, ``len(types)`` fields each.

    ``types`` holds a converter per column (``int`` or ``str``). Blank lines are skipped.
    Returns ``(line_number, values)`` pairs. Raises ``ValueError`` naming the file and line
    for a wrong number of fields, a non-integer id or a header that differs from ``header``.
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if lineno == 1 and header is not None:
                if fields != header.split():
                    raise ValueError(f"{path}, line 1: expected the header {header!r}, got {line.strip()!r}")
                continue
            if not fields:
                continue
            if len(fields) != len(types):
                raise ValueError(f"{path}, line {lineno}: expected {len(types)} fields, "
                                 f"got {len(fields)}: {line.strip()!r}")
            try:
                rows.append((lineno, [t(f) for t, f in zip(types, fields)]))
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: expected integer ids, "
                                 f"got {line.strip()!r}") from None
    return rows


def check_images_exist(paths, name: str) -> None:
    """Raise ``DatasetNotFoundError`` (a partial dataset) if any listed image is missing on disk."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        listed = "\n".join(f"  {p}" for p in missing[:MAX_LISTED])
        more = f"\n  ... and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        raise DatasetNotFoundError(
            f"{name}: partial dataset: {len(missing)} of {len(paths)} images listed in the index are "
            f"missing on disk (interrupted download or extraction?):\n{listed}{more}\n"
            + README_HINT.format(name=name))


def verify_counts(name: str, labels, official_train, expected: dict) -> None:
    """Raise ``ValueError`` unless each official half has the expected image and class counts.

    ``expected`` maps ``"train"``/``"test"`` to ``(images, classes)``, e.g. a loader module's
    ``OFFICIAL_COUNTS``. Loaders call it with ``strict=True``.
    """
    labels = np.asarray(labels)
    official_train = np.asarray(official_train, dtype=bool)
    problems = []
    for half, mask in (("train", official_train), ("test", ~official_train)):
        got = (int(mask.sum()), len(np.unique(labels[mask])))
        if got != tuple(expected[half]):
            problems.append(f"{half}: {got[0]} images in {got[1]} classes, expected "
                            f"{expected[half][0]} in {expected[half][1]}")
    if problems:
        raise ValueError(f"{name}: the index does not match the official counts (modified or partial "
                         f"copy?): " + "; ".join(problems))


def split_dataset(name: str, paths, labels, official_train, split: str, transform, image_size: int,
                  val_fraction: float, strict: bool = False,
                  expected: dict | None = None, **image_options) -> ImageFileDataset:
    """Select ``split`` from a whole index, check its images exist and wrap it in a dataset
    (``image_options``: keywords of ``ImageFileDataset``, e.g. ``draft``)."""
    labels = np.asarray(labels, dtype=np.int64)
    official_train = np.asarray(official_train, dtype=bool)
    if strict:
        verify_counts(name, labels, official_train, expected)
    mask = class_split_mask(labels, official_train, split, val_fraction)
    chosen = [p for p, keep in zip(paths, mask) if keep]
    check_images_exist(chosen, name)
    if transform is None:
        transform = photo_transform(split, image_size)
    dataset = ImageFileDataset(chosen, labels[mask], transform, split, **image_options)
    dataset.name = name
    return dataset


# --------------------------------------------------------------------------- folder loader

def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


@register_dataset("folder")
def folder(root, split: str, transform=None, image_size: int = 224, val_fraction: float = 0.2,
           exif_transpose: bool = True):
    """Your own images, one folder per class: ``root/<class_name>/<image files>``.

    Files: ``.jpg .jpeg .png .bmp .gif .webp`` (any case, sub-folders allowed), of any
    size and mode: RGB, greyscale, palette, CMYK and 16-bit load as RGB, transparent
    pixels (RGBA, LA, palette transparency) are composited over white; with
    ``exif_transpose`` a photo's EXIF orientation is applied first, as viewers show it.
    With the default ``transform`` images are resized as the DML protocol does
    (``photo_transform``: squashed to ``round(image_size * 8 / 7)`` square, then a random
    crop of ``image_size`` and a flip for training, the centre crop for evaluation), and a
    JPEG is decoded at a reduced DCT scale that still covers that size (``draft``), much
    faster for large photos. Class folders without any image (and hidden folders) are ignored.

    Splits (class-disjoint, by sorted folder name): ``train`` the first ``ceil(n/2)``
    classes, ``test`` the rest; ``val`` the last ``max(2, round(val_fraction * t))`` of the
    ``t`` training classes (never all of them) and ``fit`` the other training classes. So a
    small folder keeps 2 validation classes (8 classes: fit 2, val 2, test 4; 10: 3, 2, 5;
    20: 8, 2, 10), and a retrieval split never has a single class unless the folder has
    fewer than 4 training classes. Training needs 2 fit classes, so at least 7 class
    folders (the runner's preflight, ``benchmarks.runner.sampler_fit``, stops with an
    error below that, and adapts batch size and sampler to what the splits hold). With 2
    validation classes, choosing an epoch on validation is mostly noise: the folder recipe
    (``benchmarks/configs/folder.yaml``) keeps the last epoch and reports validation only.
    The datasets' ``paths`` are the image files, for ``check_images`` before training.
    """
    name = "folder"
    if root is None or not Path(root).expanduser().is_dir():
        raise DatasetNotFoundError(f"{name}: the folder {root} does not exist; expected "
                                   f"<root>/<class_name>/<images>. " + README_HINT.format(name=name))
    root = Path(root).expanduser()
    classes = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in d.rglob("*") if _is_image(p))
        if images:
            classes.append(images)
    if len(classes) < 2:
        raise ValueError(f"{name}: found {len(classes)} class folder(s) with images under {root}; need at "
                         f"least 2, laid out as <root>/<class_name>/<image files> "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    n_train = math.ceil(len(classes) / 2)
    paths = [p for images in classes for p in images]
    labels = [c for c, images in enumerate(classes) for _ in images]
    official_train = [c < n_train for c in labels]
    draft = round(image_size * 8 / 7) if transform is None else None  # the default transform's first resize
    return split_dataset(name, paths, labels, official_train, split, transform, image_size, val_fraction,
                         draft=draft, exif_transpose=exif_transpose)
