"""Tuning KD method options on validation data: the grid's cells, the jobs that train a teacher per
(fold, seed) and a student per cell, and the scores read after the choice (``python -m benchmarks.tune``
is the command; ``benchmarks.runner.tune.search`` samples instead of enumerating)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import torch

from benchmarks.runner.config import config_hash, deep_merge
from benchmarks.runner.errors import UserError
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.results_io import atomic_write_via
from benchmarks.runner.schema import typed, typed_train
from benchmarks.runner.suite_runner import setup_jobs as runner_setup_jobs, student_step, suite_data, teacher_step
from benchmarks.runner.tasks import (
    get_suite,
    list_tasks,
    retrieval as suite,  # --test-after and --folds (retrieval only)
    tuning_metrics,
)
from benchmarks.runner.tasks.common import train_options
from benchmarks.runner.tracking import tracking
from retrieval.engine.trainer import NonFiniteLossError
from retrieval.utils.cache_files import load_torch


def tunable_suites() -> list[str]:
    """The suites ``benchmarks.tune`` accepts: the tasks' defaults, which tuning merges its config over."""
    return list_tasks()


def metrics_of(cfg: dict) -> tuple[str, ...]:
    """The validation metrics the tuning table of ``cfg``'s suite holds (the first with its std over seeds);
    a cell is ranked by the one the student's checkpoint is selected on (``Task.METRICS``)."""
    return tuning_metrics(typed(cfg).suite)


def suite_of(cfg: dict):
    """The ``Suite`` of a resolved config (its ``suite``)."""
    return get_suite(typed(cfg).suite)


def select_metric(cfg: dict) -> str:
    metric = typed_train(cfg, "student").select_metric or suite_of(cfg).PRIMARY
    allowed = metrics_of(cfg)
    if metric not in allowed:
        raise SystemExit(f"the tuner ranks cells by {' or '.join(allowed)}; the config selects on {metric!r}")
    return metric


def tuning_config(cfg: dict) -> dict:
    """The config the tuner trains with. Classification: a role with ``select: last`` (which would
    train on the whole ``train`` split, ``val`` included) trains on ``fit`` and is scored on ``val``
    at its last epoch only (``select: best`` over that one evaluation). Other suites: ``cfg``."""
    if typed(cfg).suite != "classification":
        return cfg
    out = cfg
    for role in ("teacher", "student"):
        train = typed_train(cfg, role)
        if (train.select or "best") == "last":
            epochs = train.epochs or 10
            out = deep_merge(out, {role: {"train": {"select": "best", "eval_every": epochs}}})
    return out


def expand(grid: dict) -> list[tuple[str, dict]]:
    """[(method, options)] for every combination of each method's listed values."""
    out = []
    for method, space in grid.items():
        keys = sorted(space or {})
        for values in itertools.product(*(space[k] if isinstance(space[k], list) else [space[k]] for k in keys)):
            out.append((method, dict(zip(keys, values))))
    return out


def fold_config(cfg: dict, fold: int | None, folds: int) -> dict:
    """The config of cross-validation fold ``fold`` of ``folds`` (its val classes: that block of the
    training classes); ``cfg`` itself when ``fold`` is None (the config's own val split)."""
    if fold is None:
        return cfg
    return deep_merge(cfg, {"dataset": {"options": {"val_fold": fold, "val_fraction": 1 / folds}}})


def unit_config(job: dict, unit: tuple) -> dict:
    """The config a tuning unit (fold, seed) trains with: the fold's validation classes, and under full
    replicates the data, pretraining and initial weights of replicate ``seed``
    (``benchmarks.runner.replicates``)."""
    fold, seed = unit
    return replicate_config(fold_config(job["cfg"], fold, job["folds"]), seed)


def tune_data(cfg: dict, cache_dir: Path) -> dict:
    data = suite_data(suite_of(cfg), cfg, cache_dir, log=lambda *a: None)
    return {k: v for k, v in data.items() if k != "test"}  # tuning never looks at the test split


def setup_jobs(job: dict, seeds) -> list:
    """(name, job) of the pretraining jobs of the tuning units' replicates (``suite_runner.setup_jobs``)."""
    cfg = job["cfg"]
    return runner_setup_jobs(suite_of(cfg), cfg, {**job, "suite": typed(cfg).suite, "log": print}, seeds)


def teacher_job(job: dict, unit: tuple) -> dict:
    """Train (or load) the teacher of a tuning unit (``suite_runner.teacher_step``)."""
    fold, seed = unit
    cfg = unit_config(job, unit)
    teacher_step(suite_of(cfg), cfg, tune_data(cfg, job["cache_dir"]), seed, job["cache_dir"], job["progress"], print)
    return {}


def cell_job(job: dict, unit: tuple, cell: int) -> dict:
    fold, seed = unit
    cfg = unit_config(job, unit)
    metrics = metrics_of(cfg)
    method, options = job["cells"][cell]
    data = tune_data(cfg, job["cache_dir"])
    merged = deep_merge(cfg["methods"].get(method) or {}, options)
    where = f"seed {seed}" if fold is None else f"fold {fold} seed {seed}"
    said = f"[{cell + 1}/{len(job['cells'])}] {method} {options} {where}"
    cell_id = {"method": method, **{f"opt.{k}": v for k, v in options.items()}, "fold": fold, "seed": seed}
    try:  # tracked like a benchmark run, its final validation metrics in place of test ones
        with tracking({**job, "cfg": cfg}, tuning_run_id(method, merged, fold, seed), "student", method,
                      seed) as tracked:
            student, result = student_step(suite_of(cfg), cfg, data, method, merged, seed, job["cache_dir"],
                                           job["progress"])
            tracked.finish(result.best_val, split="val")
    except NonFiniteLossError as exc:  # a diverged cell is a result of the search, not the end of it
        print(f"{said}: diverged ({exc})", flush=True)
        return {**cell_id, **{f"val_{m}": float("nan") for m in metrics}, "best_epoch": None,
                "train_seconds": float("nan"), "options_hash": config_hash(merged), "diverged": 1}
    print(f"{said}: val {metrics[0]} {100 * result.best_val[metrics[0]]:.2f}", flush=True)
    row = {**cell_id, **{f"val_{m}": result.best_val[m] for m in metrics},
           "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 1),
           "options_hash": config_hash(merged), "diverged": 0}
    if job.get("keep"):  # the selected weights, scored on test only after the choice is written
        path = kept_student(cfg, job["cache_dir"], method, row["options_hash"], seed)
        weights = student.state_dict()
        atomic_write_via(path, lambda tmp: torch.save(weights, tmp))
    return row


def tuning_run_id(method: str, options: dict, fold: int | None, seed: int) -> str:
    """The name of a tuning run's event files: ``<method>-<options hash>[-f<fold>]-s<seed>``."""
    return f"{method}-{config_hash(options)}" + (f"-f{fold}" if fold is not None else "") + f"-s{seed}"


def kept_student(cfg: dict, cache_dir: Path, method: str, options_hash: str, seed: int) -> Path:
    """Where ``--test-after`` keeps a cell's selected student (named by the run's whole identity)."""
    run_id, _ = suite.run_id_of(cfg, method, seed)  # the config's identity; the cell's options by their hash
    return Path(cache_dir) / "tuning" / typed(cfg).dataset.name / f"{run_id}-{options_hash}.pt"


def score_after_choice(cfg: dict, cache_dir: Path, per_seed: pd.DataFrame, table: pd.DataFrame,
                       ranked: str, folds: int = 0) -> tuple[pd.DataFrame, dict]:
    """Score every kept student on the test split (after the choice was written) and set the test
    scores beside the validation ones: (per-cell table, Spearman correlations)."""
    tcfg = train_options(cfg, "student", progress=False)
    scores = []
    for _, r in per_seed[per_seed["diverged"] == 0].iterrows():  # a diverged run kept no weights
        model = suite._model(typed(cfg).student)
        fold = None if pd.isna(r["fold"]) else int(r["fold"])
        unit = unit_config({"cfg": cfg, "folds": folds}, (fold, int(r["seed"])))  # its replicate's test split
        data = suite_data(get_suite("retrieval"), unit, cache_dir, log=lambda *a: None)  # the Suite, not its module
        path = kept_student(unit, cache_dir, r["method"], r["options_hash"], int(r["seed"]))
        weights = load_torch(path, then="")  # None: damaged (moved aside, with a line saying so)
        if weights is None:
            raise UserError(f"the kept student {path} of {r['method']} seed {r['seed']} is missing or damaged; "
                            f"rerun the same command (every cell is trained and kept again)")
        model.load_state_dict(weights)
        test = suite.evaluate_test(model, data["test"], unit, tcfg, desc="tuning test")
        scores.append({"options_hash": r["options_hash"], "method": r["method"], "seed": r["seed"],
                       "test_recall@1": test["recall@1"], "test_map@r": test["map@r"]})
    test = pd.DataFrame(scores).groupby(["method", "options_hash"], sort=False)[["test_recall@1", "test_map@r"]].mean()
    out = table.join(test, on=["method", "options_hash"])
    out["chosen"] = out.groupby("method")[ranked].transform("max") == out[ranked]
    return out, rank_correlations(out, ranked)


def rank_correlations(table: pd.DataFrame, ranked: str) -> dict:
    """Spearman correlation of the validation metric ``ranked`` with each test metric over the grid's
    cells (all methods together), and within each method with at least 3 cells."""
    out = {}
    for test in ("test_recall@1", "test_map@r"):
        out[f"{ranked} vs {test} (all {len(table)} cells)"] = float(table[ranked].corr(table[test], method="spearman"))
        for method, part in table.groupby("method"):
            if len(part) >= 3:
                out[f"{ranked} vs {test} ({method}, {len(part)} cells)"] = float(
                    part[ranked].corr(part[test], method="spearman"))
    return out


