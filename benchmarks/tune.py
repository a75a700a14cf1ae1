"""Tune KD method options on validation data only (never on test).

    python -m benchmarks.tune --grid benchmarks/configs/tune_retrieval.yaml [--suite retrieval] [--config FILE]
        [--seeds 0,1] [--workers N] [--launcher local|ray|slurm] [--test-after] [--folds K]
        [--search optuna --trials N [--study-db PATH] [--study-name NAME] [--pruner median|none]
         [--sampler-seed S]] [--reproductions N]

For each method of the grid file, every combination of the listed option values
trains one student per seed (on ``fit``, the training data minus ``val``); the table
holds the mean over seeds of each one's validation score (that of its selected epoch:
the best one, or the last one for ``select: last``), ranked by the student's
``select_metric``, and the best combination per method is printed, ready to paste into
a config. No training job sees the test split.

``--suite`` (default: retrieval) picks the suite whose default the config is merged
over; ``tuning.csv`` goes to ``<out>/<suite>/<dataset>/``:

- retrieval: ``val`` holds training classes (class-disjoint), scored by Recall@1 and MAP@R;
- classification: ``val`` is a held-out share of the training images of every class
  (``val_fraction``); a role with ``select: last``, which trains on the whole ``train``
  split in a benchmark run, here trains on ``fit`` and is scored on ``val`` at its last
  epoch (the teacher too: no network of the tuning sees a validation image in training);
  top-1 and top-5;
- detection: the dataset's own ``val`` images (never trained on), COCO AP and AP50.

``--test-after`` (retrieval) measures whether the validation ranking carries to the test classes:
each cell's selected weights are kept, and only after ``tuning.csv`` (the choice) is
written are they scored on the test split, into ``tuning_test.csv`` with the Spearman
rank correlation between the validation and test scores over the grid. The test
scores play no part in the choice.

Every cell's student run is tracked like a benchmark run (``benchmarks.runner.tracking``), into
``<out>/<suite>/<dataset>/tuning/tensorboard/<method>-<options hash>[-f<fold>]-s<seed>/``, with its
final validation metrics in place of test ones.

``--folds K`` tunes on class-disjoint cross-validation of the training classes (as
Musgrave et al.'s powerful-benchmarker does): fold k holds out the k-th block of
1/K of the training classes as ``val`` and trains its own teacher and students on
the rest; each cell's score is the mean over folds and seeds. The pretrained
backbones are shared by all folds (pretraining reads the whole training half).

``--search optuna`` (the extra ``cluster``) replaces the grid by a sampled search: TPE, pruning of
poor trials on their validation metric, the study in a SQLite file (default
``<out>/<suite>/<dataset>/optuna.db``) so that rerunning the command resumes it; lists in the grid
file are categorical parameters, ``{low, high[, log][, step]}`` a range. It writes ``search.csv`` (a row
per trial). The same validation-only rule and folds apply. See ``benchmarks.runner.tune.search``.

``--reproductions N`` (either search), after the choice is written: a benchmark run of the suite's
config with each method's chosen options, ``none`` and the teacher over seeds 0..N-1, into
``<out>/<suite>/<dataset>/reproductions/``, whose leaderboard carries the gains over ``none`` with their
paired 95% intervals. Only this run reads the test split.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd

from benchmarks.runner.config import deep_merge, load_yaml, resolve_config
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, comma_list, reports_user_errors
from benchmarks.runner.jobs import run_jobs
from benchmarks.runner.launch import add_launcher_flags, launcher_flags, make_launcher
from benchmarks.runner.launch.interrupt import reports_interrupts
from benchmarks.runner.preflight import check_device
from benchmarks.runner.results_io import atomic_write_text, git_commit
from benchmarks.runner.schema import check_config, method_problems, typed
from benchmarks.runner.suite_runner import teacher_seed_of
from benchmarks.runner.tracking import check_tracking
from benchmarks.runner.tune import search as sampled
from benchmarks.runner.tune.grid import (
    cell_job,
    expand,
    fold_config,
    metrics_of,
    score_after_choice,
    select_metric,
    setup_jobs,
    teacher_job,
    tunable_suites,
    tune_data,
    tuning_config,
)


@reports_interrupts("python -m benchmarks.tune")  # SIGINT, SIGTERM: one line, exit 130 or 143
@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="YAML: {method: {option: [values, ...]}}")
    p.add_argument("--suite", choices=tunable_suites(), default="retrieval",
                   help="the suite whose default the config is merged over (default: retrieval)")
    p.add_argument("--config", help="YAML merged over the suite's default")
    p.add_argument("--seeds", type=partial(comma_list, cast=int), default=[0],
                   help="comma-separated seeds; the table ranks by their mean (default 0)")
    p.add_argument("--workers", type=int, help="trainings at once, one process each (default: the config's)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--folds", type=int, default=0,
                   help="K >= 2: class-disjoint K-fold cross-validation of the training classes (default: the "
                        "config's validation split)")
    p.add_argument("--test-after", action="store_true",
                   help="after the choice is written, score every cell on test and report the validation-test "
                        "rank correlation (tuning_test.csv)")
    add_launcher_flags(p)
    p.add_argument("--search", choices=("grid", "optuna"), default="grid",
                   help="grid: every combination (default); optuna: a sampled search (TPE, median pruning), "
                        "resumable (needs the extra: pip install -e \".[cluster]\")")
    p.add_argument("--trials", type=int, default=20,
                   help="--search optuna: finished trials per method (default 20; 1 for a method with nothing to sample)")
    p.add_argument("--study-db", help="--search optuna: the study's SQLite file or an RDB URL "
                                      "(default <out>/<suite>/<dataset>/optuna.db)")
    p.add_argument("--study-name", help="--search optuna: studies are named <NAME>-<method> (default "
                                        "<method>-<hash of the config, the method's space, seeds and folds>)")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="--search optuna: median (Optuna's MedianPruner on the first seed's validation curve) "
                        "or none")
    p.add_argument("--pruner-startup", type=int, default=5,
                   help="--search optuna: completed trials before the median pruner prunes (default 5)")
    p.add_argument("--sampler-seed", type=int, default=0, help="--search optuna: the TPE sampler's seed (default 0)")
    p.add_argument("--reproductions", type=int, default=0,
                   help="N >= 2: after the choice, run it, none and the teacher over seeds 0..N-1 on the test "
                        "split (a leaderboard with paired 95%% intervals of the gain over none)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    optuna = sampled.require_optuna() if args.search == "optuna" else None  # at once: one line naming the extra
    if args.reproductions == 1 or args.reproductions < 0:
        raise UserError(f"--reproductions {args.reproductions}: expected N >= 2 seeds (an interval needs two)")
    if args.search == "optuna" and (args.test_after or args.trials < 1):
        raise UserError("--search optuna: --trials must be at least 1, and --test-after is for the grid")
    cfg = tuning_config(resolve_config(args.suite, args.config))
    check_config(cfg)  # the config and every cell's options, before any data or job
    spec = typed(cfg)
    check_device(spec.device, args.launcher or (spec.launcher.name if spec.launcher else None))  # before any data
    if args.suite != "retrieval" and (args.test_after or args.folds):
        raise UserError(f"--suite {args.suite}: --test-after and --folds are for the retrieval suite only (its "
                        f"class-disjoint validation folds); tune {args.suite} on the config's val split")
    grid = load_yaml(args.grid).get("grid") or {}
    if not grid:
        raise SystemExit(f"{args.grid}: expected a top-level 'grid' mapping of method -> options")
    seeds = args.seeds
    if args.folds == 1 or args.folds < 0:
        raise SystemExit(f"--folds {args.folds}: expected 0 (the config's val split) or K >= 2 folds")
    folds = list(range(args.folds)) if args.folds else [None]
    if args.folds:  # before any job: the dataset must know the folds
        try:
            tune_data(fold_config(cfg, args.folds - 1, args.folds), Path(args.cache_dir))
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"--folds {args.folds}: the dataset {spec.dataset.name!r} cannot make these folds "
                             f"({exc}); cross-validation folds need a dataset with a val_fold option (synthetic)")
    workers = args.workers or spec.workers or 1
    check_tracking(cfg)  # every cell's and trial's curves go to <out>/<suite>/<dataset>/tuning|search/tensorboard
    launcher = _launcher(args, cfg)
    command = "python -m benchmarks.tune " + " ".join(argv if argv is not None else sys.argv[1:])
    commit = git_commit()
    header = f"# command: {command}\n# commit: {commit}\n# date: {time.strftime('%Y-%m-%d')}\n"
    if args.search == "optuna":
        chosen = sampled.search_command(optuna, args, cfg, grid, seeds, workers, header, launcher)
        return _reproduce(args, chosen, workers, command, launcher)
    ranges = [f"{m}.{k}" for m, space in grid.items() for k, v in (space or {}).items() if sampled.is_range(v)]
    if ranges:
        raise UserError(f"{args.grid}: {', '.join(ranges)}: a range ({{low, high}}) is for --search optuna; the grid "
                        f"needs a list of values")
    cells = expand(grid)
    metrics = metrics_of(cfg)
    for i, (method, options) in enumerate(cells):
        problems = method_problems(deep_merge(cfg, {"methods": {method: options}, "run": [method]}), only=method)
        if problems:
            raise UserError(f"{args.grid}: grid cell {i} ({method} {options}): "
                            + "; ".join(f"{path}: {message}" for path, message in problems))
    dest = Path(args.out) / spec.suite / spec.dataset.name
    job = {"cfg": cfg, "cells": cells, "cache_dir": Path(args.cache_dir), "dest": dest / "tuning", "commit": commit,
           "progress": not args.no_progress and workers == 1, "keep": args.test_after, "folds": args.folds}
    ranked = f"val_{select_metric(cfg)}"  # the metric that also selects each run's checkpoint (checked first)
    setup = setup_jobs(job, seeds)  # pretrained backbones
    units = [(fold, seed) for fold in folds for seed in seeds]
    rows = [r for r in run_jobs(partial(teacher_job, job), partial(cell_job, job), units, range(len(cells)),
                                workers, setup=setup, teacher_of=lambda unit: (unit[0], teacher_seed_of(cfg, unit[1])),
                                launcher=launcher)
            if r]
    per_seed = pd.DataFrame(rows)
    keys = ["method", *sorted(c for c in per_seed.columns if c.startswith("opt.")), "options_hash"]
    first = f"val_{metrics[0]}"
    columns = {"seeds": ("seed", "nunique"), "folds": ("fold", "nunique"), "m0": (first, "mean"),
               "m0_std": (first, "std"), **{f"m{i}": (f"val_{m}", "mean") for i, m in enumerate(metrics) if i},
               "train_seconds": ("train_seconds", "mean"), "diverged": ("diverged", "sum")}
    names = {"m0_std": f"{first}_std", **{f"m{i}": f"val_{m}" for i, m in enumerate(metrics)}}
    table = per_seed.groupby(keys, dropna=False, sort=False).agg(**columns).reset_index().rename(columns=names)
    table.loc[table["diverged"] > 0, [f"val_{m}" for m in metrics] + [f"{first}_std"]] = float("nan")  # no score
    table = table.sort_values(["method", ranked], ascending=[True, False], na_position="last")
    atomic_write_text(dest / "tuning.csv", header + table.to_csv(index=False, float_format="%.4f"))
    print(table.to_string(index=False))
    over = f"seeds {seeds}" if not args.folds else f"{args.folds} folds x seeds {seeds}"
    print(f"\nbest on validation (mean over {over}):")
    chosen = {}
    for method, part in table.groupby("method"):
        best = part.iloc[0]
        if pd.isna(best[ranked]):
            print(f"  {method}: every cell diverged on some seed (loss NaN or inf); no choice")
            continue
        opts = {k[4:]: getattr(best[k], "item", lambda: best[k])() for k in part.columns
                if k.startswith("opt.") and not pd.isna(best[k])}
        chosen[method] = opts
        also = f", {first} {100 * best[first]:.2f}" if first != ranked else ""
        print(f"  {method}: {opts}  ({ranked} {100 * best[ranked]:.2f}{also})")
    if args.test_after:  # the choice above is written and printed; only now is the test split read
        scored, rho = score_after_choice(cfg, job["cache_dir"], per_seed, table, ranked, args.folds)
        notes = "".join(f"# spearman {k}: {v:.3f}\n" for k, v in rho.items())
        atomic_write_text(dest / "tuning_test.csv", header + notes + scored.to_csv(index=False, float_format="%.4f"))
        print("\nvalidation vs test over the grid (read after the choice):")
        print("\n".join(f"  spearman {k}: {v:.3f}" for k, v in rho.items()))
    return _reproduce(args, chosen, workers, command, launcher)


def _launcher(args, cfg: dict):
    """The launcher of the config's ``launcher`` section with ``--launcher`` and ``--ray-address`` over it
    (a missing extra stops here, before any job)."""
    given = launcher_flags(cfg.get("launcher"), args.launcher, args.ray_address)
    launcher = make_launcher(deep_merge(cfg.get("launcher") or {}, given), folder=Path(args.cache_dir) / "slurm",
                             cfg=cfg)
    if launcher.name != "local":  # the jobs run in other processes and nodes: where they write, spelt in full
        args.cache_dir, args.out = str(Path(args.cache_dir).resolve()), str(Path(args.out).resolve())
    return launcher


def _reproduce(args, chosen: dict, workers: int, command: str, launcher=None) -> int:
    """``--reproductions N``: the choice (already written) over seeds 0..N-1, test split included."""
    if args.reproductions:
        cfg = resolve_config(args.suite, args.config)
        spec = typed(cfg)
        dest = Path(args.out) / spec.suite / spec.dataset.name / "reproductions"
        where = sampled.reproduce(args.suite, args.config, chosen, args.reproductions, dest, Path(args.cache_dir),
                                  workers, not args.no_progress, launcher, command=command)
        print(f"reproductions over seeds 0..{args.reproductions - 1}: {where / 'leaderboard.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
