"""The Pareto plot: points per method, the front, and the PNG from a small runs.csv."""

import pandas as pd
import pytest

from benchmarks import pareto
from benchmarks.report.pareto import pareto_front, pareto_points, write_pareto


def _runs(cost=True):
    rows = []
    values = {"teacher": ([0.80, 0.90], 1000, 2.0), "none": ([0.40, 0.50], 250, 0.5),
              "hmat": ([0.70, 0.80], 250, 0.5)}
    for method, (acc, macs, ms) in values.items():
        for seed, a in enumerate(acc):
            row = {"run_id": f"{method}-h-s{seed}", "suite": "retrieval", "dataset": "d", "teacher": "T",
                   "student": "T" if method == "teacher" else "S", "method": method, "seed": seed,
                   "recall@1": a, "recall@2": a, "train_seconds": 1.0, "commit": "abc", "config_hash": method}
            if cost:
                row.update(params=macs // 10, macs=macs, weights_bytes=4 * macs, latency_ms_b1=ms + 0.1 * seed,
                           throughput_b64=64 / ms, cost_threads=1)
            rows.append(row)
    return pd.DataFrame(rows)


def test_points_are_mean_and_std_over_seeds():
    points = pareto_points(_runs(), "recall@1").set_index("method")
    assert points.loc["hmat", "acc_mean"] == pytest.approx(75.0)
    assert points.loc["hmat", "acc_std"] == pytest.approx(7.0710678)
    assert points.loc["teacher", "macs"] == 1000 and points.loc["teacher", "macs_std"] == 0
    assert points.loc["none", "latency_ms_b1"] == pytest.approx(0.55)
    assert points.loc["none", "latency_ms_b1_std"] == pytest.approx(0.0707107, rel=1e-4)


def test_front_keeps_only_undominated_points():
    x = [1, 1, 2, 3, 4]
    y = [5, 3, 4, 6, 6]
    assert pareto_front(x, y) == [0, 3]  # (1, 5) and (3, 6); (4, 6) is no better than (3, 6)


def test_write_pareto_from_a_runs_csv(tmp_path, capsys):
    folder = tmp_path / "retrieval" / "d"
    folder.mkdir(parents=True)
    _runs().to_csv(folder / "runs.csv", index=False)
    assert pareto.main([str(folder)]) == 0
    png = folder / "pareto.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert not list(folder.glob("*.tmp"))
    assert "wrote" in capsys.readouterr().out


def test_rows_without_cost_columns_write_nothing(tmp_path, capsys):
    folder = tmp_path / "retrieval" / "d"
    folder.mkdir(parents=True)
    _runs(cost=False).to_csv(folder / "runs.csv", index=False)
    assert write_pareto(folder) is None and not (folder / "pareto.png").exists()
    assert pareto.main([str(folder), str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "no cost columns" in err and "no " in err and "missing" in err


def test_the_merged_leaderboard_draws_it_too(tmp_path):
    from benchmarks import leaderboard

    folder = tmp_path / "results" / "retrieval" / "d"
    folder.mkdir(parents=True)
    _runs().to_csv(folder / "runs.csv", index=False)
    assert leaderboard.main(["--results", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / "plots" / "retrieval_d_pareto.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "retrieval_d_pareto.png" in md and "MACs ratio" in md and "| 0.25x |" in md  # student MACs / teacher's
