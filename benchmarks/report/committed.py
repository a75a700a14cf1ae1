"""Compare a fresh run with the committed table of the same suite and dataset.

A run writes to ``runs/`` unless ``--out`` says otherwise, so that rerunning a documented command
leaves the checkout as git has it. The rows it trained are then paired with the committed rows of
``results/<suite>/<dataset>/runs.csv`` that share their teacher, student, method, seed and config
hash, and every metric is compared exactly: a default that reproduces its table says so in one line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report.aggregate import metric_columns
from benchmarks.runner.results_io import read_runs

KEY = ["teacher", "student", "method", "seed", "config_hash"]


def compare_rows(fresh: pd.DataFrame, committed: pd.DataFrame) -> dict:
    """Pair ``fresh`` rows with ``committed`` ones on ``KEY``; the counts of paired rows, of those
    whose every metric is equal, of fresh rows without a committed partner, and the largest
    absolute difference (a fraction, as in the tables) with the metric and method it is in."""
    metrics = [m for m in metric_columns(fresh) if m in committed.columns]
    fresh = fresh.drop_duplicates(KEY, keep="last")
    committed = committed.drop_duplicates(KEY, keep="last")
    both = fresh[KEY + metrics].merge(committed[KEY + metrics], on=KEY, suffixes=("", "_committed"))
    worst = (0.0, None, None)
    equal = 0
    for _, row in both.iterrows():
        same = True
        for m in metrics:
            a, b = row[m], row[f"{m}_committed"]
            if pd.isna(a) and pd.isna(b):
                continue
            diff = abs(a - b) if not (pd.isna(a) or pd.isna(b)) else float("inf")
            if diff != 0:
                same = False
                if diff > worst[0]:
                    worst = (diff, m, row["method"])
        equal += same
    return {"paired": len(both), "equal": equal, "unpaired": len(fresh) - len(both), "metrics": metrics,
            "largest": worst}


def committed_line(out: Path, dest: Path, methods, seeds, results: Path = Path("results")) -> str | None:
    """One line on how the latest rows of ``methods`` x ``seeds`` (and their teachers) in
    ``dest/runs.csv``, a run's folder under ``out``, compare with the committed table at the same
    place under ``results``; None when the run wrote into ``results`` itself or nothing is committed there."""
    out, dest = Path(out), Path(dest)
    committed_path = Path(results) / dest.relative_to(out) / "runs.csv"
    if (not committed_path.is_file() or not (dest / "runs.csv").is_file()
            or dest.resolve() == committed_path.parent.resolve()):
        return None
    fresh = read_runs(dest / "runs.csv")
    fresh = fresh[fresh["method"].isin(set(methods) | {"teacher"}) & fresh["seed"].isin(set(seeds))]
    fresh = fresh.drop_duplicates(["teacher", "student", "method", "seed"], keep="last")
    if fresh.empty:
        return None
    c = compare_rows(fresh, read_runs(committed_path))
    where = committed_path.as_posix()
    if not c["paired"]:
        return f"{where}: no committed row has this config (hash, method, seed); nothing to compare"
    text = f"{where}: {c['paired']} of {len(fresh)} rows have a committed twin; "
    if c["equal"] == c["paired"]:
        text += f"all {c['paired']} reproduce every metric ({', '.join(c['metrics'])}) bit for bit"
    else:
        diff, metric, method = c["largest"]
        text += (f"{c['paired'] - c['equal']} differ (largest: {100 * diff:.4g} points of {metric}, {method})"
                 if diff != float("inf") else f"{c['paired'] - c['equal']} differ (a metric missing on one side)")
    return text
