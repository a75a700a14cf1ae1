"""``--dry-run``: every job of a recipe for a few steps, measured, evaluated on a bounded sample,
written apart from real results; the pieces (bounded splits, the projection) against hand counts."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from benchmarks import run
from benchmarks.runner import dry_run
from benchmarks.runner.dry_run import LabelledSubset, bounded, dry_config, project
from retrieval.data.base import TensorImageDataset
from tiny_retrieval import tiny_retrieval
from user_error import user_error

TINY = tiny_retrieval(methods={"crd": {"num_negatives": 16, "feat_dim": 8}}, seeds=[0, 1], run=["none", "crd"],
                      teacher={"train": {"epochs": 3}}, student={"train": {"epochs": 4, "eval_every": 2}})


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dry")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    argv = ["--suite", "retrieval", "--config", str(config), "--cache-dir", str(tmp / "cache"), "--no-progress",
            "--dry-run", "--dry-steps", "3", "--dry-eval", "12", "--out", str(tmp / "dry")]
    assert run.main(argv) == 0
    return tmp


def test_every_job_runs_its_steps_and_is_measured(dry):
    table = pd.read_csv(dry / "dry" / "retrieval" / "synthetic" / "dry_run.csv")
    assert list(table["job"]) == ["setup teacher", "setup student", "teacher", "none", "crd"]
    assert table["dry_run"].all() and (table["seed"] == 0).all()  # the first seed only
    assert (table["steps"] == 3).all() and (table["batch"] == 20).all()
    assert (table["s_per_step"] > 0).all() and (table["peak_rss_mb"] > 100).all()
    np.testing.assert_allclose(table["images_per_s"], table["batch"] / table["s_per_step"])
    students = table[table["job"].isin(["none", "crd"])]
    assert students["value"].between(0, 1).all()  # recall@1 on the bounded test sample
    assert (students["eval_images"] == 2 * 12).all()  # 12 of the 20 val images and of the 100 test images
    # a whole epoch is 80 fit images / batch 20 = 4 steps; the projection counts the recipe's epochs
    assert (table.loc[2:, "steps_per_epoch"] == 4).all()
    assert list(table["epochs"]) == [1, 1, 3, 4, 4]
    assert (table["projected_total_s"].iloc[2:] == 2 * table["projected_s"].iloc[2:]).all()  # two seeds
    assert (table["projected_s"].iloc[3:] >= 4 * 4 * table["s_per_step"].iloc[3:]).all()


def test_nothing_goes_to_the_results_or_the_cache(dry):
    assert not (dry / "results").exists()
    assert not (dry / "cache" / "teachers").exists() and not (dry / "cache" / "pretrained").exists()
    assert not (dry / "cache" / "students").exists()
    md = (dry / "dry" / "retrieval" / "synthetic" / "dry_run.md").read_text()
    assert "Projected wall time of the full recipe" in md and "| crd | 20 |" in md


def test_dry_config_runs_one_short_epoch_and_keeps_the_recipe():
    dry = dry_config(TINY, 2)
    assert dry["train"]["max_steps"] == 2 and "max_steps" not in TINY["train"]
    for role in ("teacher", "student"):
        assert dry[role]["train"]["epochs"] == 1 and dry[role]["train"]["milestones"] == []
    assert dry["pretrain"]["train"]["epochs"] == 1 and TINY["student"]["train"]["epochs"] == 4


def test_projection_by_hand():
    recipe = {"train": {"eval_every": 3}, "student": {"train": {"epochs": 10}}, "teacher": {}}
    m = {"s_per_step": 0.5, "steps_per_epoch": 40, "val_seconds": 2.0, "test_seconds": 3.0,
         "eval_sizes": {"val": 10, "test": 20}, "full_sizes": {"val": 100, "test": 1000}}
    # 10 epochs x 40 steps x 0.5 s; val at epochs 3, 6, 9, 10: 4 x 100 images at 5 images/s; test 1000 at 6.67/s
    assert project(recipe, "student", m) == pytest.approx(200 + 4 * 20 + 150)
    assert project(recipe, "setup", {**m, "s_per_step": None}) is None


def test_bounded_keeps_whole_small_classes():
    labels = np.repeat(np.arange(30), 7)
    data = TensorImageDataset(torch.arange(len(labels), dtype=torch.uint8).reshape(-1, 1, 1, 1).expand(-1, 3, 2, 2)
                              .contiguous(), labels)
    sub = bounded(data, 40)
    assert isinstance(sub, LabelledSubset) and len(sub) == 40
    counts = np.bincount(sub.labels)
    assert counts.max() == 4 and (counts[counts > 0] >= 4).sum() == 10  # ten whole groups of four
    for i in range(len(sub)):
        item = sub[i]
        assert item["label"] == sub.labels[i] and item["index"] == i
        assert int(item["image"][0, 0, 0]) == sub.indices[i]  # the image of that original item
    assert bounded(data, 1000) is data


def test_bounded_coco_scores_only_its_images(tmp_path):
    from retrieval.detection.dataset import CocoDetectionDataset
    from retrieval.detection.evaluate import coco_ap
    from PIL import Image
    import json

    images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 8} for i in range(1, 7)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0}
            for i in range(1, 7)]
    (tmp_path / "a.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                 "categories": [{"id": 1, "name": "x"}]}))
    for im in images:
        Image.new("RGB", (8, 8)).save(tmp_path / im["file_name"])
    data = CocoDetectionDataset(tmp_path / "a.json", tmp_path)
    sub = bounded(data, 3)
    assert len(sub) == 3 and set(sub.coco.imgs) == set(sub.image_ids) and len(sub.coco.anns) == 3
    assert len(data) == 6 and len(data.coco.anns) == 6  # the full set is untouched
    perfect = [{"image_id": i, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 1.0} for i in sub.image_ids]
    assert coco_ap(sub.coco, perfect)["ap"] == pytest.approx(1.0)
    assert coco_ap(data.coco, perfect)["ap"] < 0.6  # the same boxes against every image: half missed


def test_dry_run_bad_input(tmp_path, capsys):
    err = user_error(capsys, run.main, ["--config", "benchmarks/configs/cub200.yaml", "--data-root",
                                        str(tmp_path / "nowhere"), "--dry-run", "--device", "cpu"])
    assert "cub200" in err and "nowhere" in err
    assert "only apply to a dry run" in user_error(capsys, run.main, ["--dry-steps", "3"])
    assert "never writes into the results" in user_error(capsys, run.main, ["--dry-run", "--out", "results"])
    err = user_error(capsys, run.main, ["--config", "benchmarks/configs/cub200.yaml", "--dry-run", "--dry-batch", "7",
                                        "--device", "cpu", "--data-root", str(tmp_path)])
    assert err.startswith("error: --dry-batch: train.batch_size:") and "batch_size 7 is not a multiple of m_per_class 5" in err

