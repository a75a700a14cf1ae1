"""Dry runs: every job of a recipe for a few steps, to find what breaks before a GPU sees it.

``python -m benchmarks.run --config FILE --data-root DIR --dry-run [--dry-steps N]
[--dry-batch B] [--dry-eval M]`` runs each job of the recipe (its setup jobs such as
pretraining, the teacher, then every student of the run list) with the recipe's own
architectures, resolution, loss, miner, sampler, method options, AMP setting and device, for
``N`` training steps of one epoch, then validates and tests it with the real evaluator on a
bounded sample of ``M`` images of each evaluated split (Recall@K for the recipe's K below the
sample's size: the others are left out and the table says so). Only the first seed runs (the seeds
cost the same); the projection counts them all.

Each job runs in a fresh process, so that its peak memory is its own: the process's peak RSS
and, sampled every half second, the memory unique to its loader workers (their USS summed) on
CPU; ``torch.cuda.max_memory_allocated`` on a GPU.
Per job it reports s/step (the mean over the steps after the first, which also starts the
loader), images/s and the projected time of that job in the full recipe on this machine:

    epochs x steps per epoch x s/step  +  evaluations x validation images / eval rate
    +  test images / eval rate,

time taken as linear in the number of images. The recipe's projected wall time is the sum
over its jobs (and, with ``workers`` W > 1 jobs at once, about that sum over W).

Rows marked ``dry_run`` go to ``<out>/<suite>/<dataset>/dry_run.csv`` and ``dry_run.md``
(``--out``, by default ``dry-run``); teachers, students and pretrained backbones are kept in a
temporary folder that is deleted afterwards, never in the cache of real runs.
"""

from __future__ import annotations

import contextlib
import copy
import io
import multiprocessing
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
from pycocotools.coco import COCO

from benchmarks.runner.errors import UserError
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.results_io import atomic_write_via
from benchmarks.runner.schema import typed, typed_train
from benchmarks.runner.suite_runner import student_step, teacher_step
from benchmarks.runner.tasks import get_suite
from retrieval.engine.trainer import reporting_progress

DEFAULT_OUT = "dry-run"
STEPS, EVAL_IMAGES = 2, 64
EVAL_SPLITS = ("val", "test")
ROLES = ("teacher", "student")


def dry_config(cfg: dict, steps: int) -> dict:
    """The recipe's config run for ``steps`` steps of one epoch, evaluated after it (the original
    config's epochs and evaluation schedule are what the projection uses)."""
    cfg = copy.deepcopy(cfg)
    cfg.setdefault("train", {})["max_steps"] = int(steps)
    for role in ROLES:
        train = cfg[role].setdefault("train", {})
        train.update({"epochs": 1, "milestones": [], "eval_every": 1})
        train.pop("max_steps", None)
    if cfg.get("pretrain"):
        cfg["pretrain"] = copy.deepcopy(cfg["pretrain"])
        cfg["pretrain"].setdefault("train", {}).update({"epochs": 1, "milestones": []})
    return cfg


def with_batch(cfg: dict, batch: int) -> dict:
    """``cfg`` with every training section's batch set to ``batch`` (``--dry-batch``)."""
    cfg = copy.deepcopy(cfg)
    cfg.setdefault("train", {})["batch_size"] = int(batch)
    for section in [cfg[role] for role in ROLES] + ([cfg["pretrain"]] if cfg.get("pretrain") else []):
        (section.get("train") or {}).pop("batch_size", None)
    return cfg


def bounded(dataset, limit: int, seed: int = 0):
    """At most ``limit`` images of ``dataset``, for a dry run's evaluation: a COCO set keeps a
    random subset of its images (and their annotations, so COCOeval scores only those); a
    labelled set takes four images of each class in a random order of its classes (then four more
    of each, if it has few classes), so that every retrieval query can have a positive."""
    if len(dataset) <= limit:
        return dataset
    rng = np.random.default_rng(seed)
    if hasattr(dataset, "image_ids") and hasattr(dataset, "coco"):
        return _coco_subset(dataset, sorted(rng.choice(dataset.image_ids, size=limit, replace=False).tolist()))
    labels = np.asarray(dataset.labels)
    members = [np.flatnonzero(labels == label) for label in rng.permutation(np.unique(labels))]
    chosen = []  # four images of each class in turn, then four more of each, ...
    for start in range(0, max(len(m) for m in members), 4):
        for m in members:
            chosen.extend(m[start:start + 4].tolist())
            if len(chosen) >= limit:
                return LabelledSubset(dataset, sorted(chosen[:limit]))
    return LabelledSubset(dataset, sorted(chosen))


class LabelledSubset:
    """The items ``indices`` of a dataset, with its ``labels`` and other attributes."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)
        self.labels = np.asarray(dataset.labels)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[self.indices[i]], "index": i}

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    def __getattr__(self, name):
        if name == "dataset" or name.startswith("__"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _coco_subset(dataset, image_ids: list[int]):
    keep = set(image_ids)
    full = dataset.coco.dataset
    sub = COCO()
    sub.dataset = {**{k: v for k, v in full.items() if k not in ("images", "annotations")},
                   "images": [im for im in full["images"] if im["id"] in keep],
                   "annotations": [a for a in full.get("annotations", []) if a["image_id"] in keep]}
    with contextlib.redirect_stdout(io.StringIO()):
        sub.createIndex()
    subset = copy.copy(dataset)
    subset.coco, subset.image_ids = sub, list(image_ids)
    return subset


# ------------------------------------------------------------------------------------------ jobs


class LoaderMemory:
    """The peak, sampled every half second, of the memory unique to this process's children (its
    loader workers: their USS summed; pages shared with the job, such as the libraries and the
    dataset index inherited by fork, are not counted again)."""

    INTERVAL = 0.5

    def __init__(self):
        self.peak_mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_full_info().uss
                except (psutil.Error, OSError):  # a worker that just ended
                    pass
            self.peak_mb = max(self.peak_mb, total / 2 ** 20)
            self._stop.wait(self.INTERVAL)

    def __enter__(self) -> "LoaderMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class _Clock:
    """The training loop's progress events, timed."""

    def __init__(self):
        self.steps, self.epoch_start, self.eval_start, self.eval_end, self.end = [], None, None, None, None
        self.steps_per_epoch = None

    def __call__(self, event: dict) -> None:
        now, kind = time.perf_counter(), event["event"]
        if kind == "epoch_start" and self.epoch_start is None:
            self.epoch_start, self.steps_per_epoch = now, event.get("epoch_steps", event["steps"])
        elif kind == "step" and self.eval_start is None:
            self.steps.append(now)
        elif kind == "eval" and self.eval_start is None:
            self.eval_start = now
        elif kind == "epoch" and self.eval_start is not None and self.eval_end is None:
            self.eval_end = now
        elif kind == "end" and self.end is None:
            self.end = now

    def step_times(self) -> tuple[float | None, float | None]:
        """(first step's seconds, mean seconds of the later steps; the first's when there is one)."""
        if not self.steps:
            return None, None
        marks = [self.epoch_start, *self.steps]
        durations = np.diff(marks)
        return float(durations[0]), float(durations[1:].mean() if len(durations) > 1 else durations[0])


def run_job(suite_name: str, cfg: dict, data_cache: str, dry_cache: str, kind: str, seed: int | None,
            method: str | None, eval_images: int) -> dict:
    """One job of the dry run, in this (fresh) process: its measurements and bounded test metrics."""
    suite = get_suite(suite_name)
    quiet = lambda *a, **k: None  # noqa: E731
    data = suite.prepare_data(cfg, Path(data_cache), quiet)
    if "cache_dir" in data:  # pretrained backbones go to the dry run's own folder
        data["cache_dir"] = Path(dry_cache)
    sizes = {split: len(data[split]) for split in EVAL_SPLITS if split in data}
    for split in sizes:
        data[split] = bounded(data[split], eval_images)
    dropped = []
    if sizes and str(getattr(suite, "PRIMARY", "")).startswith("recall@"):  # Recall@K needs more than K items
        fewest = min(len(data[split]) for split in sizes)
        ks = list(typed(cfg).eval.ks)
        kept = [k for k in ks if k < fewest] or [1]
        dropped = [k for k in ks if k not in kept]
        cfg = {**cfg, "eval": {**cfg["eval"], "ks": kept}}
    cuda = torch.device(typed(cfg).device or "cpu").type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clock, test, test_seconds = _Clock(), {}, None
    start = time.perf_counter()
    with reporting_progress(clock), LoaderMemory() as loaders:
        if kind == "setup":
            suite.setup(cfg, data, method, False, quiet)
        elif kind == "teacher":
            _, record, _ = teacher_step(suite, cfg, data, seed, Path(dry_cache), False, quiet)
            test = record.get("test") or {}
        else:
            student, _ = student_step(suite, cfg, data, method, cfg["methods"].get(method), seed, Path(dry_cache), False)
            t0 = time.perf_counter()
            test = suite.evaluate_student(student, data, cfg, False, f"{method} test")
            test_seconds = time.perf_counter() - t0
    done = time.perf_counter()
    if kind == "teacher" and clock.end is not None:
        test_seconds = done - clock.end  # the teacher's test evaluation (and its save) follow training
    first, per_step = clock.step_times()
    workers = typed_train(cfg, _role(kind)).num_workers or 0  # this job's loader workers
    return {"seconds": done - start, "first_step_s": first, "s_per_step": per_step,
            "steps_per_epoch": clock.steps_per_epoch, "steps": len(clock.steps),
            "val_seconds": (clock.eval_end - clock.eval_start) if clock.eval_end else None,
            "test_seconds": test_seconds, "eval_sizes": {s: len(data[s]) for s in sizes}, "full_sizes": sizes,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "loader_peak_uss_mb": loaders.peak_mb if workers else 0.0,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None,
            "test": {k: v for k, v in test.items() if isinstance(v, (int, float))}, "dropped_ks": dropped}


def jobs_of(suite, cfg: dict) -> list[tuple[str, str | None, str | None]]:
    """(kind, name, method) of every job of one seed: setup jobs, the teacher, each student."""
    setup = suite.setup_names(cfg)
    return ([("setup", f"setup {name}", name) for name in setup] + [("teacher", "teacher", None)]
            + [("student", method, method) for method in typed(cfg).run])


# ------------------------------------------------------------------------------------ projection


def _role(kind: str) -> str:
    """The config section whose training a job of ``kind`` (setup, teacher, student) runs."""
    return {"setup": "pretrain", "teacher": "teacher"}.get(kind, "student")


def project(recipe: dict, kind: str, m: dict) -> float | None:
    """Seconds this job takes in the full recipe on this machine (see the module's docstring)."""
    if m["s_per_step"] is None:
        return None
    train = typed_train(recipe, _role(kind))
    epochs = train.epochs or 10
    seconds = epochs * m["steps_per_epoch"] * m["s_per_step"]
    if kind != "setup":
        every = train.eval_every or 1
        evaluations = len({e for e in range(1, epochs + 1) if e % every == 0 or e == epochs})
        for split, count in (("val", evaluations), ("test", 1)):
            spent = m["val_seconds"] if split == "val" else m["test_seconds"]
            if spent and m["eval_sizes"].get(split):
                seconds += count * m["full_sizes"][split] * spent / m["eval_sizes"][split]
    return seconds


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def job_context(suite_name: str):
    """The processes the jobs run in: forked from a server that has imported torch and the suite
    once (a fresh process per job, started in about a second), or spawned where there is no fork."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torchvision", type(get_suite(suite_name)).__module__,
                                    "benchmarks.runner.dry_run"])
    return context


def _end_job_processes() -> None:
    """SIGKILL every process this one started (the fork server, a job process, one being forked, their loader
    workers) but multiprocessing's resource tracker, which then frees what the killed ones held."""
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                child.kill()
        except psutil.Error:
            pass


def run_dry(suite_name: str, recipe: dict, out_dir: Path, data_cache: Path, commit: str, steps: int = STEPS,
            eval_images: int = EVAL_IMAGES, log=print) -> Path:
    """Dry-run every job of ``recipe`` (one seed); write and print the table; return its folder."""
    suite = get_suite(suite_name)
    seed = typed(recipe).seeds[0]
    cfg = replicate_config(dry_config(recipe, steps), seed)  # that seed's replicate (its data, weights, teacher)
    jobs = jobs_of(suite, cfg)
    device = typed(cfg).device or "cpu"
    log(f"dry run: {len(jobs)} job(s) of seed {seed}, {steps} step(s) each, evaluation on at most "
        f"{eval_images} images per split, device {device}; each job in its own process")
    rows, dry_cache = [], tempfile.mkdtemp(prefix="hmat-dry-run-")
    context = job_context(suite_name)
    try:
        for kind, name, method in jobs:
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:  # a fresh process per job
                    try:
                        m = pool.submit(run_job, suite_name, cfg, str(data_cache), dry_cache, kind,
                                        None if kind == "setup" else seed, method, eval_images).result()
                    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: end the job now (leaving the block waits for it)
                        _end_job_processes()
                        raise
            except BrokenProcessPool as exc:
                raise UserError(f"dry run: the process of job '{name}' ended abruptly (killed by a signal: possibly "
                                f"out of memory, or a crash in native code); the jobs before it are in the log "
                                f"above") from exc
            row = _row(recipe, suite, kind, name, method, seed, m, commit)
            rows.append(row)
            log(f"  {name:>14}: {_fmt(row['s_per_step'], '.3f')} s/step, {_fmt(row['images_per_s'], '.3g')} images/s,"
                f" peak {_memory(row)}, projected {_hours(row['projected_s'])}")
    finally:
        shutil.rmtree(dry_cache, ignore_errors=True)
    spec = typed(recipe)
    dest = Path(out_dir) / spec.suite / spec.dataset.name
    table = pd.DataFrame(rows)
    atomic_write_via(dest / "dry_run.csv", lambda tmp: table.to_csv(tmp, index=False))
    text = markdown(table, recipe, suite, seed)
    atomic_write_via(dest / "dry_run.md", lambda tmp: Path(tmp).write_text(text))
    log(text)
    return dest


def _row(recipe, suite, kind, name, method, seed, m: dict, commit: str) -> dict:
    train, spec = typed_train(recipe, _role(kind)), typed(recipe)
    batch = train.batch_size or 128
    projected = project(recipe, kind, m)
    repeats = 1 if kind == "setup" else len(spec.seeds)
    primary = getattr(suite, "PRIMARY", None)
    return {"dry_run": True, "suite": spec.suite, "dataset": spec.dataset.name, "job": name,
            "method": method if kind == "student" else kind, "seed": seed, "device": spec.device or "cpu",
            "amp": bool(train.amp), "batch": batch, "steps": m["steps"],
            "first_step_s": m["first_step_s"], "s_per_step": m["s_per_step"],
            "images_per_s": batch / m["s_per_step"] if m["s_per_step"] else None,
            "steps_per_epoch": m["steps_per_epoch"], "epochs": train.epochs or 10,
            "eval_images": sum(m["eval_sizes"].values()), "peak_rss_mb": round(m["peak_rss_mb"], 1),
            "loader_peak_uss_mb": round(m["loader_peak_uss_mb"], 1),
            "peak_gpu_mb": None if m["peak_gpu_mb"] is None else round(m["peak_gpu_mb"], 1),
            "metric": primary, "value": m["test"].get(primary), "job_seconds": round(m["seconds"], 2),
            "val_seconds": m["val_seconds"], "test_seconds": m["test_seconds"],
            "dropped_ks": " ".join(str(k) for k in m["dropped_ks"]),
            "projected_s": projected, "projected_total_s": None if projected is None else projected * repeats,
            "commit": commit, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _fmt(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def _memory(row: dict) -> str:
    if row.get("peak_gpu_mb") is not None:
        return f"{row['peak_gpu_mb'] / 1024:.2f} GB GPU, {row['peak_rss_mb'] / 1024:.2f} GB RSS"
    loader = f" + loader workers {row['loader_peak_uss_mb'] / 1024:.2f} GB USS" if row["loader_peak_uss_mb"] else ""
    return f"{row['peak_rss_mb'] / 1024:.2f} GB RSS{loader}"


def markdown(table, recipe: dict, suite, seed: int) -> str:
    spec = typed(recipe)
    seeds, workers = len(spec.seeds), spec.workers or 1
    total = table["projected_total_s"].sum(min_count=1)
    lines = [f"# dry run: {spec.suite} on {spec.dataset.name}", "",
             f"Command: `{recipe.get('_command', '')}`", "",
             f"Seed {seed} only, {int(table['steps'].max())} steps per job on device {spec.device or 'cpu'}; "
             f"metrics on at most a bounded sample of the evaluated splits (not comparable with real runs).", "",
             "| job | batch | first step (s) | s/step | images/s | peak memory | projected (one seed) |",
             "|---|---|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        lines.append(f"| {row['job']} | {row['batch']} | {_fmt(row['first_step_s'], '.2f')} | "
                     f"{_fmt(row['s_per_step'], '.3f')} | {_fmt(row['images_per_s'], '.3g')} | {_memory(row)} | "
                     f"{_hours(row['projected_s'])} |")
    said = f"Projected wall time of the full recipe on this machine ({seeds} seed(s), jobs one after another): " \
           f"{_hours(total if total == total else None)}"
    if workers > 1 and total == total:
        said += f"; with {workers} jobs at once about {_hours(total / workers)}"
    lines += ["", said + ". Time is taken as linear in the images of each split."]
    dropped = sorted({k for text in table["dropped_ks"].fillna("").astype(str) for k in text.split()}, key=int)
    if dropped:
        lines += ["", f"Recall@{', '.join(dropped)} left out: the bounded sample holds too few images "
                      f"(raise --dry-eval to include them)."]
    return "\n".join(lines) + "\n"
