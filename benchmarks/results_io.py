"""Result files: atomic writes (temp file + rename) and locked read-modify-write of runs.csv."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def file_lock(path):
    """An exclusive advisory lock on ``<path>.lock`` (fcntl), held for the with-block."""
    lock_path = Path(str(path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upsert_rows(csv_path, rows: list[dict], key: str = "run_id") -> pd.DataFrame:
    """Add ``rows`` to ``csv_path`` under a lock, replacing earlier rows with the same ``key``."""
    csv_path = Path(csv_path)
    with file_lock(csv_path):
        old = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
        new = pd.DataFrame(rows)
        if len(old) and key in old:
            old = old[~old[key].isin(new[key])]
        table = pd.concat([old, new], ignore_index=True) if len(old) else new
        atomic_write_text(csv_path, table.to_csv(index=False))
    return table


def git_commit(cwd=None) -> str:
    """Short commit of the checkout (``-dirty`` if tracked files changed), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
