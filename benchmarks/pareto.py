"""Accuracy against cost: ``python -m benchmarks.pareto results/retrieval/synthetic [more folders]``.

Reads a results folder's ``runs.csv`` (the rows the leaderboard keeps: the configs of its
``leaderboard.csv``) and writes ``<folder>/pareto.png`` with two panels: the primary
metric (recall@1 or top-1, mean ± std over seeds) against MACs per image and against the
measured CPU latency per image at batch 1 (median over seeds, error bar = std over seeds).
One point per (method, teacher -> student pair, config); the teacher is a black star; the
grey dotted line is the Pareto front (no other point is both cheaper and more accurate).
The suites draw it (``benchmarks.report.pareto.write_pareto``) whenever they write a leaderboard.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.report.pareto import write_pareto


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pareto", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="results folders <results>/<suite>/<dataset>")
    args = p.parse_args(argv)
    status = 0
    for folder in args.folders:
        try:
            made = write_pareto(Path(folder))
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        if made:
            print(f"wrote {made}")
        else:
            print(f"{folder}: its rows have no cost columns (python -m benchmarks.cost_backfill {folder} adds them)",
                  file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
