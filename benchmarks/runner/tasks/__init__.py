"""The tasks, one registry in the style of the method, dataset and model registries: a task's module
(a module of this package) registers its ``Task`` subclass (``benchmarks.runner.task.Task``) with
``@register_task``; the registry imports this package's modules on the first query, so adding a task
registers nothing anywhere else.

A suite name (a config's ``suite``) is a task run under a protocol: ``retrieval``, ``classification`` and
``detection`` are the three tasks' defaults; a task's ``VARIANTS`` (``hmat-ablation`` and
``retrieval-scratch`` for retrieval) run it with default configs of their own
(benchmarks/configs/hmat-ablation.yaml, retrieval_scratch.yaml) and write tables of their own. Everything
that varies with the suite is read through the public queries: ``list_tasks()``, ``get_task(task)``,
``list_suites()``, ``is_suite(name)``, ``suite_task(name)``, ``suites_of_task(task)``,
``tuning_metrics(name)``, ``schema_of(name)`` and ``get_suite(name)`` (the ``Task`` that runs it). The
task modules are imported at the first query, never when this package is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

_REGISTERED: dict = {}


def register_task(cls):
    """Class decorator: register one instance of the ``Task`` subclass ``cls`` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} declares no name")
    known = _REGISTERED.get(cls.name)
    where = lambda c: (c.__module__, c.__qualname__)  # noqa: E731 (a module imported again registers again)
    if known is not None and where(type(known)) != where(cls):
        raise RuntimeError(f"the task {cls.name!r} is declared twice: by {'.'.join(where(type(known)))} and "
                           f"{'.'.join(where(cls))}")
    _REGISTERED[cls.name] = cls()
    _tasks.cache_clear(), _suites.cache_clear()
    return cls


@lru_cache(maxsize=None)
def _tasks() -> dict:
    """{task name: Task}, in listing order (``Task.ORDER``, then the name)."""
    for info in pkgutil.iter_modules(__path__):  # importing a task's module runs its @register_task
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTERED.items(), key=lambda item: (item[1].ORDER, item[0])))


@lru_cache(maxsize=None)
def _suites() -> dict:
    """{suite name: Task}: each task under its own name, then its variants."""
    out = {}
    for task in _tasks().values():
        for name in task.suites:
            if name in out:
                raise RuntimeError(f"the suite name {name!r} is declared by the tasks {out[name].name!r} and "
                                   f"{task.name!r}")
            out[name] = task
    return out


def list_tasks() -> list[str]:
    return list(_tasks())


def get_task(name: str):
    if name not in _tasks():
        raise ValueError(f"unknown task {name!r}; expected one of {list_tasks()}")
    return _tasks()[name]


def list_suites() -> list[str]:
    return list(_suites())


def is_suite(name) -> bool:
    return isinstance(name, str) and name in _suites()


def get_suite(name: str):
    """The ``Task`` that runs configs of suite ``name``."""
    if not is_suite(name):
        raise ValueError(f"unknown suite {name!r}; expected one of {list_suites()}")
    return _suites()[name]


def suite_task(name: str) -> str:
    """The task suite ``name`` runs (``retrieval`` for the ablation and the from-scratch protocol)."""
    return get_suite(name).name


def suites_of_task(task: str) -> list[str]:
    return list(get_task(task).suites)


def tuning_metrics(name: str) -> tuple[str, ...]:
    """The validation metrics a tuning table of suite ``name`` holds; the first is the primary one."""
    return tuple(get_suite(name).METRICS)


def schema_of(name: str):
    """The pydantic model a config of suite ``name`` must satisfy."""
    return get_suite(name).SCHEMA
