"""Figures of the documentation made from committed results (benchmarks.report.figures), and the check
that every committed figure still equals what its source gives."""

from pathlib import Path

import pandas as pd
import pytest

from benchmarks import doc_figures
from benchmarks.report.figures import FigureError, figure_count, refresh, render, stale
from user_error import user_error

REPO = Path(__file__).resolve().parents[3]


def _results(root):
    folder = root / "results" / "retrieval" / "d"
    folder.mkdir(parents=True)
    pd.DataFrame([
        {"method": "teacher", "seeds": 3, "replicates": "full", "recall@1_mean": 90.0, "recall@1_std": 1.0},
        {"method": "none", "seeds": 3, "replicates": "full", "recall@1_mean": 80.0, "recall@1_std": 2.0,
         "gain_vs_none": 0.0, "gain_ci_low": 0.0, "gain_ci_high": 0.0, "gain_ci_halfwidth": 0.0, "rank": "2-3"},
        {"method": "rkd", "seeds": 3, "replicates": "full", "recall@1_mean": 82.5, "recall@1_std": 1.5,
         "gain_vs_none": 2.5, "gain_ci_low": 1.25, "gain_ci_high": 3.75, "gain_ci_halfwidth": 1.25, "rank": "1"},
        {"method": "at", "seeds": 3, "replicates": "full", "recall@1_mean": 80.5, "recall@1_std": 1.0,
         "gain_vs_none": 0.5, "gain_ci_low": -0.5, "gain_ci_high": 1.5, "gain_ci_halfwidth": 1.0, "rank": "1-3"},
    ]).to_csv(folder / "leaderboard.csv", index=False)
    (folder / "leaderboard.md").write_text("# retrieval: d\n\nCommand: `x`  \nCommit: `abc1234`; seeds [0, 1, 2].\n")
    return "results/retrieval/d"


def test_inline_figures_hand_computed(tmp_path):
    folder = _results(tmp_path)
    assert render(f"gain {folder} rkd", tmp_path) == "+2.50 [+1.25, +3.75]"
    assert render(f"gain {folder} none", tmp_path) == "+0.00"
    assert render(f"mean {folder} at", tmp_path) == "80.50"
    assert render(f"power {folder}", tmp_path) == "1.12"  # median of 1.25 and 1.0 (the students but none)
    assert render(f"seeds {folder}", tmp_path) == "3"
    assert render(f"commit {folder}", tmp_path) == "`abc1234`"


def test_headline_marks_resolved_gains_and_links_from_the_document(tmp_path):
    folder = _results(tmp_path)
    text = render(f"headline {folder}", tmp_path, tmp_path / "docs")
    assert "| rkd | 82.50 ± 1.50 | **+2.50 [+1.25, +3.75]** | 1 |" in text
    assert "| at | 80.50 ± 1.00 | +0.50 [-0.50, +1.50] | 1-3 |" in text  # covers 0: not bold
    assert "3 replicates (full), commit `abc1234`" in text
    assert "(../results/retrieval/d/leaderboard.md)" in text


def test_refresh_replaces_only_the_figures_and_stale_finds_drift(tmp_path):
    folder = _results(tmp_path)
    doc = tmp_path / "README.md"
    doc.write_text(f"RKD: <!-- figure: gain {folder} rkd -->+9.99<!-- /figure --> points; other text +9.99.\n")
    assert stale(doc, tmp_path) == [f"gain {folder} rkd"]
    doc.write_text(refresh(doc.read_text(), tmp_path, tmp_path))
    assert doc.read_text() == f"RKD: <!-- figure: gain {folder} rkd -->+2.50 [+1.25, +3.75]<!-- /figure --> points; other text +9.99.\n"
    assert stale(doc, tmp_path) == []


def test_bad_specs_are_one_line_errors(tmp_path, capsys):
    folder = _results(tmp_path)
    with pytest.raises(FigureError, match="no method 'kd'"):
        render(f"gain {folder} kd", tmp_path)
    with pytest.raises(FigureError, match="no leaderboard.csv"):
        render("headline results/nowhere", tmp_path)
    with pytest.raises(FigureError, match="unknown kind 'plot'"):
        render(f"plot {folder}", tmp_path)
    doc = tmp_path / "x.md"
    doc.write_text(f"<!-- figure: gain {folder} kd --><!-- /figure -->")
    message = user_error(capsys, doc_figures.main, ["--root", str(tmp_path), str(doc)])
    assert "x.md" in message and "no method 'kd'" in message


def test_every_committed_figure_equals_its_source(capsys):
    """The documentation's figures, made again from the committed result files, are what is committed."""
    docs = doc_figures.documents(REPO)
    assert sum(figure_count(d) for d in docs) >= 4  # the README's headline tables at least
    assert doc_figures.main(["--check", "--root", str(REPO), *map(str, docs)]) == 0, capsys.readouterr().out


def test_pair_reads_either_order_and_leaderboard_copies_the_table(tmp_path):
    folder = _results(tmp_path)
    pd.DataFrame([{"method_a": "rkd", "method_b": "at", "metric": "recall@1", "mean_diff": 2.0, "ci_low": 1.0,
                   "ci_high": 3.0}]).to_csv(tmp_path / folder / "pairwise.csv", index=False)
    assert render(f"pair {folder} rkd at", tmp_path) == "+2.00 [+1.00, +3.00]"
    assert render(f"pair {folder} at rkd", tmp_path) == "-2.00 [-3.00, -1.00]"
    with pytest.raises(FigureError, match="no pair"):
        render(f"pair {folder} rkd none", tmp_path)
    md = tmp_path / folder / "leaderboard.md"
    md.write_text(md.read_text() + "\n| method | recall@1 |\n|---|---|\n| none | 80.00 ± 2.00 |\n\nnotes\n")
    assert render(f"leaderboard {folder}", tmp_path) == "\n| method | recall@1 |\n|---|---|\n| none | 80.00 ± 2.00 |\n"


def test_proxy_report_figures(tmp_path):
    (tmp_path / "p.md").write_text("# Proxy check\n\n**Agreement of the gains over `none` on 3 methods**: "
                                   "Spearman +0.50 [-0.50, +1.00]; Pearson +0.61 [+0.10, +0.90].\n")
    pd.DataFrame([{"method": "rkd", "gain_a": 1.0, "low_a": 0.5, "high_a": 1.5, "gain_b": -2.0, "low_b": -3.0,
                   "high_b": -1.0}]).to_csv(tmp_path / "p.csv", index=False)
    assert render("agreement p.md", tmp_path) == "Spearman +0.50 [-0.50, +1.00]; Pearson +0.61 [+0.10, +0.90]"
    assert render("proxygain p.md rkd a", tmp_path) == "+1.00 [+0.50, +1.50]"
    assert render("proxygain p.md rkd b", tmp_path) == "-2.00 [-3.00, -1.00]"
    with pytest.raises(FigureError, match="side a or b"):
        render("proxygain p.md rkd c", tmp_path)
    with pytest.raises(FigureError, match="no method 'kd'"):
        render("proxygain p.md kd a", tmp_path)


def test_replication_and_pooled_figures(tmp_path):
    (tmp_path / "r.md").write_text("# Replication check\n\n**3 of 24 differences** lie outside their 95% interval "
                                   "(expected by chance: about 5%).\n")
    assert render("replication r.md", tmp_path) == "3 of 24 differences outside their 95% intervals"
    (tmp_path / "p.md").write_text("# Proxy check\n")
    with pytest.raises(FigureError, match="no replication report"):
        render("replication p.md", tmp_path)
    folder = tmp_path / "pooled" / "retrieval" / "fonts"
    folder.mkdir(parents=True)
    (folder / "leaderboard.md").write_text("# retrieval: fonts\n\nCommand: `x`  \nPooled runs of one config on "
                                           "disjoint replicates: a seeds [0]; b seeds [1] (rows from commits "
                                           "abc1234, def5678).  \n")
    assert render("commit pooled/retrieval/fonts", tmp_path) == "`abc1234, def5678`"
