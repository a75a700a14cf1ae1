"""Rerun one result row from what was saved beside it: ``python -m benchmarks.run --reproduce RUN_ID``.

The row's ``runs/<RUN_ID>.json`` holds the full resolved config, the row and the
environment. The config is restricted to the row's method and seed and run by the same
suite code into a temporary folder (the saved results are not touched); the new row is
printed next to the saved one. A student run reuses the cached teacher of its config
when ``--cache-dir`` has it (the same weights the row was trained against) and trains
it otherwise; a teacher row is always retrained.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.report.aggregate import metric_columns
from benchmarks.runner.preflight import check_device
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.results_io import git_commit
from benchmarks.runner.suite_runner import teacher_seed_of
from benchmarks.runner.tasks import get_suite, is_suite, list_suites

FIRST = ("run_id", "suite", "dataset", "teacher", "student", "method", "seed")
VOLATILE = ("train_seconds", "timestamp", "commit")  # expected to differ between two runs
HOW_TO_FIND = ("run ids are the run_id column of <results>/<suite>/<dataset>/runs.csv and the names of "
               "<results>/<suite>/<dataset>/runs/<run_id>.json (e.g. hmat-<hash>-s0, teacher-<hash>-s0); "
               "list them with: ls {results}/*/*/runs/")


def find_run(results: Path, run_id: str) -> Path:
    """The saved ``runs/<run_id>.json`` under any suite and dataset of ``results``."""
    if not re.fullmatch(r"[A-Za-z0-9_.@+-]+", run_id or ""):
        raise SystemExit(f"bad run id {run_id!r}; " + HOW_TO_FIND.format(results=results))
    matches = sorted(results.glob(f"*/*/runs/{run_id}.json"), key=lambda p: p.stat().st_mtime)
    if not matches:
        raise SystemExit(f"no saved run {run_id!r} under {results}/<suite>/<dataset>/runs/; "
                         + HOW_TO_FIND.format(results=results))
    if len(matches) > 1:
        print(f"note: {run_id} is saved in {len(matches)} places (same config in several suites); "
              f"using the newest, {matches[-1]}")
    return matches[-1]


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b) or (pd.isna(a) and pd.isna(b))
        except (TypeError, ValueError):
            return False
    return a == b


def compare_rows(saved: dict, new: dict) -> tuple[pd.DataFrame, list[str]]:
    """Saved and new value of every column; the non-volatile columns that differ."""
    cols = list(dict.fromkeys([*FIRST, *metric_columns(pd.DataFrame(columns=list(saved))), *saved, *new]))
    cols = [c for c in cols if c in saved or c in new]
    records, diff = [], []
    for c in cols:
        a, b = saved.get(c), new.get(c)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        records.append({"column": c, "saved": a, "reproduced": b, "difference": f"{b - a:+.6g}" if numeric else "",
                        "same": _same(a, b)})
        if c not in VOLATILE and not _same(a, b):
            diff.append(c)
    return pd.DataFrame(records).set_index("column"), diff


def _environment_changes(saved: dict, now: dict) -> list[str]:
    changes = []
    for key in ("python", "torch", "platform", "threads", "cpu", "cpu_model", "device"):
        if key in saved and key in now and saved[key] != now[key]:
            changes.append(f"{key} {saved[key]} -> {now[key]}")
    old, new = saved.get("packages") or {}, now.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(f"{name} {old.get(name)} -> {new.get(name)}")
    return changes


def reproduce(run_id: str, results: Path, cache_dir: Path, progress: bool = False, log=print) -> int:
    """Rerun ``run_id``; print both rows. Returns 0 if every non-volatile column matches, else 1."""
    path = find_run(results, run_id)
    saved = json.loads(path.read_text())
    row, cfg = saved["row"], copy.deepcopy(saved["config"])
    method, seed = row["method"], int(row["seed"])
    if not is_suite(cfg.get("suite")):
        raise SystemExit(f"{path}: suite {cfg.get('suite')!r} is not available here; known: {sorted(list_suites())}")
    suite = get_suite(cfg["suite"])
    check_device(cfg.get("device"), (cfg.get("launcher") or {}).get("name"))  # the saved run's device, on this machine
    # the design the row was made under (rows written before replicates were a choice were conditional)
    cfg["replicates"] = (saved.get("replicate") or {}).get("design", "conditional")
    cfg["seeds"] = [seed]
    cfg["run"] = [] if method == "teacher" else [method]
    cfg["_command"] = f"python -m benchmarks.run --reproduce {run_id}"
    cfg.pop("tracking", None)  # the rerun goes to a temporary folder: no MLflow store of the saved run gets it
    commit = git_commit()
    log(f"reproducing {run_id} ({cfg['suite']}, {cfg['dataset']['name']}, method {method}, seed {seed}) "
        f"from {path}")
    if str(row.get("commit")) != commit:
        log(f"WARNING: the row was made at commit {row.get('commit')}, this checkout is {commit}; "
            f"code changes since then may change the numbers")
    elif commit.endswith("-dirty"):
        log(f"WARNING: commit {commit} has uncommitted changes; the row may come from other code")
    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        cache = Path(tmp) / "cache"
        if method != "teacher":
            teacher_seed = teacher_seed_of(cfg, seed)  # the config's shared teacher, or the seed's own
            replicate = replicate_config(cfg, seed)  # its data, pretraining and weights (full replicates)
            cached = suite.teacher_checkpoint(replicate, Path(cache_dir), teacher_seed)
            if cached.exists():  # the teacher the row was trained against; a link, so the cache is never written
                target = suite.teacher_checkpoint(replicate, cache, teacher_seed)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(cached.resolve(), target)
                log(f"teacher: the cached one the row was trained against, {cached}")
            else:
                log(f"teacher not in {cache_dir}: it is retrained first")
        dest = suite.run(cfg, Path(tmp) / "results", cache, commit, progress=progress, log=log)
        new_path = dest / "runs" / f"{run_id}.json"
        if not new_path.exists():
            ids = sorted(p.stem for p in (dest / "runs").glob("*.json"))
            raise SystemExit(f"the rerun made run id(s) {ids}, not {run_id}: this code hashes the saved config "
                             f"differently, so the row cannot be reproduced exactly")
        rerun = json.loads(new_path.read_text())
    new = rerun["row"]
    changes = _environment_changes(saved.get("environment") or {}, rerun.get("environment") or {})
    if changes:
        log("WARNING: the environment differs from the saved one: " + "; ".join(changes))
    table, diff = compare_rows(row, new)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        log("\n" + table.to_string())
    if diff:
        log(f"\nDIFFERENT: {', '.join(diff)} changed. On the same machine, thread count and package versions the "
            f"row should be identical; elsewhere small floating-point differences are expected.")
        return 1
    log(f"\nIDENTICAL: every column except {', '.join(VOLATILE)} matches the saved row "
        f"(as expected on the same machine, threads and package versions).")
    return 0
