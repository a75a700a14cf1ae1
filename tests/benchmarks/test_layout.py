"""The layout: ``benchmarks/`` holds the commands a user runs (each ``python -m benchmarks.X``, with a
``main`` and a ``__main__`` guard) and ``benchmarks/runner/`` the machinery behind them (no command)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
COMMANDS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "__init__.py")
MACHINERY = sorted((BENCHMARKS / "runner").rglob("*.py"))


def _has_main_guard(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.stem)
def test_every_module_of_benchmarks_is_a_command(path):
    tree = ast.parse(path.read_text())
    assert _has_main_guard(tree), f"benchmarks/{path.name} is not a command: move it to benchmarks/runner/"
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


@pytest.mark.parametrize("path", MACHINERY, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_the_runner_package_holds_no_command(path):
    assert not _has_main_guard(ast.parse(path.read_text())), f"{path.name}: a command belongs in benchmarks/"


@pytest.mark.parametrize("command", ["run", "tune"])
def test_the_main_commands_still_start(command):
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{command}", "--help"], capture_output=True, text=True,
                          cwd=BENCHMARKS.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
