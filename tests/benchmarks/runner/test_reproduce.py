"""``python -m benchmarks.run --reproduce RUN_ID`` reruns one saved row and finds it identical."""

import json
import re

import pandas as pd
import pytest
import yaml

from benchmarks import run
from tiny_retrieval import tiny_retrieval
from user_error import user_error

TINY = tiny_retrieval(run=["none", "at"], seeds=[0, 1])


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    argv = ["--config", str(config), "--out", str(root / "results"), "--cache-dir", str(root / "cache"),
            "--no-progress"]
    assert run.main(argv) == 0
    return root


def _reproduce(root, run_id, *extra):
    return run.main(["--reproduce", run_id, "--out", str(root / "results"), "--cache-dir", str(root / "cache"),
                     "--no-progress", *extra])


def test_every_row_has_its_saved_config(tiny_results):
    dest = tiny_results / "results" / "retrieval" / "synthetic"
    runs = pd.read_csv(dest / "runs.csv")
    for run_id in runs["run_id"]:  # teacher rows included
        saved = json.loads((dest / "runs" / f"{run_id}.json").read_text())
        assert saved["row"]["run_id"] == run_id and saved["config"]["dataset"]["options"]["classes"] == 20
        assert {"torch", "numpy", "pytorch-metric-learning"} <= set(saved["environment"]["packages"])
        assert saved["environment"]["device"] == "cpu" and saved["row"]["commit"]


def test_reproduce_a_student_row_gives_the_same_row(tiny_results, capsys):
    dest = tiny_results / "results" / "retrieval" / "synthetic"
    runs_before = (dest / "runs.csv").read_text()
    run_id = next(p.stem for p in (dest / "runs").glob("at-*-s1.json"))
    assert _reproduce(tiny_results, run_id) == 0
    out = capsys.readouterr().out
    assert "IDENTICAL" in out and run_id in out and "recall@1" in out
    assert "the cached one the row was trained against" in out
    assert (dest / "runs.csv").read_text() == runs_before  # the saved results are left alone


def test_reproduce_a_teacher_row_retrains_it(tiny_results, capsys):
    dest = tiny_results / "results" / "retrieval" / "synthetic"
    run_id = next(p.stem for p in (dest / "runs").glob("teacher-*-s0.json"))
    assert _reproduce(tiny_results, run_id) == 0
    out = capsys.readouterr().out
    assert "IDENTICAL" in out and "loaded from cache" not in out


def test_a_changed_saved_row_is_reported(tiny_results, capsys, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_results / "results", copy / "results")
    path = next((copy / "results" / "retrieval" / "synthetic" / "runs").glob("none-*-s0.json"))
    saved = json.loads(path.read_text())
    saved["row"]["recall@1"] += 0.05
    path.write_text(json.dumps(saved))
    assert run.main(["--reproduce", path.stem, "--out", str(copy / "results"), "--cache-dir",
                     str(tiny_results / "cache"), "--no-progress"]) == 1
    assert "DIFFERENT: recall@1" in capsys.readouterr().out


def test_bad_run_id_is_a_clear_error(tiny_results, capsys):
    def error_of(*argv):
        return user_error(capsys, lambda a: _reproduce(tiny_results, *a), argv)

    assert re.search(r"no saved run 'hmat-0000000000-s0'.*run_id column.*ls ", error_of("hmat-0000000000-s0"))
    assert "bad run id" in error_of("../../etc")
    assert "drop" in error_of("none-x-s0", "--seeds", "3")


def test_a_row_of_a_shared_teacher_reuses_that_teacher(tmp_path, capsys):
    config = tmp_path / "shared.yaml"
    config.write_text(yaml.safe_dump({**tiny_retrieval(run=["at"], seeds=[1]), "teacher_seed": 0,
                                      "replicates": "conditional"}))
    assert run.main(["--config", str(config), "--out", str(tmp_path / "results"), "--cache-dir",
                     str(tmp_path / "cache"), "--no-progress"]) == 0
    run_id = next(p.stem for p in (tmp_path / "results" / "retrieval" / "synthetic" / "runs").glob("at-*-s1.json"))
    capsys.readouterr()
    assert _reproduce(tmp_path, run_id) == 0
    out = capsys.readouterr().out
    assert "IDENTICAL" in out and "the cached one the row was trained against" in out  # seed 0's, not retrained
