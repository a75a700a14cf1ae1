"""The forest plot of a leaderboard (benchmarks.report.plots.plot_forest)."""

import pandas as pd

from benchmarks.report import plots
from benchmarks.report.tables import write_suite_tables


def _board():
    rows = [{"teacher": "T", "student": "S", "method": m, "config_hash": "h", "seeds": 3, "gain_vs_none": g,
             "gain_ci_low": lo, "gain_ci_high": hi, "gain_ci_halfwidth": (hi - lo) / 2, "gain_seeds": 3}
            for m, g, lo, hi in (("none", 0, 0, 0), ("at", 1.0, 0.5, 1.5), ("rkd", -0.2, -1.2, 0.8))]
    return pd.DataFrame([{"teacher": "T", "student": "T", "method": "teacher", "config_hash": "h", "seeds": 3}] + rows)


def test_forest_draws_each_interval_and_the_resolving_power(tmp_path, monkeypatch):
    drawn, spans = [], []
    real_figure = plots.figure

    def spy_figure(*args, **kwargs):
        fig, axes, plt = real_figure(*args, **kwargs)
        for ax in axes:
            original_errorbar, original_span = ax.errorbar, ax.axvspan
            ax.errorbar = lambda x, y, xerr, **kw: drawn.append((x, y, xerr, kw["markerfacecolor"])) or \
                original_errorbar(x, y, xerr=xerr, **kw)
            ax.axvspan = lambda a, b, **kw: spans.append((a, b)) or original_span(a, b, **kw)
        return fig, axes, plt

    monkeypatch.setattr(plots, "figure", spy_figure)
    path = tmp_path / "forest.png"
    assert plots.plot_forest(_board(), path, "t", "recall@1")
    assert path.read_bytes()[:4] == b"\x89PNG"
    # sorted by gain (rkd below at); the teacher and none are not drawn; the error bars reach the interval ends
    assert [(x, y) for x, y, _, _ in drawn] == [(-0.2, 0), (1.0, 1)]
    assert drawn[0][2] == [[1.0], [1.0]] and drawn[1][2] == [[0.5], [0.5]]
    assert drawn[0][3] == "white" and drawn[1][3] == "tab:red"  # a tie is hollow, a resolved gain filled
    assert spans == [(-0.75, 0.75)]  # median half-width of (0.5, 1.0)


def test_no_interval_no_plot(tmp_path):
    board = _board().drop(columns=["gain_ci_low"])
    assert not plots.plot_forest(board, tmp_path / "f.png", "t", "recall@1") and not (tmp_path / "f.png").exists()


def test_suite_tables_link_their_forest_plot(tmp_path):
    rows = [{"run_id": f"{m}-h-s{s}", "suite": "retrieval", "dataset": "d", "teacher": "T",
             "student": "T" if m == "teacher" else "S", "method": m, "seed": s, "recall@1": v + 0.01 * s * (m == "at"),
             "train_seconds": 1.0, "commit": "abc", "config_hash": "h", "replicates": "full"}
            for m, v in (("teacher", 0.9), ("none", 0.5), ("at", 0.6)) for s in range(3)]
    write_suite_tables(tmp_path, pd.DataFrame(rows), "recall@1", "retrieval: d", ["a note"])
    assert (tmp_path / "forest.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.endswith("Forest plot of the gains over none: [forest.png](forest.png)\n")
