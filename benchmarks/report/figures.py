"""Figures in the documentation that are made from the committed result files, so that they cannot drift.

A figure is written between two HTML comments that say what it shows; the text between them is
generated and replaced by ``python -m benchmarks.doc_figures``:

    <!-- figure: headline results/retrieval/synthetic -->
    (a table, made from that folder's leaderboard.csv and the header of its leaderboard.md)
    <!-- /figure -->

    RKD gains <!-- figure: gain results/retrieval/fonts rkd -->+2.70 [+1.99, +3.42]<!-- /figure --> points.

Kinds (``FOLDER`` is a results folder ``<results>/<suite>/<dataset>``, relative to the repository):

- ``headline FOLDER``: a compact table, one row per network: the primary metric (mean ± std over
  replicates), the gain over ``none`` with its 95% interval, the rank range; under it the replicates,
  the commit and where the full table is;
- ``gains FOLDER [FOLDER ...]``: a method x table matrix of the gains over ``none`` (95% interval),
  resolved ones in bold, for methods every folder ran or not ("" where a folder lacks one);
- ``leaderboard FOLDER``: the table of that folder's leaderboard.md, as committed;
- ``gain FOLDER METHOD``: the gain of one method, ``+2.70 [+1.99, +3.42]``;
- ``pair FOLDER A B``: the paired difference A - B on the primary metric from pairwise.csv, ``+2.11 [+1.48, +2.74]``;
- ``mean FOLDER METHOD``: the primary metric's mean, ``19.48``;
- ``power FOLDER``: the resolving power, the median 95% half-width of the gains, ``1.22``;
- ``seeds FOLDER``: the number of replicates, ``6``; ``commit FOLDER``: the commit of the table's run;
- ``replication REPORT``: how many differences of a replication report (``benchmarks.replicate``; REPORT its
  .md file) lie outside their intervals;
- ``agreement REPORT``: the correlations of a proxy report (``benchmarks.proxy``; REPORT its .md file),
  ``Spearman -0.03 [-0.20, +0.17]; Pearson -0.04 [-0.11, +0.05]``;
- ``proxygain REPORT METHOD SIDE``: a method's gain in a proxy report on side ``a`` (the proxy) or ``b``
  (the real set), ``+1.57 [+0.09, +3.05]``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from benchmarks.runner.results_io import read_runs

BLOCK = re.compile(r"<!-- figure: (?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /figure -->", re.S)
COMMIT = re.compile(r"^Commit: `([0-9a-f]+)`", re.M)
POOLED = re.compile(r"\(rows from commits ([0-9a-f, ]+)\)")


class FigureError(ValueError):
    """A figure's specification names a kind, folder or method that does not exist."""


def _board(root: Path, folder: str) -> pd.DataFrame:
    path = root / folder / "leaderboard.csv"
    if not path.is_file():
        raise FigureError(f"{folder}: no leaderboard.csv there; expected a results folder <results>/<suite>/<dataset>")
    return read_runs(path)


def _primary(board: pd.DataFrame) -> str:
    for name in ("recall@1", "top1", "ap"):
        if f"{name}_mean" in board.columns and board[f"{name}_mean"].notna().any():
            return name
    raise FigureError(f"no primary metric among {list(board.columns)}")


def _row(board: pd.DataFrame, folder: str, method: str) -> pd.Series:
    rows = board[board["method"] == method]
    if rows.empty:
        raise FigureError(f"{folder}: no method {method!r}; it has {', '.join(board['method'])}")
    return rows.iloc[0]


def _commit(root: Path, folder: str) -> str:
    """The commit of a folder's run, or the commits of a pooled folder's rows (``leaderboard --pool``)."""
    md = root / folder / "leaderboard.md"
    text = md.read_text() if md.is_file() else ""
    found = COMMIT.search(text) or POOLED.search(text)
    return found.group(1) if found else "unknown"


def gain_text(row: pd.Series) -> str:
    """'+2.70 [+1.99, +3.42]', '+0.00' for none, '' when there is no gain."""
    if row["method"] == "none":
        return "+0.00"
    if pd.isna(row.get("gain_vs_none")):
        return ""
    text = f"{row['gain_vs_none']:+.2f}"
    if pd.notna(row.get("gain_ci_low")) and pd.notna(row.get("gain_ci_high")):
        text += f" [{row['gain_ci_low']:+.2f}, {row['gain_ci_high']:+.2f}]"
    return text


def resolved(row: pd.Series) -> bool:
    return bool(pd.notna(row.get("gain_ci_low")) and (row["gain_ci_low"] > 0 or row["gain_ci_high"] < 0))


def _seeds(board: pd.DataFrame) -> int:
    return int(board.loc[board["method"] != "teacher", "seeds"].max())


def headline(root: Path, folder: str, doc_dir: Path | None = None) -> str:
    board = _board(root, folder)
    primary = _primary(board)
    lines = [f"| method | {primary} (%) | gain vs none (95% interval) | rank |", "|---|---|---|---|"]
    for _, row in board.iterrows():
        gain = gain_text(row)
        gain = f"**{gain}**" if resolved(row) else gain
        rank = "" if row["method"] == "teacher" or pd.isna(row.get("rank")) else row["rank"]
        lines.append(f"| {row['method']} | {row[f'{primary}_mean']:.2f} ± {row[f'{primary}_std']:.2f} | {gain} | {rank} |")
    design = board["replicates"].dropna().iloc[0] if "replicates" in board and board["replicates"].notna().any() else "?"
    link = Path(os.path.relpath(root / folder / "leaderboard.md", doc_dir if doc_dir is not None else root)).as_posix()
    commit = _commit(root, folder)
    lines += ["", f"{_seeds(board)} replicates ({design}), commit{'s' * (',' in commit)} `{commit}`; bold: the interval "
              f"excludes 0. Full table: [{folder}/leaderboard.md]({link})."]
    return "\n".join(lines)


def gains(root: Path, folders: list[str]) -> str:
    boards = [_board(root, f) for f in folders]
    methods = []
    for board in boards:
        methods += [m for m in board["method"] if m not in ("teacher", "none") and m not in methods]
    head = "| method | " + " | ".join(f"{f.split('/')[-2]}/{f.split('/')[-1]}" for f in folders) + " |"
    lines = [head, "|---" * (len(folders) + 1) + "|"]
    for method in methods:
        cells = []
        for board in boards:
            rows = board[board["method"] == method]
            if rows.empty:
                cells.append("")
                continue
            text = gain_text(rows.iloc[0])
            cells.append(f"**{text}**" if resolved(rows.iloc[0]) else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    seeds = ", ".join(str(_seeds(b)) for b in boards)
    lines += ["", f"Gain over none in points of each table's primary metric, 95% interval over its replicates "
              f"({seeds}); bold: the interval excludes 0."]
    return "\n".join(lines)


def leaderboard_table(root: Path, folder: str) -> str:
    md = root / folder / "leaderboard.md"
    if not md.is_file():
        raise FigureError(f"{folder}: no leaderboard.md there; expected a results folder <results>/<suite>/<dataset>")
    lines = md.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| method |")), None)
    if start is None:
        raise FigureError(f"{folder}/leaderboard.md has no table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def pair_text(root: Path, folder: str, a: str, b: str) -> str:
    path = root / folder / "pairwise.csv"
    if not path.is_file():
        raise FigureError(f"{folder}: no pairwise.csv there")
    pairs = read_runs(path)
    primary = _primary(_board(root, folder))
    for first, second, sign in ((a, b, 1), (b, a, -1)):
        rows = pairs[(pairs["method_a"] == first) & (pairs["method_b"] == second) & (pairs["metric"] == primary)]
        if len(rows):
            r = rows.iloc[0]
            low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            return f"{sign * r['mean_diff']:+.2f} [{low:+.2f}, {high:+.2f}]"
    raise FigureError(f"{folder}/pairwise.csv: no pair {a}, {b} on {primary}")


def _report_match(root: Path, report: str, pattern: re.Pattern, missing: str) -> re.Match:
    """``pattern``'s first match in the report file ``report``; ``missing`` names what was expected there."""
    path = root / report
    found = pattern.search(path.read_text()) if path.is_file() else None
    if not found:
        raise FigureError(f"{report}: {missing}")
    return found


REPLICATION = re.compile(r"\*\*(\d+) of (\d+) differences\*\* lie outside their 95% interval")


def replication_text(root: Path, report: str) -> str:
    """'0 of 24 differences outside their 95% intervals' from a replication report (``benchmarks.replicate``)."""
    found = _report_match(root, report, REPLICATION, "no replication report there (python -m benchmarks.replicate)")
    return f"{found.group(1)} of {found.group(2)} differences outside their 95% intervals"


AGREEMENT = re.compile(r"\*\*Agreement of the gains[^*]*\*\*: (Spearman [^;]+; Pearson [^\]]+\])")


def agreement_text(root: Path, report: str) -> str:
    return _report_match(root, report, AGREEMENT,
                         "no proxy report with an agreement line there (python -m benchmarks.proxy)").group(1)


def proxy_gain_text(root: Path, report: str, method: str, side: str) -> str:
    path = (root / report).with_suffix(".csv")
    if side not in ("a", "b") or not path.is_file():
        raise FigureError(f"proxygain {report} {method} {side}: expected a proxy report (its .csv beside it) and "
                          f"side a or b")
    table = read_runs(path)
    rows = table[table["method"] == method]
    if rows.empty:
        raise FigureError(f"{path.name}: no method {method!r}")
    r = rows.iloc[0]
    return f"{r[f'gain_{side}']:+.2f} [{r[f'low_{side}']:+.2f}, {r[f'high_{side}']:+.2f}]"


def render(spec: str, root: Path, doc_dir: Path | None = None) -> str:
    """The text of the figure ``spec`` ("kind arg ...") from the results under ``root`` (the repository);
    links are relative to ``doc_dir``, the folder of the document (default: ``root``)."""
    kind, *args = spec.split()
    one = {"gain": 2, "mean": 2, "power": 1, "seeds": 1, "commit": 1, "headline": 1, "leaderboard": 1, "pair": 3, "agreement": 1, "replication": 1,
           "proxygain": 3}
    if kind in one and len(args) != one[kind] or kind == "gains" and not args:
        raise FigureError(f"figure {spec!r}: {kind} takes {one.get(kind, '1 or more')} argument(s)")
    if kind == "headline":
        return "\n" + headline(root, args[0], doc_dir) + "\n"
    if kind == "gains":
        return "\n" + gains(root, args) + "\n"
    if kind == "agreement":
        return agreement_text(root, args[0])
    if kind == "replication":
        return replication_text(root, args[0])
    if kind == "proxygain":
        return proxy_gain_text(root, *args)
    if kind == "leaderboard":
        return "\n" + leaderboard_table(root, args[0]) + "\n"
    if kind == "pair":
        return pair_text(root, *args)
    if kind == "commit":
        return f"`{_commit(root, args[0])}`"
    board = _board(root, args[0])
    if kind == "gain":
        return gain_text(_row(board, args[0], args[1]))
    if kind == "mean":
        return f"{_row(board, args[0], args[1])[f'{_primary(board)}_mean']:.2f}"
    if kind == "power":
        students = board[~board["method"].isin(["teacher", "none"])]
        return f"{students['gain_ci_halfwidth'].median():.2f}"
    if kind == "seeds":
        return str(_seeds(board))
    raise FigureError(f"figure {spec!r}: unknown kind {kind!r}; expected headline, gains, gain, mean, power, "
                      f"seeds or commit")


def refresh(text: str, root: Path, doc_dir: Path | None = None) -> str:
    """``text`` (a document in ``doc_dir``) with every figure regenerated."""
    return BLOCK.sub(lambda m: f"<!-- figure: {m['spec']} -->{render(m['spec'], root, doc_dir)}<!-- /figure -->",
                     text)


def stale(path: Path, root: Path) -> list[str]:
    """The specs of the figures in ``path`` whose committed text differs from what the results give."""
    text = path.read_text()
    return [m["spec"] for m in BLOCK.finditer(text) if m["body"] != render(m["spec"], root, path.parent)]


def figure_count(path: Path) -> int:
    return len(BLOCK.findall(path.read_text()))
