"""COCO box AP from pycocotools' COCOeval: AP@[.5:.95] (``ap``), AP@.5 (``ap50``), AP@.75 (``ap75``)."""

from __future__ import annotations

import contextlib
import io

import torch
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def coco_ap(coco_gt, results: list[dict]) -> dict:
    """COCOeval ``bbox`` metrics of ``results`` ([{image_id, category_id, bbox: [x, y, w, h], score}])
    against the ground truth ``coco_gt`` (a pycocotools ``COCO``), as fractions. No detection
    at all scores 0."""
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and summary
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap, ap50, ap75 = (float(v) for v in evaluator.stats[:3])
    return {"ap": ap, "ap50": ap50, "ap75": ap75}


def detections_to_coco(detections: list[dict], image_ids: list[int], cat_ids: list[int]) -> list[dict]:
    """torchvision detections (x1y1x2y2 boxes, labels 1..K, scores) as COCO result records."""
    records = []
    for det, image_id in zip(detections, image_ids):
        for (x1, y1, x2, y2), label, score in zip(det["boxes"].tolist(), det["labels"].tolist(),
                                                  det["scores"].tolist()):
            records.append({"image_id": int(image_id), "category_id": int(cat_ids[label - 1]),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    return records


@torch.no_grad()
def evaluate_detector(model, dataset, cfg, desc: str = "eval") -> dict:
    """The trainer's evaluator hook: ``model`` detects every image of ``dataset`` (a
    ``CocoDetectionDataset``) and COCOeval scores the boxes against its annotations."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                        collate_fn=dataset.collate_fn)
    results = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not cfg.progress):
        detections = model([img.to(cfg.device) for img in batch["image"]])
        detections = [{k: v.cpu() for k, v in d.items()} for d in detections]
        results += detections_to_coco(detections, [t["image_id"] for t in batch["target"]], dataset.cat_ids)
    model.train(was_training)
    return coco_ap(dataset.coco, results)
