"""Stanford Cars (Cars196) in its official layout, with the DML split (classes 1-98 train).

``root`` holds ``cars_annos.mat`` and ``car_ims/``. The .mat file has a struct array
``annotations`` with fields ``relative_im_path`` (e.g. ``car_ims/000001.jpg``, relative to
``root``), ``bbox_x1 bbox_y1 bbox_x2 bbox_y2``, ``class`` (1-196) and ``test``; the ``test``
flag is the classification split and is ignored. See ``datasets/README.md``.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.io

from retrieval.data.folder import dataset_root, split_dataset
from retrieval.data.registry import register_dataset

ANNOTATIONS = "cars_annos.mat"
IMAGE_FOLDER = "car_ims"
LAST_TRAIN_CLASS = 98
OFFICIAL_COUNTS = {"train": (8054, 98), "test": (8131, 98)}
"""(images, classes) of each official half; checked only with ``strict=True``."""


def _scalar(value):
    """Unwrap the 1x1 arrays MATLAB structs load as (squeezed or not) to a Python scalar."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected a single value, got an array of shape {value.shape}")
        value = value.reshape(-1)[0]
    return value.item() if isinstance(value, np.generic) else value


def read_annotations(path) -> tuple[list[str], list[int]]:
    """Relative image paths and class ids from ``cars_annos.mat``, in file order."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the MATLAB file: {exc}") from exc
    if "annotations" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: no 'annotations' variable (found {found})")
    annotations = np.atleast_1d(mat["annotations"]).ravel()
    fields = annotations.dtype.names or ()
    if "relative_im_path" not in fields or "class" not in fields:
        raise ValueError(f"{path}: 'annotations' needs the fields relative_im_path and class, has {fields}")
    paths, labels = [], []
    for number, record in enumerate(annotations, start=1):
        try:
            rel, class_id = _scalar(record["relative_im_path"]), _scalar(record["class"])
            if not isinstance(rel, str):
                raise ValueError(f"relative_im_path is not a string: {rel!r}")
            if isinstance(class_id, float) and class_id.is_integer():
                class_id = int(class_id)
            if isinstance(class_id, bool) or not isinstance(class_id, int):
                raise ValueError(f"class is not an integer: {class_id!r}")
        except ValueError as exc:
            raise ValueError(f"{path}, annotation {number}: {exc}") from None
        paths.append(rel)
        labels.append(class_id)
    return paths, labels


@register_dataset("cars196")
def cars196(root, split: str, transform=None, image_size: int = 224, val_fraction: float = 0.2,
            strict: bool = False):
    """Cars196 ``split`` (train/fit/val/test); labels are the official class ids 1-196.

    ``strict=True`` also checks the whole index against ``OFFICIAL_COUNTS``.
    """
    name = "cars196"
    base = dataset_root(root, name, None, [ANNOTATIONS, IMAGE_FOLDER])
    rels, labels = read_annotations(base / ANNOTATIONS)
    paths = [os.path.join(base, rel) for rel in rels]
    official_train = [c <= LAST_TRAIN_CLASS for c in labels]
    return split_dataset(name, paths, labels, official_train, split, transform, image_size,
                         val_fraction, strict, OFFICIAL_COUNTS)
