"""Generated stand-ins for the recipes' datasets, in the exact official on-disk formats, and
random stand-ins for torchvision's ImageNet weights: what a full-scale recipe needs to run
end to end offline, at a few images per class.

    python -m benchmarks.make_recipe_data --out DIR [--datasets cub200,cars196,sop,cifar100,coco]
        [--classes N] [--per-class N] [--seed S] [--torch-home DIR]

Each tree is written under ``DIR`` in the layout its loader reads (``datasets/README.md``):

- ``CUB_200_2011/``: ``images.txt``, ``image_class_labels.txt``, ``classes.txt`` (all 200
  classes), ``train_test_split.txt``, ``bounding_boxes.txt`` and ``images/<class>/*.jpg``,
  JPEGs of about 500x375 (CUB's photos are at most 500 px wide);
- ``cars196/``: ``cars_annos.mat`` (struct array ``annotations`` with relative_im_path,
  bbox_x1..bbox_y2, class, test; ``class_names``) and ``car_ims/000001.jpg ...``, JPEGs
  300-800 px wide;
- ``Stanford_Online_Products/``: ``Ebay_train.txt``, ``Ebay_test.txt`` (and ``Ebay_info.txt``)
  with their header, images ``<category>_final/<product>_<k>.JPG`` of 360-640 px;
- ``cifar-100-python/``: the pickles ``train``, ``test`` and ``meta`` as the official python
  version holds them (``data`` N x 3072 uint8, ``fine_labels``, ``coarse_labels``, ...);
- ``coco/``: ``annotations/instances_{train,val}2017.json`` (COCO instances json: images,
  boxes, categories with COCO's own ids) and ``train2017/``, ``val2017/`` with JPEGs of about
  640x480 holding a few boxes each (the layout ``benchmarks/configs/detection_coco.yaml`` reads).

For the retrieval sets ``classes`` is the number of classes on *each* side of the official
class-disjoint boundary (CUB 1-100 / 101-200, Cars 1-98 / 99-196, SOP ``Ebay_train`` /
``Ebay_test`` ids 1-11318 / 11319-22634), spread over each half so that the classes next to
the boundary are always there; ``per_class`` is the number of images of each class. For
CIFAR-100 ``classes`` fine classes (all 100 by default) each have ``per_class`` training and
``test_per_class`` test images; ``meta`` always names the 100 classes. For COCO ``classes``
categories (of COCO's 80, ids spread from 1 to 90) each lead ``per_class`` images of each
split. Images are smooth random colour fields with one or more shapes (a class or category
colour), encoded as JPEG; everything is deterministic by ``seed``. A folder written here holds
``GENERATED.txt`` and is replaced when written again; an existing folder without it is never
touched.

``write_random_weights(torch_home, archs, weights)`` writes randomly initialised torchvision
state dicts under the file names torchvision caches those weights as
(``<torch_home>/hub/checkpoints/<basename of the weights' url>``), so a recipe with
``pretrained: true`` runs offline with ``TORCH_HOME=<torch_home>``. They are not ImageNet
weights: numbers from them mean nothing.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import zlib
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw
from scipy.io import savemat
from torchvision.models import get_model

from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from retrieval.data import build_dataset
from retrieval.detection.data import build_detection_dataset
from retrieval.models.torchvision_backbones import has_torchvision_weights, resolve_weights
from retrieval.utils.atomic import atomic_write_via

DATASETS = ("cub200", "cars196", "sop", "cifar100", "coco")
MARKER = "GENERATED.txt"

# (width range, width/height range, share of portrait images): the real datasets' typical sizes.
IMAGE_SIZES = {
    "cub200": ((480, 500), (1.30, 1.40), 0.1),    # CUB-200-2011: at most 500 px wide, most 500 x 333-375
    "cars196": ((300, 800), (1.30, 1.80), 0.0),   # Stanford Cars: varied, landscape
    "sop": ((360, 640), (0.90, 1.40), 0.0),       # Online Products: eBay listing photos
    "coco": ((640, 640), (1.33, 1.50), 0.2),      # COCO 2017: 640 x 427-480, some 480 x 640
}

CUB_LAST_TRAIN, CUB_CLASSES = 100, 200
CARS_LAST_TRAIN, CARS_CLASSES = 98, 196
SOP_LAST_TRAIN, SOP_CLASSES = 11318, 22634
SOP_CATEGORIES = ("bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle", "lamp", "mug", "sofa",
                  "stapler", "table", "toaster")  # super_class_id 1-12, in this order

CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
CIFAR100_COARSE = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
    "vehicles_1 vehicles_2").split()

COCO_CATEGORIES = (  # (id, name, supercategory): COCO 2017's 80 categories, ids 1-90 with gaps
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"),
    (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"), (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)


# ----------------------------------------------------------------------------- helpers

def spread(lo: int, hi: int, n: int) -> list[int]:
    """``n`` distinct integers from ``lo`` to ``hi``, evenly spread, both ends included (n >= 2)."""
    if not 1 <= n <= hi - lo + 1:
        raise ValueError(f"expected 1 to {hi - lo + 1} classes in {lo}-{hi}, got {n}")
    if n == 1:
        return [hi]
    return [int(v) for v in np.round(np.linspace(lo, hi, n))]


def _check_counts(classes: int, per_class: int, what: str = "per_class", least: int = 1) -> None:
    if int(classes) < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    if int(per_class) < least:
        raise ValueError(f"{what} must be at least {least}, got {per_class}")


def _fresh(folder: Path) -> Path:
    """Make ``folder`` empty: remove it if this module wrote it, refuse if it holds anything else."""
    if folder.exists():
        if (folder / MARKER).is_file():
            shutil.rmtree(folder)
        elif folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} exists and was not written by benchmarks.make_recipe_data (no "
                                  f"{MARKER}); expected a new folder, so nothing is written over it")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(
        "Generated by python -m benchmarks.make_recipe_data: random images in the official on-disk format, "
        "NOT the real dataset. Numbers measured on it mean nothing.\n")
    return folder


def _size(rng, dataset: str, sizes=None) -> tuple[int, int]:
    """A (width, height) drawn from the dataset's typical sizes (``IMAGE_SIZES``) or ``sizes``."""
    (w_lo, w_hi), (a_lo, a_hi), portrait = sizes or IMAGE_SIZES[dataset]
    width = int(rng.integers(w_lo, w_hi + 1))
    height = max(1, int(round(width / rng.uniform(a_lo, a_hi))))
    return (height, width) if rng.random() < portrait else (width, height)


def _colour(rng, base=None, spread_: float = 40.0) -> np.ndarray:
    base = rng.uniform(0, 255, 3) if base is None else np.asarray(base, dtype=float)
    return np.clip(base + rng.normal(0, spread_, 3), 0, 255)


def smooth_image(rng, size: tuple[int, int], tint=None) -> Image.Image:
    """A smooth random colour field of ``size`` (width, height), tinted towards ``tint``."""
    cells = rng.uniform(0, 255, (3, 4, 3))
    if tint is not None:
        cells = 0.5 * cells + 0.5 * np.asarray(tint, dtype=float)
    return Image.fromarray(cells.astype(np.uint8), "RGB").resize(size, Image.BICUBIC)


def _shape(rng, draw: ImageDraw.ImageDraw, box, colour) -> None:
    fill = tuple(int(c) for c in colour)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)


def object_image(rng, size, tint, colour, scale=(0.3, 0.8)):
    """A colour field with one shape of ``colour``; returns (image, (x, y, w, h) of the shape)."""
    image = smooth_image(rng, size, tint)
    width, height = size
    w = max(2, int(width * rng.uniform(*scale)))
    h = max(2, int(height * rng.uniform(*scale)))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    _shape(rng, ImageDraw.Draw(image), (x, y, x + w - 1, y + h - 1), _colour(rng, colour, 20))
    return image, (x, y, w, h)


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)


def _lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def _class_palette(seed: int, class_id: int):
    """(background tint, object colour) of a class: the same for every image of it."""
    rng = np.random.default_rng([seed, class_id, 7])
    return rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)


def _retrieval_images(rng, seed, dataset, class_id, n, sizes):
    tint, colour = _class_palette(seed, class_id)
    for _ in range(n):
        yield object_image(rng, _size(rng, dataset, sizes), tint, colour)


# ----------------------------------------------------------------------------- retrieval sets

def write_cub(root, classes: int = 4, per_class: int = 5, seed: int = 0, sizes=None) -> Path:
    """``root/CUB_200_2011`` in CUB-200-2011's layout: ``classes`` classes in each official half
    (ids spread over 1-100 and 101-200, 1, 100, 101 and 200 included), ``per_class`` JPEGs each of
    about 500x375. ``sizes``: ((min width, max width), (min, max width/height), portrait share)
    instead of ``IMAGE_SIZES['cub200']``. Returns the folder to pass as ``--data-root``."""
    _check_counts(classes, per_class)
    ids = spread(1, CUB_LAST_TRAIN, classes) + spread(CUB_LAST_TRAIN + 1, CUB_CLASSES, classes)
    base = _fresh(Path(root) / "CUB_200_2011")
    rng = np.random.default_rng([seed, 200])
    name = {c: f"{c:03d}.Bird_species_{c:03d}" for c in range(1, CUB_CLASSES + 1)}
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    for class_id in ids:
        for k, (image, (x, y, w, h)) in enumerate(_retrieval_images(rng, seed, "cub200", class_id, per_class, sizes)):
            image_id += 1
            rel = f"{name[class_id]}/Bird_Species_{class_id:03d}_{k + 1:04d}_{image_id}.jpg"
            _save_jpeg(image, base / "images" / rel)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            split.append(f"{image_id} {int(rng.random() < 0.5)}")  # the classification split: not read
            boxes.append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
    _lines(base / "images.txt", images)
    _lines(base / "image_class_labels.txt", labels)
    _lines(base / "classes.txt", [f"{c} {name[c]}" for c in range(1, CUB_CLASSES + 1)])
    _lines(base / "train_test_split.txt", split)
    _lines(base / "bounding_boxes.txt", boxes)
    return base


def fixed_mat_header(path: Path) -> None:
    """Replace the creation time that scipy writes into a MAT file's 116-byte text header with a fixed text,
    so that the same seed gives the same bytes (MATLAB and scipy ignore the header's text)."""
    data = bytearray(path.read_bytes())
    data[:116] = b"MATLAB 5.0 MAT-file, written by benchmarks.make_recipe_data".ljust(116)
    path.write_bytes(bytes(data))


def write_cars(root, classes: int = 4, per_class: int = 5, seed: int = 0, sizes=None) -> Path:
    """``root/cars196`` in Stanford Cars' whole-dataset layout (``cars_annos.mat`` + ``car_ims/``):
    ``classes`` classes in each official half (ids spread over 1-98 and 99-196), ``per_class``
    JPEGs each, 300-800 px wide; the ``test`` flags are mixed (the loader ignores them) and each
    box is the drawn car. Returns the folder to pass as ``--data-root``."""
    _check_counts(classes, per_class)
    ids = spread(1, CARS_LAST_TRAIN, classes) + spread(CARS_LAST_TRAIN + 1, CARS_CLASSES, classes)
    base = _fresh(Path(root) / "cars196")
    rng = np.random.default_rng([seed, 196])
    records = []
    for class_id in ids:
        for image, (x, y, w, h) in _retrieval_images(rng, seed, "cars196", class_id, per_class, sizes):
            rel = f"car_ims/{len(records) + 1:06d}.jpg"
            _save_jpeg(image, base / rel)
            records.append((rel, x + 1, y + 1, x + w, y + h, class_id, int(rng.random() < 0.5)))  # MATLAB: 1-based
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, (rel, x1, y1, x2, y2, class_id, test) in enumerate(records):
        annotations[0, i] = (rel, np.uint16(x1), np.uint16(y1), np.uint16(x2), np.uint16(y2), np.uint8(class_id),
                             np.uint8(test))
    class_names = np.empty((1, CARS_CLASSES), dtype=object)
    class_names[0, :] = [f"Make{c:03d} Model{c:03d} {2000 + c % 13}" for c in range(1, CARS_CLASSES + 1)]
    savemat(base / "cars_annos.mat", {"annotations": annotations, "class_names": class_names})
    fixed_mat_header(base / "cars_annos.mat")
    return base


def write_sop(root, classes: int = 4, per_class: int = 5, seed: int = 0, sizes=None) -> Path:
    """``root/Stanford_Online_Products`` in SOP's layout: ``classes`` products in ``Ebay_train.txt``
    (class ids spread over 1-11318) and in ``Ebay_test.txt`` (11319-22634), ``per_class`` JPEGs each
    under ``<category>_final/`` (super classes 1-12 follow the class ids, as in the official
    files). Returns the folder to pass as ``--data-root``."""
    _check_counts(classes, per_class)
    halves = [("Ebay_train.txt", spread(1, SOP_LAST_TRAIN, classes), 1, SOP_LAST_TRAIN),
              ("Ebay_test.txt", spread(SOP_LAST_TRAIN + 1, SOP_CLASSES, classes), SOP_LAST_TRAIN + 1, SOP_CLASSES)]
    base = _fresh(Path(root) / "Stanford_Online_Products")
    rng = np.random.default_rng([seed, 12])
    header = "image_id class_id super_class_id path"
    products = []  # eBay listing numbers, one per product
    while len(products) < 2 * classes:
        number = int(rng.integers(110000000000, 400000000000))
        if number not in products:
            products.append(number)
    info, image_id, p = [header], 0, 0
    for filename, ids, lo, hi in halves:
        lines = [header]
        for class_id in ids:
            super_id = 1 + (class_id - lo) * len(SOP_CATEGORIES) // (hi - lo + 1)
            category = SOP_CATEGORIES[super_id - 1]
            product, p = products[p], p + 1
            for k, (image, _) in enumerate(_retrieval_images(rng, seed, "sop", class_id, per_class, sizes)):
                image_id += 1
                rel = f"{category}_final/{product}_{k}.JPG"
                _save_jpeg(image, base / rel)
                lines.append(f"{image_id} {class_id} {super_id} {rel}")
        _lines(base / filename, lines)
        info += lines[1:]
    _lines(base / "Ebay_info.txt", info)  # the whole index (present in the archive, not read)
    return base


# ----------------------------------------------------------------------------- CIFAR-100

def _cifar_rows(rng, labels, seed) -> np.ndarray:
    rows = np.empty((len(labels), 3072), dtype=np.uint8)
    for i, label in enumerate(labels):
        tint, colour = _class_palette(seed, 1000 + int(label))
        image, _ = object_image(rng, (32, 32), tint, colour, scale=(0.3, 0.7))
        rows[i] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).reshape(-1)  # R, G, B planes, row-major
    return rows


def write_cifar100(root, classes: int = 100, per_class: int = 10, test_per_class: int | None = None,
                   seed: int = 0) -> Path:
    """``root/cifar-100-python`` with the pickles ``train``, ``test`` and ``meta`` of the official
    python version (protocol-2 pickles of dicts with ``data`` N x 3072 uint8 as R, G, B planes,
    ``fine_labels``, ``coarse_labels``, ``filenames``, ``batch_label``; ``meta`` with the 100 fine
    and 20 coarse names). ``classes`` fine classes (ids spread over 0-99) get ``per_class``
    training and ``test_per_class`` (default: a fifth of it, at least 2, CIFAR's 500:100) test
    images of 32x32. Coarse labels are placeholders (not read). Returns the folder."""
    _check_counts(classes, per_class)
    if classes > len(CIFAR100_FINE):
        raise ValueError(f"CIFAR-100 has {len(CIFAR100_FINE)} classes, got classes={classes}")
    test_per_class = max(2, per_class // 5) if test_per_class is None else int(test_per_class)
    _check_counts(classes, test_per_class, "test_per_class")
    base = _fresh(Path(root) / "cifar-100-python")
    rng = np.random.default_rng([seed, 100])
    fine = spread(0, len(CIFAR100_FINE) - 1, classes)
    for filename, n, batch_label in (("train", per_class, "training batch 1 of 1"),
                                     ("test", test_per_class, "testing batch 1 of 1")):
        labels = [c for c in fine for _ in range(n)]
        order = rng.permutation(len(labels))  # the official files are not sorted by class
        labels = [labels[i] for i in order]
        entry = {"filenames": [f"{CIFAR100_FINE[c]}_s_{i:06d}.png" for i, c in enumerate(labels)],
                 "batch_label": batch_label, "fine_labels": labels,
                 "coarse_labels": [c * len(CIFAR100_COARSE) // len(CIFAR100_FINE) for c in labels],
                 "data": _cifar_rows(rng, labels, seed)}
        with open(base / filename, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": list(CIFAR100_FINE), "coarse_label_names": list(CIFAR100_COARSE)}, fh,
                    protocol=2)
    return base


# ----------------------------------------------------------------------------- COCO

def _coco_split(rng, seed, folder: Path, categories, per_class: int, sizes, max_boxes: int, first_ann: int):
    n = len(categories) * per_class
    image_ids = sorted(int(i) + 1 for i in rng.choice(600000, size=n, replace=False))
    images, annotations = [], []
    lead = [categories[i % len(categories)] for i in range(n)]  # each category leads per_class images
    rng.shuffle(lead)
    for image_id, first in zip(image_ids, lead):
        width, height = _size(rng, "coco", sizes)
        image = smooth_image(rng, (width, height))
        draw = ImageDraw.Draw(image)
        cats = [first] + [categories[int(rng.integers(len(categories)))] for _ in range(int(rng.integers(max_boxes)))]
        for cat in cats:
            _, colour = _class_palette(seed, 5000 + cat[0])
            side = min(width, height)
            w = int(rng.integers(max(8, side // 12), max(9, side // 2)))
            h = int(rng.integers(max(8, side // 12), max(9, side // 2)))
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            _shape(rng, draw, (x, y, x + w - 1, y + h - 1), _colour(rng, colour, 15))
            annotations.append({"id": first_ann + len(annotations), "image_id": image_id, "category_id": cat[0],
                                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                                "iscrowd": 0,
                                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        file_name = f"{image_id:012d}.jpg"
        _save_jpeg(image, folder / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 1,
                       "date_captured": "2013-11-14 16:28:13"})
    return images, annotations


def write_coco(root, classes: int = 4, per_class: int = 4, val_per_class: int | None = None, seed: int = 0,
               max_boxes: int = 4, sizes=None) -> Path:
    """``root/coco`` in COCO 2017's layout: ``annotations/instances_train2017.json`` and
    ``instances_val2017.json`` (instances json: info, licenses, images, annotations with bbox
    [x, y, w, h], area, iscrowd 0 and a polygon, categories with COCO's own ids, names and
    supercategories) and the JPEGs under ``train2017/`` and ``val2017/``, about 640x480.
    ``classes`` categories (ids spread over COCO's 80, 1 and 90 included; the json lists those)
    each lead ``per_class`` training and ``val_per_class`` (default ``per_class``) validation
    images; each image has 1 to ``max_boxes`` boxes, each a drawn shape of its category's colour.
    Returns the folder to pass as ``--data-root``."""
    _check_counts(classes, per_class)
    if classes > len(COCO_CATEGORIES):
        raise ValueError(f"COCO has {len(COCO_CATEGORIES)} categories, got classes={classes}")
    val_per_class = per_class if val_per_class is None else int(val_per_class)
    _check_counts(classes, val_per_class, "val_per_class")
    if int(max_boxes) < 1:
        raise ValueError(f"max_boxes must be at least 1, got {max_boxes}")
    base = _fresh(Path(root) / "coco")
    rng = np.random.default_rng([seed, 80])
    categories = [COCO_CATEGORIES[i] for i in spread(0, len(COCO_CATEGORIES) - 1, classes)]
    first_ann = 1
    for split, n in (("train2017", per_class), ("val2017", val_per_class)):
        images, annotations = _coco_split(rng, seed, base / split, categories, n, sizes, int(max_boxes), first_ann)
        first_ann += len(annotations)
        doc = {"info": {"description": "generated stand-in for COCO 2017 (random images, not COCO)",
                        "version": "1.0", "year": 2017, "date_created": "2017/09/01"},
               "licenses": [{"id": 1, "name": "generated", "url": ""}],
               "images": images, "annotations": annotations,
               "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s in categories]}
        (base / "annotations").mkdir(exist_ok=True)
        (base / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return base


WRITERS = {"cub200": write_cub, "cars196": write_cars, "sop": write_sop, "cifar100": write_cifar100,
           "coco": write_coco}


# ----------------------------------------------------------------------------- weights

def _weights_names(archs, weights) -> list[tuple[str, str]]:
    archs = [archs] if isinstance(archs, str) else list(archs)
    pairs = []
    for arch in archs:
        names = weights.get(arch, "DEFAULT") if isinstance(weights, Mapping) else weights
        for name in [names] if isinstance(names, str) else list(names):
            pairs.append((arch, name))
    return pairs


def write_random_weights(torch_home, archs, weights="DEFAULT", seed: int = 0) -> list[Path]:
    """Randomly initialised state dicts of the torchvision architectures ``archs`` (resnet18,
    resnet50, mobilenet_v3_large, ...), each saved where torchvision caches the named weights:
    ``<torch_home>/hub/checkpoints/<basename of the weights' url>`` (``torch.hub.get_dir()`` is
    ``$TORCH_HOME/hub``). ``weights``: one name for every architecture (``"IMAGENET1K_V1"``,
    ``"DEFAULT"``), a list of names, or a mapping arch -> name(s). Returns the paths written.
    Deterministic by ``seed``; two weights of one architecture (V1, V2) get different tensors.
    The tensors are random, not ImageNet's: they only let ``pretrained: true`` run offline."""
    folder = Path(torch_home) / "hub" / "checkpoints"
    written = []
    for arch, name in _weights_names(archs, weights):
        if not has_torchvision_weights(arch):
            raise ValueError(f"{arch} has no torchvision weights; expected a torchvision architecture")
        resolved = resolve_weights(arch, name)
        path = folder / Path(resolved.url).name
        if path in written:
            continue
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            torch.manual_seed(zlib.crc32(f"{seed} {arch} {resolved.name}".encode()))  # each file its own tensors
            state = get_model(arch, weights=None).state_dict()
        atomic_write_via(path, lambda tmp: torch.save(state, tmp))
        written.append(path)
    return written


def recipe_weights() -> dict[str, list[str]]:
    """arch -> the weights names the packaged recipes load (``pretrained: true`` roles; a role
    without ``weights`` loads ``DEFAULT``)."""
    found: dict[str, list[str]] = {}
    for name in ("cub200", "cars196", "sop", "cifar100", "detection_coco"):
        cfg = yaml.safe_load((resources.files("benchmarks") / "configs" / f"{name}.yaml").read_text()) or {}
        for role in ("teacher", "student"):
            spec = cfg.get(role) or {}
            if spec.get("pretrained"):
                names = found.setdefault(spec["arch"], [])
                weights = spec.get("weights") or "DEFAULT"
                if weights not in names:
                    names.append(weights)
    return found


# ----------------------------------------------------------------------------- command

def _describe(name: str, path: Path) -> str:
    if name == "coco":
        opts = {"ann_file": "annotations/instances_{split}.json", "image_dir": "{split}",
                "split_names": {"train": "train2017", "val": "val2017", "test": "val2017"}}
        parts = []
        for split in ("train", "val"):
            ds = build_detection_dataset("coco", path, split, **opts)
            parts.append(f"{split} {len(ds)} images / {len(ds.coco.anns)} boxes")
        return f"{', '.join(parts)}, {ds.num_classes} categories"
    parts = []
    for split in ("train", "test"):
        ds = build_dataset(name, path, split, transform=lambda x: x)
        parts.append(f"{split} {len(ds)} images / {len(np.unique(ds.labels))} classes")
    return ", ".join(parts)


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.make_recipe_data",
                       description="Write generated trees in the official formats of the recipes' datasets "
                                   "(and random stand-ins for torchvision's weights).")
    p.add_argument("--out", required=True, help="folder to write the trees under (one sub-folder each)")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    p.add_argument("--classes", type=int, default=None,
                   help="classes per official half (CIFAR-100: fine classes; COCO: categories); default each "
                        "writer's own (4; CIFAR-100 100)")
    p.add_argument("--per-class", type=int, default=None, help="images per class (default each writer's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-home", default=None,
                   help="also write random weights for what the recipes load under DIR/hub/checkpoints")
    add_debug_flag(p)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in WRITERS]
    if unknown or not names:
        raise UserError(f"--datasets: unknown dataset(s) {unknown}; expected some of {list(DATASETS)}")
    counts = {k: v for k, v in (("classes", args.classes), ("per_class", args.per_class)) if v is not None}
    out = Path(args.out)
    for name in names:
        try:
            path = WRITERS[name](out, seed=args.seed, **counts)
        except (ValueError, FileExistsError) as exc:
            raise UserError(f"{name}: {exc}") from None
        flag = {"coco": "--suite detection --config benchmarks/configs/detection_coco.yaml",
                "cifar100": "--suite classification --config benchmarks/configs/cifar100.yaml"}.get(
            name, f"--suite retrieval --dataset {name}")
        print(f"{name}: wrote {path} ({_describe(name, path)}); run with {flag} --data-root {path}")
    if args.torch_home:
        wanted = recipe_weights()
        for path in write_random_weights(args.torch_home, list(wanted), wanted, seed=args.seed):
            print(f"weights: wrote random {path.name} to {path.parent} (not ImageNet's); "
                  f"run with TORCH_HOME={args.torch_home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
