"""Add the cost columns to results made before they existed, without retraining:
``python -m benchmarks.cost_backfill results/retrieval/synthetic [more folders] [--all]``.

Every cost column depends only on the network's architecture and the input size, not on
its trained values: parameters and MACs are counts, the saved-weights size is that of a
state dict with the same tensors, and the forward time of a dense CPU network does not
depend on its weights. So for each row of ``<folder>/runs.csv`` the network of the row
(the teacher for ``teacher`` rows, else the student) is rebuilt untrained from the
config in ``runs/<run_id>.json`` and measured at the input size of that config's test
split, with the config's threads (``--threads`` to override) and ``cost`` settings.
The accuracy columns are left exactly as they were.

Writes, atomically: ``runs.csv`` (the cost columns filled), each ``runs/<run_id>.json``
(the deterministic cost columns in its row, all of them under ``cost``, and under
``cost_backfill`` the command and commit), ``leaderboard.csv``, ``leaderboard.md``
(the original notes kept, one note added naming this command and commit), ``pairwise.csv``
and ``pareto.png``. Only rows without cost columns are measured unless ``--all``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pandas as pd

from benchmarks.export import fresh_network, run_test_split
from benchmarks.report.pareto import write_pareto
from benchmarks.report.rows import current_rows, primary_metric
from benchmarks.report.tables import markdown_notes as _markdown_notes, write_suite_tables
from benchmarks.runner.results_io import atomic_write_json, atomic_write_text, file_lock, git_commit, read_runs
from benchmarks.runner.tasks.classification import num_classes
from retrieval.cost import COST_COLUMNS, row_record, suite_cost

NOTE_START = "Cost columns added afterwards by"


def _num_classes(cfg: dict, test) -> int | None:
    if cfg.get("suite") != "classification":
        return None

    return num_classes({"test": test})


def measure_rows(folder: Path, runs: pd.DataFrame, overrides: dict, redo_all: bool, log=print) -> dict:
    """{run_id: cost columns} for the rows to fill, each measured on its rebuilt, untrained network."""
    splits, costs = {}, {}
    for _, row in runs.iterrows():
        if not redo_all and "macs" in runs.columns and pd.notna(row.get("macs")):
            continue
        path = folder / "runs" / f"{row['run_id']}.json"
        if not path.exists():
            raise SystemExit(f"{folder}: row {row['run_id']} has no {path}; its network cannot be rebuilt "
                             f"(every suite row since the runs/ files exist has one)")
        cfg = json.loads(path.read_text())["config"]
        cfg = {**cfg, "cost": {**(cfg.get("cost") or {}), **overrides}}
        key = json.dumps(cfg["dataset"], sort_keys=True)
        if key not in splits:
            splits[key] = run_test_split(cfg)
        role = "teacher" if row["method"] == "teacher" else "student"
        net = fresh_network(cfg, role, _num_classes(cfg, splits[key]))
        costs[row["run_id"]] = suite_cost(net, splits[key], cfg)
        log(f"{row['run_id']:>24}: {role} {cfg[role]['arch']}: " + ", ".join(f"{k} {v}" for k, v in
                                                                           costs[row["run_id"]].items()))
    return costs


def fill_runs_csv(folder: Path, costs: dict) -> pd.DataFrame:
    """Write the cost columns of ``costs`` into ``runs.csv`` (under its lock, atomically); returns the table."""
    csv = folder / "runs.csv"
    with file_lock(csv):
        runs = read_runs(csv)
        for col in COST_COLUMNS:
            if col not in runs.columns:
                runs[col] = pd.NA
        for i, run_id in enumerate(runs["run_id"]):
            for col, value in costs.get(run_id, {}).items():
                runs.at[i, col] = value
        atomic_write_text(csv, runs.to_csv(index=False))
    return runs


def update_run_files(folder: Path, runs: pd.DataFrame, costs: dict, source: dict) -> None:
    """Put each measured row's cost into its ``runs/<run_id>.json`` as a suite run would have."""
    for run_id in costs:
        path = folder / "runs" / f"{run_id}.json"
        saved = json.loads(path.read_text())
        row = {**saved["row"], **costs[run_id]}
        saved.update(row_record(row), cost_backfill=source)
        atomic_write_json(path, saved)


def markdown_notes(md_path: Path) -> tuple[str | None, list[str]]:
    """(title, notes) of a leaderboard.md written by ``to_markdown``; a previous backfill note is dropped."""
    title, notes = _markdown_notes(md_path)
    return title, [n for n in notes if not n.startswith(NOTE_START)]


def rewrite_leaderboard(folder: Path, source: dict) -> pd.DataFrame:
    """``leaderboard.csv``, ``.md`` and ``pairwise.csv`` from the kept rows (the configs of the existing
    leaderboard)."""
    runs = current_rows(folder)
    title, notes = markdown_notes(folder / "leaderboard.md")
    notes.append(f"{NOTE_START} `{source['command']}` at commit `{source['commit']}` (untrained networks of the "
                 f"same architectures, at the test split's input size); the accuracy columns are those of the "
                 f"command above.")
    return write_suite_tables(folder, runs, primary_metric(runs), title or f"{folder.parent.name}: {folder.name}",
                              notes)


def backfill(folder: Path, overrides: dict, redo_all: bool, source: dict, log=print) -> int:
    """Fill one results folder; returns the number of rows measured."""
    if not (folder / "runs.csv").exists():
        raise SystemExit(f"no {folder / 'runs.csv'}; expected a results folder <results>/<suite>/<dataset>")
    costs = measure_rows(folder, read_runs(folder / "runs.csv"), overrides, redo_all, log)
    if not costs:
        log(f"{folder}: every row already has cost columns (--all measures them again)")
        return 0
    runs = fill_runs_csv(folder, costs)
    update_run_files(folder, runs, costs, source)
    rewrite_leaderboard(folder, source)
    made = write_pareto(folder)
    log(f"{folder}: {len(costs)} row(s) measured; wrote runs.csv, runs/*.json, leaderboard.csv, leaderboard.md, "
        f"pairwise.csv"
        + (f", {made.name}" if made else ""))
    return len(costs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cost_backfill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="results folders <results>/<suite>/<dataset>")
    p.add_argument("--all", action="store_true", help="measure every row again, not only those without cost")
    p.add_argument("--threads", type=int, help="torch threads of the timings (default: each config's threads)")
    p.add_argument("--repeats", type=int, help="timed passes per measurement (default: config's cost.repeats, 5)")
    p.add_argument("--warmup", type=int, help="untimed passes first (default: config's cost.warmup, 2)")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("threads", args.threads), ("repeats", args.repeats), ("warmup", args.warmup))
                 if v is not None}
    command = "python -m benchmarks.cost_backfill " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    source = {"command": command, "commit": git_commit()}
    for folder in args.folders:
        backfill(Path(folder), overrides, args.all, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
