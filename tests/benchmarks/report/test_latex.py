"""The booktabs table of a leaderboard (benchmarks.report.latex and ``leaderboard --latex``)."""

import pandas as pd
import pytest
from user_error import user_error

from benchmarks import leaderboard
from benchmarks.report.aggregate import COVERS
from benchmarks.report.latex import escape, gain_cell, latex_table


def _board():
    return pd.DataFrame([
        {"teacher": "big_t", "student": "big_t", "method": "teacher", "seeds": 3, "recall@1_mean": 90.0,
         "recall@1_std": 1.0},
        {"teacher": "big_t", "student": "small_s", "method": "none", "seeds": 3, "recall@1_mean": 80.0,
         "recall@1_std": 2.0, "gain_vs_none": 0.0, "gain_ci_low": 0.0, "gain_ci_high": 0.0,
         "gain_ci_halfwidth": 0.0, "rank": "2-3"},
        {"teacher": "big_t", "student": "small_s", "method": "rkd", "seeds": 3, "recall@1_mean": 82.5,
         "recall@1_std": 1.5, "gain_vs_none": 2.5, "gain_ci_low": 1.25, "gain_ci_high": 3.75,
         "gain_ci_halfwidth": 1.25, "rank": "1"},
        {"teacher": "big_t", "student": "small_s", "method": "my_kd", "seeds": 3, "recall@1_mean": 80.5,
         "recall@1_std": 1.0, "gain_vs_none": 0.5, "gain_ci_low": -0.5, "gain_ci_high": 1.5,
         "gain_ci_halfwidth": 1.0, "rank": "1-3"}])


def test_cells_hand_computed():
    board = _board().set_index("method", drop=False)
    assert gain_cell(board.loc["rkd"]) == r"$+2.50 \pm 1.25$"
    assert gain_cell(board.loc["my_kd"]) == r"$+0.50 \pm 1.00$$^\dagger$"  # the interval covers 0: a tie
    assert gain_cell(board.loc["none"]) == "--"
    assert escape("a_b & 5% {x}") == r"a\_b \& 5\% \{x\}"


def test_table_is_booktabs_with_one_row_per_network():
    text = latex_table(_board(), "recall@1", "retrieval: fonts", "the split and the seeds")
    lines = text.splitlines()
    assert lines[0] == r"\begin{table}[t]" and lines[-1] == r"\end{table}"
    assert [ln for ln in lines if ln.endswith("rule")] == [r"\toprule", r"\midrule", r"\midrule", r"\bottomrule"]
    body = lines[lines.index(r"\toprule") + 3:lines.index(r"\bottomrule")]
    assert body == [r"teacher & big\_t & $90.00 \pm 1.00$ &  &  \\", r"\midrule",
                    r"none & small\_s & $80.00 \pm 2.00$ & -- & 2--3 \\",
                    r"rkd & small\_s & $82.50 \pm 1.50$ & $+2.50 \pm 1.25$ & 1 \\",
                    r"my\_kd & small\_s & $80.50 \pm 1.00$ & $+0.50 \pm 1.00$$^\dagger$ & 1--3 \\"]
    assert "3 replicates" in text and "the split and the seeds" in text
    assert text.count("{") == text.count("}")  # braces balance (escaped ones come in pairs here too)


def test_command_writes_tex_beside_each_leaderboard(tmp_path, capsys):
    folder = tmp_path / "results" / "retrieval" / "d"
    folder.mkdir(parents=True)
    rows = [{"run_id": f"{m}-h-s{s}", "suite": "retrieval", "dataset": "d", "teacher": "T",
             "student": "T" if m == "teacher" else "S", "method": m, "seed": s, "recall@1": v + 0.01 * s,
             "train_seconds": 1.0, "commit": "abc", "config_hash": "h", "replicates": "full"}
            for m, v in (("teacher", 0.9), ("none", 0.5), ("at", 0.6)) for s in range(3)]
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    assert leaderboard.main(["--results", str(tmp_path / "results"), "--latex"]) == 0
    tex = (folder / "leaderboard.tex").read_text()
    assert r"at & S & $61.00 \pm 1.00$ & $+10.00 \pm 0.00$ & 1 \\" in tex  # paired gain: 0.1 on every seed
    assert escape(COVERS["full"]).rstrip(". ") in tex  # no leaderboard.md: the caption says what the intervals cover
    message = user_error(capsys, leaderboard.main, ["--latex", str(tmp_path / "nowhere")])
    assert "no runs.csv" in message and "nowhere" in message


@pytest.mark.parametrize("low,high,tie", [(-1.0, 1.0, True), (0.0, 2.0, True), (0.1, 2.0, False), (-2.0, -0.1, False)])
def test_tie_mark_follows_the_interval(low, high, tie):
    row = {"method": "x", "gain_vs_none": (low + high) / 2, "gain_ci_low": low, "gain_ci_high": high,
           "gain_ci_halfwidth": (high - low) / 2}
    assert gain_cell(row).endswith("$^\\dagger$") == tie
