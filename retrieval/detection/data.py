"""Detection datasets by name: ``coco`` (any COCO-json tree under ``--data-root``) and the
embedded ``mnist-scenes`` (generated into the cache folder, then read by the same loader).

Layout read for ``coco`` (templates overridable in the config's ``dataset.options``)::

    <root>/annotations/instances_<split>.json     ann_file: "annotations/instances_{split}.json"
    <root>/images/<file_name of each image>       image_dir: "images"

``split_names`` maps the suite's splits (train, val, test) to the names in those paths,
e.g. ``{train: train2017, val: minival, test: val2017}``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from retrieval.data.base import DatasetNotFoundError
from retrieval.detection.coco_io import load_coco
from retrieval.detection.dataset import CocoDetectionDataset
from retrieval.detection.scenes import write_scenes
from retrieval.utils.cache_files import load_checked, say

SPLITS = ("train", "val", "test")
GENERATED = ("mnist-scenes",)
"""The detection sets generated from their ``seed`` option (another seed, another draw of the scenes)."""
SCENE_DEFAULTS = {"seed": 0, "size": 96, "max_objects": 4, "min_height": 16, "max_height": 36,
                  "train_images": 600, "val_images": 100, "test_images": 200}


def coco_dataset(root, split: str, ann_file: str = "annotations/instances_{split}.json", image_dir: str = "images",
                 split_names: dict | None = None, name: str = "coco") -> CocoDetectionDataset:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if root is None:
        raise ValueError(f"{name}: pass the dataset folder with --data-root (layout: {ann_file}, {image_dir}/)")
    root = Path(root)
    part = (split_names or {}).get(split, split)
    ann_path = root / ann_file.format(split=part)
    if not ann_path.is_file():
        raise DatasetNotFoundError(f"{name} {split}: annotation file {ann_path} not found (expected the layout "
                                   f"<root>/{ann_file.format(split=part)} with images under <root>/"
                                   f"{image_dir.format(split=part)}/; see datasets/README.md)")
    return CocoDetectionDataset(ann_path, root / image_dir.format(split=part), name=name, split=split)


def scenes_root(cache_dir, options: dict) -> Path:
    """The cache folder of the scenes generated with ``options`` (named by their hash)."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / "detection" / f"mnist-scenes-{digest}"


def _verify_png(path) -> None:
    with Image.open(path) as image:
        image.verify()  # every chunk against the CRC-32 written with it; a cut file fails too


def scenes_intact(root, ann_path) -> bool:
    """Whether a generated split is whole: its json parses and is valid COCO, and every image it lists is
    there and passes its PNG chunk CRCs (recorded when it was written). A damaged file is moved aside with a
    line saying so (``retrieval.utils.cache_files``); the caller then generates the split again."""
    coco = load_checked(ann_path, load_coco, then="generating its split again")
    if coco is None:
        return False
    whole = True
    for image in coco.dataset["images"]:
        path = Path(root) / "images" / image["file_name"]
        if not path.is_file():
            say(f"cache: {path} is missing; generating its split again")
            whole = False
        elif load_checked(path, _verify_png, then="generating its split again") is None:
            whole = False
    return whole


def mnist_scenes(cache_dir, split: str, **options) -> CocoDetectionDataset:
    """The embedded scenes (see ``retrieval.detection.scenes``), generated on first use, and again when a
    file of the split is damaged or missing (``scenes_intact``)."""
    unknown = set(options) - set(SCENE_DEFAULTS)
    if unknown:
        raise ValueError(f"mnist-scenes: unknown option(s) {sorted(unknown)}; expected some of {sorted(SCENE_DEFAULTS)}")
    opts = {**SCENE_DEFAULTS, **options}
    root = scenes_root(cache_dir, opts)
    ann_path = root / "annotations" / f"instances_{split}.json"
    if not ann_path.is_file() or not scenes_intact(root, ann_path):
        scene = {k: opts[k] for k in ("seed", "size", "max_objects", "min_height", "max_height")}
        write_scenes(root, split, opts[f"{split}_images"], **scene)
    return coco_dataset(root, split, name="mnist-scenes")


def build_detection_dataset(name: str, root, split: str, cache_dir="cache", **options) -> CocoDetectionDataset:
    if name == "mnist-scenes":
        return mnist_scenes(cache_dir, split, **options)
    if name == "coco":
        return coco_dataset(root, split, **options)
    raise ValueError(f"unknown detection dataset {name!r}; expected 'mnist-scenes' (embedded) or 'coco' "
                     f"(COCO json under --data-root)")
