"""The pictures of a leaderboard: Recall@K (or top-K) per method, training curves, and the forest
plot of the gains over ``none`` with their 95% intervals. Each is written atomically as a PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from benchmarks.runner.results_io import atomic_write_via

K_METRIC = re.compile(r"^(recall@|top)(\d+)$")


def _label(part: pd.DataFrame, row) -> str:
    """The method name, plus the config hash where one method has several configs."""
    several = part.loc[part["method"] == row["method"], "config_hash"].nunique() > 1
    return f"{row['method']} ({row['config_hash']})" if several else str(row["method"])


def figure(n: int, ncols: int, size=(4.2, 3.2)):
    matplotlib.use("Agg")

    ncols = max(1, min(n, ncols))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()[:n], plt


def colors(labels) -> dict:
    """One colour per method, the same in every panel and both plots (the teacher is black, dashed)."""
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    students = sorted(set(labels) - {"teacher"}, key=lambda lab: (lab != "none", lab))
    return {"teacher": "black", **{lab: cycle[i % len(cycle)] for i, lab in enumerate(students)}}


def save(fig, plt, path: Path) -> None:
    fig.tight_layout()
    atomic_write_via(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def plot_k_metrics(board: pd.DataFrame, path: Path, title: str) -> bool:
    """Recall@K (or top-K accuracy) against K, one line per method, error bars = std over seeds."""
    ks = sorted(((int(m.group(2)), m.group(0)) for c in board.columns
                 if c.endswith("_mean") and (m := K_METRIC.match(c[:-5]))), key=lambda t: t[0])
    if not ks:
        return False
    pairs = list(board.groupby(["teacher", "student"], sort=False))
    students = [(k, p) for k, p in pairs if (p["method"] != "teacher").any()] or pairs
    fig, axes, plt = figure(len(students), 3, (5.0, 3.8))
    for ax, ((teacher, student), part) in zip(axes, students):
        rows = pd.concat([board[(board["method"] == "teacher") & (board["teacher"] == teacher)], part])
        rows = rows.drop_duplicates(subset=["method", "config_hash"])
        labels = [_label(rows, row) for _, row in rows.iterrows()]
        palette = colors(labels)
        for i, ((_, row), label) in enumerate(zip(rows.iterrows(), labels)):
            shift = 2 ** (0.04 * (i - (len(rows) - 1) / 2))  # spread the error bars a little
            x = [k * shift for k, _ in ks]
            y = [row[f"{name}_mean"] for _, name in ks]
            err = [row[f"{name}_std"] for _, name in ks]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, color=palette[label],
                        linestyle="--" if row["method"] == "teacher" else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks([k for k, _ in ks], [str(k) for k, _ in ks])
        ax.set_xlabel("K")
        ax.set_ylabel(f"{ks[0][1].rstrip('0123456789').rstrip('@')}@K (%)")
        ax.set_title(f"{title}\n{teacher} -> {student}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, plt, path)
    return True


def histories(folder: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch records of the kept runs that have a ``runs/<run_id>.json``, one row per (run, epoch)."""
    records = []
    for _, row in runs.iterrows():
        path = folder / "runs" / f"{row['run_id']}.json"
        if not path.exists():
            continue
        for rec in json.loads(path.read_text()).get("history") or []:
            records.append({"run_id": row["run_id"], "method": row["method"],
                            "config_hash": row.get("config_hash"), "seed": row["seed"], **rec})
    return pd.DataFrame(records)


def plot_curves(hist: pd.DataFrame, path: Path, title: str, primary: str) -> bool:
    """One panel per logged loss term and one for the validation primary metric; lines = methods
    (mean over seeds)."""
    if hist.empty or "epoch" not in hist:
        return False
    losses = sorted(c for c in hist.columns if c.startswith("loss/"))
    loss_order = [c for c in ("loss/task",) if c in losses] + [c for c in losses if c != "loss/task"]
    panels = loss_order + [c for c in (f"val/{primary}",) if c in hist.columns]
    if not panels:
        return False
    fig, axes, plt = figure(len(panels), 4)
    labels = {(m, h): m if hist.loc[hist["method"] == m, "config_hash"].nunique() <= 1 else f"{m} ({h})"
              for m, h in hist[["method", "config_hash"]].drop_duplicates().itertuples(index=False)}
    palette = colors(labels.values())
    for ax, col in zip(axes, panels):
        for (method, chash), part in hist.groupby(["method", "config_hash"], sort=False, dropna=False):
            curve = part.groupby("epoch")[col].mean().dropna()
            if curve.empty:
                continue
            scale = 100 if col.startswith("val/") else 1
            label = labels[(method, chash)]
            ax.plot(curve.index, scale * curve.values, marker=".", label=label, color=palette[label],
                    linestyle="--" if method == "teacher" else "-")
        ax.set_title(col + (" (%)" if col.startswith("val/") else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}: training curves (mean over seeds)", fontsize=10)
    save(fig, plt, path)
    return True




def plot_forest(board: pd.DataFrame, path: Path, title: str, primary: str) -> bool:
    """Each student's gain over ``none`` on ``primary`` with its 95% interval, one panel per teacher ->
    student pair, sorted by gain: a filled dot where the interval excludes 0 (a resolved gain or loss),
    a hollow one where it covers 0 (a tie with ``none``); a line at 0 and, shaded around it, the resolving
    power (the median 95% half-width: a gain smaller than it is rarely told apart from none).
    False (nothing written) when no row has an interval."""
    need = {"gain_vs_none", "gain_ci_low", "gain_ci_high", "gain_ci_halfwidth"}
    if not need <= set(board.columns):
        return False
    rows = board[~board["method"].isin(["teacher", "none"]) & board["gain_ci_low"].notna()]
    if rows.empty:
        return False
    pairs = list(rows.groupby(["teacher", "student"], sort=False))
    fig, axes, plt = figure(len(pairs), 2, (6.0, 1.6 + 0.36 * max(len(p) for _, p in pairs)))
    for ax, ((teacher, student), part) in zip(axes, pairs):
        part = part.sort_values("gain_vs_none").reset_index(drop=True)
        power = float(part["gain_ci_halfwidth"].median())
        ax.axvspan(-power, power, color="tab:blue", alpha=0.12, linewidth=0,
                   label=f"resolving power ±{power:.2f} (median half-width)")
        ax.axvline(0, color="black", linewidth=0.8)
        for y, row in part.iterrows():
            resolved = row["gain_ci_low"] > 0 or row["gain_ci_high"] < 0
            gain = row["gain_vs_none"]
            ax.errorbar(gain, y, xerr=[[gain - row["gain_ci_low"]], [row["gain_ci_high"] - gain]], fmt="o",
                        capsize=3, color="tab:red" if resolved else "tab:grey",
                        markerfacecolor="tab:red" if resolved else "white")
        ax.set_yticks(range(len(part)), [_label(part, row) for _, row in part.iterrows()])
        ax.set_ylim(-0.7, len(part) - 0.3)
        seeds = part["gain_seeds"].dropna() if "gain_seeds" in part else pd.Series(dtype=float)
        over = f" over {int(seeds.max())} replicates" if len(seeds) else ""
        ax.set_xlabel(f"gain over none, points of {primary} (95% interval{over})")
        ax.set_title(f"{title}\n{teacher} -> {student}; filled: interval excludes 0", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3 - 1.2 / (len(part) + 3)), frameon=False)
    save(fig, plt, path)
    return True
