"""The suites write the cost columns; ``benchmarks.cost_backfill`` adds the same counts to a table
made without them, leaving the accuracy columns untouched."""

import json

import pandas as pd
import pytest
import yaml

from benchmarks import cost_backfill, run
from retrieval.cost import COST_COLUMNS
from tiny_retrieval import tiny_retrieval

TINY = tiny_retrieval(teacher={"train": {"epochs": 1}}, student={"train": {"epochs": 1}},
                      cost={"repeats": 2, "warmup": 1}, run=["at"], seeds=[0])
COUNTS = ["params", "macs", "weights_bytes", "cost_threads"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cost")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert run.main(["--config", str(config), "--out", str(root / "results"), "--cache-dir", str(root / "cache"),
                     "--no-progress"]) == 0
    return root / "results" / "retrieval" / "synthetic"


def test_suite_rows_and_leaderboard_carry_the_cost(tiny_run):
    runs = pd.read_csv(tiny_run / "runs.csv")
    assert set(COST_COLUMNS) <= set(runs.columns) and runs[list(COST_COLUMNS)].notna().all().all()
    teacher, student = (runs[runs["method"] == m].iloc[0] for m in ("teacher", "at"))
    assert student["macs"] < teacher["macs"] and student["params"] < teacher["params"]
    assert (runs["cost_threads"] == 1).all()  # the default config's threads
    board = pd.read_csv(tiny_run / "leaderboard.csv").set_index("method")
    assert board.loc["teacher", "macs_ratio"] == 1.0
    assert board.loc["at", "macs_ratio"] == pytest.approx(student["macs"] / teacher["macs"], abs=1e-4)  # csv: 4 decimals
    assert board.loc["at", "params_ratio"] == pytest.approx(student["params"] / teacher["params"], abs=1e-4)
    assert "MACs ratio" in (tiny_run / "leaderboard.md").read_text()
    assert (tiny_run / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(next((tiny_run / "runs").glob("at-*-s0.json")).read_text())
    assert saved["row"]["macs"] == student["macs"] and "latency_ms_b1" not in saved["row"]  # timings vary
    assert saved["cost"]["latency_ms_b1"] > 0


def test_backfill_adds_the_same_counts_and_keeps_accuracy(tiny_run, tmp_path, capsys):
    import shutil

    folder = tmp_path / "retrieval" / "synthetic"
    shutil.copytree(tiny_run, folder)
    with_cost = pd.read_csv(folder / "runs.csv")
    without = with_cost.drop(columns=list(COST_COLUMNS))
    without.to_csv(folder / "runs.csv", index=False)
    for path in (folder / "runs").glob("*.json"):  # as saved before the cost columns existed
        saved = json.loads(path.read_text())
        saved.pop("cost")
        saved["row"] = {k: v for k, v in saved["row"].items() if k not in COST_COLUMNS}
        path.write_text(json.dumps(saved))
    (folder / "pareto.png").unlink()

    assert cost_backfill.main([str(folder), "--repeats", "1", "--warmup", "0"]) == 0
    filled = pd.read_csv(folder / "runs.csv")
    pd.testing.assert_frame_equal(filled[without.columns], without)  # accuracy and every other column as before
    pd.testing.assert_frame_equal(filled[COUNTS], with_cost[COUNTS])  # the counts the suite measured
    assert (filled["latency_ms_b1"] > 0).all()
    md = (folder / "leaderboard.md").read_text()
    assert "Cost columns added afterwards by `python -m benchmarks.cost_backfill" in md
    assert md.count("Command: `python -m benchmarks.run") == 1  # the original notes are kept
    assert (folder / "pareto.png").exists() and (folder / "pairwise.csv").exists()
    saved = json.loads(next((folder / "runs").glob("teacher-*-s0.json")).read_text())
    assert saved["row"]["macs"] == with_cost.loc[with_cost["method"] == "teacher", "macs"].iloc[0]
    assert saved["cost_backfill"]["command"].startswith("python -m benchmarks.cost_backfill")

    assert cost_backfill.main([str(folder)]) == 0  # nothing left to fill
    assert "already has cost columns" in capsys.readouterr().out
    assert (folder / "leaderboard.md").read_text() == md


def test_backfill_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no .*runs.csv"):
        cost_backfill.main([str(tmp_path / "nowhere")])
