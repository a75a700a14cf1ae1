"""Statistics of a comparison over replicates, shared by the leaderboards, the replication check and the gate.

The methods of one replicate (one seed) share everything random that is not the method itself
(``benchmarks.runner.replicates``), so two methods are compared **paired by replicate**:
d_r = score(A, r) - score(B, r) on the replicates both ran. The 95% interval of the mean gain is
mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n) (Student t over the n paired replicates). What it covers
is what a replicate redraws: under full replicates (the defaults) the data, pretraining, initial
weights, teacher and batch order, so what varies between reruns of the config; under the
conditional design only the parts it does not fix.

- ``paired_interval(d)``: mean, sd, n and the two-sided interval of paired differences;
- ``upper_bound(d)`` / ``lower_bound(d)``: one-sided bounds (the regression gate);
- ``pairwise(scores)``: the interval of every pair of columns of a seed x entry table;
- ``rank_ranges(entries, pairs)``: the range of ranks the pairwise intervals allow.

Fewer than ``MIN_SEEDS`` (2) paired replicates give no interval (NaN), never an error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

LEVEL = 0.95
MIN_SEEDS = 2
NAN = float("nan")
PAIR_COLUMNS = ["a", "b", "mean_diff", "sd_diff", "ci_low", "ci_high", "halfwidth", "n_seeds", "significant"]


def _clean(diffs) -> np.ndarray:
    d = np.asarray(pd.Series(diffs, dtype=float).dropna(), dtype=float)
    return d


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with ``df`` degrees of freedom (scipy)."""
    return float(_scipy_stats.t.ppf(q, df))


def paired_interval(diffs, level: float = LEVEL) -> dict:
    """{mean, sd, n, low, high, halfwidth} of the per-seed differences ``diffs`` (NaNs dropped):
    mean(d) +- t((1 + level) / 2, n - 1) * sd(d, ddof=1) / sqrt(n). With fewer than 2 values the
    sd and the interval are NaN (the mean is kept when there is one value)."""
    d = _clean(diffs)
    n = len(d)
    out = {"mean": float(d.mean()) if n else NAN, "sd": NAN, "n": n, "low": NAN, "high": NAN, "halfwidth": NAN}
    if n >= MIN_SEEDS:
        sd = float(d.std(ddof=1))
        half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, low=out["mean"] - half, high=out["mean"] + half, halfwidth=half)
    return out


def _one_sided(diffs, level: float, sign: int) -> float:
    d = _clean(diffs)
    n = len(d)
    if n < MIN_SEEDS:
        return NAN
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return mean
    return mean + sign * t_quantile(level, n - 1) * sd / math.sqrt(n)


def upper_bound(diffs, level: float = LEVEL) -> float:
    """One-sided upper confidence bound of the mean difference: mean + t(level, n-1) * sd / sqrt(n)
    (the mean itself when sd == 0; NaN with fewer than 2 values). Below 0: a significant drop."""
    return _one_sided(diffs, level, +1)


def lower_bound(diffs, level: float = LEVEL) -> float:
    """One-sided lower confidence bound: mean - t(level, n-1) * sd / sqrt(n). Above 0: a significant rise."""
    return _one_sided(diffs, level, -1)


def is_significant(low: float, high: float) -> bool:
    """True when the interval [low, high] excludes 0 (False when it is missing)."""
    if pd.isna(low) or pd.isna(high):
        return False
    return bool(low > 0 or high < 0)


def pairwise(scores: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Every pair of columns of ``scores`` (index: seed, i.e. replicate, one column per entry, NaN where
    an entry lacks a replicate), in column order: a = the earlier column, b = the later one, d = a - b on
    the replicates both have. Columns ``PAIR_COLUMNS``; ``significant`` = the interval excludes 0."""
    entries = list(scores.columns)
    rows = []
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            iv = paired_interval(scores[a] - scores[b], level)
            rows.append({"a": a, "b": b, "mean_diff": iv["mean"], "sd_diff": iv["sd"], "ci_low": iv["low"],
                         "ci_high": iv["high"], "halfwidth": iv["halfwidth"], "n_seeds": iv["n"],
                         "significant": is_significant(iv["low"], iv["high"])})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def rank_label(low: int, high: int) -> str:
    """'2' when low == high, else '1-3'."""
    return str(low) if low == high else f"{low}-{high}"


def rank_ranges(entries, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per entry (index), ``rank_low`` = 1 + the number of entries significantly better than it,
    ``rank_high`` = K - the number significantly worse (K = len(entries)), and ``rank`` as text.
    ``pairs`` as from ``pairwise`` (a pair is significant when its interval excludes 0; the sign
    of ``mean_diff`` = a - b says which entry is better). Ties everywhere when nothing is significant."""
    entries = list(entries)
    better = dict.fromkeys(entries, 0)
    worse = dict.fromkeys(entries, 0)
    for a, b, diff, sig in pairs[["a", "b", "mean_diff", "significant"]].itertuples(index=False):
        if not sig or a not in better or b not in better:
            continue
        top, bottom = (a, b) if diff > 0 else (b, a)
        better[bottom] += 1
        worse[top] += 1
    k = len(entries)
    low = [1 + better[e] for e in entries]
    high = [k - worse[e] for e in entries]
    return pd.DataFrame({"rank_low": low, "rank_high": high, "rank": [rank_label(lo, hi) for lo, hi in zip(low, high)]},
                        index=pd.Index(entries))
