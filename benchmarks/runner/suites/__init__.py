"""Benchmark suites, one registry: what the harness knows of a suite before it imports its module.

A suite name (a config's ``suite``) is a task run under a protocol: ``retrieval``, ``classification`` and
``detection`` are the three tasks' defaults; ``hmat-ablation`` and ``retrieval-scratch`` run the retrieval
task with configs of their own (benchmarks/configs/hmat-ablation.yaml, retrieval_scratch.yaml) and write
tables of their own. Everything else that varies with the suite is read from here, through the public
queries: ``list_suites()``, ``is_suite(name)``, ``suite_task(name)``, ``suites_of_task(task)``,
``tuning_metrics(name)`` and ``get_suite(name)``, the ``Suite`` (``benchmarks.runner.suite``) whose hooks
run it; a suite's module is imported only when it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

TASKS = ("retrieval", "classification", "detection")
"""The tasks (``retrieval.methods.distiller.TASKS``: a KD method declares those it runs on)."""


@dataclass(frozen=True)
class SuiteSpec:
    task: str                     # of TASKS: the methods it may run, its config schema, its module
    metrics: tuple[str, ...]      # the validation metrics a tuning table holds; the first is the primary one


SPECS = {
    "retrieval": SuiteSpec("retrieval", ("recall@1", "map@r")),
    "hmat-ablation": SuiteSpec("retrieval", ("recall@1", "map@r")),
    "retrieval-scratch": SuiteSpec("retrieval", ("recall@1", "map@r")),
    "classification": SuiteSpec("classification", ("top1", "top5")),
    "detection": SuiteSpec("detection", ("ap", "ap50")),
}
SUITES = tuple(SPECS)  # the suite names, registry order


def list_suites() -> list[str]:
    return list(SPECS)


def is_suite(name) -> bool:
    return name in SPECS


def _spec(name: str) -> SuiteSpec:
    if name not in SPECS:
        raise ValueError(f"unknown suite {name!r}; expected one of {list(SPECS)}")
    return SPECS[name]


def suite_task(name: str) -> str:
    """The task suite ``name`` runs (``retrieval`` for the ablation and the from-scratch protocol)."""
    return _spec(name).task


def suites_of_task(task: str) -> list[str]:
    return [name for name, spec in SPECS.items() if spec.task == task]


def tuning_metrics(name: str) -> tuple[str, ...]:
    return _spec(name).metrics


def get_suite(name: str):
    """The ``Suite`` that runs configs of suite ``name`` (the ``SUITE`` of its task's module)."""
    return importlib.import_module(f"{__name__}.{_spec(name).task}").SUITE
