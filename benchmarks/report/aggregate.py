"""Aggregate runs.csv rows into a per-method leaderboard (mean and std over seeds, paired gains over
``none`` with 95% intervals, rank ranges) and a table of every pairwise comparison."""

from __future__ import annotations

import pandas as pd

from benchmarks.report.stats import MIN_SEEDS, paired_interval, pairwise, rank_ranges

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
    """One row per (dataset, teacher, student, method): mean/std over seeds of each metric, the
    gain over ``none`` paired by seed with its 95% interval, the range of ranks among the students,
    and the share of the teacher-student gap closed, on ``primary`` (see ``benchmarks.report.stats``).

    Metric values are fractions in runs.csv and percentages (x100) here.
    """
    return tables(runs, primary)[0]


def pairwise_table(runs: pd.DataFrame, primary: str = "recall@1", metrics=None) -> pd.DataFrame:
    """Every pair of students (``none`` included) of each (suite, dataset, teacher, student) group:
    the mean paired difference a - b over the seeds both ran and its 95% interval, per metric (in
    points; ``PAIR_COLUMNS``). The pairs follow the leaderboard order (a above b)."""
    return tables(runs, primary, metrics)[1]


PAIR_COLUMNS = ["suite", "dataset", "teacher", "student", "method_a", "config_hash_a", "method_b", "config_hash_b",
                "metric", "mean_diff", "sd_diff", "ci_low", "ci_high", "halfwidth", "n_seeds", "significant"]
"""Columns of pairwise.csv: d = metric(a) - metric(b) per seed, in points."""
PAIR_KEY = ["suite", "dataset", "teacher", "student"]
GAIN_STATS = ["gain_vs_none_std", "gain_ci_low", "gain_ci_high", "gain_ci_halfwidth", "gain_seeds"]


def tables(runs: pd.DataFrame, primary: str = "recall@1", metrics=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leaderboard, pairwise table) of ``runs``; ``metrics`` of the pairwise table default to every
    metric column, ``primary`` first."""
    metric_cols = metric_columns(runs)
    rows, parts = [], []
    for key, group in runs.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key))
        row["seeds"] = int(group["seed"].nunique())
        row["replicates"] = design_of_rows(group)
        for m in metric_cols:
            row[f"{m}_mean"] = 100 * group[m].mean()
            row[f"{m}_std"] = 100 * group[m].std(ddof=1) if len(group) > 1 else 0.0
        row["train_seconds_mean"] = group["train_seconds"].mean()
        for c in COST:  # the median over seeds (counts are the same in every seed; timings vary)
            if c in group.columns and group[c].notna().any():
                row[c] = float(group[c].median())
        rows.append(row)
        parts.append(group)
    table = pd.DataFrame(rows)
    if table.empty:
        return table, pd.DataFrame(columns=PAIR_COLUMNS)
    col = f"{primary}_mean"
    table["gain_vs_none"] = float("nan")
    for c in GAIN_STATS:
        table[c] = float("nan")
    table["gap_closed"] = float("nan")
    is_teacher = table["method"] == "teacher"
    for key, idx in table.groupby(PAIR_KEY, dropna=False).groups.items():
        part = table.loc[idx]
        none = part.loc[part["method"] == "none", col]
        # the teacher's own row has student == teacher, so it is found by (suite, dataset, teacher)
        same = (table["suite"] == key[0]) & (table["dataset"] == key[1]) & (table["teacher"] == key[2])
        teacher = table.loc[is_teacher & same, col]
        if len(none) and len(teacher) and teacher.iloc[0] != none.iloc[0]:
            table.loc[idx, "gap_closed"] = (part[col] - none.iloc[0]) / (teacher.iloc[0] - none.iloc[0])
    add_cost_ratios(table, is_teacher)
    order = {"teacher": 0, "none": 1}
    table["_order"] = table["method"].map(lambda m: order.get(m, 2))
    table = table.sort_values(["dataset", "_order", col], ascending=[True, True, False])
    table["rank_low"] = float("nan")
    table["rank_high"] = float("nan")
    table["rank"] = None
    pair_metrics = list(metrics) if metrics is not None else [primary] + [m for m in metric_cols if m != primary]
    pairs = []
    students = table[table["method"] != "teacher"]
    for key, idx in students.groupby(PAIR_KEY, sort=False, dropna=False).groups.items():
        entries = list(idx)  # table order: none first, then by the primary mean
        for metric in pair_metrics:
            scores = _seed_scores(parts, entries, metric)
            pair = pairwise(scores)
            if metric == primary:
                _gain_columns(table, entries, scores)
                ranks = rank_ranges(entries, pair)
                table.loc[entries, ["rank_low", "rank_high"]] = ranks[["rank_low", "rank_high"]].to_numpy(float)
                table.loc[entries, "rank"] = ranks["rank"].to_numpy(object)
            if pair.empty:
                continue
            for side in ("a", "b"):
                pair[f"method_{side}"] = table.loc[pair[side], "method"].to_numpy()
                pair[f"config_hash_{side}"] = table.loc[pair[side], "config_hash"].to_numpy()
            pairs.append(pair.assign(**dict(zip(PAIR_KEY, key)), metric=metric))
    pair_table = (pd.concat(pairs, ignore_index=True)[PAIR_COLUMNS] if pairs else pd.DataFrame(columns=PAIR_COLUMNS))
    for c in ("gain_seeds", "rank_low", "rank_high"):
        table[c] = table[c].astype("Int64")
    return table.drop(columns="_order").reset_index(drop=True), pair_table


def design_of_rows(rows: pd.DataFrame) -> str:
    """What the replicates (seeds) of ``rows`` drew: ``full`` or ``conditional`` (rows written before
    the ``replicates`` column existed were conditional), ``mixed`` when they disagree."""
    if "replicates" not in rows.columns:
        return "conditional"
    designs = set(rows["replicates"].fillna("conditional"))
    return designs.pop() if len(designs) == 1 else "mixed"


COVERS = {
    "full": "Student t over the replicates; each replicate (seed) draws anew everything a rerun would draw, as the "
            "Replicates line above says, so the interval covers what varies between reruns of this config",
    "conditional": "Student t on the per-seed differences; conditional design: one draw of the data and the pretraining "
                   "(and of the initial weights or teacher, where the config fixes them) serves every seed, so the "
                   "interval covers the noise of the redrawn parts only, not a rerun on another draw",
    "mixed": "Student t on the per-seed differences; the rows mix full and conditional replicates, so what the "
             "interval covers is not one thing: rerun under one design",
}
"""What a gain's interval covers, by the design of the rows' replicates (``benchmarks.runner.replicates``)."""


def _seed_scores(parts: list, entries: list, metric: str) -> pd.DataFrame:
    """Seed x entry table of ``metric`` in points (mean over a seed's rows; NaN where an entry lacks the seed)."""
    cols = {}
    for i in entries:
        group = parts[i]
        cols[i] = 100 * (group.groupby("seed")[metric].mean() if metric in group.columns
                         else pd.Series(dtype=float))
    return pd.DataFrame(cols, columns=entries).sort_index()


def _gain_columns(table: pd.DataFrame, entries: list, scores: pd.DataFrame) -> None:
    """Fill the gain over ``none`` (paired by seed) and its interval for the group ``entries``, in place."""
    none = [i for i in entries if table.at[i, "method"] == "none"]
    if not none:
        return
    ref = scores[none[0]]
    for i in entries:
        iv = paired_interval(scores[i] - ref)
        table.loc[i, ["gain_vs_none", "gain_vs_none_std", "gain_ci_low", "gain_ci_high", "gain_ci_halfwidth",
                      "gain_seeds"]] = [iv["mean"], iv["sd"], iv["low"], iv["high"], iv["halfwidth"], iv["n"]]


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


def si_number(value: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (k, M, G): the cost columns of the markdown table."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


COST_CELLS = {  # markdown header -> (column, format)
    "params": ("params", si_number),
    "MACs/img": ("macs", si_number),
    "weights": ("weights_bytes", lambda v: si_number(v, "B")),
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


def _fmt_gain(v: float) -> str:
    return f"{v:+.2f}"


def _gain_cell(r, none_seeds=None) -> str:
    """'+0.79 [-1.66, +3.24]': the paired mean gain over none and its 95% interval, with '(n=2)' when
    fewer seeds were paired than the method or ``none`` ran."""
    if r["method"] == "teacher":
        return ""
    if r["method"] == "none":
        return "+0.00"
    if pd.isna(r.get("gain_vs_none", float("nan"))):
        return ""
    cell = _fmt_gain(r["gain_vs_none"])
    low, high = r.get("gain_ci_low", float("nan")), r.get("gain_ci_high", float("nan"))
    if pd.notna(low) and pd.notna(high):
        cell += f" [{_fmt_gain(low)}, {_fmt_gain(high)}]"
    n = r.get("gain_seeds", float("nan"))
    if pd.notna(n) and (n < r["seeds"] or (none_seeds is not None and n < none_seeds)):
        cell += f" (n={int(n)})"
    return cell


def _seed_span(values) -> str:
    values = sorted({int(v) for v in values})
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def statistics_notes(table: pd.DataFrame, primary: str | None = None) -> list[str]:
    """The note lines under a leaderboard: how the gain cell and the rank range are made, then per
    (teacher, student) group the resolving power (median 95% half-width of the gains over none), or
    why there are no intervals."""
    if "gain_ci_halfwidth" not in table.columns:
        return []
    metric = primary or (str(table["primary"].dropna().iloc[0]) if "primary" in table.columns
                         and table["primary"].notna().any() else "the primary metric")
    students = table[table["method"] != "teacher"]
    if students.empty:
        return []
    designs = set(students["replicates"].dropna()) if "replicates" in students.columns else {"conditional"}
    design = designs.pop() if len(designs) == 1 else "mixed"
    lines = [f"Gain vs none: mean over replicates of the paired difference method - none (same replicate), in points "
             f"of {metric}, with its 95% interval [low, high] ({COVERS[design]}); (n=k): only k replicates "
             f"paired. Rank: the ranks the pairwise 95% "
             f"intervals allow, from 1 + the number of students significantly better to K - the number significantly "
             f"worse (K students of the pair; '2-4' = a tie); every pair is in the folder's pairwise.csv."]
    groups = list(students.groupby(PAIR_KEY, sort=False, dropna=False))
    for key, part in groups:
        prefix = f"{key[2]} -> {key[3]}: " if len(groups) > 1 else ""
        if not (part["method"] == "none").any():
            lines.append(f"{prefix}no `none` row: no gains, intervals or resolving power.")
            continue
        methods = part[part["method"] != "none"]
        if methods.empty:
            continue
        half = methods["gain_ci_halfwidth"].dropna()
        seeds = methods["gain_seeds"].dropna()
        if len(half):
            lines.append(f"{prefix}Resolving power: median 95% half-width of the gains over none "
                         f"{half.median():.2f} points of {metric} (Student t over "
                         f"{_seed_span(methods.loc[half.index, 'gain_seeds'])} paired replicates)."
                         + (f" {len(methods) - len(half)} method(s) with fewer than {MIN_SEEDS} paired replicates have no "
                            f"interval." if len(half) < len(methods) else ""))
        else:
            has = int(seeds.max()) if len(seeds) else 0
            lines.append(f"{prefix}No intervals: intervals need at least {MIN_SEEDS} replicates (seeds); this run has "
                         f"{has} (paired with none); every rank spans 1-{len(part)}.")
    return lines


def to_markdown(table: pd.DataFrame, title: str, notes: list[str] = (), primary: str | None = None) -> str:
    """A readable markdown table: mean ± std per metric, plus the paired gain over none with its 95%
    interval, the rank range and gap closed, and the cost columns (median over seeds, ratios to the
    teacher) when the rows carry them. Under it the statistics notes (``statistics_notes``), then the
    cost note."""
    metrics = [c[:-5] for c in table.columns if c.endswith("_mean") and c != "train_seconds_mean"]
    cost = {h: cf for h, cf in COST_CELLS.items() if cf[0] in table.columns and table[cf[0]].notna().any()}
    ranked = "rank" in table.columns
    head = (["method", "teacher", "student", "seeds"] + metrics + ["gain vs none"] + (["rank"] if ranked else [])
            + ["gap closed", "train s", *cost])
    lines = [f"# {title}", "", *[f"{n}  " for n in notes], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    none_seeds = {}
    for _, r in table[table["method"] == "none"].iterrows():
        none_seeds.setdefault(tuple(r.get(k) for k in PAIR_KEY), r["seeds"])
    for _, r in table.iterrows():
        cells = [str(r["method"]), str(r["teacher"]), str(r["student"]), str(r["seeds"])]
        cells += [f"{r[m + '_mean']:.2f} ± {r[m + '_std']:.2f}" if r["seeds"] > 1 else f"{r[m + '_mean']:.2f}"
                  for m in metrics]  # one run has no spread to show
        cells += [_gain_cell(r, none_seeds.get(tuple(r.get(k) for k in PAIR_KEY)))]
        if ranked:
            cells += ["" if pd.isna(r["rank"]) else str(r["rank"])]
        cells += ["" if pd.isna(r["gap_closed"]) or r["method"] in ("teacher", "none") else f"{100 * r['gap_closed']:.0f}%",
                  f"{r['train_seconds_mean']:.0f}"]
        cells += ["" if pd.isna(r[col]) else fmt(r[col]) for col, fmt in cost.values()]
        lines.append("| " + " | ".join(cells) + " |")
    stats = statistics_notes(table, primary)
    if stats:
        lines += ["", *[f"{n}  " for n in stats]]
    if cost:
        threads = sorted({int(t) for t in table.get("cost_threads", pd.Series(dtype=float)).dropna()})
        lines += ["", COST_NOTE.format(threads="/".join(map(str, threads)) or "?")]
    return "\n".join(lines) + "\n"
