"""The validation-only tuner: every grid cell trains once per seed; the table holds the mean."""

import numpy as np
import pandas as pd
import pytest
import yaml
from tiny_retrieval import tiny_retrieval
from user_error import user_error

from benchmarks import tune
from benchmarks.runner.config import resolve_config
from benchmarks.runner.results_io import read_header
from benchmarks.runner.tune import grid as tuning

TINY = tiny_retrieval(teacher={"train": {"epochs": 1}}, student={"train": {"epochs": 1}}, workers=1)


def test_grid_cells_times_seeds(tmp_path, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}, "at": {"beta": [1, 2]}}}))
    assert tune.main(["--grid", str(grid), "--config", str(config), "--seeds", "0,1", "--out", str(tmp_path / "r"),
                      "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    path = tmp_path / "r" / "retrieval" / "synthetic" / "tuning.csv"
    table = pd.read_csv(path, comment="#")
    assert len(table) == 3 and (table["seeds"] == 2).all()
    assert table["val_recall@1"].between(0, 1).all()
    at = table[table["method"] == "at"]
    assert sorted(at["opt.beta"]) == [1, 2] and at["val_map@r"].is_monotonic_decreasing  # the select_metric
    assert "python -m benchmarks.tune" in read_header(path)["command"]
    assert "best on validation" in capsys.readouterr().out
    # every cell's run is tracked (a folder per cell and seed), its final validation metrics in place of test ones
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted((tmp_path / "r" / "retrieval" / "synthetic" / "tuning" / "tensorboard").iterdir())
    assert sorted(r.name.split("-")[0] + r.name[-3:] for r in runs) == ["at-s0", "at-s0", "at-s1", "at-s1",
                                                                       "none-s0", "none-s1"]
    last = {}
    for run in runs:
        events = EventAccumulator(str(run)).Reload()
        tags = set(events.Tags()["scalars"])
        assert {"loss/task", "train/lr", "val/recall@1", "val/map@r"} <= tags
        assert not any(tag.startswith("test/") for tag in tags)
        last[run.name] = events.Scalars("val/map@r")[-1].value
    none = [value for name, value in last.items() if name.startswith("none-")]
    assert sum(none) / 2 == pytest.approx(table.loc[table["method"] == "none", "val_map@r"].item(), abs=1e-4)


def test_a_metric_the_tuner_cannot_rank_by_fails_before_any_training(tmp_path, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(tiny_retrieval(train={"select_metric": "r_precision"}, workers=1)))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}}}))
    err = user_error(capsys, tune.main, ["--grid", str(grid), "--config", str(config), "--out", str(tmp_path / "r"),
                                         "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert "ranks cells by recall@1 or map@r; the config selects on 'r_precision'" in err
    assert not (tmp_path / "c").exists()  # nothing was pretrained or trained


def test_test_after_scores_on_test_only_after_the_choice_is_written(tmp_path, monkeypatch, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}, "at": {"beta": [1, 2]}}}))
    out = tmp_path / "r" / "retrieval" / "synthetic"
    args = ["--grid", str(grid), "--config", str(config), "--seeds", "0", "--cache-dir", str(tmp_path / "c"),
            "--no-progress"]
    assert tune.main(args + ["--out", str(tmp_path / "plain")]) == 0
    seen = []
    evaluate = tuning.suite.evaluate_test

    def spy(model, dataset, *a, **k):
        if k.get("desc") == "tuning test":
            seen.append((dataset.split, (out / "tuning.csv").exists()))
        return evaluate(model, dataset, *a, **k)

    monkeypatch.setattr(tuning.suite, "evaluate_test", spy)
    assert tune.main(args + ["--out", str(tmp_path / "r"), "--test-after"]) == 0
    assert len(seen) == 3 and all(split == "test" and written for split, written in seen)
    plain = pd.read_csv(tmp_path / "plain" / "retrieval" / "synthetic" / "tuning.csv", comment="#")
    kept = pd.read_csv(out / "tuning.csv", comment="#")
    pd.testing.assert_frame_equal(kept.drop(columns="train_seconds"), plain.drop(columns="train_seconds"))
    scored = pd.read_csv(out / "tuning_test.csv", comment="#")
    assert len(scored) == 3 and scored["test_recall@1"].between(0, 1).all()
    assert scored.groupby("method")["chosen"].sum().eq(1).all()
    header = (out / "tuning_test.csv").read_text()
    rho = float(header.split("val_map@r vs test_recall@1 (all 3 cells): ")[1].split("\n")[0])
    ranks_val, ranks_test = scored["val_map@r"].rank(), scored["test_recall@1"].rank()
    assert rho == pytest.approx(float(np.corrcoef(ranks_val, ranks_test)[0, 1]), abs=1e-3)
    assert "read after the choice" in capsys.readouterr().out


def test_rank_correlations_hand_cases():
    table = pd.DataFrame({"method": ["a"] * 4, "val": [0.1, 0.2, 0.3, 0.4],
                          "test_recall@1": [0.5, 0.6, 0.7, 0.9], "test_map@r": [0.4, 0.3, 0.2, 0.1]})
    rho = tuning.rank_correlations(table, "val")
    assert rho["val vs test_recall@1 (all 4 cells)"] == pytest.approx(1.0)
    assert rho["val vs test_map@r (all 4 cells)"] == pytest.approx(-1.0)
    assert rho["val vs test_map@r (a, 4 cells)"] == pytest.approx(-1.0)


def test_folds_cross_validate_on_class_disjoint_blocks_of_the_training_classes(tmp_path, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}, "at": {"beta": [1]}}}))
    assert tune.main(["--grid", str(grid), "--config", str(config), "--seeds", "0", "--folds", "2",
                      "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-progress",
                      "--test-after"]) == 0
    out = tmp_path / "r" / "retrieval" / "synthetic"
    table = pd.read_csv(out / "tuning.csv", comment="#")
    assert (table["folds"] == 2).all() and (table["seeds"] == 1).all()
    teachers = sorted((tmp_path / "c" / "teachers" / "synthetic").glob("*.pt"))
    assert len(teachers) == 2  # one teacher per fold (each trains on its own fit classes)
    assert len(list((tmp_path / "c" / "pretrained").rglob("*.pt"))) == 2  # teacher + student backbones, shared
    assert len(pd.read_csv(out / "tuning_test.csv", comment="#")) == 2
    said = capsys.readouterr().out
    assert "fold 0 seed 0" in said and "fold 1 seed 0" in said and "2 folds x seeds [0]" in said
    # the folds' val classes: disjoint blocks that cover the training classes
    cfg = resolve_config("retrieval", str(config))
    vals = [set(tuning.tune_data(tuning.fold_config(cfg, k, 2), tmp_path / "c")["val"].labels) for k in range(2)]
    fit0 = set(tuning.tune_data(tuning.fold_config(cfg, 0, 2), tmp_path / "c")["fit"].labels)
    assert vals[0].isdisjoint(vals[1]) and vals[0] | vals[1] == set(range(10)) and fit0 == vals[1]


def test_bad_folds_fail_before_any_training(tmp_path, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}}}))
    base = ["--grid", str(grid), "--config", str(config), "--out", str(tmp_path / "r"), "--cache-dir",
            str(tmp_path / "c"), "--no-progress"]
    assert "--folds 1: expected 0" in user_error(capsys, tune.main, base + ["--folds", "1"])
    # 10 training classes: at most 5 folds of 2
    assert "cannot make these folds" in user_error(capsys, tune.main, base + ["--folds", "20"])
    assert not (tmp_path / "c" / "teachers").exists()


TINY_CLASSIFICATION = {
    "dataset": {"name": "synthetic-cls", "options": {"classes": 10, "train_per_class": 6, "test_per_class": 2,
                                                     "val_fraction": 0.5}},
    "pretrain": None, "teacher": {"arch": "small_cnn_xs", "train": {"epochs": 2}},
    "student": {"arch": "small_cnn_xs", "train": {"epochs": 2}}, "train": {"batch_size": 10},
    "seeds": [0], "workers": 1, "threads": 1,
}


def test_classification_tunes_on_val_images_never_seen_in_training(tmp_path, monkeypatch):
    """A select: last role, which trains on the whole train split in a benchmark run, here trains on
    fit and is scored on val at its last epoch; tuning.csv holds top-1/top-5 on val."""
    from benchmarks.runner.tasks import classification

    trained = []
    train = classification.train

    def spy(method, train_set, val_set, tcfg, **kw):
        trained.append((train_set.split, val_set.split if val_set is not None else None, tcfg.eval_every))
        return train(method, train_set, val_set, tcfg, **kw)

    monkeypatch.setattr(classification, "train", spy)
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY_CLASSIFICATION))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}, "kd": {"temperature": [2, 4]}}}))
    assert tune.main(["--suite", "classification", "--grid", str(grid), "--config", str(config), "--out",
                      str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    assert trained and all(t == ("fit", "val", 2) for t in trained)  # teacher and every cell: last epoch on val
    table = pd.read_csv(tmp_path / "r" / "classification" / "synthetic-cls" / "tuning.csv", comment="#")
    assert {"val_top1", "val_top1_std", "val_top5"} <= set(table.columns) and len(table) == 3
    assert table["val_top1"].between(0, 1).all() and (table["val_top5"] >= table["val_top1"]).all()


def test_test_after_and_folds_are_refused_outside_retrieval(tmp_path, capsys):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY_CLASSIFICATION))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}}}))
    err = user_error(capsys, tune.main, ["--suite", "classification", "--grid", str(grid), "--config", str(config),
                                         "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                                         "--test-after"])
    assert "for the retrieval suite only" in err and not (tmp_path / "c").exists()


def test_a_shared_teacher_is_trained_once_for_every_seed(tmp_path):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump({**TINY_CLASSIFICATION, "teacher_seed": 0, "replicates": "conditional"}))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}}}))
    assert tune.main(["--suite", "classification", "--grid", str(grid), "--config", str(config), "--seeds", "0,1,2",
                      "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    teachers = sorted(p.name.rsplit("-", 1)[-1] for p in (tmp_path / "c" / "teachers").rglob("*.pt"))
    assert teachers == ["seed0.pt"]
    table = pd.read_csv(tmp_path / "r" / "classification" / "synthetic-cls" / "tuning.csv", comment="#")
    assert table["seeds"].tolist() == [3]


def test_a_diverged_cell_is_recorded_last_and_never_chosen(tmp_path, monkeypatch, capsys):
    from benchmarks.runner.tasks import get_suite
    from retrieval.engine.trainer import NonFiniteLossError

    suite = get_suite("retrieval")  # the suite object the jobs look up
    real = suite.train_student

    def diverging(cfg, data, teacher, method, options, seed, *args, **kwargs):
        if method == "at" and options.get("beta") == 50 and seed == 1:
            raise NonFiniteLossError("at s1: loss term 'at' is nan at epoch 1, step 2")
        return real(cfg, data, teacher, method, options, seed, *args, **kwargs)

    monkeypatch.setattr(suite, "train_student", diverging)
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}, "at": {"beta": [1, 50]}, "rkd": {"distance_weight": [50]}}}))
    assert tune.main(["--grid", str(grid), "--config", str(config), "--seeds", "0,1", "--out", str(tmp_path / "r"),
                      "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "at {'beta': 50} seed 1: diverged (at s1: loss term 'at' is nan" in out
    table = pd.read_csv(tmp_path / "r" / "retrieval" / "synthetic" / "tuning.csv", comment="#")
    at = table[table["method"] == "at"].reset_index(drop=True)
    assert list(at["opt.beta"]) == [1, 50] and list(at["diverged"]) == [0, 1]  # the diverged cell last
    assert np.isnan(at.loc[1, "val_map@r"]) and not np.isnan(at.loc[0, "val_map@r"])  # one seed is not a score
    assert "at: {'beta': 1.0}" in out  # the choice among the cells that never diverged
