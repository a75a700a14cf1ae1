"""CUB-200-2011, Cars196 and SOP loaders on miniature trees in the official formats."""

from __future__ import annotations

import importlib.util
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from retrieval.data.base import DatasetNotFoundError, ImageReadError
from retrieval.data.cars import _scalar, cars196
from retrieval.data.cub import cub200
from retrieval.data.folder import check_images_exist, verify_counts
from retrieval.data.sop import sop

CASES = {  # name -> (loader, fixture, official training classes, val classes at val_fraction=0.2)
    "cub200": (cub200, "cub_tree", {1, 2, 100}, {2, 100}),
    "cars196": (cars196, "cars_tree", {1, 98}, {98}),
    "sop": (sop, "sop_tree", {1, 2, 3}, {2, 3}),
}
INDEX_FILE = {"cub200": "image_class_labels.txt", "cars196": "cars_annos.mat", "sop": "Ebay_test.txt"}


@pytest.fixture(params=sorted(CASES))
def case(request):
    load, fixture, train_classes, val_classes = CASES[request.param]
    tree = request.getfixturevalue(fixture)
    return SimpleNamespace(name=request.param, load=load, tree=tree, train=train_classes, val=val_classes)


def build(case, split, **kw):
    return case.load(case.tree.root, split, image_size=16, **kw)


def test_official_halves(case):
    counts = case.tree.counts
    for split, classes in (("train", case.train), ("test", set(counts) - case.train)):
        ds = build(case, split)
        assert Counter(ds.labels.tolist()) == {c: counts[c] for c in classes}
        assert ds.split == split and len(ds) == len(ds.paths)
    assert not set(build(case, "train").labels) & set(build(case, "test").labels)


def test_fit_and_val_partition_train(case):
    train, fit, val = (build(case, s) for s in ("train", "fit", "val"))
    assert set(val.labels.tolist()) == case.val
    assert set(fit.labels.tolist()) == case.train - case.val
    assert set(fit.paths) | set(val.paths) == set(train.paths)
    assert not set(fit.paths) & set(val.paths)
    assert len(fit) + len(val) == len(train)


def test_items_with_default_transform(case):
    for split in ("train", "test"):
        ds = build(case, split)
        item = ds[len(ds) - 1]
        assert set(item) == {"image", "label", "index"}
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 16, 16)
        assert item["label"] == int(ds.labels[-1]) and isinstance(item["label"], int)
        assert item["index"] == len(ds) - 1


def test_custom_transform_is_used(case):
    ds = case.load(case.tree.root, "test", transform=lambda img: img.size)
    assert ds[0]["image"] == (8, 8)


@pytest.mark.parametrize("name", ["cub200", "sop"])
def test_root_may_be_dataset_folder_or_parent(name, request):
    load, fixture, *_ = CASES[name]
    tree = request.getfixturevalue(fixture)
    assert load(tree.parent, "test").paths == load(tree.root, "test").paths


def test_missing_root(case, tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as err:
        case.load(root, "train")
    message = str(err.value)
    assert INDEX_FILE[case.name] in message and str(root) in message
    assert "does not exist" in message and "datasets/README.md" in message


def test_missing_index_file(case):
    missing = case.tree.root / INDEX_FILE[case.name]
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match="datasets/README.md") as err:
        case.load(case.tree.parent if case.name != "cars196" else case.tree.root, "train")
    assert str(missing) in str(err.value)


def test_cars_missing_image_folder(cars_tree):
    for p in (cars_tree.root / "car_ims").iterdir():
        p.unlink()
    (cars_tree.root / "car_ims").rmdir()
    with pytest.raises(DatasetNotFoundError) as err:
        cars196(cars_tree.root, "train")
    assert str(cars_tree.root / "car_ims") in str(err.value)


def test_partial_dataset_names_missing_image(case):
    victim = build(case, "test").paths[0]
    victim.unlink()
    build(case, "train")  # the other half is complete
    with pytest.raises(DatasetNotFoundError) as err:
        build(case, "test")
    assert str(victim) in str(err.value) and "partial dataset: 1 of" in str(err.value)


def test_partial_dataset_lists_at_most_ten(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(25)]
    with pytest.raises(DatasetNotFoundError) as err:
        check_images_exist(paths, "demo")
    message = str(err.value)
    assert "25 of 25" in message and str(paths[9]) in message and str(paths[10]) not in message
    assert "and 15 more" in message


def test_corrupt_image_raises_image_read_error(case):
    ds = build(case, "test")
    ds.paths[0].write_bytes(b"this is not a JPEG")
    with pytest.raises(ImageReadError) as err:
        ds[0]
    assert str(ds.paths[0]) in str(err.value)


@pytest.mark.parametrize("filename, line, lineno, match", [
    ("images.txt", "x 001.Bird_1/a.jpg", 2, "integer"),
    ("images.txt", "3 001.Bird_1/a.jpg extra", 3, "expected 2 fields"),
    ("images.txt", "1 001.Bird_1/again.jpg", 2, "already listed on line 1"),
    ("image_class_labels.txt", "2", 2, "expected 2 fields"),
    ("image_class_labels.txt", "999 1", 3, "not in"),
    ("image_class_labels.txt", "1 201", 1, "class id 201 is not in"),
    ("classes.txt", "7 Bird 7", 7, "expected 2 fields"),
])
def test_cub_malformed_line(cub_tree, filename, line, lineno, match):
    path = cub_tree.root / filename
    lines = path.read_text().splitlines()
    lines[lineno - 1] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match) as err:
        cub200(cub_tree.parent, "train")
    assert f"{path}, line {lineno}" in str(err.value)


def test_cub_image_without_class(cub_tree):
    labels = cub_tree.root / "image_class_labels.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ValueError, match="has no class") as err:
        cub200(cub_tree.root, "train")
    assert f"{cub_tree.root / 'images.txt'}, line 10" in str(err.value)


@pytest.mark.parametrize("lineno, line, match", [
    (1, "id class super path", "header"),
    (3, "2 1 1", "expected 4 fields"),
    (4, "3 one 1 bicycle_final/x.JPG", "integer"),
    (2, "1 11319 1 bicycle_final/x.JPG", "also in the other half"),
])
def test_sop_malformed_line(sop_tree, lineno, line, match):
    path = sop_tree.root / "Ebay_train.txt"
    lines = path.read_text().splitlines()
    lines[lineno - 1] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match) as err:
        sop(sop_tree.root, "test")
    assert f"{path}, line {lineno}" in str(err.value)


def test_cars_malformed_annotation(cars_tree):
    from scipy.io import savemat

    path = cars_tree.root / "cars_annos.mat"
    savemat(path, {"annotations": _cars_struct(cars_tree.records[:2] + [("car_ims/000003.jpg", "x", 0)])})
    with pytest.raises(ValueError, match="class is not an integer") as err:
        cars196(cars_tree.root, "train")
    assert f"{path}, annotation 3" in str(err.value)
    savemat(path, {"something_else": 1})
    with pytest.raises(ValueError, match="no 'annotations'"):
        cars196(cars_tree.root, "train")


def test_cars_single_annotation(cars_tree):
    from scipy.io import savemat

    path = cars_tree.root / "cars_annos.mat"
    savemat(path, {"annotations": _cars_struct([("car_ims/000004.jpg", 99, 0)])})  # loads as a 0-d struct
    assert cars196(cars_tree.root, "test").labels.tolist() == [99]
    assert len(cars196(cars_tree.root, "train")) == 0


def test_cars_unsqueezed_mat(cars_tree, monkeypatch):
    import scipy.io

    loadmat = scipy.io.loadmat
    monkeypatch.setattr(scipy.io, "loadmat", lambda path, **kw: loadmat(path))  # 1x1 arrays everywhere
    assert Counter(cars196(cars_tree.root, "test").labels.tolist()) == {99: 2, 196: 1}
    assert _scalar(np.array([[np.uint8(5)]])) == 5 and _scalar(np.array(["a.jpg"])) == "a.jpg"


def _cars_struct(records):
    fields = ["relative_im_path", "class", "test"]
    struct = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        struct[0, i] = record
    return struct


def test_strict_checks_official_counts(case):
    with pytest.raises(ValueError, match="official counts"):
        build(case, "test", strict=True)
    train, test = build(case, "train"), build(case, "test")
    expected = {"train": (len(train), train.num_classes), "test": (len(test), test.num_classes)}
    labels = train.labels.tolist() + test.labels.tolist()
    flags = [True] * len(train) + [False] * len(test)
    verify_counts(case.name, labels, flags, expected)  # matching counts: no error


def test_official_count_constants():
    from retrieval.data import cars, cub, sop as sop_module

    assert cub.OFFICIAL_COUNTS == {"train": (5864, 100), "test": (5924, 100)}
    assert cars.OFFICIAL_COUNTS == {"train": (8054, 98), "test": (8131, 98)}
    assert sop_module.OFFICIAL_COUNTS == {"train": (59551, 11318), "test": (60502, 11316)}


@pytest.mark.skipif(importlib.util.find_spec("retrieval.data.embedded") is None,
                    reason="retrieval.data.embedded not written yet; the registry imports it")
def test_build_dataset_through_registry(cub_tree, cars_tree, sop_tree):
    from retrieval.data import build_dataset, list_datasets

    assert {"cub200", "cars196", "sop", "folder"} <= set(list_datasets())
    assert len(build_dataset("cub200", cub_tree.parent, "test", image_size=16)) == 5
    assert len(build_dataset("cars196", cars_tree.root, "train")) == 3
    assert len(build_dataset("sop", sop_tree.root, "val", val_fraction=0.5)) == 3
