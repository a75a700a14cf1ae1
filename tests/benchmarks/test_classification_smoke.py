"""End-to-end: the classification suite on tiny embedded data with every method, and on a
miniature CIFAR-10 tree; the tables state the data and which epoch's accuracy they hold."""

import json

import pandas as pd
import pytest
import yaml

from benchmarks import run
from retrieval.data import DatasetNotFoundError
from user_error import user_error

METHODS = ["none", "kd", "at", "rkd", "crd", "hmat", "hmat+kd"]
TINY = {
    "pretrain": None, "workers": 1,  # not the default's generated-data pretraining, one job at a time
    "dataset": {"name": "digits-cls", "options": {"per_class": 20, "test_fraction": 0.5}},  # 100 train, 100 test
    "teacher": {"arch": "wrn_16_2", "train": {"epochs": 2, "milestones": [1]}},
    "student": {"arch": "resnet20", "train": {"epochs": 1, "milestones": []}},
    "train": {"batch_size": 25},
    "methods": {"crd": {"num_negatives": 16, "feat_dim": 8}},
    "seeds": [0, 1],
    "run": METHODS,  # every method, not only the default's run list
}


def _config(tmp_path, extra=None, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TINY, **(extra or {})}))
    return path


def _run(tmp_path, config, *extra):
    argv = ["--suite", "classification", "--config", str(config), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]
    assert run.main(argv) == 0


def test_every_method_writes_runs_and_leaderboard(tmp_path, capsys):
    _run(tmp_path, _config(tmp_path))
    dest = tmp_path / "results" / "classification" / "digits-cls"
    runs = pd.read_csv(dest / "runs.csv")
    assert sorted(runs["method"].unique()) == sorted(METHODS + ["teacher"])
    assert len(runs) == 2 * 8  # seven students and the teacher, for each of two seeds
    for col in ["top1", "top5", "seed", "commit", "config_hash", "train_seconds", "epoch", "select", "teacher",
                "student"]:
        assert col in runs.columns, col
    assert runs["top1"].between(0, 1).all() and (runs["top1"] <= runs["top5"]).all()
    assert set(runs["select"]) == {"last"} and set(runs.loc[runs["method"] != "teacher", "epoch"]) == {1}
    board = pd.read_csv(dest / "leaderboard.csv")
    assert set(board["method"]) == set(METHODS + ["teacher"]) and (board["seeds"] == 2).all()
    kd = runs[runs["method"] == "kd"]["top1"]
    assert board.set_index("method").loc["kd", "top1_mean"] == pytest.approx(100 * kd.mean(), abs=1e-3)
    md = (dest / "leaderboard.md").read_text()
    assert "| teacher | wrn_16_2 |" in md and "| none |" in md and "| hmat+kd |" in md
    assert "**last epoch**" in md and "not CIFAR" in md and "Command: `python -m benchmarks.run" in md
    saved = json.loads(next((dest / "runs").glob("hmat+kd-*-s1.json")).read_text())
    assert {"loss/task", "loss/pos1", "loss/cha4", "loss/kd"} <= set(saved["history"][0])
    out = capsys.readouterr().out
    assert "classification: digits-cls" in out and "not CIFAR" in out
    assert "loaded from cache" not in out

    _run(tmp_path, _config(tmp_path), "--methods", "none", "--seeds", "0")  # the teacher is cached
    assert "loaded from cache" in capsys.readouterr().out
    assert len(pd.read_csv(dest / "runs.csv")) == 16  # same run ids replaced, not duplicated


def test_best_epoch_selection_is_stated(tmp_path):
    cfg = _config(tmp_path, {"train": {"batch_size": 25, "select": "best"}, "seeds": [0]})
    _run(tmp_path, cfg, "--methods", "none")
    dest = tmp_path / "results" / "classification" / "digits-cls"
    assert "**best epoch** on the validation split" in (dest / "leaderboard.md").read_text()
    assert set(pd.read_csv(dest / "runs.csv")["select"]) == {"best"}


def test_miniature_cifar10_end_to_end(tmp_path, cifar10_tree):
    tree = cifar10_tree  # 20 training and 6 test images of 3 classes
    cfg = _config(tmp_path, {"dataset": {"name": "cifar10", "options": {}}, "seeds": [0],
                             "train": {"batch_size": 8}})
    _run(tmp_path, cfg, "--data-root", str(tree.parent), "--methods", "none,kd", "--epochs", "1")
    dest = tmp_path / "results" / "classification" / "cifar10"
    runs = pd.read_csv(dest / "runs.csv")
    assert set(runs["method"]) == {"teacher", "none", "kd"}
    md = (dest / "leaderboard.md").read_text()
    assert "CIFAR-10" in md and "not CIFAR" not in md
    data_line = next(line for line in md.splitlines() if line.startswith("Data:"))
    assert str(tmp_path) not in data_line  # the data note names no path of this machine


def test_missing_cifar_names_the_expected_files(tmp_path, capsys):
    argv = ["--suite", "classification", "--config", str(_config(tmp_path)), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--dataset", "cifar100",
            "--data-root", str(tmp_path / "none"), "--device", "cpu"]  # CIFAR's preset asks for a GPU
    err = user_error(capsys, run.main, argv)
    for name in ("cifar-100-python", "train", "test", "meta"):
        assert name in err
    with pytest.raises(DatasetNotFoundError):  # --debug: the loader's own exception
        run.main(argv + ["--debug"])


def test_rerun_reuses_finished_runs_with_the_same_rows(tmp_path, monkeypatch):
    config = _config(tmp_path, {"seeds": [0]})
    _run(tmp_path, config, "--methods", "none,kd")
    runs = tmp_path / "results" / "classification" / "digits-cls" / "runs.csv"
    first = pd.read_csv(runs).set_index("method")["top1"]
    from retrieval.engine import trainer
    epochs = []
    real = trainer.make_train_loader
    monkeypatch.setattr(trainer, "make_train_loader", lambda *a: epochs.append(1) or real(*a))
    _run(tmp_path, config, "--methods", "none,kd")
    assert epochs == []  # teacher cached, both students finished under this commit
    pd.testing.assert_series_equal(pd.read_csv(runs).set_index("method")["top1"], first)


def test_the_default_setup_on_tiny_generated_data_reports_intervals(tmp_path, capsys):
    """The default's shape (synthetic-cls, backbones pretrained on another draw of the generator,
    fixed initial weights, one schedule for both roles) on 10 classes: the gains carry their 95%
    intervals, paired by seed."""
    tiny = {"dataset": {"name": "synthetic-cls", "options": {"classes": 10, "train_per_class": 6,
                                                             "test_per_class": 4}},
            "pretrain": {"dataset": {"name": "synthetic-cls", "options": {"seed": 1, "train_per_class": 6}},
                         "train": {"epochs": 1}},
            "teacher": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
            "student": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
            "train": {"batch_size": 20}, "seeds": [0, 1], "workers": 1}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    _run(tmp_path, path, "--methods", "none,kd")
    out = capsys.readouterr().out
    assert "pretrained the teacher backbone small_cnn_xs on 60 images of 10 classes" in out
    dest = tmp_path / "results" / "classification" / "synthetic-cls"
    board = pd.read_csv(dest / "leaderboard.csv").set_index("method")
    kd = board.loc["kd"]
    assert kd["gain_seeds"] == 2 and kd["gain_ci_low"] <= kd["gain_vs_none"] <= kd["gain_ci_high"]
    assert kd["gain_ci_halfwidth"] == pytest.approx((kd["gain_ci_high"] - kd["gain_ci_low"]) / 2)
    runs = pd.read_csv(dest / "runs.csv").pivot(index="seed", columns="method", values="top1")
    assert 100 * (runs["kd"] - runs["none"]).mean() == pytest.approx(kd["gain_vs_none"], abs=1e-3)
    md = (dest / "leaderboard.md").read_text()
    assert "Resolving power" in md and "generated fine-grained images (not CIFAR)" in md


def test_one_teacher_for_every_seed(tmp_path):
    """``teacher_seed``: the students of every seed distil from the one teacher of that seed, trained
    once; a student of the teacher's own seed is the same run as without the option, one of another
    seed is not (its teacher differs)."""
    base = {"seeds": [0, 1], "run": ["kd"], "replicates": "conditional"}  # one teacher: the conditional design
    shared = tmp_path / "results_shared"
    _run(tmp_path, _config(tmp_path, {**base, "teacher_seed": 0}, "shared.yaml"), "--out", str(shared))
    dest = shared / "classification" / "digits-cls"
    runs = pd.read_csv(dest / "runs.csv")
    assert runs.loc[runs["method"] == "teacher", "seed"].tolist() == [0]
    assert sorted(runs.loc[runs["method"] == "kd", "seed"]) == [0, 1]
    assert [p.name[-8:] for p in (tmp_path / "cache" / "teachers" / "digits-cls").glob("*.pt")] == ["seed0.pt"]
    board = pd.read_csv(dest / "leaderboard.csv").set_index("method")
    assert board.loc["teacher", "seeds"] == 1 and board.loc["kd", "seeds"] == 2
    md = (dest / "leaderboard.md").read_text()
    assert "one teacher (seed 0) for every seed" in md
    teacher_row = next(line for line in md.splitlines() if line.startswith("| teacher |"))
    assert "±" not in teacher_row and "| kd |" in md and "±" in md.split("| kd |")[1].splitlines()[0]  # one run: no spread

    _run(tmp_path, _config(tmp_path, base, "own.yaml"))  # a teacher per seed (the same cache: seed 0's is reused)
    own = pd.read_csv(tmp_path / "results" / "classification" / "digits-cls" / "runs.csv")
    students = own[own["method"] == "kd"]
    assert set(students["run_id"]).isdisjoint(runs["run_id"])  # the option is part of a student run's identity
    assert own.loc[own["method"] == "teacher", "run_id"].iloc[0] in set(runs["run_id"])  # the same teacher of seed 0

    def kd_losses(folder, seed):
        path = next((folder / "classification" / "digits-cls" / "runs").glob(f"kd-*-s{seed}.json"))
        return [epoch["loss/kd"] for epoch in json.loads(path.read_text())["history"]]

    assert kd_losses(shared, 0) == kd_losses(tmp_path / "results", 0)
    assert kd_losses(shared, 1) != kd_losses(tmp_path / "results", 1)
