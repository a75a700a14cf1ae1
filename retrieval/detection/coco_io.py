"""COCO instance-annotation json: checked reading into a pycocotools ``COCO`` and atomic writing.

The checks name the file and what is wrong (bad json, a missing key, a box that is not
``[x, y, width, height]`` with width, height > 0, an annotation of an unknown image or
category), so a malformed file fails when it is loaded rather than deep inside COCOeval.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pycocotools.coco import COCO

from retrieval.utils.atomic import atomic_write_bytes

IMAGE_KEYS = ("id", "file_name", "width", "height")
ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox")
CATEGORY_KEYS = ("id", "name")


class MalformedAnnotationError(ValueError):
    """A COCO json file does not hold what the format requires; the message names file and problem."""


def _fail(path, problem: str):
    raise MalformedAnnotationError(f"{path}: {problem} (expected COCO instances json: "
                                   f"'images' [{{id, file_name, width, height}}], 'annotations' "
                                   f"[{{id, image_id, category_id, bbox: [x, y, w, h]}}], "
                                   f"'categories' [{{id, name}}])")


def _check_records(path, data: dict, section: str, keys: tuple) -> None:
    records = data.get(section)
    if not isinstance(records, list):
        _fail(path, f"'{section}' is missing or not a list")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            _fail(path, f"{section}[{i}] is not an object")
        missing = [k for k in keys if k not in record]
        if missing:
            _fail(path, f"{section}[{i}] lacks {missing}")
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        _fail(path, f"'{section}' has duplicate ids")


def validate_coco(path, data) -> None:
    """Raise ``MalformedAnnotationError`` unless ``data`` is a well-formed COCO instances dict."""
    if not isinstance(data, dict):
        _fail(path, f"the top level is a {type(data).__name__}, not an object")
    for section, keys in (("images", IMAGE_KEYS), ("categories", CATEGORY_KEYS), ("annotations", ANNOTATION_KEYS)):
        _check_records(path, data, section, keys)
    images = {r["id"] for r in data["images"]}
    categories = {r["id"] for r in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        box = ann["bbox"]
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            _fail(path, f"annotations[{i}].bbox is {box!r}, not 4 numbers [x, y, width, height]")
        if box[2] <= 0 or box[3] <= 0:
            _fail(path, f"annotations[{i}].bbox {box} has a non-positive width or height")
        if ann["image_id"] not in images:
            _fail(path, f"annotations[{i}] refers to image_id {ann['image_id']!r}, which is not in 'images'")
        if ann["category_id"] not in categories:
            _fail(path, f"annotations[{i}] refers to category_id {ann['category_id']!r}, not in 'categories'")


def load_coco(path) -> COCO:
    """A pycocotools ``COCO`` index of the checked json file ``path`` (``area`` and ``iscrowd``
    default to ``w*h`` and 0 where absent, as COCOeval needs both)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedAnnotationError(f"{path}: not valid json: {exc}") from exc
    validate_coco(path, data)
    for ann in data["annotations"]:
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..."
        coco.createIndex()
    return coco


def write_coco_json(path, images: list, annotations: list, categories: list) -> None:
    """Write a COCO instances file atomically (temp file in the same folder + rename)."""
    data = {"images": images, "annotations": annotations, "categories": categories}
    validate_coco(path, data)
    atomic_write_bytes(path, json.dumps(data).encode())
