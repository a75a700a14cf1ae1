"""KD method registry in the style of the model and dataset registries (and timm's): a method class is
registered by its own module with ``@register_method(name)``; this module imports none of them and loads
the built-in ones on the first query. Queries: ``list_methods()``, ``is_method(name)``,
``method_class(name)``, ``method_tasks(name)``, ``methods_for_task(task)``, ``needs_teacher(name)``,
``build_method(name, **cfg)``."""

from __future__ import annotations

import importlib

BUILTIN = ("none", "at", "rkd", "crd", "hmat", "kd", "hmat_kd", "mimic", "pkt", "sp", "nst", "fitnet", "dkd", "dist",
           "cc", "vid", "reviewkd", "darkrank", "ofd")
"""The modules of ``retrieval.methods`` that hold the built-in methods, in listing order (``--methods all``
runs them in this order, so the zoo's tables keep theirs)."""

_METHODS: dict[str, type] = {}


def register_method(name: str):
    """Class decorator: register a ``Distiller`` subclass as method ``name`` (its ``__init__`` signature
    types the method's options in configs)."""

    def wrap(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice")
        _METHODS[name] = cls
        return cls

    return wrap


def _rank(item) -> tuple:
    """Built-ins in ``BUILTIN`` order whatever order their modules were imported in; others after, as
    registered."""
    module = item[1].__module__.rsplit(".", 1)[-1]
    inside = item[1].__module__.startswith("retrieval.methods.") and module in BUILTIN
    return (BUILTIN.index(module), 0) if inside else (len(BUILTIN), list(_METHODS).index(item[0]))


def _registered() -> dict[str, type]:
    _import_builtin()
    return dict(sorted(_METHODS.items(), key=_rank))


def list_methods() -> list[str]:
    return list(_registered())


def is_method(name) -> bool:
    _import_builtin()
    return isinstance(name, str) and name in _METHODS


def method_class(name: str):
    """The ``Distiller`` subclass registered as ``name`` (its signature types the method's options)."""
    _import_builtin()
    if name not in _METHODS:
        raise ValueError(f"unknown KD method {name!r}; expected one of {list_methods()}")
    return _METHODS[name]


def needs_teacher(name: str) -> bool:
    """Whether method ``name`` reads a teacher (``none`` does not: its runs need not wait for one)."""
    return bool(method_class(name).needs_teacher)


def methods_for_task(task: str | None) -> list[str]:
    """The registered methods that run on ``task`` (all of them for ``None``), in listing order."""
    return [name for name, cls in _registered().items() if task is None or task in cls.tasks]


def method_tasks(name: str) -> tuple[str, ...]:
    """The tasks method ``name`` runs on (retrieval, classification, detection; ``Distiller.tasks``)."""
    return tuple(method_class(name).tasks)


def build_method(name: str, **cfg):
    """Build method ``name`` with ``student``, ``teacher``, ``task_loss`` and its own options."""
    return method_class(name)(**cfg)


_loaded = False


def _import_builtin():
    # Importing the modules runs their @register_method decorators (once; lookups then read the table).
    global _loaded
    if not _loaded:
        for module in BUILTIN:
            importlib.import_module(f"retrieval.methods.{module}")
        _loaded = True
