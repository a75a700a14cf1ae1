"""Generated trees in the official formats of the recipes' datasets: each loads through the
project's own loaders with the expected classes, splits and real-size images, is deterministic
by seed, and the random stand-ins for torchvision's weights sit where torchvision caches them."""

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import make_recipe_data as mrd
from retrieval.data import build_dataset, check_images
from retrieval.detection.data import build_detection_dataset

COCO_OPTIONS = {"ann_file": "annotations/instances_{split}.json", "image_dir": "{split}",
                "split_names": {"train": "train2017", "val": "val2017", "test": "val2017"}}  # detection_coco.yaml
RETRIEVAL = {  # name -> (writer, train class ids, test class ids) at classes=4
    "cub200": (mrd.write_cub, [1, 34, 67, 100], [101, 134, 167, 200]),
    "cars196": (mrd.write_cars, [1, 33, 66, 98], [99, 131, 164, 196]),
    "sop": (mrd.write_sop, [1, 3773, 7546, 11318], [11319, 15091, 18862, 22634]),
}


def raw(name, root, split):
    return build_dataset(name, root, split, transform=lambda x: x)


def sizes(paths):
    out = []
    for path in paths:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            out.append(img.size)
    return out


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(RETRIEVAL))
def test_retrieval_tree_loads_with_the_official_split(tmp_path, name):
    writer, train_ids, test_ids = RETRIEVAL[name]
    root = writer(tmp_path)
    assert root.parent == tmp_path and (root / mrd.MARKER).is_file()
    train, test = raw(name, root, "train"), raw(name, root, "test")
    assert sorted(np.unique(train.labels)) == train_ids and sorted(np.unique(test.labels)) == test_ids
    assert len(train) == len(test) == 4 * 5 and all(np.bincount(train.labels)[train_ids] == 5)
    fit, val = raw(name, root, "fit"), raw(name, root, "val")  # val: the last training classes
    assert sorted(np.unique(val.labels)) == train_ids[2:] and sorted(np.unique(fit.labels)) == train_ids[:2]
    if name != "cars196":  # CUB_200_2011/ and Stanford_Online_Products/ are found under their parent too
        assert len(raw(name, tmp_path, "train")) == 20
    check_images([str(p) for p in train.paths + test.paths])  # what the preflight decodes
    item = build_dataset(name, root, "test")[0]  # the recipe's transform: 224 px
    assert item["image"].shape == (3, 224, 224) and item["label"] == test_ids[0]
    found = sizes(train.paths + test.paths)
    long, short = [max(s) for s in found], [min(s) for s in found]
    if name == "cub200":  # CUB's photos: at most 500 px wide, most about 500x375
        assert 470 <= min(long) and max(long) <= 500 and 330 <= min(short) and max(short) <= 390
    if name == "cars196":  # Stanford Cars: landscape, 300-800 px wide
        assert all(w > h for w, h in found) and 300 <= min(long) and max(long) <= 800
        assert max(long) - min(long) > 100  # varied
    if name == "sop":
        assert 300 <= min(long) and max(long) <= 700


def test_cub_index_files(tmp_path):
    root = mrd.write_cub(tmp_path, classes=2, per_class=3)
    lines = lambda f: (root / f).read_text().splitlines()  # noqa: E731
    assert len(lines("classes.txt")) == 200 and lines("classes.txt")[0].startswith("1 001.")
    assert len(lines("images.txt")) == len(lines("image_class_labels.txt")) == len(lines("train_test_split.txt")) == 12
    first = lines("images.txt")[0].split()
    assert first[0] == "1" and (root / "images" / first[1]).is_file() and first[1].startswith("001.")
    assert {line.split()[1] for line in lines("image_class_labels.txt")} == {"1", "100", "101", "200"}
    x, y, w, h = map(float, lines("bounding_boxes.txt")[0].split()[1:])
    with Image.open(root / "images" / first[1]) as img:
        assert 0 <= x and 0 <= y and x + w <= img.width and y + h <= img.height


def test_cars_annotations_are_the_official_struct(tmp_path):
    from scipy.io import loadmat

    root = mrd.write_cars(tmp_path, classes=3, per_class=2)
    mat = loadmat(root / "cars_annos.mat")
    ann = mat["annotations"]
    assert ann.shape == (1, 12) and set(ann.dtype.names) == {"relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2",
                                                               "bbox_y2", "class", "test"}
    assert ann[0, 0]["relative_im_path"][0] == "car_ims/000001.jpg" and mat["class_names"].shape == (1, 196)
    assert sorted({int(a["class"][0, 0]) for a in ann[0]}) == [1, 50, 98, 99, 148, 196]
    with Image.open(root / "car_ims" / "000001.jpg") as img:
        assert 1 <= int(ann[0, 0]["bbox_x1"][0, 0]) < int(ann[0, 0]["bbox_x2"][0, 0]) <= img.width


def test_sop_index_files(tmp_path):
    root = mrd.write_sop(tmp_path, classes=2, per_class=2)
    train = (root / "Ebay_train.txt").read_text().splitlines()
    test = (root / "Ebay_test.txt").read_text().splitlines()
    assert train[0] == test[0] == "image_id class_id super_class_id path"
    assert [r.split()[:3] for r in train[1:]] == [["1", "1", "1"], ["2", "1", "1"], ["3", "11318", "12"],
                                                  ["4", "11318", "12"]]
    assert test[1].split()[:3] == ["5", "11319", "1"] and test[1].split()[3].startswith("bicycle_final/")
    assert train[3].split()[3].startswith("toaster_final/") and train[3].split()[3].endswith("_0.JPG")
    assert len((root / "Ebay_info.txt").read_text().splitlines()) == 1 + 8


def test_cifar100_pickles_are_the_official_python_version(tmp_path):
    root = mrd.write_cifar100(tmp_path, classes=5, per_class=10)
    with open(root / "train", "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")  # how torchvision reads them
    assert set(entry) == {"data", "fine_labels", "coarse_labels", "filenames", "batch_label"}
    assert entry["data"].dtype == np.uint8 and entry["data"].shape == (50, 3072)
    train, test = raw("cifar100", tmp_path, "train"), raw("cifar100", root, "test")
    assert len(train) == 50 and len(test) == 5 * 2 and sorted(set(train.labels)) == [0, 25, 50, 74, 99]
    assert len(train.class_names) == 100 and train.class_names[:2] == ["apple", "aquarium_fish"]
    assert torch.equal(train.images, torch.as_tensor(entry["data"].reshape(-1, 3, 32, 32)))
    assert sorted(set(raw("cifar100", root, "val").labels)) == sorted(set(train.labels))  # stratified val
    x = build_dataset("cifar100", root, "fit")[0]["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    default = mrd.write_cifar100(tmp_path / "full")
    assert len(raw("cifar100", default, "train")) == 1000 and len(set(raw("cifar100", default, "test").labels)) == 100


def test_coco_tree_loads_as_the_detection_recipe_reads_it(tmp_path):
    root = mrd.write_coco(tmp_path)
    data = {s: build_detection_dataset("coco", root, s, **COCO_OPTIONS) for s in ("train", "val", "test")}
    assert len(data["train"]) == len(data["val"]) == 16 and data["test"].ann_file == data["val"].ann_file
    doc = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    assert [c["id"] for c in doc["categories"]] == [1, 31, 59, 90]  # COCO's ids, gaps included
    assert data["train"].num_classes == 4 and data["train"].class_names == ["person", "handbag", "pizza",
                                                                             "toothbrush"]
    for split in ("train", "val"):
        ds = data[split]
        per_image = [len(ds.coco.imgToAnns[i]) for i in ds.image_ids]
        assert 1 <= min(per_image) and max(per_image) <= 4 and sum(per_image) > len(per_image)
        leads = {c: len(ds.coco.getImgIds(catIds=[c])) for c in ds.cat_ids}
        assert min(leads.values()) >= 4  # every category in at least per_class images
        for image_id in ds.image_ids:
            info = ds.coco.imgs[image_id]
            assert info["file_name"] == f"{image_id:012d}.jpg"
            short, long = sorted((info["width"], info["height"]))
            assert long == 640 and 426 <= short <= 482  # about 640x480, some portrait
            for ann in ds.coco.imgToAnns[image_id]:
                x, y, w, h = ann["bbox"]
                assert w > 0 and h > 0 and x + w <= info["width"] and y + h <= info["height"]
    item = data["train"][0]
    info = data["train"].coco.imgs[data["train"].image_ids[0]]
    assert item["image"].shape == (3, info["height"], info["width"])
    assert item["target"]["boxes"].shape[1] == 4 and set(item["target"]["labels"].tolist()) <= {1, 2, 3, 4}
    assert not set(data["train"].image_ids) & set(data["val"].image_ids)


def test_the_real_detection_recipe_resolves_over_the_tree(tmp_path):
    """detection_coco.yaml's own dataset options read the tree (no option copied here)."""
    from importlib import resources

    from benchmarks.runner.config import resolve_config

    cfg = resolve_config("detection", str(resources.files("benchmarks") / "configs" / "detection_coco.yaml"))
    root = mrd.write_coco(tmp_path, classes=2, per_class=1)
    ds = build_detection_dataset(cfg["dataset"]["name"], root, "test", **cfg["dataset"]["options"])
    assert len(ds) == 2 and ds.num_classes == 2


@pytest.mark.parametrize("name", mrd.DATASETS)
def test_deterministic_by_seed(tmp_path, name):
    kwargs = {"classes": 2, "per_class": 2}
    first = digest(mrd.WRITERS[name](tmp_path / "a", seed=3, **kwargs))
    again = digest(mrd.WRITERS[name](tmp_path / "b", seed=3, **kwargs))
    other = digest(mrd.WRITERS[name](tmp_path / "c", seed=4, **kwargs))
    assert first == again and len(first) > 3
    assert set(first) == set(other) or name in ("sop", "coco")  # (product and image ids are drawn too)
    assert first != other


def test_a_folder_is_rewritten_only_if_generated(tmp_path):
    root = mrd.write_cub(tmp_path, classes=2, per_class=2)
    assert len(raw("cub200", root, "train")) == 4
    mrd.write_cub(tmp_path, classes=3, per_class=2)  # its own folder: replaced, no stale image left
    assert len(list((root / "images").rglob("*.jpg"))) == 12
    real = tmp_path / "other" / "cars196"
    real.mkdir(parents=True)
    (real / "cars_annos.mat").write_bytes(b"a real copy")
    with pytest.raises(FileExistsError, match="not written by"):
        mrd.write_cars(tmp_path / "other")
    assert (real / "cars_annos.mat").read_bytes() == b"a real copy"


def test_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="expected 1 to 100 classes in 1-100, got 101"):
        mrd.write_cub(tmp_path, classes=101)
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        mrd.write_sop(tmp_path, per_class=0)
    with pytest.raises(ValueError, match="COCO has 80 categories"):
        mrd.write_coco(tmp_path, classes=81)
    assert not any(tmp_path.iterdir())  # nothing written


def test_random_weights_load_from_where_torchvision_caches_them(tmp_path, monkeypatch):
    from torchvision.models import get_model

    from retrieval.models import create_model
    from retrieval.models.torchvision_backbones import cached_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    [path] = mrd.write_random_weights(tmp_path / "th", ["resnet18"], weights="IMAGENET1K_V1")
    assert path == tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert torch.hub.get_dir() == str(tmp_path / "th" / "hub") and cached_weights_path("resnet18") == str(path)
    state = torch.load(path, weights_only=True)
    model = get_model("resnet18", weights=None)
    model.load_state_dict(state)  # strict: every key of torchvision's model
    loaded = create_model("resnet18", pretrained=True, weights="IMAGENET1K_V1").backbone.body.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert mrd.write_random_weights(tmp_path / "again", "resnet18", "DEFAULT")[0].read_bytes() != b""
    again = torch.load(tmp_path / "again" / "hub" / "checkpoints" / "resnet18-f37072fd.pth", weights_only=True)
    assert all(torch.equal(v, state[k]) for k, v in again.items())  # deterministic (DEFAULT is V1 here)
    with pytest.raises(ValueError, match="no torchvision weights"):
        mrd.write_random_weights(tmp_path, ["resnet20"])


def test_the_command_writes_the_trees_and_the_recipes_weights(tmp_path, capsys, monkeypatch):
    out, home = tmp_path / "data", tmp_path / "th"
    monkeypatch.setattr(mrd, "recipe_weights", lambda: {"resnet18": ["IMAGENET1K_V1"]})  # resnet50: 100 MB
    assert mrd.main(["--out", str(out), "--datasets", "cub200,coco", "--classes", "3", "--per-class", "2",
                     "--torch-home", str(home)]) == 0
    printed = capsys.readouterr().out
    assert f"--data-root {out / 'CUB_200_2011'}" in printed and "train 6 images / 3 classes" in printed
    assert f"--data-root {out / 'coco'}" in printed and "3 categories" in printed
    assert (home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").is_file() and "TORCH_HOME" in printed
    assert sorted(p.name for p in out.iterdir()) == ["CUB_200_2011", "coco"]
    assert mrd.main(["--out", str(out), "--datasets", "cub,coco"]) == 2
    assert capsys.readouterr().err.startswith("error: --datasets: unknown dataset(s) ['cub']")
