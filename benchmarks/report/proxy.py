"""Does a proxy predict? Compare the gains of the KD methods over ``none`` on two datasets.

Two result folders, A (e.g. the synthetic proxy) and B (e.g. a real-image set), each ran the same
methods on their own replicates (seeds). Within one run the methods of a replicate share everything
random that is not the method (``benchmarks.runner.replicates``), so a method's gain is paired by
replicate: g(m, r) = score(m, r) - score(none, r), in points (x100) of one metric.

Per method and run: the mean gain over the replicates, its 95% paired interval
(``stats.paired_interval``: Student t over the replicates) and its conclusion, ``gain``, ``loss``
or ``tie`` (``replication.conclusion``). The two conclusions of a method give its status:

- ``holds``: the same significant sign on both (gain/gain or loss/loss);
- ``flips``: a significant gain on one, a significant loss on the other;
- ``only A`` / ``only B``: significant on that run, a tie on the other;
- ``tie on both``; ``no interval`` where a run has fewer than 2 paired replicates of the method.

Agreement: the Spearman rank correlation (and the Pearson correlation) between the two vectors of
mean gains, over the methods both runs hold. Its 95% interval is a percentile bootstrap over the
replicates: each draw resamples the replicates of A with replacement and, independently, those of B
(the runs have different replicates), recomputes every method's mean gain on the resampled replicates
(the same resampled replicates for every method of a run, since the methods are paired within a
replicate) and the correlation. The interval covers the noise of the replicates of each run; the
methods, their hyperparameters and the two datasets are held fixed. A draw in which a run's mean
gains are all equal (or a method has no replicate) has no correlation: it is dropped and counted.
Noise in the mean gains pulls their correlation toward 0, and the bootstrap (which adds noise of the
same size) pulls its interval further: when the standard error of a mean gain is small next to the
gaps between the methods' gains the interval covers the correlation of the true mean gains about 95%
of the time; when it is about twice those gaps, about 80%, the misses lying below the truth (a
simulation in the tests). A low correlation with wide gain intervals may mean noisy runs, not a poor
proxy.

``seed_gains(runs, metric)`` makes a run's replicate x method table of gains, ``check_run`` refuses
a run that cannot give one; ``compare(gains_a, gains_b)`` builds the per-method table,
``agreement(gains_a, gains_b)`` the correlations, ``summary`` and ``to_markdown`` report them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from benchmarks.report.aggregate import metric_columns
from benchmarks.report.replication import conclusion
from benchmarks.report.stats import LEVEL, MIN_SEEDS, paired_interval
from benchmarks.runner.errors import UserError

DRAWS = 2000
REFERENCE = "none"
NOT_COMPARED = ("teacher", REFERENCE)
STATUSES = ("holds", "flips", "only A", "only B", "tie on both", "no interval")
COLUMNS = ["method", "gain_a", "low_a", "high_a", "n_a", "rank_a", "conclusion_a",
           "gain_b", "low_b", "high_b", "n_b", "rank_b", "conclusion_b", "status"]
"""Columns of the per-method table: gains over ``none`` in points, rank 1 = the largest mean gain."""
NAN = float("nan")


# --------------------------------------------------------------------------- one run's gains

def check_run(runs: pd.DataFrame, metric: str, name: str) -> None:
    """Raise ``UserError`` (naming ``name``, the run's folder) when ``runs`` cannot give gains over
    ``none`` on ``metric``: no such metric column or no value in it, no ``none`` rows, students of
    several (teacher, student) pairs, a method with rows of several configs, fewer than 2 replicates."""
    metrics = metric_columns(runs)
    if metric not in runs.columns or runs[metric].isna().all():
        raise UserError(f"{name}: no values of the metric {metric!r}; expected one of "
                        f"{', '.join(metrics) or '(no metric column)'}")
    students = runs[runs["method"] != "teacher"]
    pairs = sorted({f"{t} -> {s}" for t, s in students[["teacher", "student"]].astype(str).itertuples(index=False)})
    if len(pairs) > 1:
        raise UserError(f"{name}: students of several (teacher, student) pairs ({'; '.join(pairs)}); expected one "
                        f"pair per folder")
    if "config_hash" in students.columns:
        configs = students.groupby("method")["config_hash"].nunique()
        several = sorted(configs[configs > 1].index)
        if several:
            raise UserError(f"{name}: method(s) {', '.join(several)} have rows of several configs (config_hash) and "
                            f"the folder has no leaderboard.csv to say which ones count; expected one config per "
                            f"method")
    none = students[(students["method"] == REFERENCE) & students[metric].notna()]
    if none.empty:
        raise UserError(f"{name}: no `{REFERENCE}` rows with {metric}; gains are paired with `{REFERENCE}` on each "
                        f"replicate, so the folder needs a `{REFERENCE}` run")
    seeds = none["seed"].nunique()
    if seeds < MIN_SEEDS:
        raise UserError(f"{name}: {seeds} replicate (seed) of `{REFERENCE}`; expected at least {MIN_SEEDS} for "
                        f"intervals and a bootstrap over replicates")


def seed_gains(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Replicate x method table of the gain over ``none`` in points: 100 * (score(m, r) - score(none, r)),
    a seed's score being the mean of its rows (as ``aggregate`` does); NaN where a method lacks a
    replicate of ``none``. Students only (``teacher`` and ``none`` are not columns), in the rows' order."""
    students = runs[(runs["method"] != "teacher") & runs[metric].notna()]
    scores = 100 * students.pivot_table(index="seed", columns="method", values=metric, aggfunc="mean", sort=False)
    gains = scores.drop(columns=REFERENCE).sub(scores[REFERENCE], axis=0)
    gains = gains[scores[REFERENCE].notna()].sort_index()
    gains.columns.name = None
    return gains


def methods_of(gains: pd.DataFrame) -> list[str]:
    """The methods of a gains table with at least one paired replicate."""
    return [m for m in gains.columns if gains[m].notna().any()]


def common_methods(gains_a: pd.DataFrame, gains_b: pd.DataFrame) -> list[str]:
    """The methods both runs hold, in A's order."""
    in_b = set(methods_of(gains_b))
    return [m for m in methods_of(gains_a) if m in in_b]


# --------------------------------------------------------------------------- per-method conclusions

def status(first: str, second: str) -> str:
    """The status of a method from its conclusions on A and on B (``replication.conclusion``):
    ``holds``, ``flips``, ``only A``, ``only B``, ``tie on both`` or ``no interval``."""
    if "none" in (first, second):
        return "no interval"
    if {first, second} == {"gain", "loss"}:
        return "flips"
    if first == second:
        return "tie on both" if first == "tie" else "holds"
    return "only A" if second == "tie" else "only B"


def _ranks(values: pd.Series) -> pd.Series:
    """1 = the largest value; ties share the average rank."""
    return values.rank(ascending=False, method="average")


def compare(gains_a: pd.DataFrame, gains_b: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """The per-method table (``COLUMNS``) over the methods both runs hold, ordered by the gain on A."""
    methods = common_methods(gains_a, gains_b)
    rows = []
    for m in methods:
        row = {"method": m}
        for side, gains in (("a", gains_a), ("b", gains_b)):
            iv = paired_interval(gains[m], level)
            row.update({f"gain_{side}": iv["mean"], f"low_{side}": iv["low"], f"high_{side}": iv["high"],
                        f"n_{side}": iv["n"], f"conclusion_{side}": conclusion(iv["low"], iv["high"])})
        row["status"] = status(row["conclusion_a"], row["conclusion_b"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    table["rank_a"], table["rank_b"] = _ranks(table["gain_a"]), _ranks(table["gain_b"])
    return table.sort_values(["gain_a", "method"], ascending=[False, True]).reset_index(drop=True)[COLUMNS]


def summary(table: pd.DataFrame) -> dict:
    """{methods, and the number of methods of each status in ``STATUSES``}."""
    counts = table["status"].value_counts()
    return {"methods": int(len(table)), **{s: int(counts.get(s, 0)) for s in STATUSES}}


# --------------------------------------------------------------------------- agreement

def rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (draws x methods); NaN where a
    row is constant or holds a NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    sx, sy = np.sqrt((dx * dx).sum(axis=1)), np.sqrt((dy * dy).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (dx * dy).sum(axis=1) / (sx * sy)
    # a row constant up to rounding (e.g. every gain equal) has no correlation
    flat = (sx <= 1e-12 * np.abs(x).max(axis=1, initial=0)) | (sy <= 1e-12 * np.abs(y).max(axis=1, initial=0))
    r[flat | ~np.isfinite(r)] = NAN
    return np.clip(r, -1.0, 1.0)


def rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair: the Pearson correlation of the average ranks (as
    ``scipy.stats.spearmanr``); NaN where a row is constant or holds a NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    bad = np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1)
    r = rowwise_pearson(scipy_stats.rankdata(x, axis=1), scipy_stats.rankdata(y, axis=1))
    r[bad] = NAN
    return r


def resampled_means(gains: pd.DataFrame, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws x methods: each draw resamples the replicates (rows) with replacement, the same ones for
    every method, and takes each method's mean gain over them (NaN where a method has none)."""
    values = gains.to_numpy(dtype=float)
    idx = rng.integers(0, len(values), size=(draws, len(values)))
    picked = values[idx]  # draws x replicates x methods
    present = ~np.isnan(picked)
    counts = present.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(present, picked, 0.0).sum(axis=1) / counts
    means[counts == 0] = NAN
    return means


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    if not len(values):
        return NAN, NAN
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def correlations(mean_a, mean_b) -> tuple[float, float]:
    """(Spearman, Pearson) of two vectors of mean gains; NaN where one is constant."""
    x, y = np.asarray(mean_a, float)[None, :], np.asarray(mean_b, float)[None, :]
    return float(rowwise_spearman(x, y)[0]), float(rowwise_pearson(x, y)[0])


def agreement(gains_a: pd.DataFrame, gains_b: pd.DataFrame, draws: int = DRAWS, seed: int = 0,
              level: float = LEVEL) -> dict:
    """Spearman and Pearson correlations of the mean gains of the common methods on A and B, each with
    its percentile bootstrap interval over the replicates of each run (see the module docstring):
    {methods, spearman, spearman_low, spearman_high, spearman_dropped, pearson, pearson_low, pearson_high,
    pearson_dropped, draws, seed, level, replicates_a, replicates_b}."""
    methods = common_methods(gains_a, gains_b)
    a, b = gains_a[methods], gains_b[methods]
    rng = np.random.default_rng(seed)
    boot_a, boot_b = resampled_means(a, draws, rng), resampled_means(b, draws, rng)
    spearman, pearson = correlations(a.mean(), b.mean())
    out = {"methods": len(methods), "spearman": spearman, "pearson": pearson, "draws": int(draws), "seed": seed,
           "level": level, "replicates_a": int(len(a)), "replicates_b": int(len(b))}
    for name, fn in (("spearman", rowwise_spearman), ("pearson", rowwise_pearson)):
        r = fn(boot_a, boot_b)
        kept = r[~np.isnan(r)]
        out[f"{name}_low"], out[f"{name}_high"] = _interval(kept, level)
        out[f"{name}_dropped"] = int(draws - len(kept))
    return out


# --------------------------------------------------------------------------- report

def _fmt(v: float) -> str:
    return "" if pd.isna(v) else f"{v:+.2f}"


def _gain(g: float, low: float, high: float, n: int) -> str:
    return _fmt(g) + ("" if pd.isna(low) else f" [{_fmt(low)}, {_fmt(high)}]") + f" (n={n})"


def _rank(v: float) -> str:
    return "" if pd.isna(v) else f"{v:g}"


def _correlation(name: str, agree: dict) -> str:
    value, low, high = agree[name], agree[f"{name}_low"], agree[f"{name}_high"]
    if pd.isna(value):
        return f"{name.capitalize()}: none (the mean gains of a run are all equal)"
    cell = f"{name.capitalize()} {value:+.2f}"
    if not pd.isna(low):
        cell += f" [{low:+.2f}, {high:+.2f}]"
    dropped = agree[f"{name}_dropped"]
    return cell + (f" ({dropped} of {agree['draws']} draws without a correlation dropped)" if dropped else "")


def to_markdown(table: pd.DataFrame, agree: dict, title: str, notes: list[str], labels: tuple[str, str] = ("A", "B"),
                metric: str = "recall@1") -> str:
    """The report: notes, the correlations with their intervals and what they cover, the statuses,
    then one line per method. ``labels`` name the runs A and B in the table's header."""
    s = summary(table)
    level = agree["level"]
    a, b = labels
    lines = [f"# {title}", "", *[f"{n}  " for n in notes], "",
             f"**Agreement of the gains over `none` on {agree['methods']} methods**: "
             f"{_correlation('spearman', agree)}; {_correlation('pearson', agree)}.", "",
             f"The correlations are between the methods' mean gains on A ({a}, {agree['replicates_a']} replicates) and "
             f"on B ({b}, {agree['replicates_b']} replicates); {100 * level:.0f}% percentile bootstrap intervals over "
             f"the replicates of each run ({agree['draws']} draws, seed {agree['seed']}): each draw resamples A's "
             f"replicates and, independently, B's, the same replicates for every method of a run. They cover the "
             f"noise of the replicates only: the methods' hyperparameters and the two datasets are held fixed. "
             f"Noise in the gains pulls the correlation (and its interval) toward 0: with gain intervals wide next "
             f"to the gaps between methods, a low correlation may mean noisy runs rather than a poor proxy.", "",
             f"Conclusions: {s['holds']} hold (same significant sign on both), {s['flips']} flip (a significant gain "
             f"on one, a significant loss on the other), {s['only A']} significant on A only, {s['only B']} on B "
             f"only, {s['tie on both']} tie on both" + (f", {s['no interval']} without an interval" if s["no interval"]
                                                      else "") + f", of {s['methods']} methods.", "",
             f"Gains over `none` in points of {metric} (method - none on the same replicate), mean over replicates "
             f"with its {100 * level:.0f}% interval (Student t over the n paired replicates); rank 1 = the largest "
             f"gain.", "",
             f"| method | A: {a} | rank A | B: {b} | rank B | conclusions (A / B) | status |",
             "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['method']} | {_gain(r['gain_a'], r['low_a'], r['high_a'], r['n_a'])} | "
                     f"{_rank(r['rank_a'])} | {_gain(r['gain_b'], r['low_b'], r['high_b'], r['n_b'])} | "
                     f"{_rank(r['rank_b'])} | {r['conclusion_a']} / {r['conclusion_b']} | {r['status']} |")
    return "\n".join(lines) + "\n"
