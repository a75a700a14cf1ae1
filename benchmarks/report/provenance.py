"""results/README.md, made from the committed result files and the notes of results/provenance.yaml.

Every result file records the command that made it and its commit: a leaderboard.md or report in its
``Command:`` / ``Commit:`` lines, a table in its ``# command:`` / ``# commit:`` header, a JSON file in
its ``command`` / ``commit`` keys, a runs table in its ``commit`` column. The index lists them as found,
so a commit or command in it cannot drift from its file. results/provenance.yaml adds what a file
cannot say (a fresh clone, the cache a run reused, why a table was rebuilt); a file that records no
command needs such a note, or the index is refused.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pandas as pd
import yaml

from benchmarks.runner.results_io import read_runs

SKIP_DIRS = {"runs", "tensorboard"}
DERIVED = {"leaderboard.csv", "pairwise.csv", "runs.csv.lock"}  # made with the leaderboard.md beside them
COMMAND = re.compile(r"command:\s*`([^`\n]+)`|^#\s*command:\s*(.+?)\s*$", re.I | re.M)
COMMIT = re.compile(r"\bcommit\W{0,4}([0-9a-f]{7,40})\b", re.I)
HEAD = """# Committed results

Made by `python -m benchmarks.results_index` from the files themselves (their command and commit) and
from the notes of [provenance.yaml](provenance.yaml); a test fails when this page and its sources
disagree. Numbers were measured on the project's 2-core CPU machine unless a file says otherwise.
`leaderboard.csv`, `pairwise.csv`, `forest.png`, `pareto.png`, `leaderboard.tex` and `runs/*.json` of
a folder come from the same run as its `leaderboard.md` (the first two and the plots are remade from
its `runs.csv` by `python -m benchmarks.leaderboard --rebuild FOLDER`).
"""


class ProvenanceError(ValueError):
    """A result file records no command and no note covers it."""


def result_files(results: Path) -> list[Path]:
    """The files under ``results`` that the index lists: every table, report and picture, without run
    details (``runs/``, ``tensorboard/``), the tables derived with a leaderboard.md, and this index."""
    found = []
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results)
        if not path.is_file() or SKIP_DIRS & set(rel.parts[:-1]) or path.name in DERIVED:
            continue
        if rel.as_posix() in ("README.md", "provenance.yaml") or path.suffix in (".png", ".tex"):
            continue
        found.append(path)
    return found


def recorded(path: Path) -> tuple[str | None, str | None]:
    """(command, commit) that ``path`` records, either None when it records none."""
    if path.name == "runs.csv":
        commits = sorted({str(c)[:7] for c in read_runs(path).get("commit", pd.Series(dtype=str)).dropna()})
        return None, ", ".join(commits) or None
    head = path.read_text(errors="replace")[:20000]
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
        if isinstance(data, dict):
            command, commit = data.get("command"), data.get("commit")
            if isinstance(command, list):
                command = " ".join(map(str, command))
            if command or commit:
                return command, (str(commit)[:7] if commit else None)
    command = COMMAND.search(head)
    commit = COMMIT.search(head)
    command = (command.group(1) or command.group(2)).strip() if command else None
    return command, (commit.group(1)[:7] if commit else None)


def load_notes(path: Path) -> list[dict]:
    notes = (yaml.safe_load(path.read_text()) or {}).get("notes") or []
    for i, note in enumerate(notes):
        if not note.get("paths") or not note.get("made"):
            raise ProvenanceError(f"{path}: note {i + 1} needs 'paths' (globs under results/) and 'made'")
    return notes


def _matches(rel: str, pattern: str) -> bool:
    if pattern.endswith("/**"):
        return rel.startswith(pattern[:-2])
    return fnmatch.fnmatchcase(rel, pattern)


def index_markdown(results: Path, notes: list[dict]) -> str:
    """The text of results/README.md."""
    rows, bare = [], []
    for path in result_files(results):
        rel = path.relative_to(results).as_posix()
        command, commit = recorded(path)
        covered = [i + 1 for i, n in enumerate(notes) if any(_matches(rel, p) for p in n["paths"])]
        if command is None and commit is None and not covered:
            bare.append(rel)
        cmd = f"`{command}`" if command else ""
        rows.append(f"| `{rel}` | {cmd} | {f'`{commit}`' if commit else ''} | "
                    f"{', '.join(f'[{i}](#note-{i})' for i in covered)} |")
    if bare:
        raise ProvenanceError(f"{len(bare)} result file(s) record no command or commit and no note of "
                              f"provenance.yaml covers them: {', '.join(bare[:5])}; add a note with their paths")
    lines = [HEAD, "## Files", "", "| file | command it records | commit | notes |", "|---|---|---|---|", *rows, "",
             "## Notes", ""]
    for i, note in enumerate(notes, 1):
        lines += [f"<a id=\"note-{i}\"></a>**{i}.** {note.get('files') or ', '.join(note['paths'])}: "
                  f"{' '.join(str(note['made']).split())}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
