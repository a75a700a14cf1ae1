"""Result files: atomic writes (temp file + rename) and locked read-modify-write of runs.csv."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from retrieval.utils.atomic import atomic_write_text, atomic_write_via  # noqa: F401 (re-exported for the harness)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def command_line(module: str, argv=None) -> str:
    """``python -m <module> <arguments>`` as given (shell-quoted, ``sys.argv`` when ``argv`` is None), without
    ``--debug``: the command a report names."""
    shown = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--debug"]
    return " ".join([f"python -m {module}", *map(shlex.quote, shown)])


def write_report(stem, table: pd.DataFrame, text: str) -> None:
    """A check's report: ``<stem>.csv`` (the table, 4 decimals) and ``<stem>.md`` (``text``), each atomically."""
    atomic_write_text(Path(f"{stem}.csv"), table.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(Path(f"{stem}.md"), text)


@contextlib.contextmanager
def file_lock(path):
    """An exclusive advisory lock on ``<path>.lock`` (fcntl), held for the with-block.

    The kernel drops an fcntl lock when the process holding it ends, however it ends (``kill -9``, the OOM
    killer): the ``.lock`` file a killed process leaves holds nothing, and the next process takes the lock
    at once whatever the file contains (it is truncated, never read)."""
    lock_path = Path(str(path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# read as text: a short commit or config hash may look like a number ("0123456", "12e4567")
TEXT_COLUMNS = {c: str for c in ("run_id", "suite", "dataset", "teacher", "student", "method", "commit",
                                 "config_hash", "timestamp")}


def upsert_rows(csv_path, rows: list[dict], key: str = "run_id") -> pd.DataFrame:
    """Add ``rows`` to ``csv_path`` under a lock, replacing earlier rows with the same ``key``."""
    csv_path = Path(csv_path)
    with file_lock(csv_path):
        old = pd.read_csv(csv_path, dtype=TEXT_COLUMNS) if csv_path.exists() else pd.DataFrame()
        new = pd.DataFrame(rows)
        if len(old) and key in old:
            old = old[~old[key].isin(new[key])]
        table = pd.concat([old, new], ignore_index=True) if len(old) else new
        atomic_write_text(csv_path, table.to_csv(index=False))
    return table


def read_runs(path) -> pd.DataFrame:
    """A runs table written by the suites, or a baseline that starts with ``# key: value`` lines."""
    path = Path(path)
    with open(path) as f:
        skip = 0
        for line in f:
            if not line.startswith("#"):
                break
            skip += 1
    return pd.read_csv(path, skiprows=skip, dtype=TEXT_COLUMNS)


def read_header(path) -> dict:
    """The ``# key: value`` lines at the top of a table (command, commit, ...)."""
    meta = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
    return meta


PACKAGES = ("torch", "torchvision", "faiss-cpu", "faiss-gpu", "faiss", "pytorch-metric-learning", "numpy")


def package_versions(names=PACKAGES) -> dict:
    """Installed versions (pip metadata) of the packages that decide a result; absent ones left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_commit(cwd=None) -> str:
    """Short commit of the checkout (``-dirty`` if tracked files changed), or ``unknown``.

    Changes under ``results/`` do not count: they are what runs write, not code, so a second
    run in a checkout whose committed tables the first one updated still names its commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude,top)results"], cwd=cwd, capture_output=True, text=True,
                               check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
