"""Fixtures writing miniature dataset trees in the exact official on-disk formats.

Each fixture returns a ``SimpleNamespace`` with ``root`` (the dataset folder), ``parent``
(its parent) and ``counts`` (class id -> number of images). Class ids are few but sit on
both sides of the official split boundaries.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

CUB_COUNTS = {1: 2, 2: 2, 100: 1, 101: 2, 150: 1, 200: 2}
CARS_COUNTS = {1: 2, 98: 1, 99: 2, 196: 1}
SOP_TRAIN_COUNTS = {1: 2, 2: 1, 3: 2}
SOP_TEST_COUNTS = {11319: 2, 22634: 1}
FOLDER_FILES = {  # class folder -> image files (mixed extensions and case)
    "apple": ["a1.jpg", "a2.PNG"],
    "banana": ["b1.jpeg"],
    "cherry": ["sub/c1.gif", "c2.webp"],
    "date": ["d1.bmp", "d2.JPG"],
    "elder": ["e1.png"],
}


def write_image(path, seed: int = 0) -> None:
    """A tiny 8x8 RGB image; the format follows the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    Image.fromarray(pixels).save(path, format=fmt)


def write_lines(path, lines) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


@pytest.fixture
def cub_tree(tmp_path):
    """``CUB_200_2011/`` with images.txt, image_class_labels.txt, classes.txt, images/."""
    root = tmp_path / "CUB_200_2011"
    root.mkdir()
    images, labels, split = [], [], []
    image_id = 0
    for class_id, n in CUB_COUNTS.items():
        folder = f"{class_id:03d}.Bird_{class_id}"
        for k in range(n):
            image_id += 1
            rel = f"{folder}/Bird_{class_id}_{k:04d}_{image_id}.jpg"
            write_image(root / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            split.append(f"{image_id} 1")  # classification split: must be ignored
    write_lines(root / "images.txt", images)
    write_lines(root / "image_class_labels.txt", labels)
    write_lines(root / "classes.txt", [f"{c} {c:03d}.Bird_{c}" for c in range(1, 201)])
    write_lines(root / "train_test_split.txt", split)
    return SimpleNamespace(root=root, parent=tmp_path, counts=CUB_COUNTS)


def write_cars_annos(path, records) -> None:
    """``records``: (relative_im_path, class, test) triples -> official-style struct array."""
    from scipy.io import savemat

    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, (rel, class_id, test) in enumerate(records):
        annotations[0, i] = (rel, np.uint16(1), np.uint16(1), np.uint16(7), np.uint16(7),
                             class_id if isinstance(class_id, str) else np.uint8(class_id), np.uint8(test))
    class_names = np.array([f"Make Model {c}" for c in range(1, 197)], dtype=object)
    savemat(path, {"annotations": annotations, "class_names": class_names})


@pytest.fixture
def cars_tree(tmp_path):
    """``cars196/`` with cars_annos.mat and car_ims/; ``test`` flags deliberately mixed."""
    root = tmp_path / "cars196"
    records = []
    for class_id, n in CARS_COUNTS.items():
        for _ in range(n):
            rel = f"car_ims/{len(records) + 1:06d}.jpg"
            write_image(root / rel, len(records))
            records.append((rel, class_id, len(records) % 2))
    write_cars_annos(root / "cars_annos.mat", records)
    return SimpleNamespace(root=root, parent=tmp_path, counts=CARS_COUNTS, records=records)


@pytest.fixture
def sop_tree(tmp_path):
    """``Stanford_Online_Products/`` with Ebay_train.txt, Ebay_test.txt (header lines) and images."""
    root = tmp_path / "Stanford_Online_Products"
    image_id = 0
    for filename, counts in (("Ebay_train.txt", SOP_TRAIN_COUNTS), ("Ebay_test.txt", SOP_TEST_COUNTS)):
        lines = ["image_id class_id super_class_id path"]
        for class_id, n in counts.items():
            for k in range(n):
                image_id += 1
                rel = f"bicycle_final/{1000 + class_id}_{k}.JPG"
                write_image(root / rel, image_id)
                lines.append(f"{image_id} {class_id} 1 {rel}")
        write_lines(root / filename, lines)
    return SimpleNamespace(root=root, parent=tmp_path, counts={**SOP_TRAIN_COUNTS, **SOP_TEST_COUNTS})


@pytest.fixture
def folder_tree(tmp_path):
    """``root/<class>/<images>`` plus things to ignore: non-images, hidden files, empty folders."""
    root = tmp_path / "my_images"
    for seed, (cls, files) in enumerate(FOLDER_FILES.items()):
        for name in files:
            write_image(root / cls / name, seed)
    (root / "apple" / "notes.txt").write_text("not an image")
    (root / "banana" / "._b1.jpeg").write_bytes(b"macOS resource fork")
    write_image(root / ".cache" / "x.jpg")
    (root / "zz_empty").mkdir()
    (root / "README.txt").write_text("stray file")
    return SimpleNamespace(root=root, parent=tmp_path, files=FOLDER_FILES)
