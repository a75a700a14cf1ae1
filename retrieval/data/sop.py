"""Stanford Online Products in its official layout and split.

``root`` is the ``Stanford_Online_Products`` folder or its parent. ``Ebay_train.txt`` and
``Ebay_test.txt`` start with the header ``image_id class_id super_class_id path``; paths are
relative to that folder. Train = ``Ebay_train.txt``, test = ``Ebay_test.txt`` (disjoint
classes). See ``datasets/README.md``.
"""

from __future__ import annotations

import os

from retrieval.data.folder import dataset_root, read_table, split_dataset
from retrieval.data.registry import register_dataset

FOLDER = "Stanford_Online_Products"
INDEX_FILES = ["Ebay_train.txt", "Ebay_test.txt"]
HEADER = "image_id class_id super_class_id path"
OFFICIAL_COUNTS = {"train": (59551, 11318), "test": (60502, 11316)}
"""(images, classes) of each official half; checked only with ``strict=True``."""


@register_dataset("sop")
def sop(root, split: str, transform=None, image_size: int = 224, val_fraction: float = 0.2,
        strict: bool = False):
    """SOP ``split`` (train/fit/val/test); labels are the official ``class_id`` values.

    ``strict=True`` also checks both files against ``OFFICIAL_COUNTS``.
    """
    name = "sop"
    base = dataset_root(root, name, FOLDER, INDEX_FILES)
    paths, labels, official_train = [], [], []
    first_seen = {}  # class id -> (file, line), to reject a class listed in both halves
    for filename, is_train in zip(INDEX_FILES, (True, False)):
        path = base / filename
        for lineno, (_, class_id, _, rel) in read_table(path, (int, int, int, str), header=HEADER):
            seen = first_seen.setdefault(class_id, (path, lineno, is_train))
            if seen[2] != is_train:
                raise ValueError(f"{path}, line {lineno}: class id {class_id} is also in the other half "
                                 f"({seen[0]}, line {seen[1]}); the halves must be class-disjoint")
            paths.append(os.path.join(base, rel))  # str: much faster than Path for 100k
            labels.append(class_id)
            official_train.append(is_train)
    return split_dataset(name, paths, labels, official_train, split, transform, image_size,
                         val_fraction, strict, OFFICIAL_COUNTS)
