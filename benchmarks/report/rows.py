"""Which rows of a results folder a leaderboard shows, and its primary metric.

A runs.csv keeps every run ever made in its folder, with several configs. From each folder only the
rows whose ``config_hash`` appears in that folder's ``leaderboard.csv`` are kept, i.e. the configs of
the latest suite run there; a folder without a ``leaderboard.csv`` contributes all its rows (one
leaderboard row per config).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report.aggregate import metric_columns
from benchmarks.runner.results_io import read_runs

PRIMARY = ("recall@1", "top1")  # retrieval-like suites, then classification


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


def collect(results: Path) -> list[tuple[Path, pd.DataFrame]]:
    """(folder, kept rows) for every ``<results>/<suite>/<dataset>/runs.csv``, in name order."""
    found = []
    for csv in sorted(results.glob("*/*/runs.csv")):
        rows = current_rows(csv.parent)
        if len(rows):
            found.append((csv.parent, rows))
    return found
