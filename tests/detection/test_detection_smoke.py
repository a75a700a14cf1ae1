"""The detection suite end to end on a tiny config: generated scenes -> COCO json -> teacher and
students -> COCOeval -> runs.csv and leaderboard."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from benchmarks import run
from user_error import user_error

TINY = {
    "dataset": {"options": {"size": 64, "max_objects": 2, "min_height": 10, "max_height": 20,
                            "train_images": 16, "val_images": 8, "test_images": 8}},
    "detector": {"fpn_channels": 8, "representation_size": 32, "rpn_pre_nms_top_n_train": 50,
                 "rpn_post_nms_top_n_train": 20, "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20,
                 "box_batch_size_per_image": 16},
    # the default sizes the teacher's and the student's FPN and box head apart; here both are tiny
    "teacher": {"arch": "small_cnn_xs", "train": {"epochs": 1}, "detector": {"fpn_channels": 8, "representation_size": 32}},
    "student": {"arch": "small_cnn_xs", "train": {"epochs": 1}, "detector": {"fpn_channels": 8, "representation_size": 32}},
    "train": {"batch_size": 8},
    "methods": {"hmat": {"block_elements": 65536}},
    "workers": 1,
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny_detection.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_detection_suite_writes_ap_tables(tmp_path, tiny_config, capsys):
    argv = ["--suite", "detection", "--config", str(tiny_config), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--seeds", "0"]
    assert run.main(argv) == 0
    dest = tmp_path / "results" / "detection" / "mnist-scenes"
    runs = pd.read_csv(dest / "runs.csv")
    assert set(runs["method"]) == {"teacher", "none", "at", "hmat", "mimic"}
    for col in ("ap", "ap50", "ap75"):
        assert runs[col].between(0, 1).all()
    assert (runs["ap50"] >= runs["ap"]).all()
    # cost of the backbone + FPN: here teacher and student share an architecture, so every row has the same
    from retrieval.cost import count_parameters
    from retrieval.detection import create_detector
    fpn = create_detector("small_cnn_xs", 10, fpn_channels=8, fpn_stages=[2, 3, 4]).detector.backbone
    assert (runs["params"] == count_parameters(fpn)).all() and (runs["macs"] > 0).all()
    board = pd.read_csv(dest / "leaderboard.csv")
    assert {"ap_mean", "ap50_mean", "ap75_mean", "gain_vs_none"} <= set(board.columns)
    assert "COCO box AP" in (dest / "leaderboard.md").read_text()
    saved = json.loads(next((dest / "runs").glob("mimic-*.json")).read_text())
    assert {"loss/det/loss_classifier", "loss/det/loss_objectness", "loss/mimic", "val/ap"} <= set(saved["history"][0])
    assert list((tmp_path / "cache" / "detection").glob("mnist-scenes-*/annotations/instances_test.json"))
    # a second run reuses the cached teacher and scenes and gives the same teacher row
    assert run.main(argv[:-2] + ["--seeds", "0", "--methods", "none"]) == 0
    assert "loaded from cache" in capsys.readouterr().out
    again = pd.read_csv(dest / "runs.csv")
    teacher = again[again["method"] == "teacher"]
    assert len(teacher) == 1 and teacher["ap"].iloc[0] == runs.loc[runs["method"] == "teacher", "ap"].iloc[0]


def test_data_root_without_annotations_names_the_expected_file(tmp_path, tiny_config, capsys):
    argv = ["--suite", "detection", "--config", str(tiny_config), "--dataset", "coco", "--data-root",
            str(tmp_path / "nowhere"), "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress"]
    assert "instances_train.json" in user_error(capsys, run.main, argv)  # the scene options do not apply to coco


def test_two_seeds_from_pretrained_backbones_report_gain_intervals(tmp_path, capsys):
    """A ``pretrain`` section (the embedded tracks' stand-in for ImageNet backbones): each role's
    backbone is pretrained once as a classifier on generated images, every detector of that role
    starts from it (FPN and heads new), and two seeds give paired gains with their 95% intervals."""
    import torch

    from benchmarks.runner.config import resolve_config
    from benchmarks.runner.replicates import replicate_config
    from benchmarks.runner.tasks import detection, get_task
    from benchmarks.runner.tasks.pretrain import pretrained_path

    tiny = {**TINY, "pretrain": {"dataset": {"name": "synthetic-cls", "options": {
        "seed": 1, "classes": 10, "train_per_class": 4, "test_per_class": 2}},
        "train": {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "batch_size": 20}},
        "seeds": [0, 1]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    argv = ["--suite", "detection", "--config", str(path), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--methods", "none,at"]
    assert run.main(argv) == 0
    out = capsys.readouterr().out  # one file per architecture and replicate: the student (same arch) reuses it
    assert out.count("pretrained the teacher backbone small_cnn_xs on 40 images of 10 classes") == 2
    assert "pretrained the student" not in out
    board = pd.read_csv(tmp_path / "results" / "detection" / "mnist-scenes" / "leaderboard.csv").set_index("method")
    at = board.loc["at"]
    assert at["gain_seeds"] == 2 and at["gain_ci_low"] <= at["gain_vs_none"] <= at["gain_ci_high"]

    cfg = replicate_config(resolve_config("detection", str(path)), 1)  # replicate 1's backbone and data
    data = get_task("detection").prepare_data(cfg, tmp_path / "cache", log=lambda *a: None)
    saved = torch.load(pretrained_path(cfg, "student", tmp_path / "cache"), weights_only=True)
    body = detection._network(cfg, data, "student").detector.backbone.body.state_dict()
    assert body.keys() == saved.keys() and all(torch.equal(body[k], saved[k]) for k in saved)
