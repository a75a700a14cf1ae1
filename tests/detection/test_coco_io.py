"""COCO json: round trip through the writer and the pycocotools loader; malformed files name file and problem."""

from __future__ import annotations

import json

import pytest
import torch

from retrieval.detection.coco_io import MalformedAnnotationError, load_coco, write_coco_json
from retrieval.detection.data import build_detection_dataset
from retrieval.detection.scenes import write_scenes

IMAGES = [{"id": 7, "file_name": "a.png", "width": 40, "height": 30},
          {"id": 9, "file_name": "b.png", "width": 40, "height": 30}]
CATEGORIES = [{"id": 3, "name": "three"}, {"id": 5, "name": "five"}]
ANNOTATIONS = [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 10, 20]},
               {"id": 2, "image_id": 7, "category_id": 3, "bbox": [20.5, 0, 5, 5]}]


def test_round_trip_keeps_every_record(tmp_path):
    path = tmp_path / "ann" / "instances_train.json"
    write_coco_json(path, IMAGES, ANNOTATIONS, CATEGORIES)
    coco = load_coco(path)
    assert sorted(coco.imgs) == [7, 9] and sorted(coco.cats) == [3, 5]
    assert [a["bbox"] for a in coco.imgToAnns[7]] == [[1, 2, 10, 20], [20.5, 0, 5, 5]]
    assert coco.imgToAnns.get(9, []) == []
    assert coco.anns[1]["area"] == 200 and coco.anns[1]["iscrowd"] == 0  # filled for COCOeval
    assert not list(tmp_path.glob("ann/.*.tmp"))  # atomic write left no temp file


def test_generated_scenes_read_back_as_torchvision_targets(tmp_path):
    ann = write_scenes(tmp_path, "val", 6, seed=3, size=48, min_height=10, max_height=18)
    data = json.loads(ann.read_text())
    assert len(data["images"]) == 6 and len(data["categories"]) == 10 and data["annotations"]
    ds = build_detection_dataset("coco", tmp_path, "val")  # the --data-root loader reads the same files
    item = ds[0]
    assert item["image"].shape == (3, 48, 48) and 0 <= item["image"].min() and item["image"].max() <= 1
    boxes, labels = item["target"]["boxes"], item["target"]["labels"]
    first = [a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"]]
    x, y, w, h = first[0]["bbox"]
    assert torch.equal(boxes[0], torch.tensor([x, y, x + w, y + h], dtype=torch.float32))
    assert labels[0] == first[0]["category_id"]  # category ids 1..10 map to labels 1..10
    assert (boxes[:, 2] <= 48).all() and (boxes[:, 3] <= 48).all()
    again = write_scenes(tmp_path / "again", "val", 6, seed=3, size=48, min_height=10, max_height=18)
    assert json.loads(again.read_text()) == data  # deterministic from the seed


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.pop("annotations"), "'annotations' is missing"),
    (lambda d: d["images"][0].pop("file_name"), r"images\[0\] lacks \['file_name'\]"),
    (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), r"annotations\[1\].bbox"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 0, 4]), "non-positive width or height"),
    (lambda d: d["annotations"][0].update(image_id=99), "image_id 99"),
    (lambda d: d["annotations"][0].update(category_id=4), "category_id 4"),
])
def test_malformed_file_names_file_and_problem(tmp_path, mutate, problem):
    data = {"images": [dict(r) for r in IMAGES], "annotations": [dict(r) for r in ANNOTATIONS],
            "categories": [dict(r) for r in CATEGORIES]}
    mutate(data)
    path = tmp_path / "instances_bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MalformedAnnotationError, match=problem) as info:
        load_coco(path)
    assert str(path) in str(info.value)


def test_invalid_json_and_missing_files_are_named(tmp_path):
    path = tmp_path / "instances_train.json"
    path.write_text('{"images": [')
    with pytest.raises(MalformedAnnotationError, match="not valid json") as info:
        load_coco(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="instances_test.json"):
        build_detection_dataset("coco", tmp_path, "test")
    (tmp_path / "annotations").mkdir()
    write_coco_json(tmp_path / "annotations" / "instances_train.json", IMAGES, ANNOTATIONS, CATEGORIES)
    with pytest.raises(FileNotFoundError, match="2 of 2 images"):
        build_detection_dataset("coco", tmp_path, "train")
