"""End-to-end: ``torchrun --nproc_per_node=2 -m benchmarks.run`` for the classification and
detection suites on tiny data (CPU, gloo).

Checks the multi-process plumbing, not the numbers (tests/engine/test_distributed_classification.py
and test_distributed_detection.py compare 2 processes with 1): rank 0 alone writes the tables, one
row per run, one run JSON each, the cached teacher (its training-state file removed) and the
student checkpoints; the config's ``workers: 2`` is forced to 1 with one log line; the detection
scenes are generated once; a second identical command loads the teacher from the cache and reuses
the finished student runs with the same numbers.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLASSIFICATION = {
    "pretrain": None, "workers": 1,  # not the default's generated-data pretraining, one job at a time
    "dataset": {"name": "digits-cls", "options": {"per_class": 12, "test_fraction": 0.5}},  # 60 train, 60 test
    "teacher": {"arch": "resnet20", "train": {"epochs": 1, "milestones": []}},
    "student": {"arch": "resnet20", "train": {"epochs": 1, "milestones": []}},
    "train": {"batch_size": 20},
    "seeds": [0],
    "workers": 2,
    "cost": {"repeats": 1, "warmup": 0},
}
DETECTION = {
    "dataset": {"options": {"size": 64, "max_objects": 2, "min_height": 10, "max_height": 20,
                            "train_images": 16, "val_images": 8, "test_images": 8}},
    "detector": {"fpn_channels": 8, "representation_size": 32, "rpn_pre_nms_top_n_train": 50,
                 "rpn_post_nms_top_n_train": 20, "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20,
                 "box_batch_size_per_image": 16},
    "teacher": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
    "student": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
    "train": {"batch_size": 8},
    "seeds": [0],
    "workers": 2,
    "cost": {"repeats": 1, "warmup": 0},
}
CASES = {"classification": (CLASSIFICATION, "digits-cls", "top1", "none,kd"),
         "detection": (DETECTION, "mnist-scenes", "ap", "none,mimic")}


def _torchrun(tmp_path, suite, config, methods):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "benchmarks.run", "--suite", suite, "--config", str(config), "--methods", methods,
           "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("suite", list(CASES))
def test_torchrun_two_processes_rank0_writes_once(tmp_path, suite):
    cfg, dataset, primary, methods = CASES[suite]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = _torchrun(tmp_path, suite, config, methods)
    assert out.count("workers 2 -> 1") == 1  # logged by rank 0 only
    assert out.count(f"# {suite}: {dataset}") == 1  # the leaderboard printed once
    assert out.count(f"data {dataset}") == 1
    assert out.count("teacher seed 0: test") == 1 and "loaded from cache" not in out
    dest = tmp_path / "results" / suite / dataset
    runs = pd.read_csv(dest / "runs.csv")
    expected = sorted(methods.split(",") + ["teacher"])
    assert sorted(runs["method"]) == expected  # one row each
    assert runs[primary].between(0, 1).all()
    assert sorted(p.name.split("-")[0] for p in (dest / "runs").glob("*.json")) == expected
    assert sorted(pd.read_csv(dest / "leaderboard.csv")["method"]) == expected
    cache = tmp_path / "cache"
    assert len(list((cache / "teachers").rglob("*.pt"))) == 1  # the teacher's state file was removed
    students = cache / "students" / suite / dataset
    assert len(list(students.glob("*.state.pt"))) == 2 and len(list(students.glob("*-s0.pt"))) == 2
    if suite == "detection":  # the scenes were written once, by rank 0
        assert len(list((cache / "detection").glob("mnist-scenes-*/images/train/*.png"))) == 16
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind

    again = _torchrun(tmp_path, suite, config, methods)
    assert again.count("loaded from cache") == 1 and "trained in" not in again
    rerun = pd.read_csv(dest / "runs.csv")
    assert len(rerun) == len(expected)
    assert rerun.set_index("run_id")[primary].to_dict() == runs.set_index("run_id")[primary].to_dict()
