"""Command-line runner: ``python -m benchmarks.run --suite retrieval [options]``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from importlib import resources
from pathlib import Path

from benchmarks.report.committed import committed_line
from benchmarks.runner import dry_run
from benchmarks.runner.config import deep_merge, default_config, key_origin, load_yaml, merge_config
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, comma_list, reports_user_errors
from benchmarks.runner.launch import add_launcher_flags, launcher_flags, make_launcher
from benchmarks.runner.launch.interrupt import reports_interrupts
from benchmarks.runner.preflight import preflight
from benchmarks.runner.reproduce import reproduce
from benchmarks.runner.results_io import git_commit
from benchmarks.runner.tasks import get_suite, is_suite, list_suites, suite_task
from benchmarks.runner.tracking import check_tracking
from retrieval.engine import distributed
from retrieval.methods import methods_for_task

PLANNED = ()
DEFAULT_OUT = "runs"  # git ignores it: rerunning a documented command leaves the checkout clean


def torchrun_suites() -> list[str]:
    """The suites that declare ``TORCHRUN = True`` (they train each job on all torchrun processes)."""
    return [name for name in list_suites() if get_suite(name).TORCHRUN]


def _every_method_if_all(methods: list[str], cfg: dict) -> list[str]:
    """``--methods all``: every registered method that runs on the suite's task, in registry order
    (``none`` first); any other list unchanged."""
    if "all" not in methods:
        return methods
    if methods != ["all"]:
        raise UserError(f"--methods {','.join(methods)}: 'all' stands alone (it names every method of the "
                        f"suite's task); list the methods instead")

    return methods_for_task(suite_task(cfg["suite"]) if is_suite(cfg.get("suite")) else None)


_csv = comma_list  # an empty list (--methods ,) is a bad flag: one line, exit 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--suite", default="retrieval", help=f"one of {sorted(list_suites())}")
    p.add_argument("--dataset", help="dataset name (synthetic, mnist, fonts, cub200, cars196, sop, folder; for "
                                     "classification synthetic-cls, fonts-cls, cifar100, ...)")
    p.add_argument("--data-root", help="folder holding the dataset in its official layout")
    p.add_argument("--methods", type=_csv, help="comma-separated KD methods, e.g. none,at,rkd,crd,hmat, or all "
                   "(every method of the suite's task)")
    p.add_argument("--seeds", type=lambda s: _csv(s, int), help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--config", help="YAML file merged over the suite's default config")
    p.add_argument("--out", help="results folder (default: runs, which git ignores; --out results refreshes the "
                                 "committed tables; for --dry-run, dry-run)")
    p.add_argument("--cache-dir", default="cache", help="where trained teachers are cached (default: cache)")
    p.add_argument("--epochs", type=_positive, help="override the epochs of teacher and student (quick runs)")
    p.add_argument("--device", help="cpu or cuda (default: from the config, cpu)")
    p.add_argument("--workers", type=_positive,
                   help="jobs (teachers, students) run at once, each in its own process (default: from the config)")
    add_launcher_flags(p)
    p.add_argument("--index", type=_csv,
                   help="also report Recall@K from approximate faiss indexes beside the exact one: ivf, hnsw or both")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tracker", choices=("tensorboard", "mlflow", "none"),
                   help="run tracking: TensorBoard event files under <out>/<suite>/<dataset>/tensorboard (default, "
                        "when tensorboard is installed), mlflow (those and an MLflow run per training run) or none; "
                        "tensorboard and mlflow come with the cluster extra")
    p.add_argument("--tracking-uri", help="the MLflow store of --tracker mlflow (default: the file store <out>/mlruns)")
    p.add_argument("--check-data", choices=("sample", "all"),
                   help="decode a fixed sample of 500 images per split before training, or all of them "
                        "(default: all for --dataset folder, else sample)")
    p.add_argument("--dry-run", action="store_true",
                   help="run every job of the recipe for a few steps, then evaluate on a bounded sample: time, "
                        "memory and the projected wall time per job (rows go to --out, by default dry-run)")
    p.add_argument("--dry-steps", type=_positive,
                   help=f"training steps of each job in a dry run (default {dry_run.STEPS})")
    p.add_argument("--dry-batch", type=_positive, help="batch of a dry run (default: the recipe's)")
    p.add_argument("--dry-eval", type=_positive,
                   help=f"images of each evaluated split in a dry run (default {dry_run.EVAL_IMAGES})")
    add_debug_flag(p)
    p.add_argument("--reproduce", metavar="RUN_ID",
                   help="rerun the saved row RUN_ID (found under --out) with its saved config and compare")
    return p.parse_args(argv)


def build_config(args) -> tuple[dict, object]:
    """The run's config (the suite's default, the ``--config`` file, the flags) and
    ``origin(key path) -> str``: which of them a key came from (for error messages)."""
    if not is_suite(args.suite):
        if args.suite in PLANNED:
            raise UserError(f"suite {args.suite!r} is not implemented yet; available: {sorted(list_suites())}")
        raise UserError(f"unknown suite {args.suite!r}; expected one of {sorted(list_suites())}")
    cfg = default_config(args.suite)
    sources, recipe = [], None
    if args.dataset:
        cfg["dataset"] = {"name": args.dataset, "root": cfg["dataset"].get("root"), "options": {}}
        recipe = dataset_recipe(args.dataset)
        if recipe is not None:  # the packaged recipe of that dataset (benchmarks/configs/<name>.yaml)
            cfg = merge_config(cfg, recipe[1])
            sources.append(recipe)
        sources.append(("--dataset", {"dataset": {"name": args.dataset}}))
    if args.config:
        user = load_yaml(args.config)
        cfg = merge_config(cfg, user)
        sources.append((args.config, user))
        if args.dataset and (user.get("dataset") or {}).get("name") != args.dataset:
            # the flag names the data: a dataset section written for another dataset (or for the suite's
            # default, without a name) does not apply to it; its root still does
            recipe_data = (recipe[1].get("dataset") if recipe else None) or {}
            cfg["dataset"] = deep_merge({"root": cfg["dataset"].get("root"), "options": {}},
                                        {**recipe_data, "name": args.dataset})
    flags = {}
    if args.data_root:
        cfg["dataset"]["root"] = args.data_root
        flags["--data-root"] = {"dataset": {"root": args.data_root}}
    if args.methods:
        args.methods = _every_method_if_all(args.methods, cfg)
        cfg["run"] = args.methods
        flags["--methods"] = {"run": args.methods}
    if args.seeds is not None:
        cfg["seeds"] = args.seeds
        flags["--seeds"] = {"seeds": args.seeds}
    if args.epochs:
        for role in ("teacher", "student"):
            cfg[role].setdefault("train", {})["epochs"] = args.epochs
            milestones = cfg[role]["train"].get("milestones")
            if milestones:
                cfg[role]["train"]["milestones"] = [m for m in milestones if m < args.epochs]
            every = deep_merge(cfg.get("train") or {}, cfg[role]["train"]).get("eval_every")
            if every and every > args.epochs:  # a quick run still evaluates its last epoch
                cfg[role]["train"]["eval_every"] = args.epochs
        flags["--epochs"] = {role: {"train": {"epochs": args.epochs}} for role in ("teacher", "student")}
    if args.device:
        cfg["device"] = args.device
        flags["--device"] = {"device": args.device}
    if args.workers is not None:
        cfg["workers"] = args.workers
        flags["--workers"] = {"workers": args.workers}
    given = launcher_flags(cfg.get("launcher"), args.launcher, args.ray_address)
    if given:
        cfg["launcher"] = deep_merge(cfg.get("launcher") or {}, given)
        flags["--launcher"] = {"launcher": given}
    if args.index:
        cfg["eval"]["index"] = args.index
        flags["--index"] = {"eval": {"index": args.index}}
    tracking = {"tracker": getattr(args, "tracker", None), "uri": getattr(args, "tracking_uri", None)}
    tracking = {k: v for k, v in tracking.items() if v is not None}
    if tracking:  # never part of a run's identity
        cfg["tracking"] = deep_merge(cfg.get("tracking") or {}, tracking)
        flags["--tracker" if "tracker" in tracking else "--tracking-uri"] = {"tracking": tracking}
    if getattr(args, "dry_batch", None):
        cfg = dry_run.with_batch(cfg, args.dry_batch)
        flags["--dry-batch"] = {"train": {"batch_size": args.dry_batch}}
    sources += list(flags.items())
    default = f"benchmarks/configs/{args.suite}.yaml"
    return cfg, lambda path: key_origin(path, sources, default)


def dataset_recipe(name: str) -> tuple[str, dict] | None:
    """(file, overlay) of the packaged recipe for dataset ``name``, if there is one: a file
    ``benchmarks/configs/<name>.yaml`` whose dataset section names it (cub200, folder, ...)."""
    ref = resources.files("benchmarks") / "configs" / f"{name}.yaml"
    if not ref.is_file():
        return None
    overlay = load_yaml(Path(str(ref)))
    if (overlay.get("dataset") or {}).get("name") != name:
        return None
    return f"benchmarks/configs/{name}.yaml", overlay


@reports_interrupts("python -m benchmarks.run")  # SIGINT, SIGTERM: one line, exit 130 or 143
@reports_user_errors
def main(argv=None) -> int:
    args = parse_args(argv)

    torchrun = distributed.env_world_size() > 1  # started by torchrun --nproc_per_node=N, N > 1
    if torchrun and (args.reproduce or args.suite not in torchrun_suites()):
        raise UserError(f"under torchrun only --suite {' or '.join(torchrun_suites())} runs (no --reproduce); "
                         f"start other suites with python -m benchmarks.run")
    if args.out is None:
        args.out = dry_run.DEFAULT_OUT if args.dry_run else DEFAULT_OUT
    elif args.dry_run and Path(args.out).resolve() == Path("results").resolve():
        raise UserError(f"--out {args.out}: a dry run never writes into the results of real runs; "
                        f"drop --out (it writes to dry-run/) or name another folder")
    if args.reproduce:
        if args.dry_run:
            raise UserError("--reproduce reruns a saved run in full; drop --dry-run")
        return _reproduce(args)
    dry_flags = [flag for flag, value in (("--dry-steps", args.dry_steps), ("--dry-batch", args.dry_batch),
                                          ("--dry-eval", args.dry_eval)) if value is not None]
    if dry_flags and not args.dry_run:
        raise UserError(f"{' and '.join(dry_flags)} only apply to a dry run; add --dry-run")
    if args.dry_run and torchrun:
        raise UserError("--dry-run runs each job in one process of its own; start it with python -m benchmarks.run")
    cfg, origin = build_config(args)
    if not args.dry_run:  # a missing tracking package stops the run here, before any data is read

        check_tracking(cfg, log=print if int(os.environ.get("RANK", "0") or 0) == 0 else (lambda *a, **k: None))
    launcher = (cfg.get("launcher") or {}).get("name") or "local"
    if launcher != "local" and (args.dry_run or torchrun):
        raise UserError(f"--launcher {launcher}: {'a dry run' if args.dry_run else 'torchrun'} runs its jobs in "
                        f"processes of its own; drop the launcher (or its config section)")
    if launcher != "local":
        make_launcher(cfg.get("launcher"))  # a missing extra stops the run here, before any data is read

    suite = get_suite(args.suite)
    start = time.perf_counter()
    distributed.init_from_env(cfg.get("device", "cpu"))  # nothing without torchrun
    # every check of the user's input, before the first training step (each rank checks its own copy)
    cfg, _ = preflight(suite, cfg, args.out, args.cache_dir, args.check_data, origin,
                       log=print if distributed.is_main() else (lambda *a, **k: None))
    shown = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--debug",)]
    cfg["_command"] = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in shown)
    if args.dry_run:
        dest = dry_run.run_dry(args.suite, cfg, Path(args.out), Path(args.cache_dir), git_commit(),
                       args.dry_steps or dry_run.STEPS, args.dry_eval or dry_run.EVAL_IMAGES)
        print(f"wrote {dest}/dry_run.csv, dry_run.md in {time.perf_counter() - start:.0f}s")
        return 0
    try:
        dest = suite.run(cfg, Path(args.out), Path(args.cache_dir), git_commit(), progress=not args.no_progress)
        main_rank = distributed.is_main()
        distributed.teardown()
    except BaseException:
        distributed.teardown(wait=False)  # torchrun stops the other processes
        raise
    if not main_rank:
        return 0
    print((dest / "leaderboard.md").read_text())
    print(f"wrote {dest}/runs.csv, leaderboard.csv, leaderboard.md in {time.perf_counter() - start:.0f}s")
    line = committed_line(Path(args.out), dest, cfg["run"], cfg["seeds"])
    if line:
        print(line)
    return 0


def _reproduce(args) -> int:
    given = [f"--{k.replace('_', '-')}" for k in ("dataset", "data_root", "methods", "seeds", "config", "epochs",
                                                 "device", "index") if getattr(args, k) is not None]
    if given:
        raise UserError(f"--reproduce takes its config, method and seed from the saved run; drop {given}")

    return reproduce(args.reproduce, Path(args.out), Path(args.cache_dir), progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
