"""Dataset registry: ``build_dataset(name, root, split)`` is the one public entry point."""

from __future__ import annotations

from typing import Callable

SPLITS = ("train", "fit", "val", "test")
"""Retrieval sets: ``train``/``test`` are the official class-disjoint halves, ``val`` a
held-out share of the training classes, for model selection, and ``fit`` the training
classes minus ``val`` (what a model is trained on when it is selected on ``val``).
Classification sets (``cifar10``, ``cifar100``, ``*-cls``) hold every class in every
split: ``val`` is a held-out share of the training images."""

_DATASETS: dict[str, Callable] = {}
_GENERATED: dict[str, str] = {}
GENERATED_DRAW = "the generated data (class set, training and test images)"


def register_dataset(name: str, generated: bool = False, draws: str = GENERATED_DRAW):
    """Decorator: register ``fn(root, split, transform=None, **kw) -> RetrievalDataset``.
    ``generated``: the set is drawn from its ``seed`` option, so another seed is another draw of it
    (``is_generated``); ``draws`` says what the seed draws (``seed_draws``): by default the generated
    classes and images, for a real set read from disk the split of its classes, say."""

    def wrap(fn):
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = fn
        if generated:
            _GENERATED[name] = draws
        return fn

    return wrap


def seed_draws(name: str) -> str | None:
    """What the ``seed`` option of dataset ``name`` draws (None where the set does not depend on a seed)."""
    _import_builtin()
    return _GENERATED.get(name)


def is_generated(name: str) -> bool:
    """Whether dataset ``name`` is generated from its ``seed`` option (False for sets read from disk
    or shipped in a package, and for names that are not registered)."""
    _import_builtin()
    return name in _GENERATED


def dataset_loader(name: str):
    """The function registered as dataset ``name`` (its keywords are the dataset's options), or None."""
    _import_builtin()
    return _DATASETS.get(name)


def list_datasets() -> list[str]:
    _import_builtin()
    return sorted(_DATASETS)


def build_dataset(name: str, root=None, split: str = "train", transform=None, **kwargs):
    """Build dataset ``name`` (see ``list_datasets()``) from ``root`` for ``split``.

    ``split`` is one of ``train``, ``fit``, ``val``, ``test`` (see ``SPLITS``). With
    ``transform=None`` a default transform for the split is used (augmentation for
    ``train``/``fit``, deterministic resizing for ``val``/``test``).
    """
    _import_builtin()
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    return _DATASETS[name](root, split, transform=transform, **kwargs)


def _import_builtin():
    # Importing the modules runs their @register_dataset decorators.
    from retrieval.data import cub, cars, sop, folder, embedded, cifar, classification, fonts  # noqa: F401
