"""The generated scenes in the cache: a damaged or missing file of a split (an image cut short, a changed
byte, a json cut short) is moved aside with one line naming it and the split is generated again, the same
files as a clean cache."""

from __future__ import annotations

import pytest

from retrieval.detection.data import mnist_scenes, scenes_root, SCENE_DEFAULTS
from retrieval.utils.cache_files import DAMAGED

OPTIONS = {"val_images": 6}


def _files(root) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and DAMAGED not in p.name}


@pytest.fixture
def clean(tmp_path):
    data = mnist_scenes(tmp_path / "clean", "val", **OPTIONS)
    assert len(data) == 6
    root = scenes_root(tmp_path / "clean", {**SCENE_DEFAULTS, **OPTIONS})
    return _files(root)


@pytest.mark.parametrize("damage", ["image cut short", "image byte changed", "image missing", "json cut short",
                                    "json not coco"])
def test_a_damaged_scene_file_is_remade(tmp_path, capsys, clean, damage):
    cache = tmp_path / "cache"
    mnist_scenes(cache, "val", **OPTIONS)
    root = scenes_root(cache, {**SCENE_DEFAULTS, **OPTIONS})
    image, ann = root / "images" / "val" / "000002.png", root / "annotations" / "instances_val.json"
    if damage == "image cut short":
        image.write_bytes(image.read_bytes()[:200])
    elif damage == "image byte changed":
        raw = bytearray(image.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        image.write_bytes(bytes(raw))
    elif damage == "image missing":
        image.unlink()
    elif damage == "json cut short":
        ann.write_text(ann.read_text()[:50])
    else:
        ann.write_text('{"images": 3}')
    capsys.readouterr()
    data = mnist_scenes(cache, "val", **OPTIONS)
    err = capsys.readouterr().err.strip().splitlines()
    damaged = ann if damage.startswith("json") else image
    assert len(err) == 1 and err[0].startswith(f"cache: {damaged} is "), err
    if damage != "image missing":
        assert len(list(damaged.parent.glob(damaged.name + DAMAGED + "*"))) == 1  # moved aside, not deleted
    assert _files(root) == clean and len(data) == 6 and data[2]["image"].shape == (3, 96, 96)
    mnist_scenes(cache, "val", **OPTIONS)
    assert capsys.readouterr().err == ""  # whole again: read as it is
