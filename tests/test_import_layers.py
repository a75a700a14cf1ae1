"""The layers of the code point one way: the library (retrieval/) never imports the harness, the harness's
machinery (benchmarks/runner/, benchmarks/report/) never imports a command (a module benchmarks/X.py run as
python -m benchmarks.X), the module-level imports form no cycle, and a function imports only what is optional."""

import ast
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {f"benchmarks.{p.stem}" for p in (REPO / "benchmarks").glob("*.py") if p.stem != "__init__"}


def _modules():
    found = {}
    for path in sorted([*(REPO / "retrieval").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, module_level: bool):
    """(imported module, line) of every import in ``path``: all of them, or those run at import time."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = ast.walk(tree) if not module_level else [
        n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for n in ast.walk(top)]
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


def test_there_are_commands_and_library_modules():
    assert {"benchmarks.run", "benchmarks.tune", "benchmarks.leaderboard"} <= COMMANDS
    assert "benchmarks.runner.suite_runner" in MODULES and "retrieval.methods.registry" in MODULES


@pytest.mark.parametrize("layer", ["retrieval", "benchmarks.runner", "benchmarks.report"])
def test_machinery_imports_no_command(layer):
    bad = [f"{name}:{line} imports {target}" for name, path in MODULES.items()
           if name == layer or name.startswith(layer + ".")
           for target, line in _imports(name, path, module_level=False)
           if target in COMMANDS or layer == "retrieval" and target.startswith("benchmarks")]
    assert not bad, "\n".join(bad)


def test_module_level_imports_have_no_cycle():
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        for target, _ in _imports(name, path, module_level=True):
            graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]


def test_no_module_reaches_into_a_registry_s_private_table():
    """Registries are queried through their public functions (list_methods, method_class, dataset_loader, ...)."""
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("registry"):
                bad += [f"{name}:{node.lineno} imports {a.name} from {node.module}" for a in node.names
                        if a.name.startswith("_")]
    assert not bad, "\n".join(bad)


OPTIONAL = ("ray", "submitit", "optuna", "mlflow", "tensorboard", "torch.utils.tensorboard")
"""The cluster extra (pyproject.toml): a module imports these where they are used, so that the rest runs
without them (``benchmarks.runner.launch.require`` names the extra when one is missing)."""

LAZY = {
    "benchmarks.runner.errors": "retrieval",  # every command imports it: --help and a bad flag answer before torch
    "retrieval.numerics": "torch",  # it sets the CPU-kernel variables that torch reads, so never imports it first
    "retrieval.data.registry": "retrieval.data",  # the built-in loaders register on first query (timm's style)
    "retrieval.models.registry": "retrieval.models",
    "benchmarks.bench_data": "torchvision.io",  # its deprecation warning is silenced around the import
    "benchmarks.export": "onnxruntime",  # a file's session is built only to check an export
}
"""Modules that import something other than an optional extra inside a function, and why."""


def test_the_package_sets_the_cpu_variables_before_torch_is_imported():
    """``import retrieval`` pins the CPU kernels through environment variables that torch reads: torch must not
    be imported before they are set (``retrieval.numerics`` imports no torch at module level)."""
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('ATEN_CPU_CAPABILITY', None); import retrieval.numerics as n; "
            "assert 'torch' not in sys.modules, 'retrieval.numerics imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _function_imports(path: Path):
    """(imported module, line) of every import inside a function of ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    yield from ((a.name, inner.lineno) for a in inner.names)
                elif isinstance(inner, ast.ImportFrom) and not inner.level:
                    yield inner.module, inner.lineno


def test_functions_import_only_optional_extras():
    bad = []
    for name, path in MODULES.items():
        for module, line in _function_imports(path):
            if any(module == o or module.startswith(o + ".") for o in OPTIONAL):
                continue
            allowed = LAZY.get(name)
            if allowed and (module == allowed or module.startswith(allowed + ".")):
                continue
            bad.append(f"{name}:{line} imports {module} inside a function")
    assert not bad, "\n".join(bad)
