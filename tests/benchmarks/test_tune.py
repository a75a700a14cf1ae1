"""The validation-only tuner: every grid cell trains once per seed; the table holds the mean."""

import pandas as pd
import pytest
import yaml

from benchmarks import tune
from benchmarks.results_io import read_header
from tiny_retrieval import tiny_retrieval

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


def test_a_metric_the_tuner_cannot_rank_by_fails_before_any_training(tmp_path):
    config, grid = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(tiny_retrieval(train={"select_metric": "r_precision"}, workers=1)))
    grid.write_text(yaml.safe_dump({"grid": {"none": {}}}))
    with pytest.raises(SystemExit, match="ranks cells by recall@1 or map@r; the config selects on 'r_precision'"):
        tune.main(["--grid", str(grid), "--config", str(config), "--out", str(tmp_path / "r"),
                   "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert not (tmp_path / "c").exists()  # nothing was pretrained or trained
