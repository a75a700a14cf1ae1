"""One leaderboard over every suite: ``python -m benchmarks.leaderboard [--results results]``;
a suite folder's own tables again from its runs.csv: ``python -m benchmarks.leaderboard --rebuild FOLDER``.

Reads every ``<results>/<suite>/<dataset>/runs.csv`` and writes ``<results>/leaderboard.csv``,
``<results>/leaderboard.md`` and, per (suite, dataset), ``<results>/plots/<suite>_<dataset>_recall.png``
(Recall@K per method, error bars = std over seeds; ``_topk.png`` for top-1/top-5 accuracy)
and ``<results>/plots/<suite>_<dataset>_curves.png`` (per-epoch training loss terms and the
validation primary metric, mean over seeds, from ``runs/<run_id>.json``), and, for rows with
cost columns, ``<results>/plots/<suite>_<dataset>_pareto.png`` (accuracy against MACs and
latency, see ``benchmarks.pareto``).

Merge rule: a runs.csv keeps every run ever made in its folder, with several configs.
From each folder only the rows whose ``config_hash`` appears in that folder's
``leaderboard.csv`` are kept, i.e. the configs of the latest suite run there; a folder
without a ``leaderboard.csv`` contributes all its rows (one leaderboard row per config).

``--rebuild <results>/<suite>/<dataset> [more]`` rewrites that folder's ``leaderboard.csv``,
``leaderboard.md`` and ``pairwise.csv`` from its ``runs.csv`` without training: the same rows
(the configs of its current ``leaderboard.csv``, those of the latest suite run) and the notes
of its current ``leaderboard.md``, with the statistics of this code (``benchmarks.runner.stats``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from benchmarks.runner.errors import ArgumentParser, add_debug_flag, reports_user_errors
from benchmarks.runner.aggregate import COVERS, design_of_rows, leaderboard, metric_columns, tables, to_markdown
from benchmarks.runner.results_io import atomic_write_text, atomic_write_via, read_runs

PRIMARY = ("recall@1", "top1")  # retrieval-like suites, then classification
K_METRIC = re.compile(r"^(recall@|top)(\d+)$")


def primary_metric(runs: pd.DataFrame) -> str:
    """recall@1 for retrieval-like rows, top1 for classification rows."""
    for name in PRIMARY:
        if name in runs.columns and runs[name].notna().any():
            return name
    metrics = metric_columns(runs)
    if not metrics:
        raise ValueError(f"no metric column among {list(runs.columns)}")
    return metrics[0]


def current_rows(folder: Path) -> pd.DataFrame:
    """The rows of ``folder/runs.csv`` that the merge rule keeps (see the module docstring)."""
    runs = read_runs(folder / "runs.csv")
    board_path = folder / "leaderboard.csv"
    if board_path.exists() and "config_hash" in runs.columns:
        board = read_runs(board_path)
        if "config_hash" in board.columns:
            runs = runs[runs["config_hash"].astype(str).isin(board["config_hash"].astype(str))]
    return runs.reset_index(drop=True)


def write_suite_tables(dest: Path, runs: pd.DataFrame, primary: str, title: str, notes: list[str]) -> pd.DataFrame:
    """A suite folder's ``leaderboard.csv``, ``pairwise.csv`` and ``leaderboard.md`` from ``runs`` (the rows of
    its latest run), each written atomically; returns the leaderboard."""
    board, pairs = tables(runs, primary=primary)
    atomic_write_text(dest / "pairwise.csv", pairs.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(dest / "leaderboard.csv", board.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(dest / "leaderboard.md", to_markdown(board, title, notes, primary=primary))
    return board


def markdown_notes(md_path: Path) -> tuple[str | None, list[str]]:
    """(title, notes) of a leaderboard.md written by ``to_markdown``: the lines between the title and
    the table (the notes under the table are made from the table again)."""
    if not md_path.exists():
        return None, []
    lines = md_path.read_text().splitlines()
    title = lines[0][2:] if lines and lines[0].startswith("# ") else None
    notes = []
    for line in lines[2:]:
        if not line.strip() or line.startswith("|"):
            break
        notes.append(line.rstrip())
    return title, notes


def rebuild(folder: Path) -> pd.DataFrame:
    """Rewrite ``folder``'s leaderboard.csv, pairwise.csv and leaderboard.md from its runs.csv (no training):
    the rows of the configs in its current leaderboard.csv, the notes of its current leaderboard.md."""
    if not (folder / "runs.csv").exists():
        raise SystemExit(f"no {folder / 'runs.csv'}; expected a results folder <results>/<suite>/<dataset>")
    runs = current_rows(folder)
    if not len(runs):
        raise SystemExit(f"{folder}: no rows of the configs in its leaderboard.csv")
    title, notes = markdown_notes(folder / "leaderboard.md")
    return write_suite_tables(folder, runs, primary_metric(runs), title or f"{folder.parent.name}: {folder.name}",
                              notes)


def collect(results: Path) -> list[tuple[Path, pd.DataFrame]]:
    """(folder, kept rows) for every ``<results>/<suite>/<dataset>/runs.csv``, in name order."""
    found = []
    for csv in sorted(results.glob("*/*/runs.csv")):
        rows = current_rows(csv.parent)
        if len(rows):
            found.append((csv.parent, rows))
    return found


def _label(part: pd.DataFrame, row) -> str:
    """The method name, plus the config hash where one method has several configs."""
    several = part.loc[part["method"] == row["method"], "config_hash"].nunique() > 1
    return f"{row['method']} ({row['config_hash']})" if several else str(row["method"])


def _figure(n: int, ncols: int, size=(4.2, 3.2)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(1, min(n, ncols))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()[:n], plt


def _colors(labels) -> dict:
    """One colour per method, the same in every panel and both plots (the teacher is black, dashed)."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    students = sorted(set(labels) - {"teacher"}, key=lambda lab: (lab != "none", lab))
    return {"teacher": "black", **{lab: cycle[i % len(cycle)] for i, lab in enumerate(students)}}


def _save(fig, plt, path: Path) -> None:
    fig.tight_layout()
    atomic_write_via(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def plot_k_metrics(board: pd.DataFrame, path: Path, title: str) -> bool:
    """Recall@K (or top-K accuracy) against K, one line per method, error bars = std over seeds."""
    ks = sorted(((int(m.group(2)), m.group(0)) for c in board.columns
                 if c.endswith("_mean") and (m := K_METRIC.match(c[:-5]))), key=lambda t: t[0])
    if not ks:
        return False
    pairs = list(board.groupby(["teacher", "student"], sort=False))
    students = [(k, p) for k, p in pairs if (p["method"] != "teacher").any()] or pairs
    fig, axes, plt = _figure(len(students), 3, (5.0, 3.8))
    for ax, ((teacher, student), part) in zip(axes, students):
        rows = pd.concat([board[(board["method"] == "teacher") & (board["teacher"] == teacher)], part])
        rows = rows.drop_duplicates(subset=["method", "config_hash"])
        labels = [_label(rows, row) for _, row in rows.iterrows()]
        colors = _colors(labels)
        for i, ((_, row), label) in enumerate(zip(rows.iterrows(), labels)):
            shift = 2 ** (0.04 * (i - (len(rows) - 1) / 2))  # spread the error bars a little
            x = [k * shift for k, _ in ks]
            y = [row[f"{name}_mean"] for _, name in ks]
            err = [row[f"{name}_std"] for _, name in ks]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, color=colors[label],
                        linestyle="--" if row["method"] == "teacher" else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks([k for k, _ in ks], [str(k) for k, _ in ks])
        ax.set_xlabel("K")
        ax.set_ylabel(f"{ks[0][1].rstrip('0123456789').rstrip('@')}@K (%)")
        ax.set_title(f"{title}\n{teacher} -> {student}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, plt, path)
    return True


def histories(folder: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch records of the kept runs that have a ``runs/<run_id>.json``, one row per (run, epoch)."""
    records = []
    for _, row in runs.iterrows():
        path = folder / "runs" / f"{row['run_id']}.json"
        if not path.exists():
            continue
        for rec in json.loads(path.read_text()).get("history") or []:
            records.append({"run_id": row["run_id"], "method": row["method"],
                            "config_hash": row.get("config_hash"), "seed": row["seed"], **rec})
    return pd.DataFrame(records)


def plot_curves(hist: pd.DataFrame, path: Path, title: str, primary: str) -> bool:
    """One panel per logged loss term and one for the validation primary metric; lines = methods
    (mean over seeds)."""
    if hist.empty or "epoch" not in hist:
        return False
    losses = sorted(c for c in hist.columns if c.startswith("loss/"))
    loss_order = [c for c in ("loss/task",) if c in losses] + [c for c in losses if c != "loss/task"]
    panels = loss_order + [c for c in (f"val/{primary}",) if c in hist.columns]
    if not panels:
        return False
    fig, axes, plt = _figure(len(panels), 4)
    labels = {(m, h): m if hist.loc[hist["method"] == m, "config_hash"].nunique() <= 1 else f"{m} ({h})"
              for m, h in hist[["method", "config_hash"]].drop_duplicates().itertuples(index=False)}
    colors = _colors(labels.values())
    for ax, col in zip(axes, panels):
        for (method, chash), part in hist.groupby(["method", "config_hash"], sort=False, dropna=False):
            curve = part.groupby("epoch")[col].mean().dropna()
            if curve.empty:
                continue
            scale = 100 if col.startswith("val/") else 1
            label = labels[(method, chash)]
            ax.plot(curve.index, scale * curve.values, marker=".", label=label, color=colors[label],
                    linestyle="--" if method == "teacher" else "-")
        ax.set_title(col + (" (%)" if col.startswith("val/") else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}: training curves (mean over seeds)", fontsize=10)
    _save(fig, plt, path)
    return True


def build(results: Path, command: str, plots: bool = True) -> tuple[pd.DataFrame, str]:
    """Merge, aggregate and draw; returns (leaderboard table, markdown) without writing the tables."""
    from benchmarks.pareto import plot_pareto  # it imports this module

    found = collect(results)
    if not found:
        raise SystemExit(f"no results to merge: no {results}/<suite>/<dataset>/runs.csv; "
                         f"run python -m benchmarks.run --suite SUITE first")
    boards, sections = [], []
    for folder, runs in found:
        suite, dataset = folder.parent.name, folder.name
        primary = primary_metric(runs)
        board = leaderboard(runs, primary=primary)
        board.insert(board.columns.get_loc("method") + 1, "primary", primary)
        boards.append(board)
        commits = sorted(str(c) for c in runs["commit"].dropna().unique()) if "commit" in runs else []
        made = []
        if plots:
            title = f"{suite}: {dataset}"
            kind = "recall" if primary.startswith("recall") else "topk"
            name = f"{suite}_{dataset}_{kind}.png"
            if plot_k_metrics(board, results / "plots" / name, title):
                made.append(name)
            name = f"{suite}_{dataset}_curves.png"
            if plot_curves(histories(folder, runs), results / "plots" / name, title, primary):
                made.append(name)
            name = f"{suite}_{dataset}_pareto.png"
            if plot_pareto(runs, results / "plots" / name, title):  # only when the rows carry cost columns
                made.append(name)
        design = design_of_rows(runs)
        notes = [f"From `{folder.relative_to(results)}/runs.csv`: {len(runs)} rows, "
                 f"config(s) {', '.join(f'`{h}`' for h in sorted(runs['config_hash'].astype(str).unique()))}; "
                 f"commit(s) {', '.join(f'`{c}`' for c in commits) or 'unknown'}.",
                 f"Primary metric {primary}: rank range, gain vs none (points, paired by replicate, 95% interval) "
                 f"and gap closed = (method - none) / (teacher - none) are computed on it.",
                 f"Replicates: {design}. The intervals: {COVERS[design]}."]
        if made:
            notes.append("Plots: " + ", ".join(f"[{n}](plots/{n})" for n in made))
        md = to_markdown(board, f"{suite}: {dataset}", notes, primary=primary)
        sections.append("#" + md)  # one level below the page title
    table = pd.concat(boards, ignore_index=True)
    head = ["# Leaderboard", "", f"Command: `{command}`  ",
            "Metrics in % (mean ± std over replicates, a seed being a replicate). Rows: for each results folder, the runs whose config hash "
            "is in that folder's leaderboard.csv (its latest suite run).", ""]
    return table, "\n".join(head) + "\n" + "\n".join(sections)


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--rebuild", nargs="+", metavar="FOLDER",
                   help="instead: rewrite each <results>/<suite>/<dataset> folder's leaderboard.csv, leaderboard.md "
                        "and pairwise.csv from its runs.csv (same rows and notes; no training)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.rebuild:
        for folder in map(Path, args.rebuild):
            board = rebuild(folder)
            print(f"{folder}: wrote leaderboard.csv, leaderboard.md, pairwise.csv ({len(board)} rows)")
        return 0
    results = Path(args.results)
    command = "python -m benchmarks.leaderboard" + ("" if args.results == "results" else f" --results {args.results}")
    table, md = build(results, command, plots=not args.no_plots)
    atomic_write_text(results / "leaderboard.csv", table.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(results / "leaderboard.md", md)
    print(md)
    print(f"wrote {results}/leaderboard.csv, leaderboard.md" + ("" if args.no_plots else f" and {results}/plots/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
