"""CUB-200-2011 in its official layout, with the DML split (classes 1-100 train, 101-200 test).

``root`` is the ``CUB_200_2011`` folder or its parent. Read: ``images.txt``
(``<image_id> <relative path>``), ``image_class_labels.txt`` (``<image_id> <class_id>``),
``classes.txt`` (``<class_id> <name>``); images under ``images/``. ``train_test_split.txt``
is the classification split and is ignored. See ``datasets/README.md``.
"""

from __future__ import annotations

import os

from retrieval.data.folder import dataset_root, read_table, split_dataset
from retrieval.data.registry import register_dataset

FOLDER = "CUB_200_2011"
INDEX_FILES = ["images.txt", "image_class_labels.txt", "classes.txt"]
LAST_TRAIN_CLASS = 100
OFFICIAL_COUNTS = {"train": (5864, 100), "test": (5924, 100)}
"""(images, classes) of each official half; checked only with ``strict=True``."""


@register_dataset("cub200")
def cub200(root, split: str, transform=None, image_size: int = 224, val_fraction: float = 0.2,
           strict: bool = False):
    """CUB-200-2011 ``split`` (train/fit/val/test); labels are the official class ids 1-200.

    ``strict=True`` also checks the whole index against ``OFFICIAL_COUNTS``.
    """
    name = "cub200"
    base = dataset_root(root, name, FOLDER, INDEX_FILES)
    images_txt, labels_txt, classes_txt = (base / f for f in INDEX_FILES)

    class_ids = {}
    for lineno, (class_id, _) in read_table(classes_txt, (int, str)):
        class_ids[class_id] = lineno
    images = {}  # image id -> (line, relative path), in file order
    for lineno, (image_id, rel) in read_table(images_txt, (int, str)):
        if image_id in images:
            raise ValueError(f"{images_txt}, line {lineno}: image id {image_id} already listed "
                             f"on line {images[image_id][0]}")
        images[image_id] = (lineno, rel)
    label_of = {}
    for lineno, (image_id, class_id) in read_table(labels_txt, (int, int)):
        if image_id not in images:
            raise ValueError(f"{labels_txt}, line {lineno}: image id {image_id} is not in {images_txt}")
        if class_id not in class_ids:
            raise ValueError(f"{labels_txt}, line {lineno}: class id {class_id} is not in {classes_txt}")
        label_of[image_id] = class_id
    for image_id, (lineno, _) in images.items():
        if image_id not in label_of:
            raise ValueError(f"{images_txt}, line {lineno}: image id {image_id} has no class in {labels_txt}")

    paths = [os.path.join(base, "images", rel) for _, rel in images.values()]  # str: fast for 100k
    labels = [label_of[image_id] for image_id in images]
    official_train = [c <= LAST_TRAIN_CLASS for c in labels]
    return split_dataset(name, paths, labels, official_train, split, transform, image_size,
                         val_fraction, strict, OFFICIAL_COUNTS)
