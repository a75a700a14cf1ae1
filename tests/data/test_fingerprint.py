"""``retrieval.data.fingerprint``: the digest a cached network records of its data changes with any image
or label, and only with them (not with a moved root, a transform or a second call)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.data.base import ImageFileDataset, TensorImageDataset
from retrieval.data.fingerprint import data_digest, digest, sampled_indices
from retrieval.detection.dataset import CocoDetectionDataset


def _tensor_set(seed=0, n=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), np.arange(n) % 3


@pytest.mark.parametrize("n,k", [(0, 4), (3, 4), (4, 4), (5, 4), (100, 16), (17, 16)])
def test_sampled_indices_are_evenly_spaced_and_hold_the_ends(n, k):
    got = sampled_indices(n, k)
    if n <= k:
        assert got == list(range(n))
    else:
        assert len(got) == k and got[0] == 0 and got[-1] == n - 1 and got == sorted(set(got))
        gaps = np.diff(got)
        assert gaps.max() - gaps.min() <= 1  # as even as integers allow


def test_an_in_memory_set_changes_digest_with_any_pixel_or_label_and_not_with_its_transform():
    images, labels = _tensor_set()
    base = digest(TensorImageDataset(images, labels))
    assert digest(TensorImageDataset(images.clone(), labels.copy(), transform=lambda x: x * 0)) == base
    for i in range(len(images)):  # every image counts, not a sample
        changed = images.clone()
        changed[i, 1, 3, 4] ^= 1
        assert digest(TensorImageDataset(changed, labels)) != base, i
    relabelled = labels.copy()
    relabelled[[0, 1]] = relabelled[[1, 0]]
    assert digest(TensorImageDataset(images, relabelled)) != base


def test_files_are_hashed_by_name_and_content_not_by_folder(tmp_path):
    def folder(name, colours):
        paths = []
        for i, colour in enumerate(colours):
            path = tmp_path / name / f"img{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 5), colour).save(path)
            paths.append(path)
        return paths

    colours = [(i, 2 * i, 3 * i) for i in range(5)]
    base = digest(ImageFileDataset(folder("a", colours), [0, 0, 1, 1, 2]))
    assert digest(ImageFileDataset(folder("b", colours), [0, 0, 1, 1, 2])) == base  # a moved root
    assert digest(ImageFileDataset(folder("c", colours[:4] + [(9, 9, 9)]), [0, 0, 1, 1, 2])) != base
    assert digest(ImageFileDataset(folder("d", colours), [0, 1, 1, 1, 2])) != base


def test_a_detection_set_changes_digest_with_its_annotations(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "img" / "a.png")
    ann = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3], "area": 9, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "box"}]}
    (tmp_path / "a.json").write_text(json.dumps(ann))
    base = digest(CocoDetectionDataset(tmp_path / "a.json", tmp_path / "img"))
    ann["annotations"][0]["bbox"] = [1, 1, 4, 3]
    (tmp_path / "b.json").write_text(json.dumps(ann))
    assert digest(CocoDetectionDataset(tmp_path / "b.json", tmp_path / "img")) != base


def test_a_run_digest_covers_the_training_splits_only():
    images, labels = _tensor_set()
    other, _ = _tensor_set(seed=1)
    fit, val = TensorImageDataset(images, labels), TensorImageDataset(images[:6], labels[:6])
    base = data_digest({"fit": fit, "val": val, "test": TensorImageDataset(images, labels)})
    assert data_digest({"fit": fit, "val": val, "test": TensorImageDataset(other, labels), "cache_dir": "x"}) == base
    assert data_digest({"fit": TensorImageDataset(other, labels), "val": val}) != base
    assert data_digest({"fit": val, "val": fit}) != base  # which split holds what counts
