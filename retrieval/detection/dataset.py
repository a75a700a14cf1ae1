"""A detection dataset read from COCO json with pycocotools.

Item ``i`` is ``{"image": float tensor (3, H, W) in [0, 1], "target": {"boxes": (n, 4) x1y1x2y2,
"labels": (n,) in 1..K, "image_id": int}, "index": i}``, the input torchvision's detectors
take. Category ids map to contiguous labels 1..K in sorted-id order (0 is background);
crowd annotations are left out of the targets (COCOeval still sees them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from retrieval.data.base import DatasetNotFoundError, ImageReadError
from retrieval.data.fingerprint import sampled_indices, update
from retrieval.detection.coco_io import load_coco


class CocoDetectionDataset(Dataset):
    def __init__(self, ann_file, image_dir, name: str = "coco", split: str = "", check_images: bool = True):
        self.ann_file, self.image_dir = Path(ann_file), Path(image_dir)
        self.coco = load_coco(self.ann_file)
        self.name, self.split = name, split
        self.image_ids = sorted(self.coco.imgs)
        self.cat_ids = sorted(self.coco.cats)
        self.label_of = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self.class_names = [self.coco.cats[c]["name"] for c in self.cat_ids]
        if check_images:
            missing = [f for f in (self.coco.imgs[i]["file_name"] for i in self.image_ids)
                       if not (self.image_dir / f).is_file()]
            if missing:
                raise DatasetNotFoundError(
                    f"{name} {split}: {len(missing)} of {len(self.image_ids)} images listed in {self.ann_file} "
                    f"are missing under {self.image_dir}, e.g. {missing[:3]}")

    @property
    def num_classes(self) -> int:
        """K, the number of object categories (the detector adds background)."""
        return len(self.cat_ids)

    def __len__(self) -> int:
        return len(self.image_ids)

    def read_image(self, image_id: int) -> torch.Tensor:
        path = self.image_dir / self.coco.imgs[image_id]["file_name"]
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
        except OSError as exc:
            raise ImageReadError(f"cannot read image {path}: {exc}") from exc
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255)

    def fingerprint(self) -> str:
        """A digest of the data (``retrieval.data.fingerprint``): the annotation file and a fixed sample of
        the images."""
        h = hashlib.sha256(self.ann_file.read_bytes())
        for i in sampled_indices(len(self)):
            update(h, self.read_image(self.image_ids[i]))
        return h.hexdigest()

    def target(self, image_id: int) -> dict:
        anns = [a for a in self.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        return {"boxes": boxes, "labels": labels, "image_id": image_id}

    def __getitem__(self, index: int) -> dict:
        image_id = self.image_ids[index]
        return {"image": self.read_image(image_id), "target": self.target(image_id), "index": index}

    @staticmethod
    def collate_fn(items: list[dict]) -> dict:
        """Lists of images and targets (sizes and box counts vary), indices as a tensor."""
        return {"image": [it["image"] for it in items], "target": [it["target"] for it in items],
                "index": torch.tensor([it["index"] for it in items])}
