"""Fit batch size and sampler to the splits a run trains and evaluates on, before any training.

A config written for thousands of images (batch 100 = 20 classes x 5 images) cannot be
sampled from a small folder: pytorch-metric-learning's ``MPerClassSampler`` needs
``batch_size`` a multiple of ``m_per_class``, ``m_per_class x classes >= batch_size`` and
``images >= batch_size``; a shuffled sampler (``sampler: random``) needs ``images >=
batch_size``; Recall@K needs ``K < images`` of every split it scores. ``fit_sampler``
checks the resolved config against the image and class counts of the ``fit``, ``val`` and
``test`` splits (``split_stats``) and returns an adapted copy with one line per change,
or raises ``UserError`` saying what to change when no adaptation makes sense.

When the batch does not fit the ``fit`` split, it is rebuilt from it: ``m_per_class``
drops to the images of the smallest class (never below 2) if that is smaller, then the
batch takes as many whole classes as the split has (``m_per_class x classes``), at most
the configured batch and at most the split's images. Changes are written to
``teacher.train`` and ``student.train`` (never the shared ``train`` section, so a
``pretrain`` section on other data is not moved); ``pretrain.train`` is adapted only
when the backbones are pretrained on the run's own training half. A config that fits
comes back unchanged with no notes.

This module imports torch only to read a ``pretrain`` section (``benchmarks.runner.tasks.pretrain``).
"""

from __future__ import annotations

import copy

import numpy as np

from benchmarks.runner.config import deep_merge
from benchmarks.runner.errors import UserError
from benchmarks.runner.tasks.pretrain import SPLIT_KEYS, pretrain_dataset_spec  # imports torch

TRAIN_DEFAULTS = {"batch_size": 128, "m_per_class": 5, "sampler": "m_per_class"}
"""``retrieval.engine.TrainConfig``'s defaults for the keys read here (a test keeps them equal)."""

SPLITS = ("fit", "val", "test")
ROLES = ("teacher", "student")
MIN_CLASSES = 2
MIN_EVAL_IMAGES = 2  # per class: a query needs another image of its class


def split_stats(dataset) -> dict:
    """``{"images", "classes", "min_per_class"}`` of a dataset, from its ``labels``."""
    labels = np.asarray(dataset.labels)
    if labels.size == 0:
        return {"images": 0, "classes": 0, "min_per_class": 0}
    counts = np.unique(labels, return_counts=True)[1]
    return {"images": int(labels.size), "classes": int(counts.size), "min_per_class": int(counts.min())}


def fit_sampler(cfg: dict, stats: dict[str, dict]) -> tuple[dict, list[str]]:
    """An adapted deep copy of the run config ``cfg`` and the notes saying what changed and why.

    ``stats`` maps ``"fit"``, ``"val"`` and ``"test"`` to ``split_stats`` of each split.
    Raises ``UserError`` (what to change) when a split has fewer than 2 classes, an
    evaluated split has a class with fewer than 2 images, the fit split cannot hold a
    batch of 2 classes, or ``batch_size`` is not a multiple of ``m_per_class``.
    """
    missing = [s for s in SPLITS if s not in stats]
    if missing:
        raise ValueError(f"fit_sampler: stats for the split(s) {missing} are missing; expected {list(SPLITS)}")
    out = copy.deepcopy(cfg)
    notes: list[str] = []
    hint = _hint(cfg)
    for split in SPLITS:
        s = stats[split]
        if s["classes"] < MIN_CLASSES:
            raise UserError(f"the {split} split has {s['classes']} class(es) ({s['images']} images); a "
                            f"retrieval split needs at least {MIN_CLASSES}: {hint}")
    for split in ("val", "test"):
        s = stats[split]
        if s["min_per_class"] < MIN_EVAL_IMAGES:
            raise UserError(f"a class of the {split} split has {s['min_per_class']} image(s); every class needs at "
                            f"least {MIN_EVAL_IMAGES} (a query needs another image of its class), 4 or more are "
                            f"advised: add images to that class or remove it")
    _fit_ks(out, stats, notes)
    for role in ROLES:
        if role in out:
            opts = deep_merge(TRAIN_DEFAULTS, deep_merge(out.get("train") or {}, out[role].get("train") or {}))
            changes = _fit_batch(opts, stats["fit"], f"{role}.train", "the fit split", notes)
            if changes:
                out[role]["train"] = deep_merge(out[role].get("train") or {}, changes)
    if _pretrains_on_own_data(out):
        train_half = {"images": stats["fit"]["images"] + stats["val"]["images"],
                      "classes": stats["fit"]["classes"] + stats["val"]["classes"],
                      "min_per_class": min(stats["fit"]["min_per_class"], stats["val"]["min_per_class"])}
        opts = deep_merge(TRAIN_DEFAULTS, deep_merge(out.get("train") or {}, out["pretrain"].get("train") or {}))
        changes = _fit_batch(opts, train_half, "pretrain.train", "the training half", notes)
        if changes:
            out["pretrain"]["train"] = deep_merge(out["pretrain"].get("train") or {}, changes)
    return out, notes


def _hint(cfg: dict) -> str:
    if (cfg.get("dataset") or {}).get("name") == "folder":
        return ("give the folder at least 7 class folders (the first half of the sorted classes trains: at least "
                "2 fit + 2 validation classes; the rest tests)")
    return "use a dataset with more classes"


def _fit_ks(cfg: dict, stats: dict, notes: list[str]) -> None:
    """Drop the K of ``eval.ks`` that a scored split is too small for (K must be < its images)."""
    ks = (cfg.get("eval") or {}).get("ks")
    if not ks:
        return
    smallest = min(("val", "test"), key=lambda s: stats[s]["images"])
    n = stats[smallest]["images"]
    kept = [k for k in ks if k < n]
    if len(kept) == len(ks):
        return
    if not kept:
        raise UserError(f"eval.ks {list(ks)}: the {smallest} split has {n} images and Recall@K needs K < images; "
                        f"add images or choose smaller K")
    cfg["eval"]["ks"] = kept
    notes.append(f"eval.ks {list(ks)} -> {kept}: the {smallest} split has {n} images (Recall@K needs K < images)")


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{where}.{name} {value!r}: expected a whole number >= 1")
    return int(value)


def _fit_batch(opts: dict, s: dict, where: str, split: str, notes: list[str]) -> dict:
    """The changed keys of ``where`` (``batch_size``, ``m_per_class``) for a split with stats ``s``."""
    batch = _positive_int(opts["batch_size"], "batch_size", where)
    n, classes, smallest = s["images"], s["classes"], s["min_per_class"]
    if opts["sampler"] == "random":
        if batch <= n:
            return {}
        if n < 2:
            raise UserError(f"{split} has {n} image(s); training needs at least 2: add images")
        notes.append(f"{where}.batch_size {batch} -> {n}: {split} has {n} images (sampler random)")
        return {"batch_size": n}
    m = _positive_int(opts["m_per_class"], "m_per_class", where)
    if batch % m:
        lower, upper = batch // m * m, (batch // m + 1) * m
        raise UserError(f"{where}.batch_size {batch} is not a multiple of m_per_class {m} (the class-balanced "
                        f"sampler draws m_per_class images of each class): set batch_size to "
                        f"{' or '.join(str(b) for b in (lower, upper) if b > 0)}")
    if m * classes >= batch and n >= batch:
        return {}
    new_m = min(m, max(2, smallest))
    whole = min(classes, max(2, batch // new_m))  # classes per batch before the images cap
    per_batch = whole
    while per_batch > 2 and per_batch * new_m > n:
        per_batch -= 1
    new_batch = per_batch * new_m
    if new_batch > n:
        raise UserError(f"{split} has {n} images in {classes} classes, fewer than a batch of 2 classes x "
                        f"m_per_class {new_m}: add images (4 or more per class)")
    changes = {}
    if new_m != m:
        changes["m_per_class"] = new_m
        notes.append(f"{where}.m_per_class {m} -> {new_m}: the smallest class of {split} has {smallest} images")
    if new_batch != batch:
        changes["batch_size"] = new_batch
        if per_batch < whole:
            reason = f"{split} has {n} images (a batch holds at most the images)"
        elif per_batch == classes:
            reason = f"{split} has {classes} classes x m_per_class {new_m}"
        else:
            reason = f"a whole number of classes x m_per_class {new_m}"
        notes.append(f"{where}.batch_size {batch} -> {new_batch}: {reason}")
    return changes


def _pretrains_on_own_data(cfg: dict) -> bool:
    """Whether the ``pretrain`` section reads the run's own dataset (its training half): its
    pretraining data (``benchmarks.runner.tasks.pretrain.pretrain_dataset_spec``) is the run's dataset."""
    if not cfg.get("pretrain"):
        return False

    def normalised(spec: dict) -> dict:
        options = {k: v for k, v in (spec.get("options") or {}).items() if k not in SPLIT_KEYS}
        return {**spec, "options": options}

    return normalised(pretrain_dataset_spec(cfg)) == normalised(cfg.get("dataset") or {})
