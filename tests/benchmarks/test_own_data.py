"""A user's own image folder end to end: ``--dataset folder --data-root DIR`` gets the folder recipe
(benchmarks/configs/folder.yaml), the preflight fits batch and sampler to its splits and finds a
corrupt file before any training, and the run writes a leaderboard."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from benchmarks import run

METHODS = ["none", "at"]


def _pattern(cls: int, k: int, h: int, w: int) -> np.ndarray:
    """An RGB image of class ``cls``: a class colour and stripe period, plus per-image noise."""
    rng = np.random.default_rng(1000 * cls + k)
    colour = np.array([(37 * cls) % 256, (91 * cls + 60) % 256, (53 * cls + 120) % 256], dtype=np.float64)
    stripes = (np.arange(w)[None, :] // (2 + cls % 5) % 2)[..., None] * 60.0
    img = colour + stripes + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def small_png_folder(root, classes: int = 10, per_class: int = 6):
    """``classes`` folders of ``per_class`` 16x16 RGB PNGs."""
    for c in range(classes):
        (root / f"class_{c:02d}").mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(_pattern(c, k, 16, 16)).save(root / f"class_{c:02d}" / f"img{k}.png")
    return root


def mixed_jpeg_folder(root, classes: int = 20):
    """``classes`` folders of 4-7 JPEGs of sizes 20-120 px from RGB, greyscale, CMYK and RGBA sources
    (the RGBA ones kept as PNG: JPEG has no alpha); sub-folders in some classes."""
    sizes = [(20, 20), (120, 45), (33, 90), (64, 48), (101, 77), (25, 60), (80, 80)]
    n = 0
    for c in range(classes):
        folder = root / f"{chr(ord('a') + c)}_species"
        folder.mkdir(parents=True)
        for k in range(4 + c % 4):
            w, h = sizes[n % len(sizes)]
            rgb = Image.fromarray(_pattern(c, k, h, w))
            kind = n % 5
            target = folder / ("more" if k == 3 else "") / f"photo_{k}"
            target.parent.mkdir(exist_ok=True)
            if kind == 0:
                rgb.save(target.with_suffix(".jpg"), quality=85)
            elif kind == 1:
                rgb.convert("L").save(target.with_suffix(".jpeg"))
            elif kind == 2:
                rgba = np.dstack([np.asarray(rgb), np.full((h, w), 255, np.uint8)])
                rgba[: h // 3, :, 3] = 0  # a transparent band
                Image.fromarray(rgba).save(target.with_suffix(".png"))
            elif kind == 3:
                rgb.convert("CMYK").save(target.with_suffix(".JPG"))
            else:
                rgb.save(target.with_suffix(".jpg"), quality=60, progressive=True)
            n += 1
    return root


TINY_PRETRAIN = {"dataset": {"options": {"classes": 20, "per_class": 10}}, "train": {"epochs": 1, "batch_size": 50}}
"""The recipe's pretraining on the generated set, shrunk: 1 epoch on 10 classes x 10 images."""


def _overlay(tmp_path, pretrain) -> str:
    """Tiny settings for the test (the command line below sets epochs, seeds, methods and workers)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"pretrain": pretrain, "threads": 1, "cost": {"repeats": 1, "warmup": 0}}))
    return path


@pytest.fixture
def tiny_overlay(tmp_path):
    return _overlay(tmp_path, None)


def _run(tmp_path, data_root, overlay, seeds="0"):
    argv = ["--suite", "retrieval", "--dataset", "folder", "--data-root", str(data_root), "--config", str(overlay),
            "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--seeds", seeds, "--methods", ",".join(METHODS), "--workers", "1", "--no-progress"]
    return run.main(argv)


def _check_results(tmp_path, seeds: int) -> dict:
    dest = tmp_path / "results" / "retrieval" / "folder"
    board = pd.read_csv(dest / "leaderboard.csv")
    assert set(board["method"]) == {"teacher", *METHODS}
    assert (board["seeds"] == seeds).all()
    assert board["recall@1_mean"].between(0, 100).all()
    runs = pd.read_csv(dest / "runs.csv")
    assert len(runs) == seeds * (1 + len(METHODS)) and set(runs["dataset"]) == {"folder"}
    saved = json.loads(next((dest / "runs").glob("at-*-s0.json")).read_text())
    return saved["config"]


def test_ten_class_folder_of_small_pngs(tmp_path, capsys):
    root = small_png_folder(tmp_path / "pngs")  # fit 3 classes x 6, val 2 x 6, test 5 x 6
    start = time.perf_counter()
    assert _run(tmp_path, root, _overlay(tmp_path, TINY_PRETRAIN), seeds="0,1") == 0
    cfg = _check_results(tmp_path, seeds=2)
    said = capsys.readouterr()
    assert "student.train.batch_size 100 -> 15: the fit split has 3 classes x m_per_class 5" in said.out + said.err
    assert cfg["dataset"]["options"]["image_size"] == 64  # the folder recipe was applied
    assert cfg["train"]["select"] == "last"
    assert cfg["student"]["train"]["batch_size"] == 15
    assert cfg["pretrain"]["dataset"]["options"]["classes"] == 20  # the recipe's pretraining, shrunk
    # on the generated set, per role and replicate (full replicates: each seed pretrains on its own draw)
    assert len(list((tmp_path / "cache" / "pretrained" / "folder").glob("*.pt"))) == 4
    assert time.perf_counter() - start < 60


def test_twenty_class_folder_of_mixed_size_jpegs(tmp_path, tiny_overlay, capsys):
    root = mixed_jpeg_folder(tmp_path / "photos")
    assert _run(tmp_path, root, tiny_overlay) == 0
    cfg = _check_results(tmp_path, seeds=1)
    said = capsys.readouterr()
    # fit: 8 classes of 4-7 images (smallest 4): m 5 -> 4, batch 8 x 4 = 32
    assert "student.train.m_per_class 5 -> 4" in said.out + said.err
    assert cfg["student"]["train"]["m_per_class"] == 4 and cfg["student"]["train"]["batch_size"] == 32


def test_a_corrupt_jpeg_stops_the_run_before_any_training(tmp_path, tiny_overlay, capsys):
    root = small_png_folder(tmp_path / "pngs")
    bad = root / "class_07" / "broken.jpg"
    good = root / "class_07" / "good.jpg"
    Image.fromarray(_pattern(7, 99, 64, 64)).save(good)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated, as by an interrupted copy
    start = time.perf_counter()
    try:
        code = _run(tmp_path, root, tiny_overlay)
        said = capsys.readouterr()
        message = said.out + said.err
        assert code != 0
    except Exception as exc:  # noqa: BLE001 - the preflight's error, whichever way the runner reports it
        message = str(exc)
    assert "broken.jpg" in message and "good.jpg" not in message
    assert time.perf_counter() - start < 20
    assert not (tmp_path / "cache" / "teachers").exists()  # found before the first teacher
