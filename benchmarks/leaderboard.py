"""One leaderboard over every suite: ``python -m benchmarks.leaderboard [--results results]``;
a suite folder's own tables again from its runs.csv: ``python -m benchmarks.leaderboard --rebuild FOLDER``;
a booktabs table for a paper: ``python -m benchmarks.leaderboard --latex [FOLDER ...]``;
runs of one config on disjoint replicates pooled: ``python -m benchmarks.leaderboard --pool OUT FOLDER FOLDER ...``.

Reads every ``<results>/<suite>/<dataset>/runs.csv`` and writes ``<results>/leaderboard.csv``,
``<results>/leaderboard.md`` and, per (suite, dataset), in ``<results>/plots/``: ``<suite>_<dataset>_recall.png``
(Recall@K per method, error bars = std over seeds; ``_topk.png`` for top-1/top-5 accuracy),
``_forest.png`` (each method's gain over none with its 95% interval, a line at 0 and the resolving power
shaded), ``_curves.png`` (per-epoch training loss terms and the validation primary metric, mean over seeds,
from ``runs/<run_id>.json``) and, for rows with cost columns, ``_pareto.png`` (accuracy against MACs and
latency, see ``benchmarks.pareto``).

Rows: from each folder, those of the configs in its ``leaderboard.csv`` (its latest suite run; a folder
without one contributes all its rows).

``--rebuild <results>/<suite>/<dataset> [more]`` rewrites that folder's ``leaderboard.csv``,
``leaderboard.md``, ``pairwise.csv`` and ``forest.png`` from its ``runs.csv`` without training: the same
rows and the notes of its current ``leaderboard.md``, with the statistics of this code.

``--latex [FOLDER ...]`` writes each folder's ``leaderboard.tex`` (every folder under ``--results`` when
none is named): a booktabs table of the primary metric (mean ± std), the gain over none (mean ± 95%
half-width, ties with none marked) and the rank range, with a caption saying what the intervals cover.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.report.aggregate import COVERS, design_of_rows, leaderboard
from benchmarks.report.latex import latex_table
from benchmarks.report.rows import collect, current_rows, primary_metric
from benchmarks.report.tables import build, markdown_notes, pool, rebuild
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_text


def write_latex(folders: list[Path]) -> None:
    for folder in folders:
        if not (folder / "runs.csv").is_file():
            raise UserError(f"--latex {folder}: no runs.csv there; expected a results folder <results>/<suite>/<dataset>")
    for folder in folders:
        runs = current_rows(folder)
        primary = primary_metric(runs)
        _, notes = markdown_notes(folder / "leaderboard.md")  # its Replicates line says what a replicate redraws
        said = [n.strip().replace("`", "") for n in notes if n.startswith("Replicates:")]
        text = latex_table(leaderboard(runs, primary=primary), primary, f"{folder.parent.name}: {folder.name}",
                           said[0] if said else f"the intervals: {COVERS[design_of_rows(runs)]}")
        atomic_write_text(folder / "leaderboard.tex", text)
        print(f"wrote {folder / 'leaderboard.tex'}")


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--rebuild", nargs="+", metavar="FOLDER",
                   help="instead: rewrite each <results>/<suite>/<dataset> folder's leaderboard.csv, leaderboard.md, "
                        "pairwise.csv and forest.png from its runs.csv (same rows and notes; no training)")
    p.add_argument("--latex", nargs="*", metavar="FOLDER",
                   help="instead: write each folder's leaderboard.tex, a booktabs table (all folders under --results "
                        "when none is named)")
    p.add_argument("--pool", nargs="+", metavar=("OUT", "FOLDER"),
                   help="instead: pool the rows of two or more runs of one config on disjoint replicates (a run and "
                        "its replication reruns) into the results folder OUT, with its tables")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.pool:
        out, folders = Path(args.pool[0]), [Path(f) for f in args.pool[1:]]
        board = pool(out, folders, "python -m benchmarks.leaderboard --pool " + " ".join(args.pool))
        print(f"{out}: pooled {len(folders)} runs; wrote runs.csv, leaderboard.csv, leaderboard.md, pairwise.csv "
              f"({len(board)} rows)")
        return 0
    if args.rebuild:
        for folder in map(Path, args.rebuild):
            board = rebuild(folder)
            print(f"{folder}: wrote leaderboard.csv, leaderboard.md, pairwise.csv ({len(board)} rows)")
        return 0
    results = Path(args.results)
    if args.latex is not None:
        write_latex([Path(f) for f in args.latex] or [folder for folder, _ in collect(results)])
        return 0
    command = "python -m benchmarks.leaderboard" + ("" if args.results == "results" else f" --results {args.results}")
    table, md = build(results, command, plots=not args.no_plots)
    atomic_write_text(results / "leaderboard.csv", table.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(results / "leaderboard.md", md)
    print(md)
    print(f"wrote {results}/leaderboard.csv, leaderboard.md" + ("" if args.no_plots else f" and {results}/plots/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
