"""A replication check: do two runs of one config, on disjoint replicates, tell the same story?

Each run's ``pairwise.csv`` (``benchmarks.report.aggregate``) holds, per metric, the paired gain of
every method over ``none`` (mean over replicates, its sd and n). Two runs on disjoint replicates are
independent, so for each method and metric

    diff = g1 - g2,  se = sqrt(sd1^2 / n1 + sd2^2 / n2),  z = diff / se,

and the 95% interval of the difference is diff +- t(0.975, df) * se, with Welch-Satterthwaite's df.
If each run's interval covers what varies between reruns, the true difference is 0 and about 1 in
20 of these intervals exclude it by chance; many more mean the intervals are too narrow for what a
rerun changes. A **contradiction** is a conclusion of one run that the other reverses: a significant
gain in one and a significant loss in the other. A conclusion of one run that the other does not
reach (significant in one, a tie in the other) is listed as not replicated, not as a contradiction.

``compare(first, second)`` builds the table from the two runs' pairwise tables; ``summary`` and
``to_markdown`` report it.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmarks.report.stats import LEVEL, MIN_SEEDS, is_significant, t_quantile

COLUMNS = ["method", "metric", "gain_1", "low_1", "high_1", "n_1", "gain_2", "low_2", "high_2", "n_2",
           "diff", "diff_low", "diff_high", "z", "outside", "conclusion_1", "conclusion_2", "status"]


def gains_over_none(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, metric) of a run's pairwise table whose other side is ``none``: the gain
    method - none (``gain``, ``sd``, ``n``, ``low``, ``high``), sign-flipped where ``none`` is side a."""
    rows = []
    for _, r in pairs.iterrows():
        if "none" not in (r["method_a"], r["method_b"]) or r["method_a"] == r["method_b"]:
            continue
        flip = -1.0 if r["method_a"] == "none" else 1.0
        method = r["method_b"] if flip < 0 else r["method_a"]
        low, high = flip * r["ci_low"], flip * r["ci_high"]
        rows.append({"method": method, "metric": r["metric"], "gain": flip * r["mean_diff"], "sd": r["sd_diff"],
                     "n": int(r["n_seeds"]), "low": min(low, high), "high": max(low, high)})
    return pd.DataFrame(rows, columns=["method", "metric", "gain", "sd", "n", "low", "high"])


def conclusion(low: float, high: float) -> str:
    """``gain`` (interval above 0), ``loss`` (below 0), ``tie`` (it holds 0) or ``none`` (no interval)."""
    if pd.isna(low) or pd.isna(high):
        return "none"
    return "gain" if low > 0 else "loss" if high < 0 else "tie"


def difference(g1: float, sd1: float, n1: int, g2: float, sd2: float, n2: int, level: float = LEVEL) -> dict:
    """{diff, se, df, low, high, z} of g1 - g2 for two independent means of n1 and n2 paired
    differences (sd: their standard deviations); NaN where a run has fewer than 2 replicates."""
    out = {"diff": g1 - g2, "se": float("nan"), "df": float("nan"), "low": float("nan"), "high": float("nan"),
           "z": float("nan")}
    if n1 < MIN_SEEDS or n2 < MIN_SEEDS or pd.isna(sd1) or pd.isna(sd2):
        return out
    v1, v2 = sd1 ** 2 / n1, sd2 ** 2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return {**out, "se": 0.0, "low": out["diff"], "high": out["diff"],
                "z": 0.0 if out["diff"] == 0 else math.copysign(math.inf, out["diff"])}
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return {**out, "se": se, "df": df, "low": out["diff"] - half, "high": out["diff"] + half, "z": out["diff"] / se}


def compare(first: pd.DataFrame, second: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """The replication table (``COLUMNS``) of two runs' pairwise tables, on the (method, metric) pairs
    both hold, in the first run's order."""
    a, b = gains_over_none(first), gains_over_none(second)
    both = a.merge(b, on=["method", "metric"], suffixes=("_1", "_2"), sort=False)
    rows = []
    for _, r in both.iterrows():
        d = difference(r["gain_1"], r["sd_1"], r["n_1"], r["gain_2"], r["sd_2"], r["n_2"], level)
        c1, c2 = conclusion(r["low_1"], r["high_1"]), conclusion(r["low_2"], r["high_2"])
        rows.append({"method": r["method"], "metric": r["metric"],
                     **{f"{k}_{i}": r[f"{k}_{i}"] for i in (1, 2) for k in ("gain", "low", "high", "n")},
                     "diff": d["diff"], "diff_low": d["low"], "diff_high": d["high"], "z": d["z"],
                     "outside": is_significant(d["low"], d["high"]),
                     "conclusion_1": c1, "conclusion_2": c2, "status": status(c1, c2)})
    return pd.DataFrame(rows, columns=COLUMNS)


def status(first: str, second: str) -> str:
    """``contradicted`` (a significant gain in one run, a significant loss in the other), ``replicated``
    (the same significant sign in both), ``not replicated`` (significant in one only), ``tie`` (in both)
    or ``no interval``."""
    if "none" in (first, second):
        return "no interval"
    if {first, second} == {"gain", "loss"}:
        return "contradicted"
    if first == second:
        return "replicated" if first != "tie" else "tie"
    return "not replicated"


def summary(table: pd.DataFrame, level: float = LEVEL) -> dict:
    """{comparisons, outside, share_outside, contradictions, replicated, not_replicated, max_abs_z}."""
    scored = table[table["diff_low"].notna()]
    return {"comparisons": int(len(scored)), "outside": int(scored["outside"].sum()),
            "share_outside": float(scored["outside"].mean()) if len(scored) else float("nan"),
            "expected_share": 1 - level,
            "contradictions": int((table["status"] == "contradicted").sum()),
            "replicated": int((table["status"] == "replicated").sum()),
            "not_replicated": int((table["status"] == "not replicated").sum()),
            "max_abs_z": float(scored["z"].abs().max()) if len(scored) else float("nan")}


def _fmt(v: float) -> str:
    return "" if pd.isna(v) else f"{v:+.2f}"


def _interval(g, low, high) -> str:
    return _fmt(g) + ("" if pd.isna(low) else f" [{_fmt(low)}, {_fmt(high)}]")


def to_markdown(table: pd.DataFrame, title: str, notes: list[str], level: float = LEVEL) -> str:
    """The replication report: notes, the summary, then one line per (method, metric)."""
    s = summary(table, level)
    lines = [f"# {title}", "", *[f"{n}  " for n in notes], ""]
    if not s["comparisons"]:
        lines.append("No difference has an interval: each run needs at least 2 replicates (seeds) for its gains to "
                     "have intervals.")
    else:
        lines.append(f"**{s['outside']} of {s['comparisons']} differences** lie outside their {100 * level:.0f}% interval "
                     f"(expected by chance: about {100 * s['expected_share']:.0f}%, i.e. "
                     f"{s['expected_share'] * s['comparisons']:.1f}; largest |z| {s['max_abs_z']:.2f}). "
                     f"**Contradictions: {s['contradictions']}** (a significant gain in one run, a significant loss in "
                     f"the other). Conclusions replicated: {s['replicated']}; significant in one run only: "
                     f"{s['not_replicated']}.")
    lines += ["", "Gains over `none` in points, with their 95% intervals; diff = first - second, its 95% interval "
                  "(Welch), z = diff / its standard error.", "",
              "| method | metric | first run | second run | diff | z | outside | status |", "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['method']} | {r['metric']} | {_interval(r['gain_1'], r['low_1'], r['high_1'])} (n={r['n_1']}) | "
                     f"{_interval(r['gain_2'], r['low_2'], r['high_2'])} (n={r['n_2']}) | "
                     f"{_interval(r['diff'], r['diff_low'], r['diff_high'])} | "
                     f"{'' if pd.isna(r['z']) else f'{r.z:+.2f}'} | {'yes' if r['outside'] else ''} | {r['status']} |")
    return "\n".join(lines) + "\n"
