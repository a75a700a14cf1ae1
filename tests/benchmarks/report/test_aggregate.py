"""Leaderboard aggregation against hand-computed numbers."""

import pandas as pd
import pytest

from benchmarks.report.aggregate import leaderboard, to_markdown


def _rows():
    base = {"suite": "retrieval", "dataset": "d", "teacher": "T", "student": "S", "train_seconds": 1.0,
            "recall@2": 0.9, "map@r": 0.5, "r_precision": 0.5}
    values = {"teacher": [0.80, 0.90], "none": [0.40, 0.50], "at": [0.60, 0.60], "hmat": [0.70, 0.80]}
    rows = []
    for method, r1 in values.items():
        for seed, v in enumerate(r1):
            rows.append({**base, "method": method, "seed": seed, "recall@1": v, "config_hash": method})
    return pd.DataFrame(rows)


def test_mean_std_gain_and_gap_closed():
    board = leaderboard(_rows()).set_index("method")
    assert board.loc["none", "recall@1_mean"] == pytest.approx(45.0)
    assert board.loc["none", "recall@1_std"] == pytest.approx(7.0710678)  # sample std of 40 and 50
    assert board.loc["at", "recall@1_std"] == pytest.approx(0.0)
    assert board.loc["hmat", "gain_vs_none"] == pytest.approx(30.0)
    assert board.loc["hmat", "gap_closed"] == pytest.approx(30.0 / 40.0)  # (75-45)/(85-45)
    assert board.loc["at", "gap_closed"] == pytest.approx(15.0 / 40.0)
    # rank ranges from the pairwise 95% intervals over the 2 seeds: hmat - none = 30, 30 is significant,
    # hmat - at (10, 20) and at - none (20, 10) are not (t(0.975, 1) = 12.7)
    assert board.loc["hmat", "rank"] == "1-2" and board.loc["at", "rank"] == "1-3" and board.loc["none", "rank"] == "2-3"
    assert (board.loc["hmat", "rank_low"], board.loc["hmat", "rank_high"]) == (1, 2)
    assert pd.isna(board.loc["teacher", "rank"]) and pd.isna(board.loc["teacher", "rank_low"])
    assert list(board.index[:2]) == ["teacher", "none"]


def test_paired_gain_std_is_the_spread_of_the_per_seed_differences():
    rows = _rows()
    # at: 60, 60 vs none 40, 50 -> differences 20, 10 -> sample std 7.07; hmat: 30, 30 -> 0
    board = leaderboard(rows).set_index("method")
    assert board.loc["at", "gain_vs_none_std"] == pytest.approx(7.0710678)
    assert board.loc["hmat", "gain_vs_none_std"] == pytest.approx(0.0)
    assert board.loc["none", "gain_vs_none_std"] == pytest.approx(0.0)
    # a seed that only one method ran does not enter the pairs
    extra = rows.iloc[[0]].assign(method="hmat", seed=7, config_hash="hmat", **{"recall@1": 0.0})
    board = leaderboard(pd.concat([rows, extra], ignore_index=True)).set_index("method")
    assert board.loc["hmat", "gain_vs_none_std"] == pytest.approx(0.0)
    assert "+30.00 [+30.00, +30.00] | 1-2 |" in to_markdown(leaderboard(rows), "t")
    assert board.loc["hmat", "gain_seeds"] == 2


def test_markdown_lists_every_method():
    md = to_markdown(leaderboard(_rows()), "title", ["a note"])
    for method in ("teacher", "none", "at", "hmat"):
        assert f"| {method} |" in md
    assert "75.00 ± 7.07" in md and "75%" in md


def test_gap_closed_when_the_teacher_row_names_itself_as_student():
    # the suites write the teacher's row with student == teacher (it is its own model)
    runs = _rows()
    runs.loc[runs["method"] == "teacher", "student"] = "T"
    board = leaderboard(runs).set_index("method")
    assert board.loc["hmat", "gap_closed"] == pytest.approx(30.0 / 40.0)
    assert board.loc["none", "gap_closed"] == pytest.approx(0.0)
    assert pd.isna(board.loc["teacher", "gap_closed"])
