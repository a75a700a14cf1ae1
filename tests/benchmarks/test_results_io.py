"""Result files are written atomically and runs.csv upserts keep every other row."""

import os

import pandas as pd
import pytest

from benchmarks import results_io
from benchmarks.results_io import atomic_write_text, upsert_rows


def test_upsert_replaces_same_run_id_and_keeps_others(tmp_path):
    path = tmp_path / "runs.csv"
    upsert_rows(path, [{"run_id": "a", "x": 1}, {"run_id": "b", "x": 2}])
    table = upsert_rows(path, [{"run_id": "b", "x": 3}, {"run_id": "c", "x": 4}])
    on_disk = pd.read_csv(path).sort_values("run_id")
    assert on_disk["run_id"].tolist() == ["a", "b", "c"] and on_disk["x"].tolist() == [1, 3, 4]
    assert len(table) == 3


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results_io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
