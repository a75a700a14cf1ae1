"""Benchmark suites: each expands a config into runs and writes the result tables.

``get_suite(name)`` is the ``Suite`` (``benchmarks.runner.suite``) of a config's ``suite`` name;
a suite's module is imported only when it is asked for.
"""

from __future__ import annotations

import importlib

SUITES = {"retrieval": "retrieval", "hmat-ablation": "retrieval",
          "retrieval-scratch": "retrieval",  # benchmarks/configs/retrieval_scratch.yaml
          "classification": "classification", "detection": "detection"}
"""Each suite name of a config, and the module (under this package) whose ``SUITE`` runs it."""


def get_suite(name: str):
    """The ``Suite`` that runs configs of suite ``name``."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; expected one of {list(SUITES)}")
    return importlib.import_module(f"{__name__}.{SUITES[name]}").SUITE
