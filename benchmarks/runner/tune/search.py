"""Sampled search of KD method options with Optuna (``python -m benchmarks.tune --search optuna``), and
the reproduction of a tuner's choice over N seeds (``--reproductions N``, the grid's choice too).

Search space: the tuner's grid YAML. Per method, an option's list of values is a categorical parameter
(choices that are not None, a bool, a number or a string, e.g. lists, are stored as their JSON text),
a single value is fixed, and a range is a mapping ``{low, high[, log][, step][, type]}``:
``{low: 0.01, high: 10, log: true}`` (a float drawn log-uniformly), ``{low: 1, high: 64, step: 1}`` (an
int: ``low``, ``high`` and ``step`` all integers, or ``type: int``; ``type: float`` keeps integer bounds
a float). ``log`` and ``step`` do not go together (Optuna's rule).

One study per method of the grid file, maximising the trial's score: the mean over the tuning
units, every (fold, seed), of the validation metric the student's checkpoint is selected on (as the
grid ranks its cells). A method without a sampled parameter (``none: {}``) runs one trial. Trials are
drawn by Optuna's ``TPESampler``, seeded with ``--sampler-seed`` plus the number of trials the study
already holds (so that a resumed search does not redraw the random start-up points of the first
session), and stored in an Optuna RDB storage (default: the SQLite file ``<out>/<suite>/<dataset>/optuna.db``),
under the study name ``<method>-<identity>`` (the identity hashes the tuning config, the method's space,
the seeds and the folds, so that a changed config starts a new study) or ``<--study-name>-<method>``
(refused if the study was made for another identity).

Pruning (``--pruner median``: Optuna's ``MedianPruner``, ``--pruner-startup`` completed trials before
it prunes) watches the first unit of a trial (the first fold, first seed): after each of its
validation evaluations the job reports the metric at step = epoch and, when the pruner says so,
stops. The later units of a trial that survived its first one run to the end (their curves are not
compared: Optuna's pruners compare a trial's best value so far with the others' at the same step,
which across units would be comparing one seed's end with another's start).

The driver (``run_search``) trains the setup jobs and each unit's teacher first, then keeps
``workers`` trials in flight on a pool with ``JobPool``'s API: it asks a trial (``study.ask`` with the
space), submits ``trial_job`` (a top-level function of plain arguments: the storage URL, the study
name and the trial id, from which the job rebuilds its ``optuna.trial.Trial``), and tells the result.
A trial job trains on ``fit`` and scores on ``val`` only; no job of the search touches the test split.
Rerunning the command resumes: finished trials (complete, pruned, diverged) are kept, a trial left
running by a killed process (or in flight when the search stopped on an error) is marked failed and
its parameters are enqueued again, and the search goes on until ``--trials`` trials per method have
finished. One driver per study at a time. With the ``ray`` or ``slurm`` launcher every job must reach
the storage: a SQLite file on storage every node sees, or an RDB server's URL (``--study-db
postgresql://...``).
"""

from __future__ import annotations

import json
import time
from collections import deque
from functools import partial
from pathlib import Path

import pandas as pd

from benchmarks.runner.config import config_hash, deep_merge, resolve_config
from benchmarks.runner.errors import UserError
from benchmarks.runner.launch import LocalLauncher, require
from benchmarks.runner.launch.job_pool import Job
from benchmarks.runner.results_io import atomic_write_text, git_commit
from benchmarks.runner.schema import check_config, method_problems, typed
from benchmarks.runner.suite_runner import student_step, teacher_seed_of
from benchmarks.runner.tasks import get_suite
from benchmarks.runner.tracking import tracking
from benchmarks.runner.tune import grid as tuning
from retrieval.engine import trainer
from retrieval.engine.trainer import NonFiniteLossError, reporting_progress

RANGE_KEYS = {"low", "high", "log", "step", "type"}
PRIMITIVE = (type(None), bool, int, float, str)


def require_optuna():
    """The ``optuna`` module, or a one-line ``UserError`` naming the extra that installs it."""
    optuna = require("optuna", "--search optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ---------------------------------------------------------------------------------- search space

def is_range(value) -> bool:
    return isinstance(value, dict) and {"low", "high"} <= set(value) and set(value) <= RANGE_KEYS


def parse_space(where: str, method: str, options: dict | None) -> dict:
    """``{option: spec}`` of a method's grid entry (plain dicts, for the jobs): ``{"fixed": value}``,
    ``{"choices": [...], "json": bool}`` or ``{"low", "high", "log", "step", "int"}``."""
    space = {}
    for name, value in sorted((options or {}).items()):
        at = f"{where}: {method}.{name}"
        if isinstance(value, list):
            if not value:
                raise UserError(f"{at}: an empty list of values")
            encoded = not all(isinstance(v, PRIMITIVE) for v in value)
            space[name] = {"choices": [json.dumps(v, sort_keys=True) if encoded else v for v in value],
                           "json": encoded}
        elif is_range(value):
            space[name] = _range(at, value)
        else:
            space[name] = {"fixed": value}
    return space


def _range(at: str, spec: dict) -> dict:
    low, high, step, log, kind = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False)), spec.get("type")
    numbers = [v for v in (low, high, step) if v is not None]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise UserError(f"{at}: low, high and step must be numbers, got {spec}")
    if kind not in (None, "int", "float"):
        raise UserError(f"{at}: type {kind!r}: expected int or float")
    as_int = kind == "int" or (kind is None and all(isinstance(v, int) for v in numbers))
    if as_int and not all(float(v).is_integer() for v in numbers):
        raise UserError(f"{at}: type int needs integer low, high and step, got {spec}")
    if not low < high:
        raise UserError(f"{at}: low {low} must be below high {high}")
    if log and step is not None:
        raise UserError(f"{at}: log and step do not go together (Optuna draws a stepped range uniformly)")
    if log and low <= 0:
        raise UserError(f"{at}: a log range needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise UserError(f"{at}: step must be positive, got {step}")
    cast = int if as_int else float
    return {"low": cast(low), "high": cast(high), "log": log, "step": None if step is None else cast(step),
            "int": as_int}


def distributions(optuna, space: dict) -> dict:
    """Optuna distributions of the sampled options (fixed ones are not parameters)."""
    out = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = optuna.distributions.CategoricalDistribution(spec["choices"])
        elif "low" in spec:
            kind = optuna.distributions.IntDistribution if spec["int"] else optuna.distributions.FloatDistribution
            step = spec["step"] if spec["step"] is not None else (1 if spec["int"] else None)
            out[name] = kind(spec["low"], spec["high"], log=spec["log"], step=step)
    return out


def decode(space: dict, params: dict) -> dict:
    """A trial's method options: the fixed ones and its parameters (JSON choices decoded)."""
    out = {}
    for name, spec in space.items():
        if "fixed" in spec:
            out[name] = spec["fixed"]
        elif name in params:
            out[name] = json.loads(params[name]) if spec.get("json") else params[name]
    return out


def corner_options(space: dict) -> list[dict]:
    """Options to check before any job: every choice and both ends of every range, the others at
    their first value."""
    ends = {n: ([s["fixed"]] if "fixed" in s else [json.loads(c) if s["json"] else c for c in s["choices"]]
                if "choices" in s else [s["low"], s["high"]]) for n, s in space.items()}
    first = {n: v[0] for n, v in ends.items()}
    return [first] + [{**first, n: v} for n, values in ends.items() for v in values[1:]]


# ---------------------------------------------------------------------------------- the trial job

def make_pruner(optuna, spec: dict):
    if spec["name"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=int(spec.get("startup", 5)), n_warmup_steps=0)


class PruningCallback:
    """The trainer's progress callback within a trial's watched unit: forwards every event to the
    callback installed before (if any), reports each epoch's validation metric to the trial at step
    = epoch and raises ``optuna.TrialPruned`` when the pruner says so (ending the training)."""

    def __init__(self, optuna, trial, forward=None, watch: bool = True):
        self.optuna, self.trial, self.forward, self.watch = optuna, trial, forward, watch
        self.pruned_at = None

    def __call__(self, event: dict) -> None:
        if self.forward is not None:
            self.forward(event)
        if not self.watch or event.get("event") != "epoch" or event.get("value") is None:
            return
        value, epoch = float(event["value"]), int(event["epoch"])
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            raise self.optuna.TrialPruned(f"pruned at epoch {epoch} ({event.get('metric')} {value:.4f})")


def _installed_callback():
    getter = getattr(trainer, "current_progress_callback", None)
    return getter() if getter is not None else trainer._PROGRESS_CALLBACK.get()


def trial_job(job: dict, method: str, space: dict, storage: str, study_name: str, trial_id: int,
              pruner: dict) -> dict:
    """Train one trial's students, one per (fold, seed) of ``job["units"]``, on ``fit``, scored on
    ``val``; return ``{"state": complete | pruned | diverged, "value", "attrs"}`` (the driver tells)."""
    optuna = require_optuna()

    study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(optuna, pruner))
    trial = optuna.trial.Trial(study, trial_id)
    options = decode(space, trial.params)
    metrics, ranked = tuning.metrics_of(job["cfg"]), job["ranked"]
    said = f"[trial {trial.number}] {method} {options}"
    start, scores, epochs = time.perf_counter(), [], []

    def result(state: str, **extra) -> dict:
        means = {f"val_{m}": (sum(s[m] for s in scores) / len(scores) if scores else None) for m in metrics}
        attrs = {**means, "best_epochs": epochs, "units": len(scores), "seconds": round(time.perf_counter() - start, 1),
                 **extra}
        return {"state": state, "value": means[f"val_{ranked}"] if state == "complete" else None, "attrs": attrs}

    for index, (fold, seed) in enumerate(job["units"]):
        cfg = tuning.unit_config(job, (fold, seed))
        data = tuning.tune_data(cfg, job["cache_dir"])
        where = f"seed {seed}" if fold is None else f"fold {fold} seed {seed}"
        merged = deep_merge(cfg["methods"].get(method) or {}, options)
        try:  # tracked like a grid cell (tuning.tuning_run_id), the pruning hook in front of the trackers
            with tracking({**job, "cfg": cfg}, tuning.tuning_run_id(method, merged, fold, seed), "student", method,
                          seed) as tracked:
                hook = PruningCallback(optuna, trial, _installed_callback(), watch=index == 0)
                with reporting_progress(hook):
                    _, run = student_step(tuning.suite_of(cfg), cfg, data, method, merged, seed, job["cache_dir"],
                                          job["progress"])
                tracked.finish(run.best_val, split="val")
        except optuna.TrialPruned:
            print(f"{said} {where}: pruned at epoch {hook.pruned_at}", flush=True)
            return result("pruned", pruned_at_epoch=hook.pruned_at)
        except NonFiniteLossError as exc:  # a diverged trial is a result of the search, not the end of it
            print(f"{said} {where}: diverged ({exc})", flush=True)
            return result("diverged", diverged=True)
        scores.append(run.best_val)
        epochs.append(run.best_epoch)
        print(f"{said} {where}: val {ranked} {100 * run.best_val[ranked]:.2f}", flush=True)
    return result("complete")


# ---------------------------------------------------------------------------------- the driver

class InlinePool:
    """``JobPool``'s API run in this process, in order (one worker: no process to start)."""

    def __init__(self):
        self.queue = deque()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.queue.clear()
        return False

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def result(self):
        job = self.queue.popleft()
        return job, job.fn(*job.args)


def job_pool(workers: int, launcher=None):
    """Where the search's jobs run: the launcher's pool (``benchmarks.runner.launch``; default: local
    processes); with one local worker, this process."""
    launcher = launcher or LocalLauncher()
    return InlinePool() if workers == 1 and launcher.in_process else launcher.pool(workers)


def storage_url(path) -> str:
    """An RDB URL as given (``postgresql://...``), or the SQLite file ``path`` (its folder made)."""
    if "://" in str(path):
        return str(path)
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(optuna, url: str, name: str, identity: str, sampler_seed: int, pruner: dict):
    """Create or load the study ``name``, checked against ``identity``, with a TPE sampler seeded from
    ``sampler_seed`` and the number of trials it holds."""
    study = optuna.create_study(storage=url, study_name=name, direction="maximize", load_if_exists=True,
                                pruner=make_pruner(optuna, pruner))
    made_for = study.user_attrs.get("identity")
    if made_for is None:
        study.set_user_attr("identity", identity)
    elif made_for != identity:
        raise UserError(f"study {name!r} in {url} was made for another config, grid entry, seeds or folds "
                        f"(identity {made_for}, now {identity}); choose another --study-name or --study-db")
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    return study


def requeue(optuna, study, trial) -> None:
    """Mark ``trial`` (an ``optuna.trial.Trial`` left running) failed as interrupted, and enqueue its
    parameters again, so that the resumed search trains them."""
    trial.set_user_attr("interrupted", True)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def requeue_stale(optuna, study) -> int:
    """Requeue every trial left RUNNING in the storage (its process was killed); how many."""
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for frozen in stale:
        requeue(optuna, study, optuna.trial.Trial(study, frozen._trial_id))
    return len(stale)


def finished(optuna, study) -> int:
    """Trials that count towards ``--trials``: complete, pruned and diverged (not interrupted)."""
    states = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (states.COMPLETE, states.PRUNED) or (t.state == states.FAIL and t.user_attrs.get("diverged")))


def _tell(optuna, study, trial, out: dict) -> str:
    for key, value in out["attrs"].items():
        trial.set_user_attr(key, value)
    states = optuna.trial.TrialState
    if out["state"] == "complete":
        study.tell(trial, out["value"])
        return f"complete, {100 * out['value']:.2f}"
    study.tell(trial, state=states.PRUNED if out["state"] == "pruned" else states.FAIL)
    return out["state"]


def run_search(optuna, job: dict, spaces: dict, options: dict, setup: list, teachers: list, launcher=None,
               log=print) -> dict:
    """Run (or resume) one study per method of ``spaces``; return ``{method: study}``. ``options``:
    ``url``, ``names`` ({method: study name}), ``identities``, ``trials``, ``workers``, ``sampler_seed``,
    ``pruner``; ``setup``, ``teachers``: zero-argument jobs run first (backbones, then teachers)."""
    studies, dists, todo = {}, {}, {}
    for method, space in spaces.items():
        study = open_study(optuna, options["url"], options["names"][method], options["identities"][method],
                           options["sampler_seed"], options["pruner"])
        stale = requeue_stale(optuna, study)
        if stale:
            log(f"{method}: {stale} trial(s) left running by an interrupted search, enqueued again")
        studies[method], dists[method] = study, distributions(optuna, space)
        target = options["trials"] if dists[method] else 1  # nothing to sample: one trial says it all
        todo[method] = max(0, target - finished(optuna, study))
        log(f"{method}: study {study.study_name}, {finished(optuna, study)} trial(s) finished, {todo[method]} to run")
    if not any(todo.values()):
        return studies
    workers, inflight = options["workers"], {}
    with job_pool(workers, launcher) as pool:
        for group in (setup, teachers):  # the pretrained backbones, then every unit's teacher
            for name, fn in group:
                pool.submit(Job(name, fn, about=f"suite {job['cfg']['suite']}"))
            for _ in group:
                pool.result()
        try:
            while any(todo.values()) or inflight:
                while len(inflight) < workers and any(todo.values()):
                    method = next(m for m, left in todo.items() if left)
                    todo[method] -= 1
                    trial = studies[method].ask(dists[method])
                    inflight[method, trial.number] = trial
                    args = (job, method, spaces[method], options["url"], studies[method].study_name,
                            trial._trial_id, options["pruner"])
                    pool.submit(Job(f"{method} trial {trial.number}", trial_job, args,
                                    f"suite {job['cfg']['suite']}, method {method}, trial {trial.number}",
                                    (method, trial.number)))
                done, out = pool.result()
                method, number = done.key
                said = _tell(optuna, studies[method], inflight.pop(done.key), out)
                log(f"{method} trial {number}: {said}")
        except BaseException:  # what was in flight runs again when the command is rerun
            for (method, _), trial in inflight.items():
                requeue(optuna, studies[method], trial)
            raise
    return studies


# ---------------------------------------------------------------------------------- results

def _state(optuna, trial) -> str:
    if trial.state == optuna.trial.TrialState.FAIL:
        return "diverged" if trial.user_attrs.get("diverged") else "interrupted" if trial.user_attrs.get(
            "interrupted") else "fail"
    return trial.state.name.lower()


def best_trial(optuna, study):
    """The study's best complete trial, or None."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def search_table(optuna, studies: dict, spaces: dict, metrics) -> pd.DataFrame:
    """One row per trial (waiting ones left out): method, study, number, state, its options, value (a
    complete trial's score: the ranked validation metric's mean over units), the validation metrics'
    means over the units it finished, their best epochs, units finished, the epoch it was pruned at, its
    last reported value, seconds, the trial it retries, and whether it is the choice."""
    rows = []
    for method, study in studies.items():
        best = best_trial(optuna, study)
        for t in study.get_trials(deepcopy=False):
            if t.state == optuna.trial.TrialState.WAITING:
                continue
            a = t.user_attrs
            rows.append({"method": method, "study": study.study_name, "number": t.number, "state": _state(optuna, t),
                         **{f"opt.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                            for k, v in decode(spaces[method], t.params).items()},
                         "value": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                         **{f"val_{m}": a.get(f"val_{m}") for m in metrics},
                         "best_epoch": "/".join(str(e) for e in a.get("best_epochs", [])) or None,
                         "units": a.get("units"), "pruned_at_epoch": a.get("pruned_at_epoch"),
                         "last_report": t.intermediate_values[t.last_step] if t.last_step is not None else None,
                         "seconds": a.get("seconds"), "retry_of": a.get("retry_of"),
                         "chosen": best is not None and t.number == best.number})
    table = pd.DataFrame(rows)
    for column in ("number", "units", "pruned_at_epoch", "retry_of"):
        table[column] = table[column].astype("Int64")
    for column in ("value", "last_report", *(f"val_{m}" for m in metrics)):
        table[column] = table[column].astype(float).round(6)
    opts = sorted(c for c in table.columns if c.startswith("opt."))
    first = ["method", "study", "number", "state", *opts]
    return table[first + [c for c in table.columns if c not in first]]


def report_best(optuna, studies: dict, spaces: dict, ranked: str, over: str, log=print) -> dict:
    """Print each method's best setting, ready to paste into a config; return ``{method: options}``."""
    chosen = {}
    log(f"\nbest on validation (mean over {over}; Optuna TPE):")
    for method, study in studies.items():
        best, done = best_trial(optuna, study), finished(optuna, study)
        if best is None:
            log(f"  {method}: no trial completed ({done} finished: pruned or diverged); no choice")
            continue
        chosen[method] = decode(spaces[method], best.params)
        log(f"  {method}: {chosen[method]}  ({ranked} {100 * best.value:.2f}, trial {best.number} of {done} finished)")
    return chosen


def write_search(path: Path, table: pd.DataFrame, header: str) -> None:
    atomic_write_text(path, header + table.to_csv(index=False))


# ---------------------------------------------------------------------------------- reproductions

def reproduce(suite_name: str, config_file, chosen: dict, seeds: int, out_dir: Path, cache_dir: Path,
              workers: int, progress: bool, launcher=None, log=print, command: str | None = None) -> Path:
    """Run ``none``, the teacher and every chosen method (its options merged over the config's) over
    seeds 0..N-1 as a benchmark run of the suite's own config (not the tuning one: its usual splits,
    test included), into ``out_dir/<suite>/<dataset>/``; its leaderboard carries the gains over ``none``
    paired by seed with their 95% intervals. ``command`` (the tuner's) heads its leaderboard. Returns
    that folder."""
    cfg = resolve_config(suite_name, config_file)
    methods = [m for m in chosen if m != "none"]
    for method in methods:
        cfg["methods"][method] = deep_merge(cfg["methods"].get(method) or {}, chosen[method])
    cfg.update(run=["none", *methods], seeds=list(range(seeds)), workers=workers)
    check_config(cfg)
    if command:
        cfg["_command"] = command
    log(f"\nreproductions: none, {', '.join(methods) or 'no tuned method'} over seeds 0..{seeds - 1} (test split)")
    return get_suite(suite_name).run(cfg, Path(out_dir), Path(cache_dir), git_commit(), progress=progress, log=log,
                                     launcher=launcher)


def identity(cfg: dict, space: dict, seeds: list, folds: int) -> str:
    """What a study's trials depend on: the tuning config (less where and how fast jobs run), the
    method's space, the seeds and the folds."""
    kept = {k: v for k, v in cfg.items() if k not in ("workers", "threads", "launcher", "tracking")}
    return config_hash({"cfg": kept, "space": space, "seeds": list(seeds), "folds": folds})


def teacher_jobs(job: dict, units: list) -> list:
    """(name, job) for each distinct teacher of the tuning units."""
    teachers = dict.fromkeys((fold, teacher_seed_of(job["cfg"], seed)) for fold, seed in units)
    return [(f"teacher {'' if f is None else f'f{f} '}s{s}", partial(tuning.teacher_job, job, (f, s)))
            for f, s in teachers]


def search_command(optuna, args, cfg: dict, grid: dict, seeds: list, workers: int, header: str, launcher=None) -> dict:
    """``python -m benchmarks.tune --search optuna``: check the spaces, run or resume the studies, write
    ``search.csv`` and print the choice; return ``{method: options}``."""
    spaces = {method: parse_space(args.grid, method, options) for method, options in grid.items()}
    for method, space in spaces.items():  # every choice and both ends of every range, before any job
        for options in corner_options(space):
            problems = method_problems(deep_merge(cfg, {"methods": {method: options}, "run": [method]}), only=method)
            if problems:
                raise UserError(f"{args.grid}: {method} {options}: "
                                + "; ".join(f"{path}: {message}" for path, message in problems))
    folds = list(range(args.folds)) if args.folds else [None]
    units = [(fold, seed) for fold in folds for seed in seeds]
    ranked = tuning.select_metric(cfg)
    spec = typed(cfg)
    dest = Path(args.out) / spec.suite / spec.dataset.name
    job = {"cfg": cfg, "cache_dir": Path(args.cache_dir), "progress": not args.no_progress and workers == 1,
           "folds": args.folds, "units": units, "ranked": ranked, "dest": dest / "search", "commit": git_commit()}
    url = storage_url(args.study_db or dest / "optuna.db")
    identities = {m: identity(cfg, space, seeds, args.folds) for m, space in spaces.items()}
    names = {m: f"{args.study_name}-{m}" if args.study_name else f"{m}-{identities[m]}" for m in spaces}
    setup = tuning.setup_jobs(job, seeds)
    options = {"url": url, "names": names, "identities": identities, "trials": args.trials, "workers": workers,
               "sampler_seed": args.sampler_seed, "pruner": {"name": args.pruner, "startup": args.pruner_startup}}
    studies = run_search(optuna, job, spaces, options, setup, teacher_jobs(job, units), launcher)
    metrics = tuning.metrics_of(cfg)
    table = search_table(optuna, studies, spaces, metrics)
    write_search(dest / "search.csv", table, header + f"# storage: {url}\n")
    print(table.drop(columns="study").to_string(index=False))
    over = f"seeds {seeds}" if not args.folds else f"{args.folds} folds x seeds {seeds}"
    return report_best(optuna, studies, spaces, f"val_{ranked}", over)
