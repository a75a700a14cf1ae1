"""The comparison of a fresh run with the committed table (benchmarks.report.committed)."""

import shutil

import pandas as pd
import yaml
from tiny_retrieval import tiny_retrieval

from benchmarks import run
from benchmarks.report.committed import committed_line, compare_rows


def _rows(values, hashes=("h0", "h1"), methods=("none", "at")):
    return pd.DataFrame([{"run_id": f"{m}-{h}-s0", "teacher": "t", "student": "s", "method": m, "seed": 0,
                          "config_hash": h, "recall@1": v, "map@r": v / 2}
                         for m, h, v in zip(methods, hashes, values)])


def test_equal_rows_are_counted_and_a_difference_is_located():
    same = compare_rows(_rows([0.5, 0.6]), _rows([0.5, 0.6]))
    assert (same["paired"], same["equal"], same["unpaired"]) == (2, 2, 0)
    off = compare_rows(_rows([0.5, 0.61]), _rows([0.5, 0.6]))
    assert (off["paired"], off["equal"]) == (2, 1)
    diff, metric, method = off["largest"]
    assert abs(diff - 0.01) < 1e-12 and metric == "recall@1" and method == "at"


def test_rows_of_another_config_have_no_twin():
    c = compare_rows(_rows([0.5, 0.6], hashes=("h0", "other")), _rows([0.5, 0.6]))
    assert (c["paired"], c["unpaired"]) == (1, 1)


def test_line_is_silent_for_the_committed_folder_itself(tmp_path):
    dest = tmp_path / "results" / "retrieval" / "synthetic"
    dest.mkdir(parents=True)
    _rows([0.5, 0.6]).to_csv(dest / "runs.csv", index=False)
    assert committed_line(tmp_path / "results", dest, ["none", "at"], [0], results=tmp_path / "results") is None
    assert committed_line(tmp_path / "runs", tmp_path / "runs" / "retrieval" / "synthetic", ["none"], [0],
                          results=tmp_path / "results") is None  # no fresh table


def test_a_rerun_into_runs_says_it_reproduces_the_committed_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_retrieval(seeds=[0], workers=1)))
    common = ["--suite", "retrieval", "--config", "tiny.yaml", "--methods", "none,at", "--no-progress"]
    assert run.main(common + ["--out", "results", "--cache-dir", "c1"]) == 0
    assert "have a committed twin" not in capsys.readouterr().out  # written into results itself
    assert run.main(common + ["--cache-dir", "c2"]) == 0  # default --out: runs/, trained again from scratch
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "retrieval" / "synthetic" / "runs.csv").is_file()
    assert "results/retrieval/synthetic/runs.csv: 3 of 3 rows have a committed twin; all 3 reproduce" in out
    committed = tmp_path / "results" / "retrieval" / "synthetic" / "runs.csv"
    table = pd.read_csv(committed)
    table.loc[table["method"] == "at", "recall@1"] += 0.02
    table.to_csv(committed, index=False)
    shutil.rmtree(tmp_path / "runs")
    assert run.main(common + ["--cache-dir", "c2"]) == 0
    assert "1 differ (largest: 2 points of recall@1, at)" in capsys.readouterr().out


def test_the_default_output_is_ignored_by_git():
    """The quick start writes where git ignores, so it leaves the checkout clean."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    assert run.DEFAULT_OUT == "runs"
    if not (repo / ".git").exists():
        return  # an exported tree without git: nothing to ask
    probe = subprocess.run(["git", "check-ignore", "-q", "runs/retrieval/synthetic/runs.csv"], cwd=repo)
    assert probe.returncode == 0
