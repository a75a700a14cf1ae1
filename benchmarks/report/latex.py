"""A leaderboard as a booktabs LaTeX table, ready for a paper.

One row per network: the teacher, then ``none`` and the KD methods in the leaderboard's order. Columns:
the primary metric (mean ± std over replicates, in %), the gain over ``none`` in points (mean ± the
half-width of its 95% interval, paired by replicate), and the range of ranks the pairwise intervals
allow. A gain whose interval covers 0 (a tie with ``none``) is marked with a dagger; the caption says
what the intervals cover. Needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import pandas as pd

SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
NAMES = {"recall@1": "Recall@1", "top1": "Top-1", "map@r": "MAP@R", "ap": "AP"}


def escape(text) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(SPECIAL.get(ch, ch) for ch in str(text))


def gain_cell(row) -> str:
    """'$+0.79 \\pm 1.20$' (mean gain ± 95% half-width), with a dagger when the interval covers 0."""
    if row["method"] == "none":
        return "--"
    if pd.isna(row.get("gain_vs_none")) or pd.isna(row.get("gain_ci_halfwidth")):
        return ""
    tie = row["gain_ci_low"] <= 0 <= row["gain_ci_high"]
    return f"${row['gain_vs_none']:+.2f} \\pm {row['gain_ci_halfwidth']:.2f}$" + ("$^\\dagger$" if tie else "")


def latex_table(board: pd.DataFrame, primary: str, title: str, covers: str) -> str:
    """The booktabs table of one leaderboard (``benchmarks.report.aggregate.leaderboard``'s columns);
    ``covers`` says which sources of randomness the replicates redraw."""
    name = NAMES.get(primary, primary)
    seeds = board.loc[board["method"] != "teacher", "seeds"]
    n = int(seeds.max()) if len(seeds) else 0
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{{escape(title)}: {escape(name)} in \% (mean $\pm$ std over {n} replicates) and the gain "
             rf"over \texttt{{none}} in points (mean $\pm$ half-width of its 95\% interval, paired by replicate). "
             rf"{escape(covers.rstrip('. '))}. $^\dagger$: the interval covers 0, a tie with \texttt{{none}}. Rank: the ranks "
             rf"the pairwise 95\% intervals allow.}}",
             r"\begin{tabular}{llrrc}", r"\toprule",
             rf"Method & Student & {escape(name)} (\%) & Gain vs \texttt{{none}} & Rank \\", r"\midrule"]
    teacher = board[board["method"] == "teacher"]
    students = board[board["method"] != "teacher"]
    for part, rule in ((teacher, True), (students, False)):
        for _, row in part.iterrows():
            mean, std = row[f"{primary}_mean"], row.get(f"{primary}_std")
            value = f"${mean:.2f} \\pm {std:.2f}$" if pd.notna(std) else f"${mean:.2f}$"
            rank = row.get("rank")
            rank = "" if row["method"] == "teacher" or pd.isna(rank) else str(rank).replace("-", "--")
            who = row["teacher"] if row["method"] == "teacher" else row["student"]
            lines.append(rf"{escape(row['method'])} & {escape(who)} & {value} & {gain_cell(row)} & {rank} \\")
        if rule and len(part):
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
