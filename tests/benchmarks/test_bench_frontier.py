"""bench_frontier: measured and projected half-widths against minutes, from runs already made."""

import json
import math

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from benchmarks import bench_frontier


def _folder(path, gains: dict, seeds, wall: float, timing="timing.json"):
    """A result folder: none at 0.80 + a per-seed offset, each method at none + its gain (points)."""
    path.mkdir(parents=True)
    rows = []
    for i, seed in enumerate(seeds):
        base = 0.80 + 0.01 * i
        rows.append({"method": "teacher", "seed": seed, "recall@1": 0.95, "config_hash": "t"})
        rows.append({"method": "none", "seed": seed, "recall@1": base, "config_hash": "n"})
        for method, values in gains.items():
            rows.append({"method": method, "seed": seed, "recall@1": base + values[i] / 100, "config_hash": method})
    pd.DataFrame(rows).to_csv(path / "runs.csv", index=False)
    (path / timing).write_text(json.dumps({"wall_seconds": wall}))
    return path


def test_half_width_and_minutes_follow_the_measured_sd_and_time(tmp_path):
    gains = {"at": [0.5, 1.5, 1.0, 0.0], "rkd": [0.2, 0.3, 0.1, 0.2]}
    folder = _folder(tmp_path / "a", gains, [0, 1, 2, 3], wall=400.0)
    runs, wall, _ = bench_frontier.read_design(str(folder), tmp_path, "retrieval", "a")
    table = bench_frontier.frontier("retrieval", "a", runs, wall, "a", "recall@1", target=0.5, budget=900)
    sd_at = pd.Series(gains["at"]).std(ddof=1)
    measured = table[table["measured"]].iloc[0]
    assert measured["replicates"] == 4 and measured["minutes"] == pytest.approx(400 / 60)
    assert measured["max_halfwidth"] == pytest.approx(scipy_stats.t.ppf(0.975, 3) * sd_at / 2)
    assert measured["widest"] == "at" and measured["teacher_minus_none"] == pytest.approx(100 * (0.95 - 0.815))
    m10 = table.set_index("replicates").loc[10]
    assert m10["minutes"] == pytest.approx(400 * 10 / 4 / 60)
    assert m10["max_halfwidth"] == pytest.approx(scipy_stats.t.ppf(0.975, 9) * sd_at / math.sqrt(10))
    first_meeting = table[table["meets_target"]]["replicates"].min()
    assert bench_frontier.halfwidth(sd_at, first_meeting) <= 0.5 < bench_frontier.halfwidth(sd_at, first_meeting - 1)


def test_runs_on_disjoint_replicates_pool_and_shared_ones_are_refused(tmp_path):
    a = _folder(tmp_path / "a", {"at": [1.0, 0.0]}, [0, 1], wall=100.0, timing="bench_default_run.json")
    b = _folder(tmp_path / "b", {"at": [2.0, 1.0]}, [2, 3], wall=120.0)
    runs, wall, _ = bench_frontier.read_design(f"{a}+{b}", tmp_path, "retrieval", "ab")
    assert runs["seed"].nunique() == 4 and wall == 220.0
    c = _folder(tmp_path / "c", {"at": [2.0, 1.0]}, [1, 2], wall=120.0)
    with pytest.raises(Exception, match="share replicates"):
        bench_frontier.read_design(f"{a}+{c}", tmp_path, "retrieval", "ac")


def test_command_writes_the_frontier_and_refuses_a_folder_without_timing(tmp_path, capsys):
    folder = _folder(tmp_path / "runs" / "a", {"at": [0.5, 1.5, 1.0]}, [0, 1, 2], wall=300.0)
    out = tmp_path / "out"
    assert bench_frontier.main(["--suite", "retrieval", "--design", f"a={folder}", "--out", str(out)]) == 0
    text = (out / "retrieval" / "frontier.md").read_text()
    assert "| a | 3 | measured | 5.0 |" in text and "projected" in text
    (folder / "timing.json").unlink()
    assert bench_frontier.main(["--suite", "retrieval", "--design", f"a={folder}", "--out", str(out)]) == 2
    assert "timing" in capsys.readouterr().err
