"""Coverage of the true gain by the 95% gain interval under full and conditional replicates
(benchmarks.report.coverage): the simulated model, the coverage of each design against its exact value,
the leaderboard's own columns against the interval formula, determinism, and the bench_coverage command."""

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats as scipy_stats

from benchmarks.report import coverage
from benchmarks.report.aggregate import tables as leaderboard_tables

TABLES = 2000
SIGMA = 0.35


def _t_interval(d):
    """mean(d) +- t(0.975, n-1) sd(d) / sqrt(n), written out here (independent of stats.paired_interval)."""
    d = np.asarray(d, float)
    n = len(d)
    half = scipy_stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
    return d.mean(), d.mean() - half, d.mean() + half


def _conditional_coverage_by_integration(n, tau, sigma):
    """The conditional design's exact coverage the long way: given du the studentised error of the mean
    gain is noncentral t (noncentrality du sqrt(n) / (sqrt(2) sigma)); integrate over du ~ N(0, 2 tau^2).

    The coverage given du is even in du, P(-c <= T <= c) = F(c; nc) + F(c; -nc) - 1 (scipy's cdf
    of a large noncentrality at -c is not finite), and it is below 1e-40 beyond nc = 30: the integral
    runs over 0 <= nc <= 30, twice."""
    crit = scipy_stats.t.ppf(0.975, n - 1)
    sd_du = math.sqrt(2) * tau
    per_nc = math.sqrt(n) / (math.sqrt(2) * sigma)

    def inside(du):
        nc = du * per_nc
        p = scipy_stats.nct.cdf(crit, n - 1, nc) + scipy_stats.nct.cdf(crit, n - 1, -nc) - 1
        return p * scipy_stats.norm.pdf(du, scale=sd_du)

    return 2 * integrate.quad(inside, 0, min(8 * sd_du, 30 / per_nc), limit=200, epsabs=1e-10)[0]


# ----------------------------------------------------------------------------------------------- the model

def test_the_simulated_scores_follow_the_model():
    """Full: every replicate's difference has variance 2 tau^2 + 2 sigma^2 around g. Conditional: within a
    table the differences scatter with variance 2 sigma^2 around the table's drawn gain g + du, and du has
    variance 2 tau^2 over the tables. b is shared by the methods of a replicate (it cancels)."""
    tau, sigma, g, n, t = 0.6, 0.3, 0.4, 6, 6000
    rng = np.random.default_rng(7)
    scores, drawn = coverage.simulate_scores("full", n, tau, sigma, [0.0, g], t, rng)
    d = scores[:, :, 1] - scores[:, :, 0]
    assert d.mean() == pytest.approx(g, abs=0.02)
    assert d.var() == pytest.approx(2 * tau ** 2 + 2 * sigma ** 2, rel=0.03)
    # the replicate effect b moves both methods: the scores vary far more than their difference
    assert scores[:, :, 0].var() == pytest.approx(coverage.B_SD ** 2 + tau ** 2 + sigma ** 2, rel=0.03)

    scores, drawn = coverage.simulate_scores("conditional", n, tau, sigma, [0.0, g], t, rng)
    d = scores[:, :, 1] - scores[:, :, 0]
    assert np.allclose(drawn[:, 0], 0.0)
    assert drawn[:, 1].mean() == pytest.approx(g, abs=0.03)
    assert drawn[:, 1].var() == pytest.approx(2 * tau ** 2, rel=0.05)
    within = d - drawn[:, 1:2]  # what is left once the table's own draw is taken out
    assert within.var() == pytest.approx(2 * sigma ** 2, rel=0.03)
    # in a conditional table every seed shares b: the mean score of none moves with b + u from table to table
    assert scores[:, :, 0].mean(axis=1).var() == pytest.approx(coverage.B_SD ** 2 + tau ** 2 + sigma ** 2 / n,
                                                                 rel=0.05)


@pytest.mark.parametrize("dist", ["t5", "skewed"])
def test_the_non_normal_effects_keep_the_means_and_sds(dist):
    rng = np.random.default_rng(11)
    scores, _ = coverage.simulate_scores("full", 4, 0.5, 0.35, [0.0, 0.3], 20000, rng, dist=dist)
    d = (scores[:, :, 1] - scores[:, :, 0]).ravel()
    assert d.mean() == pytest.approx(0.3, abs=0.01)
    assert d.var() == pytest.approx(2 * 0.5 ** 2 + 2 * 0.35 ** 2, rel=0.03)
    skew = scipy_stats.skew(d)
    if dist == "skewed":  # the method's effects have skewness -2; none's are normal
        assert skew < -0.5
    else:  # t5: symmetric, heavy tails
        assert abs(skew) < 0.2 and scipy_stats.kurtosis(d) > 1.0


def test_bad_settings_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="design"):
        coverage.simulate_scores("both", 5, 0.5, 0.35, [0.0, 0.3], 10, rng)
    with pytest.raises(ValueError, match="at least 2"):
        coverage.simulate_coverage("full", 1, 0.5, 0.35, 0.3, tables=10)
    with pytest.raises(ValueError, match="sigma"):
        coverage.analytic_coverage("conditional", 5, 0.5, 0.0)


# --------------------------------------------------------------------------------------------- the coverage

def test_the_wilson_interval_by_hand():
    k, m, z = 1900, 2000, scipy_stats.norm.ppf(0.975)
    p = k / m
    centre = (p + z ** 2 / (2 * m)) / (1 + z ** 2 / m)
    half = z / (1 + z ** 2 / m) * math.sqrt(p * (1 - p) / m + z ** 2 / (4 * m ** 2))
    assert coverage.wilson_interval(k, m) == pytest.approx((centre - half, centre + half), abs=1e-12)


@pytest.mark.parametrize("n, tau, sigma", [(5, 0.5, SIGMA), (12, 0.7, SIGMA), (8, 0.0, 1.0)])
def test_full_replicates_cover_the_true_gain_95_percent_of_the_time(n, tau, sigma):
    r = coverage.simulate_coverage("full", n, tau, sigma, 0.3, tables=TABLES, seed=100 + n)
    assert r["tables"] == TABLES and r["covered"] == round(r["coverage"] * TABLES)
    assert 0.93 <= r["coverage"] <= 0.97
    assert r["coverage_low"] < r["coverage"] < r["coverage_high"]
    assert r["analytic"] == 0.95
    # the interaction widens the interval: the half-width follows sqrt(2 tau^2 + 2 sigma^2)
    expected = scipy_stats.t.ppf(0.975, n - 1) * math.sqrt(2 * tau ** 2 + 2 * sigma ** 2) / math.sqrt(n)
    assert r["mean_halfwidth"] == pytest.approx(expected, rel=0.1)  # E[sd] < sd: a few percent below
    assert r["mean_estimate"] == pytest.approx(0.3, abs=4 * r["sd_estimate"] / math.sqrt(TABLES))


def test_conditional_replicates_cover_nominally_without_interaction():
    r = coverage.simulate_coverage("conditional", 8, 0.0, SIGMA, 0.3, tables=TABLES, seed=3)
    assert 0.93 <= r["coverage"] <= 0.97
    assert r["coverage_of_draw"] == r["coverage"]  # tau = 0: the draw's gain is the true gain


@pytest.mark.parametrize("n", [5, 12])
def test_conditional_replicates_under_cover_when_the_draw_matters(n):
    tau = 2 * SIGMA
    cond = coverage.simulate_coverage("conditional", n, tau, SIGMA, 0.3, tables=TABLES, seed=20 + n)
    full = coverage.simulate_coverage("full", n, tau, SIGMA, 0.3, tables=TABLES, seed=40 + n)
    exact = _conditional_coverage_by_integration(n, tau, SIGMA)
    assert exact < 0.5  # tau = 2 sigma: the one draw's du is large beside the width
    se = math.sqrt(exact * (1 - exact) / TABLES)
    assert abs(cond["coverage"] - exact) < 4 * se
    assert cond["coverage"] < full["coverage"] - 0.10
    assert cond["coverage_high"] < 0.85
    # what it does cover: the gain of its own draw, g + du, at the nominal rate
    assert 0.93 <= cond["coverage_of_draw"] <= 0.97
    # and it is narrower than the full design's interval, which counts the interaction as noise
    assert cond["mean_halfwidth"] < 0.75 * full["mean_halfwidth"]


@pytest.mark.parametrize("n, tau, sigma", [(5, 0.25, 0.35), (8, 0.5, 0.35), (12, 0.7, 0.35), (8, 0.5, 1.0),
                                           (10, 0.0, 0.35)])
def test_the_closed_form_matches_the_integral_over_the_draw(n, tau, sigma):
    closed = coverage.analytic_coverage("conditional", n, tau, sigma)
    if tau == 0:
        assert closed == pytest.approx(0.95, abs=1e-12)
    else:
        assert closed == pytest.approx(_conditional_coverage_by_integration(n, tau, sigma), abs=1e-6)
    assert coverage.analytic_coverage("full", n, tau, sigma) == 0.95


def test_more_seeds_make_the_conditional_interval_worse():
    values = [coverage.analytic_coverage("conditional", n, 0.5, SIGMA) for n in (5, 8, 12)]
    assert values[0] > values[1] > values[2]


# ---------------------------------------------------------------------------------- through the leaderboard

@pytest.mark.parametrize("design", coverage.DESIGNS)
def test_the_leaderboard_columns_are_the_t_interval_of_the_simulated_scores(design):
    gains = {"kd_a": 0.3, "kd_b": -0.2}
    methods = ["none", *gains]
    rng = np.random.default_rng(5)
    scores, _ = coverage.simulate_scores(design, 6, 0.5, SIGMA, [0.0, *gains.values()], 4, rng)
    for t in range(len(scores)):
        runs = coverage.runs_frame(scores[t], methods, design)
        assert len(runs) == 6 * len(methods) and runs["recall@1"].between(0, 1).all()
        board = leaderboard_tables(runs, "recall@1")[0].set_index("method")
        assert board.loc["none", "gain_vs_none"] == pytest.approx(0.0, abs=1e-9)
        for j, m in enumerate(methods[1:], start=1):
            mean, low, high = _t_interval(scores[t, :, j] - scores[t, :, 0])
            row = board.loc[m]
            assert row["gain_vs_none"] == pytest.approx(mean, abs=1e-9)
            assert row["gain_ci_low"] == pytest.approx(low, abs=1e-9)
            assert row["gain_ci_high"] == pytest.approx(high, abs=1e-9)
            assert row["gain_seeds"] == 6


def test_the_aggregate_check_agrees_with_paired_interval_and_counts_coverage():
    c = coverage.aggregate_check("full", 5, 0.5, SIGMA, tables=30, seed=9)
    assert c["max_abs_diff"] < 1e-9
    assert [m["method"] for m in c["methods"]] == list(coverage.GAINS)
    # the same tables again, their coverage counted here from the scores: the counts must agree
    scores, _ = coverage.simulate_scores("full", 5, 0.5, SIGMA, [0.0, *coverage.GAINS.values()], 30,
                                         np.random.default_rng(9))
    for j, m in enumerate(c["methods"], start=1):
        hits = 0
        for t in range(30):
            _, low, high = _t_interval(scores[t, :, j] - scores[t, :, 0])
            hits += low <= m["gain"] <= high
        assert m["covered"] == hits and m["coverage"] == hits / 30


# -------------------------------------------------------------------------------------------- determinism

def test_the_same_seed_gives_the_same_numbers():
    a = coverage.simulate_coverage("conditional", 8, 0.5, SIGMA, 0.3, tables=300, seed=[0, 1])
    b = coverage.simulate_coverage("conditional", 8, 0.5, SIGMA, 0.3, tables=300, seed=[0, 1])
    c = coverage.simulate_coverage("conditional", 8, 0.5, SIGMA, 0.3, tables=300, seed=[0, 2])
    assert a == b
    assert (a["mean_halfwidth"], a["mean_estimate"]) != (c["mean_halfwidth"], c["mean_estimate"])
    assert coverage.setting_seed(0, "full", 8, 0.5, SIGMA) != coverage.setting_seed(0, "conditional", 8, 0.5, SIGMA)


# ---------------------------------------------------------------------------------------------- the command

def test_bench_coverage_writes_its_tables(tmp_path, capsys):
    from benchmarks import bench_coverage

    argv = ["--tables", "40", "--aggregate-tables", "3", "--out", str(tmp_path)]
    assert bench_coverage.main(argv) == 0
    md = (tmp_path / "bench_coverage.md").read_text()
    assert md.splitlines()[0] == f"Command: `python -m benchmarks.bench_coverage {' '.join(argv)}`  "
    assert "| design | n | tau | sigma | coverage [95% CI] |" in md
    data = json.loads((tmp_path / "bench_coverage.json").read_text())
    assert len(data["rows"]) == len(bench_coverage.settings())
    assert {r["design"] for r in data["rows"]} == set(coverage.DESIGNS)
    assert all(c["max_abs_diff"] < 1e-9 for c in data["aggregate_checks"])
    assert bench_coverage.main(["--tables", "0"]) == 2
    assert "error:" in capsys.readouterr().err
