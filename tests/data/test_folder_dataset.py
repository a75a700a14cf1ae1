"""The generic ``folder`` dataset: root/<class_name>/<image files>."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest
import torch

from retrieval.data.base import DatasetNotFoundError, ImageReadError
from retrieval.data.folder import folder

# Sorted classes apple, banana, cherry, date, elder -> labels 0..4; ceil(5/2) = 3 train.


def test_train_and_test_halves(folder_tree):
    train, test = folder(folder_tree.root, "train"), folder(folder_tree.root, "test")
    assert Counter(train.labels.tolist()) == {0: 2, 1: 1, 2: 2}
    assert Counter(test.labels.tolist()) == {3: 2, 4: 1}
    names = sorted(folder_tree.files)
    for ds in (train, test):
        for path, label in zip(ds.paths, ds.labels):
            assert path.relative_to(folder_tree.root).parts[0] == names[label]


def test_extensions_case_insensitive_and_junk_ignored(folder_tree):
    paths = folder(folder_tree.root, "train").paths + folder(folder_tree.root, "test").paths
    found = {p.relative_to(folder_tree.root).as_posix() for p in paths}
    assert found == {f"{c}/{f}" for c, files in folder_tree.files.items() for f in files}


def test_fit_and_val(folder_tree):
    train, fit, val = (folder(folder_tree.root, s) for s in ("train", "fit", "val"))
    assert set(val.labels.tolist()) == {1, 2} and set(fit.labels.tolist()) == {0}
    assert set(fit.paths) | set(val.paths) == set(train.paths)
    assert not set(fit.paths) & set(val.paths)


def test_items(folder_tree):
    ds = folder(folder_tree.root, "test", image_size=16)
    item = ds[1]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert item["label"] == 3 and item["index"] == 1


def test_odd_number_of_classes_rounds_train_up(folder_tree):
    import shutil

    shutil.rmtree(folder_tree.root / "elder")  # 4 classes -> 2 train, 2 test
    assert set(folder(folder_tree.root, "train").labels.tolist()) == {0, 1}
    assert set(folder(folder_tree.root, "test").labels.tolist()) == {2, 3}


def test_fewer_than_two_classes(tmp_path):
    from PIL import Image

    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "x.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="need at least 2"):
        folder(tmp_path, "train")


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="datasets/README.md") as err:
        folder(tmp_path / "nowhere", "train")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_corrupt_image(folder_tree):
    ds = folder(folder_tree.root, "train")
    ds.paths[0].write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=str(ds.paths[0].name)):
        ds[0]


@pytest.mark.skipif(importlib.util.find_spec("retrieval.data.embedded") is None,
                    reason="retrieval.data.embedded not written yet; the registry imports it")
def test_registry(folder_tree):
    from retrieval.data import build_dataset

    assert len(build_dataset("folder", folder_tree.root, "test")) == 3
