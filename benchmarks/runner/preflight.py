"""The preflight of a run: everything that can be wrong with the user's input, checked in
seconds before the first training step.

``preflight(suite, cfg, out_dir, cache_dir, check_data=None, origin=None, log=print)``

1. the config against its schema (``benchmarks.runner.schema``: keys, types, ranges, names, the
   cross-field rules of every training section, every method's options);
2. the out and cache folders are writable (nothing is created here), and the config's ``device`` is one
   this machine has (``check_device``: a GPU torch can use for ``cuda``/``cuda:N``, Apple's for ``mps``);
   under the ray and slurm launchers the jobs run on other nodes, whose devices the scheduler finds;
3. the dataset's files are present and its images decode: a fixed sample of each split
   (``check_data="sample"``, every image of a split up to ``SAMPLE`` images) or all of them
   (``"all"``; the default for a user's own ``folder``);
4. each split has enough classes and images for the sampler and batch size
   (``benchmarks.runner.sampler_fit``): the config is adapted with a printed note per change, or the
   run stops saying what to change;
5. every method of the run builds with its options on untrained networks (``Suite.check_methods``).

Returns the (possibly adapted) config and the notes. Any problem raises ``UserError``. The data
built here is the run's own (``suite_runner.suite_data`` keeps it for the run in this process).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from benchmarks.runner import suite_runner
from benchmarks.runner.errors import UserError
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.sampler_fit import fit_sampler, split_stats
from benchmarks.runner.schema import check_config, typed
from benchmarks.runner.suite_runner import method_options
from retrieval.data import CorruptImageError, check_images
from retrieval.data.base import DatasetNotFoundError
from retrieval.methods import build_method
from retrieval.metric_losses import build_task_loss

SAMPLE = 500  # images decoded per split by default; --check-data all decodes every one
CHECK_DATA = ("sample", "all")


def check_writable(path, what: str) -> None:
    """``path`` is a folder, or can be created as one, that this process can write to."""
    path = Path(path)
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is a file, not a folder; expected a folder to write to")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: {existing} is not writable; expected a folder you can write to")


def check_device(device: str | None, launcher: str | None = None) -> None:
    """``device`` (cpu, cuda, cuda:N, mps; None: cpu) exists on this machine, else one line says what it has.
    Skipped for the ``ray`` and ``slurm`` launchers (``launcher``), whose jobs run on other nodes."""
    if (launcher or "local") != "local":
        return

    text = str(device or "cpu")
    try:
        kind = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"device {text!r}: {exc}; expected cpu, cuda, cuda:N or mps") from None
    if kind.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this torch is built without CUDA" if torch.version.cuda is None else "torch finds no GPU or driver"
            raise UserError(f"device {text}: this machine has no CUDA GPU ({why}); run with --device cpu")
        if kind.index is not None and kind.index >= count:
            raise UserError(f"device {text}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif kind.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"device {text}: this machine has no Apple GPU (MPS); run with --device cpu")
    elif kind.type != "cpu":
        raise UserError(f"device {text}: expected cpu, cuda, cuda:N or mps")


def _prepare(suite, cfg: dict, cache_dir: Path, log):
    name = typed(cfg).dataset.name
    try:
        return suite_runner.suite_data(suite, cfg, cache_dir, log)
    except DatasetNotFoundError:
        raise
    except (ValueError, OSError) as exc:  # the loaders' messages say what was wrong with the files
        raise UserError(f"dataset {name}: {exc}") from exc


def check_images_of(data: dict, mode: str) -> None:
    """Decode the images of every split that lists its files (a sample, or all)."""
    for split, dataset in data.items():
        paths = getattr(dataset, "paths", None)
        if not paths:
            continue
        try:
            check_images(list(paths), limit=None if mode == "all" or len(paths) <= SAMPLE else SAMPLE)
        except CorruptImageError as exc:
            raise UserError(f"{split} split: {exc}") from exc


def fit_splits(cfg: dict, data: dict) -> tuple[dict, list[str]]:
    stats = {split: split_stats(data[split]) for split in ("fit", "val", "test") if split in data}
    return fit_sampler(cfg, stats)


def build_methods(cfg: dict, data: dict, teacher, build_student, fit: str = "fit", task_loss=None) -> None:
    """Build every method of the run on untrained networks (no pretraining, no teacher training):
    options that the schema cannot judge alone (stages, connectors, labels) fail here, in one line.
    ``build_student()`` is a new untrained student; ``data[fit]`` the split whose labels it trains on;
    ``task_loss(**cfg["task_loss"])`` the suite's task loss (default: the metric losses of retrieval)."""
    task_loss = task_loss or build_task_loss
    for name in typed(cfg).run:
        registered, options = method_options(cfg, name, cfg["methods"].get(name))
        try:
            build_method(registered, student=build_student(), teacher=teacher,
                         task_loss=task_loss(**cfg["task_loss"]), train_labels=data[fit].labels, **options)
        except (ValueError, TypeError) as exc:
            raise UserError(f"methods.{name}: {exc}") from exc


def preflight(suite, cfg: dict, out_dir, cache_dir, check_data: str | None = None, origin=None,
              log=print) -> tuple[dict, list[str]]:
    if check_data is None:  # a user's own folder is checked in full (about 4 ms a photo); the rest by sample
        check_data = "all" if cfg.get("dataset", {}).get("name") == "folder" else "sample"
    if check_data not in CHECK_DATA:
        raise UserError(f"--check-data {check_data!r}: expected one of {list(CHECK_DATA)}")
    check_config(cfg, origin)
    check_writable(out_dir, "results folder (--out)")
    check_writable(cache_dir, "cache folder (--cache-dir)")
    spec = typed(cfg)
    check_device(spec.device, spec.launcher.name if spec.launcher else None)  # before any data is built

    data = _prepare(suite, replicate_config(cfg, spec.seeds[0]), Path(cache_dir), log)  # the run's first replicate
    check_images_of(data, check_data)
    notes = []
    if suite.name == "retrieval":  # every suite of the retrieval task
        cfg, notes = fit_splits(cfg, data)
        for note in notes:
            log(f"note: {note}")
    suite.check_methods(cfg, data)
    return cfg, notes
