"""Accuracy against cost: the primary metric (mean ± std over seeds) against MACs per image and
against the measured CPU latency per image at batch 1 (median over seeds, error bar = std over seeds).
One point per (method, teacher -> student pair, config); the teacher is a black star; the grey dotted
line is the Pareto front (no other point is both cheaper and more accurate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from benchmarks.report.aggregate import si_number
from benchmarks.report.plots import colors, figure, save
from benchmarks.report.rows import current_rows, primary_metric

PANELS = (("macs", "MACs per image"), ("latency_ms_b1", "CPU latency per image, batch 1 (ms)"))
KEY = ["teacher", "student", "method", "config_hash"]
SPREAD = 0.08  # points at one cost are spread over this many octaves along x (log scale), so their bars stay apart


def pareto_points(runs: pd.DataFrame, primary: str) -> pd.DataFrame:
    """One row per (teacher, student, method, config): label, accuracy mean/std (%) and, per cost
    column, its median and std over seeds."""
    records = []
    for key, group in runs.groupby(KEY, sort=False, dropna=False):
        rec = dict(zip(KEY, key))
        rec["seeds"] = int(group["seed"].nunique()) if "seed" in group else len(group)
        rec["acc_mean"] = 100 * group[primary].mean()
        rec["acc_std"] = 100 * group[primary].std(ddof=1) if len(group) > 1 else 0.0
        for col, _ in PANELS:
            values = group[col].dropna() if col in group else pd.Series(dtype=float)
            rec[col] = float(values.median()) if len(values) else float("nan")
            rec[f"{col}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        records.append(rec)
    points = pd.DataFrame(records)
    if points.empty:
        return points
    pairs = points.loc[points["method"] != "teacher", ["teacher", "student"]].drop_duplicates()
    configs = points.groupby(["teacher", "student", "method"])["config_hash"].transform("nunique")
    labels = []
    for (_, p), n in zip(points.iterrows(), configs):
        label = str(p["method"])
        if len(pairs) > 1:
            label += f" {p['student']}" if p["method"] != "teacher" else f" {p['teacher']}"
        if n > 1:
            label += f" ({p['config_hash']})"
        labels.append(label)
    points["label"] = labels
    return points


def pareto_front(x, y) -> list[int]:
    """Positions of the non-dominated points (lower x is cheaper, higher y is better), by increasing x."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    front, best = [], float("-inf")
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return front


def tick(value: float, _pos=None) -> str:
    """Log-axis tick labels as plain numbers: 0.5, 2, 1.2M (minor ticks labelled only at 2, 3 and 5 x 10^k)."""
    mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0
    if not any(np.isclose(mantissa, m) for m in (1, 2, 3, 5)):
        return ""
    return si_number(value) if value >= 1000 else f"{value:g}"


def plot_pareto(runs: pd.DataFrame, path: Path, title: str) -> bool:
    """Draw the two panels into ``path``; False (nothing written) if the rows carry no cost columns."""
    if not any(col in runs.columns and runs[col].notna().any() for col, _ in PANELS):
        return False
    primary = primary_metric(runs)
    points = pareto_points(runs, primary)

    ticks = FuncFormatter(tick)
    fig, axes, plt = figure(len(PANELS), 2, (5.2, 4.0))
    palette = colors([lab for lab, m in zip(points["label"], points["method"]) if m != "teacher"])
    for ax, (col, xlabel) in zip(axes, PANELS):
        part = points[points[col].notna()].reset_index(drop=True)
        if part.empty:
            ax.set_title(f"no {col} in the rows", fontsize=9)
            continue
        rank = part.groupby(col).cumcount()
        size = part.groupby(col)[col].transform("size")
        for i, p in part.iterrows():
            shift = 2 ** (SPREAD * (rank[i] - (size[i] - 1) / 2) / max(1, size[i] - 1))
            teacher = p["method"] == "teacher"
            ax.errorbar(p[col] * shift, p["acc_mean"], yerr=p["acc_std"], xerr=p[f"{col}_std"] or None,
                        marker="*" if teacher else "o", markersize=11 if teacher else 6, capsize=3,
                        color="black" if teacher else palette.get(p["label"]), label=p["label"], linestyle="none")
        front = pareto_front(list(part[col]), list(part["acc_mean"]))
        if len(front) > 1:
            ax.step(part.loc[front, col], part.loc[front, "acc_mean"], where="post", color="grey", linestyle=":",
                    label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticks)
        ax.xaxis.set_minor_formatter(ticks)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{primary} (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        threads = runs["cost_threads"].dropna().unique() if "cost_threads" in runs else []
        note = f", {int(threads[0])} thread(s)" if col.startswith("latency") and len(threads) == 1 else ""
        ax.set_title(f"{title}: {primary} vs {col}{note}", fontsize=9)
    fig.suptitle("mean ± std over seeds; points of one cost spread slightly along x", fontsize=8)
    save(fig, plt, path)
    return True


def write_pareto(folder: Path, path: Path | None = None) -> Path | None:
    """``<folder>/pareto.png`` (or ``path``) from the rows of ``<folder>/runs.csv`` that the leaderboard keeps;
    returns the path, or None when the rows have no cost columns (tables made before them)."""
    folder = Path(folder)
    if not (folder / "runs.csv").exists():
        raise FileNotFoundError(f"no {folder / 'runs.csv'}; expected a results folder <results>/<suite>/<dataset>")
    runs = current_rows(folder)
    path = Path(path) if path else folder / "pareto.png"
    title = f"{folder.parent.name}: {folder.name}"
    return path if len(runs) and plot_pareto(runs, path, title) else None


