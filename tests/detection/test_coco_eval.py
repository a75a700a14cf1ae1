"""COCO AP through pycocotools: perfect, shifted and missing detections."""

from __future__ import annotations

import pytest

from retrieval.detection.coco_io import load_coco, write_coco_json
from retrieval.detection.evaluate import coco_ap

IMAGES = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in (1, 2)]
CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
ANNOTATIONS = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40]},
               {"id": 2, "image_id": 1, "category_id": 2, "bbox": [60, 60, 30, 20]},
               {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50]}]


@pytest.fixture
def gt(tmp_path):
    write_coco_json(tmp_path / "gt.json", IMAGES, ANNOTATIONS, CATEGORIES)
    return load_coco(tmp_path / "gt.json")


def _as_results(annotations, dx=0.0, score=0.9):
    return [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": [a["bbox"][0] + dx, a["bbox"][1], a["bbox"][2], a["bbox"][3]], "score": score}
            for a in annotations]


def test_perfect_detections_score_one(gt):
    assert coco_ap(gt, _as_results(ANNOTATIONS)) == pytest.approx({"ap": 1.0, "ap50": 1.0, "ap75": 1.0})


def test_no_detection_scores_zero(gt):
    assert coco_ap(gt, []) == {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}


def test_shifted_boxes_pass_iou_half_but_not_three_quarters(gt):
    # a 40x40 box moved 10 px sideways: IoU = 30*40 / (2*1600 - 1200) = 0.6
    results = _as_results(ANNOTATIONS[:1], dx=10) + _as_results(ANNOTATIONS[1:])
    ap = coco_ap(gt, results)
    assert ap["ap50"] == pytest.approx(1.0)
    assert ap["ap75"] < 1.0 and ap["ap"] < ap["ap50"]


def test_wrong_class_is_not_a_hit(gt):
    wrong = [dict(r, category_id=3 - r["category_id"]) for r in _as_results(ANNOTATIONS)]
    assert coco_ap(gt, wrong)["ap50"] == 0.0
