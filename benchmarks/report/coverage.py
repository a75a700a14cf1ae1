"""How often the 95% interval of a gain over ``none`` covers the true gain, under the full and the
conditional replicate design: simulated tables, scored with the tables' own interval
(``benchmarks.report.stats.paired_interval``), and once through the leaderboard code itself
(``benchmarks.report.aggregate.tables``).

The model. The score of method m in replicate r is

    score[r, m] = mu + b_r + g_m + u[r, m] + e[r, m]

- ``mu``: the overall level (a constant);
- ``b_r``: what replicate r does to every method alike (an easy or hard draw of the data, a good or bad
  teacher for everyone); it is the same for all methods, so it cancels in a paired difference;
- ``g_m``: the method's own effect. The true gain of m over none is ``g_m - g_none``: what the tables
  try to estimate;
- ``u[r, m] ~ N(0, tau^2)``: the method-by-draw interaction, what happens to method m in particular
  when the data, the pretraining, the initial weights and the teacher are drawn anew (one method
  profits from one draw of the data, another from another). The u of different methods are
  independent here, so the difference ``u_m - u_none`` has SD ``sqrt(2) * tau``;
- ``e[r, m] ~ N(0, sigma^2)``: training noise within one draw (batch order, augmentation).

A table is n replicates of every method; the gain of m is summarised by the paired differences
``d_r = score[r, m] - score[r, none]`` and the interval ``mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n)``.

Two designs differ in what a replicate draws:

- ``full``: each replicate draws everything a rerun would draw, so every replicate has its own b, u
  and e. Then ``d_r = (g_m - g_none) + (u[r, m] - u[r, none]) + (e[r, m] - e[r, none])``: the n
  differences are independent and identically distributed around the true gain (normal here, with
  variance ``2 tau^2 + 2 sigma^2``). That is exactly what the Student t interval assumes, so it covers
  the true gain 95% of the time, whatever tau is. The interaction is part of the replicate's noise and
  widens the interval as it should.
- ``conditional``: the data, the pretraining, the initial weights and the teacher are one draw shared
  by every seed of a table, so b and u are drawn once per table and only e is redrawn per seed. Then
  ``d_r = (g_m - g_none) + du + (e[r, m] - e[r, none])`` with one ``du = u_m - u_none`` for the whole
  table. The differences scatter around ``g + du``, not around g: the interval estimates the gain on
  this one draw, and its width only knows the training noise. It covers ``g + du`` 95% of the time,
  but the true gain g only when du happens to be small beside the width. With tau > 0 it under-covers,
  and more so with more seeds (the width shrinks as 1/sqrt(n), du does not).

Exact coverage under normality (``analytic_coverage``): full, 95% for every tau. Conditional: write
``(mean(d) - g) / (sd(d) / sqrt(n)) = (Z + delta) / sqrt(V / (n-1))`` with Z standard normal (the
training noise of the mean), ``delta = du * sqrt(n) / (sqrt(2) * sigma)`` and V chi-square with n - 1
degrees of freedom, all independent. Given du the ratio is noncentral t; over the tables du is
``N(0, 2 tau^2)``, so ``Z + delta ~ N(0, k^2)`` with ``k^2 = 1 + n tau^2 / sigma^2`` and the ratio is
k times a Student t with n - 1 degrees of freedom. The interval covers g when the ratio lies within
+- c, c = t(0.975, n-1), so the coverage is ``P(|T_{n-1}| <= c / k) = 2 F_{n-1}(c / k) - 1``: 95% at
tau = 0, falling as n tau^2 / sigma^2 grows.

Non-normal variants (``dist``), with the same means and SDs, to see how much the result leans on
normality: ``t5`` draws b, u and e from Student t with 5 degrees of freedom scaled to SD 1 (heavy
tails); ``skewed`` draws the u and e of every method other than ``none`` from a centred exponential
with the sign flipped (SD 1, skewness -2: now and then a method does much worse on a draw) and those
of ``none`` from the normal, so the paired differences are skewed too.

Every random number comes from ``numpy.random.default_rng(seed)``: the same seed gives the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from benchmarks.report.aggregate import tables as leaderboard_tables
from benchmarks.report.stats import LEVEL, paired_interval

DESIGNS = ("full", "conditional")
DISTRIBUTIONS = ("normal", "t5", "skewed")
"""How b, u and e are drawn: normal; Student t(5) scaled to SD 1; ``none`` normal and the other methods
centred, sign-flipped exponential (SD 1, left-skewed)."""
MU = 60.0
"""The overall level of the simulated scores, in points (a Recall@1 of 60%)."""
B_SD = 1.0
"""SD of the replicate effect b in points (it cancels in every paired difference)."""
PRIMARY = "recall@1"
GAINS = {"kd_a": 0.3, "kd_b": 0.0, "kd_c": -0.2}
"""True gains over none (points) of the methods of the tables simulated through ``aggregate.tables``."""


def _check(design: str, n: int, tau: float, sigma: float, dist: str) -> None:
    if design not in DESIGNS:
        raise ValueError(f"design {design!r}: expected one of {', '.join(DESIGNS)}")
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"dist {dist!r}: expected one of {', '.join(DISTRIBUTIONS)}")
    if n < 2:
        raise ValueError(f"n {n}: an interval needs at least 2 replicates")
    if tau < 0 or sigma <= 0:
        raise ValueError(f"tau {tau}, sigma {sigma}: expected tau >= 0 and sigma > 0")


def _standard(rng: np.random.Generator, shape: tuple, dist: str, skewed_columns=None) -> np.ndarray:
    """Mean-0, SD-1 draws of ``shape``; under ``skewed`` the last-axis ``skewed_columns`` are the
    sign-flipped centred exponential and the rest normal."""
    if dist == "t5":
        return rng.standard_t(5, size=shape) * math.sqrt(3 / 5)  # Var t(5) = 5/3
    z = rng.standard_normal(shape)
    if dist == "skewed" and skewed_columns is not None:
        z[..., skewed_columns] = 1.0 - rng.standard_exponential(shape)[..., skewed_columns]
    return z


def simulate_scores(design: str, n: int, tau: float, sigma: float, gains, tables: int, rng: np.random.Generator,
                    dist: str = "normal", mu: float = MU, b_sd: float = B_SD) -> tuple[np.ndarray, np.ndarray]:
    """(scores, drawn) for ``tables`` simulated tables of n replicates of the methods ``gains`` (a list
    of true gains over none, none itself first with gain 0), in points.

    ``scores[t, r, j] = mu + b + gains[j] + u + e`` (the module's model): under ``full`` b, u and e are
    drawn per replicate; under ``conditional`` b and u once per table and only e per replicate.
    ``drawn[t, j] = gains[j] + u_j - u_0`` is the gain the table's draw holds under ``conditional``
    (what its interval estimates); under ``full`` it is the mean over the replicates of that quantity."""
    _check(design, n, tau, sigma, dist)
    g = np.asarray(gains, dtype=float)
    k = len(g)
    skewed = np.arange(1, k)
    per = n if design == "full" else 1
    b = b_sd * _standard(rng, (tables, per, 1), "normal" if dist == "skewed" else dist)
    u = tau * _standard(rng, (tables, per, k), dist, skewed)
    e = sigma * _standard(rng, (tables, n, k), dist, skewed)
    scores = mu + b + g + u + e
    drawn = g + (u - u[..., :1]).mean(axis=1)
    return scores, drawn


def wilson_interval(covered: int, total: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``covered / total`` (scipy's binomtest)."""
    ci = _scipy_stats.binomtest(int(covered), int(total)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def analytic_coverage(design: str, n: int, tau: float, sigma: float, level: float = LEVEL) -> float:
    """The exact coverage of the true gain by the ``level`` interval under the normal model: ``level``
    under ``full``; under ``conditional`` ``2 F(c / k) - 1`` with F the Student t distribution function
    with n - 1 degrees of freedom, ``c = F^-1((1 + level) / 2)`` and ``k = sqrt(1 + n tau^2 / sigma^2)``
    (see the module docstring)."""
    _check(design, n, tau, sigma, "normal")
    if design == "full":
        return float(level)
    crit = _scipy_stats.t.ppf(0.5 + level / 2, n - 1)
    k = math.sqrt(1.0 + n * tau ** 2 / sigma ** 2)
    return float(2.0 * _scipy_stats.t.cdf(crit / k, n - 1) - 1.0)


def simulate_coverage(design: str, n: int, tau: float, sigma: float, gain: float, tables: int = 2000,
                      seed=0, dist: str = "normal", level: float = LEVEL) -> dict:
    """Simulate ``tables`` tables of one method (true gain ``gain``) and ``none`` over n replicates, and
    score each with ``paired_interval`` on the paired differences. Returns

    - ``coverage``: the share of tables whose interval holds ``gain``, with ``coverage_low`` /
      ``coverage_high`` its Wilson 95% interval (``covered`` of ``tables``);
    - ``coverage_of_draw``: the share holding the gain of the table's own draw (g + du; conditional
      design only, else NaN): about 95% when the interval does what it claims conditionally;
    - ``analytic``: ``analytic_coverage`` (normal model only, else NaN);
    - ``mean_halfwidth``: mean half-width of the intervals (points); ``mean_estimate`` and
      ``sd_estimate``: mean and SD of the estimated gains over the tables;
    - the settings (design, n, tau, sigma, gain, dist, tables, seed, level)."""
    rng = np.random.default_rng(seed)
    scores, drawn = simulate_scores(design, n, tau, sigma, [0.0, gain], tables, rng, dist)
    diffs = scores[:, :, 1] - scores[:, :, 0]
    lows, highs, means, halves = (np.empty(tables) for _ in range(4))
    for t in range(tables):
        iv = paired_interval(diffs[t], level)
        lows[t], highs[t], means[t], halves[t] = iv["low"], iv["high"], iv["mean"], iv["halfwidth"]
    covered = int(np.sum((lows <= gain) & (gain <= highs)))
    low, high = wilson_interval(covered, tables)
    target = drawn[:, 1]
    of_draw = float(np.mean((lows <= target) & (target <= highs))) if design == "conditional" else float("nan")
    return {"design": design, "n": int(n), "tau": float(tau), "sigma": float(sigma), "gain": float(gain), "dist": dist,
            "tables": int(tables), "seed": seed if isinstance(seed, int) else list(seed), "level": float(level),
            "covered": covered, "coverage": covered / tables, "coverage_low": low, "coverage_high": high,
            "coverage_of_draw": of_draw,
            "analytic": analytic_coverage(design, n, tau, sigma, level) if dist == "normal" else float("nan"),
            "mean_halfwidth": float(halves.mean()), "mean_estimate": float(means.mean()),
            "sd_estimate": float(means.std(ddof=1))}


def runs_frame(scores: np.ndarray, methods, design: str) -> pd.DataFrame:
    """The runs.csv rows of one simulated table: ``scores[r, j]`` (points) of method ``methods[j]`` in
    replicate (seed) r, as the fractions runs.csv holds under ``recall@1``."""
    n, k = scores.shape
    rows = [{"suite": "retrieval", "dataset": "simulated", "teacher": "teacher", "student": "student",
             "method": m, "config_hash": f"sim-{m}", "seed": r, "train_seconds": 0.0, "replicates": design,
             PRIMARY: scores[r, j] / 100.0}
            for j, m in enumerate(methods) for r in range(n)]
    return pd.DataFrame(rows)


def aggregate_check(design: str, n: int, tau: float, sigma: float, gains=None, tables: int = 200, seed=0,
                    dist: str = "normal", level: float = LEVEL) -> dict:
    """The same simulation run end to end through the leaderboard: each simulated table becomes runs.csv
    rows (``runs_frame``) and goes through ``aggregate.tables``; its ``gain_vs_none``, ``gain_ci_low``
    and ``gain_ci_high`` are compared with ``paired_interval`` on the simulated scores and checked for
    coverage of the true gains ``gains`` (default ``GAINS``: several methods beside ``none``).

    Returns ``max_abs_diff`` (largest |leaderboard - paired_interval| over the mean, low and high of every
    method and table, points) and per method ``coverage`` with its Wilson interval (``methods``: a list
    of dicts), plus the settings."""
    gains = dict(GAINS if gains is None else gains)
    methods = ["none", *gains]
    true = np.array([0.0, *gains.values()])
    rng = np.random.default_rng(seed)
    scores, _ = simulate_scores(design, n, tau, sigma, true, tables, rng, dist)
    covered = np.zeros(len(methods), dtype=int)
    worst = 0.0
    for t in range(tables):
        board = leaderboard_tables(runs_frame(scores[t], methods, design), PRIMARY)[0].set_index("method")
        for j, m in enumerate(methods[1:], start=1):
            iv = paired_interval(scores[t, :, j] - scores[t, :, 0], level)
            row = board.loc[m]
            for ours, theirs in ((iv["mean"], row["gain_vs_none"]), (iv["low"], row["gain_ci_low"]),
                                 (iv["high"], row["gain_ci_high"])):
                worst = max(worst, abs(float(theirs) - ours))
            covered[j] += bool(row["gain_ci_low"] <= true[j] <= row["gain_ci_high"])
    per_method = []
    for j, m in enumerate(methods[1:], start=1):
        low, high = wilson_interval(covered[j], tables)
        per_method.append({"method": m, "gain": float(true[j]), "covered": int(covered[j]),
                           "coverage": float(covered[j] / tables), "coverage_low": low, "coverage_high": high})
    return {"design": design, "n": int(n), "tau": float(tau), "sigma": float(sigma), "dist": dist,
            "tables": int(tables), "seed": seed if isinstance(seed, int) else list(seed), "level": float(level),
            "max_abs_diff": float(worst), "methods": per_method}


def setting_seed(base: int, design: str, n: int, tau: float, sigma: float, dist: str = "normal") -> list[int]:
    """A seed for ``default_rng`` that depends only on the setting (not on the order of a sweep)."""
    return [int(base), DESIGNS.index(design), int(n), round(1000 * tau), round(1000 * sigma),
            DISTRIBUTIONS.index(dist)]
