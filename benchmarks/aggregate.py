"""Aggregate runs.csv rows into a per-method leaderboard (mean and std over seeds)."""

from __future__ import annotations

import pandas as pd

GROUP = ["suite", "dataset", "teacher", "student", "method", "config_hash"]
COST = ("params", "macs", "weights_bytes", "latency_ms_b1", "throughput_b64", "cost_threads")
"""Cost columns of runs.csv (retrieval.cost.COST_COLUMNS; kept here so this module needs no torch)."""
RATIOS = {"params_ratio": "params", "macs_ratio": "macs", "latency_ratio": "latency_ms_b1"}
"""Ratio columns of the leaderboard: a row's value over its teacher's (student / teacher)."""


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """Recall@K columns in K order, then MAP@R and R-Precision, top-k accuracy and COCO AP
    (whatever the rows carry)."""
    recalls = sorted((c for c in runs.columns if c.startswith("recall@")), key=lambda c: int(c.split("@")[1]))
    others = [c for c in ("map@r", "r_precision", "top1", "top5", "ap", "ap50", "ap75") if c in runs.columns]
    approximate = sorted((c for c in runs.columns if c.endswith(tuple(f"_{r}" for r in recalls))),
                         key=lambda c: (c.split("_")[0], int(c.split("@")[1])))  # ivf_recall@K, hnsw_recall@K
    return recalls + others + approximate


def leaderboard(runs: pd.DataFrame, primary: str = "recall@1") -> pd.DataFrame:
    """One row per (dataset, teacher, student, method): mean/std over seeds of each metric,
    the gain over ``none`` and the share of the teacher-student gap closed, on ``primary``.

    Metric values are fractions in runs.csv and percentages (x100) here.
    """
    metrics = metric_columns(runs)
    rows = []
    for key, group in runs.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key))
        row["seeds"] = int(group["seed"].nunique())
        for m in metrics:
            row[f"{m}_mean"] = 100 * group[m].mean()
            row[f"{m}_std"] = 100 * group[m].std(ddof=1) if len(group) > 1 else 0.0
        row["train_seconds_mean"] = group["train_seconds"].mean()
        for c in COST:  # the median over seeds (counts are the same in every seed; timings vary)
            if c in group.columns and group[c].notna().any():
                row[c] = float(group[c].median())
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["gain_vs_none"] = float("nan")
    table["gain_vs_none_std"] = paired_gain_std(runs, table, primary)
    table["gap_closed"] = float("nan")
    col = f"{primary}_mean"
    is_teacher = table["method"] == "teacher"
    for key, idx in table.groupby(["suite", "dataset", "teacher", "student"], dropna=False).groups.items():
        part = table.loc[idx]
        none = part.loc[part["method"] == "none", col]
        # the teacher's own row has student == teacher, so it is found by (suite, dataset, teacher)
        same = (table["suite"] == key[0]) & (table["dataset"] == key[1]) & (table["teacher"] == key[2])
        teacher = table.loc[is_teacher & same, col]
        if len(none):
            table.loc[idx, "gain_vs_none"] = part[col] - none.iloc[0]
            if len(teacher) and teacher.iloc[0] != none.iloc[0]:
                table.loc[idx, "gap_closed"] = (part[col] - none.iloc[0]) / (teacher.iloc[0] - none.iloc[0])
    add_cost_ratios(table, is_teacher)
    order = {"teacher": 0, "none": 1}
    table["_order"] = table["method"].map(lambda m: order.get(m, 2))
    table = table.sort_values(["dataset", "_order", col], ascending=[True, True, False])
    table["rank"] = float("nan")
    students = table["method"] != "teacher"
    table.loc[students, "rank"] = table.loc[students].groupby(["dataset", "teacher", "student"])[col].rank(
        ascending=False, method="min")
    return table.drop(columns="_order").reset_index(drop=True)


def paired_gain_std(runs: pd.DataFrame, table: pd.DataFrame, primary: str) -> pd.Series:
    """Per leaderboard row, the std over seeds of (method - none) on ``primary``, in points, from the
    seeds both ran. A seed's batch order and augmentation are shared by all its students, so this
    paired spread says whether a gain holds seed by seed, even when each method's own std is larger."""
    out = pd.Series(float("nan"), index=table.index)
    for key, group in runs.groupby(["suite", "dataset", "teacher", "student"], sort=False, dropna=False):
        by_seed = group.pivot_table(index="seed", columns="method", values=primary, aggfunc="mean")
        if "none" not in by_seed.columns:
            continue
        diff = by_seed.sub(by_seed["none"], axis=0)
        for method in diff.columns:
            d = diff[method].dropna()
            rows = ((table["suite"] == key[0]) & (table["dataset"] == key[1]) & (table["teacher"] == key[2])
                    & (table["student"] == key[3]) & (table["method"] == method))
            out[rows] = 100 * d.std(ddof=1) if len(d) > 1 else float("nan")
    return out


def add_cost_ratios(table: pd.DataFrame, is_teacher: pd.Series) -> None:
    """``params_ratio``, ``macs_ratio``, ``latency_ratio``: each row's cost over that of the teacher row of
    its (suite, dataset, teacher), in place (1.0 on the teacher row; absent without cost columns)."""
    for ratio, col in RATIOS.items():
        if col not in table.columns:
            continue
        table[ratio] = float("nan")
        for idx in table.groupby(["suite", "dataset", "teacher"], dropna=False).groups.values():
            ref = table.loc[idx].loc[is_teacher.loc[idx], col].dropna()
            if len(ref) and ref.iloc[0] > 0:
                table.loc[idx, ratio] = table.loc[idx, col] / ref.iloc[0]


def _si(value: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (k, M, G): the cost columns of the markdown table."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


COST_CELLS = {  # markdown header -> (column, format)
    "params": ("params", _si),
    "MACs/img": ("macs", _si),
    "weights": ("weights_bytes", lambda v: _si(v, "B")),
    "ms/img (b1)": ("latency_ms_b1", lambda v: f"{v:.3f}"),
    "img/s (b64)": ("throughput_b64", lambda v: f"{v:.0f}"),
    "threads": ("cost_threads", lambda v: f"{v:.0f}"),
    "params ratio": ("params_ratio", lambda v: f"{v:.2f}x"),
    "MACs ratio": ("macs_ratio", lambda v: f"{v:.2f}x"),
    "latency ratio": ("latency_ratio", lambda v: f"{v:.2f}x"),
}


COST_NOTE = ("Cost (median over seeds): params = parameter values; MACs/img = multiply-accumulates of the "
             "convolutions and matrix multiplies of one image at the suite's input size (torch.utils.flop_counter "
             "FLOPs / 2); weights = size of torch.save(state_dict) of the network alone; ms/img (b1) = median CPU "
             "time of a batch of one, img/s (b64) = 64 / median time of a batch of 64, with {threads} torch "
             "thread(s) on the machine of the run (noisy on a shared machine); ratios = row / teacher.")


def _gain_cell(r) -> str:
    if pd.isna(r["gain_vs_none"]) or r["method"] in ("teacher", "none"):
        return "+0.00" if r["method"] == "none" else ""
    spread = r.get("gain_vs_none_std", float("nan"))
    return f"{r['gain_vs_none']:+.2f}" + ("" if pd.isna(spread) else f" ± {spread:.2f}")


def to_markdown(table: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    """A readable markdown table: mean ± std per metric, plus gain and gap closed, and the cost columns
    (median over seeds, ratios to the teacher) when the rows carry them."""
    metrics = [c[:-5] for c in table.columns if c.endswith("_mean") and c != "train_seconds_mean"]
    cost = {h: cf for h, cf in COST_CELLS.items() if cf[0] in table.columns and table[cf[0]].notna().any()}
    head = ["method", "teacher", "student", "seeds"] + metrics + ["gain vs none", "gap closed", "train s", *cost]
    lines = [f"# {title}", "", *[f"{n}  " for n in notes], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["method"]), str(r["teacher"]), str(r["student"]), str(r["seeds"])]
        cells += [f"{r[m + '_mean']:.2f} ± {r[m + '_std']:.2f}" for m in metrics]
        cells += [_gain_cell(r),
                  "" if pd.isna(r["gap_closed"]) or r["method"] in ("teacher", "none") else f"{100 * r['gap_closed']:.0f}%",
                  f"{r['train_seconds_mean']:.0f}"]
        cells += ["" if pd.isna(r[col]) else fmt(r[col]) for col, fmt in cost.values()]
        lines.append("| " + " | ".join(cells) + " |")
    if cost:
        threads = sorted({int(t) for t in table.get("cost_threads", pd.Series(dtype=float)).dropna()})
        lines += ["", COST_NOTE.format(threads="/".join(map(str, threads)) or "?")]
    return "\n".join(lines) + "\n"
