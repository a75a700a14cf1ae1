"""Does a proxy predict? Compare the gains of the KD methods over ``none`` on two result folders.

    python -m benchmarks.proxy --proxy results/zoo/retrieval/synthetic --real results/zoo/retrieval/fonts
        [--metric recall@1] [--draws 2000] [--seed 0] [--out results/proxy/retrieval.md]

Reads each folder's ``runs.csv`` (the rows of its latest suite run: those whose config is in its
``leaderboard.csv``, as ``benchmarks.leaderboard`` keeps them) and, on the methods both folders ran,
reports per method the gain over ``none`` on each (paired by replicate, with its 95% interval), the
two conclusions and whether they hold, flip or are reached on one folder only, then the Spearman and
Pearson correlations of the mean gains with 95% bootstrap intervals over each run's replicates
(``benchmarks.report.proxy``). Prints the report and writes ``<out>.md`` and ``<out>.csv`` (one row
per method); ``--out`` defaults to ``results/proxy/<suite>_<proxy dataset>_<real dataset>.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from benchmarks.report.proxy import (
    DRAWS,
    agreement,
    check_run,
    common_methods,
    compare,
    seed_gains,
    summary,
    to_markdown,
)
from benchmarks.report.rows import current_rows
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import command_line, git_commit, write_report

MIN_METHODS = 3
NEEDED = ("method", "seed", "teacher", "student")


def _draws(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 100:
        raise argparse.ArgumentTypeError(f"expected at least 100 bootstrap draws, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proxy", required=True, help="result folder of the proxy dataset (with a runs.csv): run A")
    p.add_argument("--real", required=True, help="result folder of the real dataset (with a runs.csv): run B")
    p.add_argument("--metric", default="recall@1", help="the metric column of runs.csv (default: recall@1)")
    p.add_argument("--draws", type=_draws, default=DRAWS, help=f"bootstrap draws (default: {DRAWS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--out", help="the report, <out>.md and <out>.csv "
                                 "(default: results/proxy/<suite>_<proxy dataset>_<real dataset>.md)")
    add_debug_flag(p)
    return p.parse_args(argv)


def read_run(folder: str, flag: str, metric: str) -> pd.DataFrame:
    """The rows of ``folder/runs.csv`` that count (``leaderboard.current_rows``), checked (``UserError``)."""
    path = Path(folder)
    if not (path / "runs.csv").is_file():
        raise UserError(f"{flag} {folder}: no runs.csv there; expected a result folder of a suite run "
                        f"(<results>/<suite>/<dataset>/runs.csv)")
    runs = current_rows(path)
    missing = [c for c in NEEDED if c not in runs.columns]
    if missing:
        raise UserError(f"{flag} {folder}: runs.csv has no column {', '.join(missing)}; expected the columns a suite "
                        f"run writes ({', '.join(NEEDED)}, the metrics, ...)")
    check_run(runs, metric, f"{flag} {folder}")
    return runs


def _label(runs: pd.DataFrame, column: str, default: str) -> str:
    """The values of ``column`` in ``runs`` ('a+b' when several), or ``default``."""
    values = sorted(runs[column].dropna().astype(str).unique()) if column in runs.columns else []
    return "+".join(values) or default


def plan(args) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, str], Path]:
    """(proxy gains, real gains, their dataset names, report path without suffix), every input checked
    before the bootstrap; gains as ``proxy.seed_gains`` (replicate x method, in points)."""
    if Path(args.proxy).resolve() == Path(args.real).resolve():
        raise UserError(f"--proxy and --real are the same folder ({args.proxy}); expected two runs on different "
                        f"datasets (for two runs of one dataset see python -m benchmarks.replicate)")
    proxy = read_run(args.proxy, "--proxy", args.metric)
    real = read_run(args.real, "--real", args.metric)
    if "run_id" in proxy.columns and "run_id" in real.columns:
        shared = sorted(set(proxy["run_id"].astype(str)) & set(real["run_id"].astype(str)))
        if shared:
            raise UserError(f"--proxy {args.proxy} and --real {args.real} share {len(shared)} run(s) "
                            f"({', '.join(shared[:3])}{', ...' if len(shared) > 3 else ''}); expected independent "
                            f"runs, on different datasets")
    ga, gb = seed_gains(proxy, args.metric), seed_gains(real, args.metric)
    both = common_methods(ga, gb)
    if len(both) < MIN_METHODS:
        raise UserError(f"{len(both)} method(s) other than teacher and none in both folders "
                        f"({', '.join(both) or 'none'}; --proxy has {', '.join(ga.columns) or 'none'}, --real has "
                        f"{', '.join(gb.columns) or 'none'}); expected at least {MIN_METHODS} for a rank correlation")
    if args.out:
        out = Path(args.out)
        out = out.with_suffix("") if out.suffix in (".md", ".csv") else out
    else:
        names = (_label(proxy, "suite", "suite"), _label(proxy, "dataset", Path(args.proxy).name),
                 _label(real, "dataset", Path(args.real).name))
        out = Path("results/proxy") / "_".join(names)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {args.out or out}: {parent} is a file, not a folder")
    labels = (_label(proxy, "dataset", Path(args.proxy).name), _label(real, "dataset", Path(args.real).name))
    return ga, gb, labels, out


@reports_user_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    ga, gb, (a, b), out = plan(args)
    table = compare(ga, gb)
    agree = agreement(ga, gb, draws=args.draws, seed=args.seed)
    notes = [f"Command: `{command_line('benchmarks.proxy', argv)}`",
             f"Commit: `{git_commit()}`; A = proxy: {args.proxy} ({a}); B = real: {args.real} ({b}); the rows of each "
             f"folder's latest suite run (the configs of its leaderboard.csv; every row without one)."]
    text = to_markdown(table, agree, f"Proxy check ({args.metric}): {a} -> {b}", notes, labels=(a, b),
                       metric=args.metric)
    write_report(out, table, text)
    print(text)
    s = summary(table)
    print(f"wrote {out}.md and .csv: Spearman {agree['spearman']:+.2f} [{agree['spearman_low']:+.2f}, "
          f"{agree['spearman_high']:+.2f}] over {s['methods']} methods; {s['holds']} hold, {s['flips']} flip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
