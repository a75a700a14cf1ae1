"""End-to-end: the retrieval and classification suites on a miniature copy of texlive-fonts-extra."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from benchmarks import run
from fonts_fixture import make_root
from retrieval.data import fonts as fontdata
from tiny_retrieval import tiny_retrieval
from user_error import user_error


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("fonts"))


def _config(tmp_path, cfg) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_retrieval_suite_runs_on_fonts_with_full_replicates(tmp_path, root, capsys):
    fontdata._cached_table.cache_clear()
    cfg = tiny_retrieval(seeds=[0, 1], workers=1, run=["none", "hmat"])
    cfg["dataset"] = {"name": "fonts", "options": {"per_class": 6, "test_per_class": 8,
                                                   "cache_dir": str(tmp_path / "glyphs")}}
    argv = ["--suite", "retrieval", "--config", _config(tmp_path, cfg), "--dataset", "fonts", "--data-root", str(root),
            "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert run.main(argv) == 0
    out = capsys.readouterr()
    assert "texlive-fonts-extra: 24 fonts" in out.out + out.err  # the data line says what was read
    runs = pd.read_csv(tmp_path / "results" / "retrieval" / "fonts" / "runs.csv")
    assert sorted(runs["method"].unique()) == ["hmat", "none", "teacher"] and len(runs) == 6
    assert (runs["replicates"] == "full").all() and runs["recall@1"].between(0, 1).all()
    board = (tmp_path / "results" / "retrieval" / "fonts" / "leaderboard.md").read_text()
    assert "Replicates: full" in board
    assert list((tmp_path / "glyphs").glob("fonts-32px-*.npz"))  # the rendered glyphs are cached


def test_missing_fonts_are_one_line_before_any_work(tmp_path, capsys):
    cfg = tiny_retrieval(seeds=[0], workers=1, run=["none"])
    err = user_error(capsys, run.main, ["--suite", "retrieval", "--config", _config(tmp_path, cfg), "--dataset",
                                        "fonts", "--data-root", str(tmp_path), "--out", str(tmp_path / "results"),
                                        "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert "apt-get install texlive-fonts-extra" in err and str(tmp_path) in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_classification_suite_runs_on_the_characters_of_fonts(tmp_path, root, capsys):
    fontdata._cached_table.cache_clear()
    cfg = {"pretrain": None, "workers": 1, "seeds": [0, 1], "run": ["none", "kd"],
           "dataset": {"name": "fonts-cls", "options": {"cache_dir": str(tmp_path / "glyphs")}},
           "teacher": {"arch": "small_cnn_s", "train": {"epochs": 1}},
           "student": {"arch": "small_cnn_xs", "train": {"epochs": 1}}, "train": {"batch_size": 62}}
    argv = ["--suite", "classification", "--config", _config(tmp_path, cfg), "--dataset", "fonts-cls", "--data-root",
            str(root), "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert run.main(argv) == 0
    runs = pd.read_csv(tmp_path / "results" / "classification" / "fonts-cls" / "runs.csv")
    assert sorted(runs["method"].unique()) == ["kd", "none", "teacher"] and len(runs) == 6
    assert (runs["replicates"] == "full").all()
    board = (tmp_path / "results" / "classification" / "fonts-cls" / "leaderboard.md").read_text()
    assert "62 characters" in board  # the data line under the table says what was learned
