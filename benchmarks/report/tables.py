"""A results folder's tables (leaderboard.csv, leaderboard.md, pairwise.csv, forest.png) from its
runs.csv, and the leaderboard merged over every folder of a results tree (the rows of each folder that
``benchmarks.report.rows`` keeps)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmarks.report.aggregate import COVERS, design_of_rows, leaderboard, tables, to_markdown
from benchmarks.report.pareto import plot_pareto
from benchmarks.report.plots import histories, plot_curves, plot_forest, plot_k_metrics
from benchmarks.report.rows import collect, current_rows, primary_metric
from benchmarks.runner.errors import UserError
from benchmarks.runner.results_io import atomic_write_text

FOREST = "forest.png"


def write_suite_tables(dest: Path, runs: pd.DataFrame, primary: str, title: str, notes: list[str]) -> pd.DataFrame:
    """A suite folder's ``leaderboard.csv``, ``pairwise.csv``, ``leaderboard.md`` and ``forest.png`` (the
    gains over none with their intervals, when the rows have them) from ``runs`` (the rows of its latest
    run), each written atomically; returns the leaderboard."""
    board, pairs = tables(runs, primary=primary)
    atomic_write_text(dest / "pairwise.csv", pairs.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(dest / "leaderboard.csv", board.to_csv(index=False, float_format="%.4f"))
    text = to_markdown(board, title, notes, primary=primary)
    if plot_forest(board, dest / FOREST, title, primary):
        text = text.rstrip("\n") + f"\n\nForest plot of the gains over none: [{FOREST}]({FOREST})\n"
    atomic_write_text(dest / "leaderboard.md", text)
    return board


def markdown_notes(md_path: Path) -> tuple[str | None, list[str]]:
    """(title, notes) of a leaderboard.md written by ``to_markdown``: the lines between the title and
    the table (the notes under the table are made from the table again)."""
    if not md_path.exists():
        return None, []
    lines = md_path.read_text().splitlines()
    title = lines[0][2:] if lines and lines[0].startswith("# ") else None
    notes = []
    for line in lines[2:]:
        if not line.strip() or line.startswith("|"):
            break
        notes.append(line.rstrip())
    return title, notes


def rebuild(folder: Path) -> pd.DataFrame:
    """Rewrite ``folder``'s leaderboard.csv, pairwise.csv and leaderboard.md from its runs.csv (no training):
    the rows of the configs in its current leaderboard.csv, the notes of its current leaderboard.md."""
    if not (folder / "runs.csv").exists():
        raise UserError(f"no {folder / 'runs.csv'}; expected a results folder <results>/<suite>/<dataset>")
    runs = current_rows(folder)
    if not len(runs):
        raise UserError(f"{folder}: no rows of the configs in its leaderboard.csv")
    title, notes = markdown_notes(folder / "leaderboard.md")
    return write_suite_tables(folder, runs, primary_metric(runs), title or f"{folder.parent.name}: {folder.name}",
                              notes)


def pool(out: Path, folders: list[Path], command: str) -> pd.DataFrame:
    """Write ``out``'s runs.csv and tables from the rows of several runs of one config on disjoint replicates
    (a run and its replication reruns): the methods every folder holds are pooled (``none`` among them), each with
    the same config hash in every folder (the hash of its config and options), and no (method, seed) may appear
    twice. A method that some folders lack (a rerun of a few methods of a zoo) is left out, and a line says so. The
    intervals then cover all the replicates together. Returns the leaderboard. The notes are the first folder's,
    with a line naming the pooled runs."""
    if len(folders) < 2:
        raise UserError(f"--pool needs two or more results folders to pool; got {len(folders)}")
    parts = []
    for folder in folders:
        if not (folder / "runs.csv").is_file():
            raise UserError(f"--pool {folder}: no runs.csv there; expected a results folder <results>/<suite>/<dataset>")
        rows = current_rows(folder)
        hashes = rows.groupby("method")["config_hash"].agg(lambda h: ",".join(sorted(set(h.astype(str))))).to_dict()
        mixed = {m: h for m, h in hashes.items() if "," in h}
        if mixed:
            raise UserError(f"--pool {folder}: method(s) {sorted(mixed)} hold rows of several configs "
                            f"({'; '.join(f'{m}: {h}' for m, h in sorted(mixed.items()))}); expected one run of one config")
        parts.append((folder, rows, hashes))
    first, expected = parts[0][0], parts[0][2]
    common = set(expected).intersection(*(set(hashes) for _, _, hashes in parts[1:]))  # the methods every folder ran
    for folder, _, hashes in parts[1:]:
        differ = sorted(m for m in common if expected[m] != hashes[m])
        if differ:
            m = differ[0]
            raise UserError(f"--pool: every folder must hold runs of one config; {m} has config hash "
                            f"{expected[m]} in {first} but {hashes[m]} in {folder}")
    if "none" not in common or not common - {"teacher", "none"}:
        raise UserError(f"--pool: the folders share {sorted(common) or 'no method'}; expected none and at least one "
                        f"other method in every folder (gains are over none)")
    left_out = sorted(set().union(*(set(hashes) for _, _, hashes in parts)) - common)
    runs = pd.concat([rows[rows["method"].isin(common)] for _, rows, _ in parts], ignore_index=True)
    twice = runs[runs.duplicated(["method", "seed"], keep=False)]
    if len(twice):
        shared = sorted({int(s) for s in twice["seed"]})
        raise UserError(f"--pool: seeds {shared} appear in more than one folder; pooled runs must be on disjoint "
                        f"replicates")
    title, notes = markdown_notes(parts[0][0] / "leaderboard.md")
    seeds = {str(folder): sorted({int(s) for s in rows["seed"]}) for folder, rows, _ in parts}
    commits = sorted({str(c) for c in runs["commit"]}) if "commit" in runs.columns else []
    said = [f"Command: `{command}`",
            "Pooled runs of one config on disjoint replicates: " + "; ".join(f"{f} seeds {s}" for f, s in seeds.items())
            + (f" (rows from commits {', '.join(commits)})" if commits else "") + "."]
    if left_out:
        said.append(f"Left out, not run in every pooled folder: {', '.join(left_out)}.")
    notes = said + [_without_run(n) for n in notes if not n.startswith("Command:") and _without_run(n)]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "runs.csv", runs.to_csv(index=False))
    return write_suite_tables(out, runs, primary_metric(runs), title or f"{out.parent.name}: {out.name}", notes)


def _without_run(note: str) -> str:
    """A note of a run's table without what belongs to that run alone: the ``Commit: `c`; seeds [...]; ``
    head of a suite's second line (its metric description stays)."""
    if not note.startswith("Commit:"):
        return note
    rest = re.sub(r"^Commit: `[^`]*`(; seeds \[[^\]]*\])?[;.]?\s*", "", note)
    return rest[:1].upper() + rest[1:] if rest.strip() else ""


def build(results: Path, command: str, plots: bool = True) -> tuple[pd.DataFrame, str]:
    """Merge, aggregate and draw; returns (leaderboard table, markdown) without writing the tables."""
    found = collect(results)
    if not found:
        raise UserError(f"no results to merge: no {results}/<suite>/<dataset>/runs.csv; "
                         f"run python -m benchmarks.run --suite SUITE first")
    boards, sections = [], []
    for folder, runs in found:
        suite, dataset = folder.parent.name, folder.name
        primary = primary_metric(runs)
        board = leaderboard(runs, primary=primary)
        board.insert(board.columns.get_loc("method") + 1, "primary", primary)
        boards.append(board)
        commits = sorted(str(c) for c in runs["commit"].dropna().unique()) if "commit" in runs else []
        made = []
        if plots:
            title = f"{suite}: {dataset}"
            kind = "recall" if primary.startswith("recall") else "topk"
            name = f"{suite}_{dataset}_{kind}.png"
            if plot_k_metrics(board, results / "plots" / name, title):
                made.append(name)
            name = f"{suite}_{dataset}_curves.png"
            if plot_curves(histories(folder, runs), results / "plots" / name, title, primary):
                made.append(name)
            name = f"{suite}_{dataset}_forest.png"
            if plot_forest(board, results / "plots" / name, title, primary):
                made.append(name)
            name = f"{suite}_{dataset}_pareto.png"
            if plot_pareto(runs, results / "plots" / name, title):  # only when the rows carry cost columns
                made.append(name)
        design = design_of_rows(runs)
        notes = [f"From `{folder.relative_to(results)}/runs.csv`: {len(runs)} rows, "
                 f"config(s) {', '.join(f'`{h}`' for h in sorted(runs['config_hash'].astype(str).unique()))}; "
                 f"commit(s) {', '.join(f'`{c}`' for c in commits) or 'unknown'}.",
                 f"Primary metric {primary}: rank range, gain vs none (points, paired by replicate, 95% interval) "
                 f"and gap closed = (method - none) / (teacher - none) are computed on it.",
                 f"Replicates: {design}. The intervals: {COVERS[design]}."]
        if made:
            notes.append("Plots: " + ", ".join(f"[{n}](plots/{n})" for n in made))
        md = to_markdown(board, f"{suite}: {dataset}", notes, primary=primary)
        sections.append("#" + md)  # one level below the page title
    table = pd.concat(boards, ignore_index=True)
    head = ["# Leaderboard", "", f"Command: `{command}`  ",
            "Metrics in % (mean ± std over replicates, a seed being a replicate). Rows: for each results folder, the runs whose config hash "
            "is in that folder's leaderboard.csv (its latest suite run).", ""]
    return table, "\n".join(head) + "\n" + "\n".join(sections)


