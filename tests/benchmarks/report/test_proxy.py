"""Does a proxy predict? The per-method gains on two runs, their conclusions and the bootstrap
correlation of the mean gains (benchmarks.report.proxy)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from benchmarks.report.proxy import (
    agreement,
    check_run,
    common_methods,
    compare,
    rowwise_pearson,
    rowwise_spearman,
    seed_gains,
    status,
    summary,
    to_markdown,
)
from benchmarks.runner.errors import UserError

T_975_2 = 4.303  # Student t(0.975, 2), from a table


def _runs(gains: dict, seeds=(0, 1, 2), base=(0.50, 0.60, 0.55), dataset="synthetic") -> pd.DataFrame:
    """runs.csv rows: ``none`` scores ``base`` per seed, each method none + its gain (points) per seed,
    and a teacher."""
    rows = []

    def add(method, seed, value):
        rows.append({"run_id": f"{method}-{dataset}-s{seed}", "suite": "retrieval", "dataset": dataset,
                     "teacher": "t", "student": "t" if method == "teacher" else "s", "method": method, "seed": seed,
                     "recall@1": value, "map@r": value / 2, "config_hash": f"{method}-{dataset}", "train_seconds": 1.0})

    for seed, b in zip(seeds, base):
        add("teacher", seed, 0.9)
        add("none", seed, b)
        for method, values in gains.items():
            add(method, seed, b + values[seeds.index(seed)] / 100)
    return pd.DataFrame(rows)


def _table(means, sd, n, rng) -> pd.DataFrame:
    """A replicate x method table of gains: true mean gains ``means``, normal noise of sd ``sd``, n replicates."""
    return pd.DataFrame(rng.normal(means, sd, (n, len(means))), columns=[f"m{i:02d}" for i in range(len(means))])


# --------------------------------------------------------------------------- statuses

@pytest.mark.parametrize("first,second,expected", [
    ("gain", "gain", "holds"), ("loss", "loss", "holds"),
    ("gain", "loss", "flips"), ("loss", "gain", "flips"),
    ("gain", "tie", "only A"), ("loss", "tie", "only A"),
    ("tie", "gain", "only B"), ("tie", "loss", "only B"),
    ("tie", "tie", "tie on both"),
    ("none", "gain", "no interval"), ("tie", "none", "no interval"), ("none", "none", "no interval"),
])
def test_the_status_of_each_pair_of_conclusions(first, second, expected):
    assert status(first, second) == expected


# --------------------------------------------------------------------------- a case computed by hand

HAND = {  # gains over none in points, replicates 0, 1, 2: (on A, on B)
    "up": ([2, 3, 4], [4, 5, 6]),  # A: mean 3, sd 1 -> gain; B: mean 5, sd 1 -> gain: holds
    "flip": ([3, 4, 5], [-6, -5, -4]),  # A: mean 4 -> gain; B: mean -5 -> loss: flips
    "flat": ([-1, 0, 1], [-1, 1, 3]),  # A: mean 0, sd 1 -> tie; B: mean 1, sd 2 -> tie: tie on both
}


def _hand():
    a = _runs({m: v[0] for m, v in HAND.items()}, dataset="synthetic")
    b = _runs({m: v[1] for m, v in HAND.items()}, base=(0.30, 0.20, 0.25), dataset="fonts")
    return seed_gains(a, "recall@1"), seed_gains(b, "recall@1")


def test_a_small_case_computed_by_hand():
    ga, gb = _hand()
    assert list(ga.columns) == ["up", "flip", "flat"]  # teacher and none are not compared
    table = compare(ga, gb).set_index("method")
    half1, half2 = T_975_2 * 1 / math.sqrt(3), T_975_2 * 2 / math.sqrt(3)  # sd 1 and sd 2 over 3 replicates
    expected = {  # method: (gain, low, high) on A, then on B
        "up": ((3, 3 - half1, 3 + half1), (5, 5 - half1, 5 + half1)),
        "flip": ((4, 4 - half1, 4 + half1), (-5, -5 - half1, -5 + half1)),
        "flat": ((0, -half1, half1), (1, 1 - half2, 1 + half2)),
    }
    for method, (on_a, on_b) in expected.items():
        r = table.loc[method]
        assert (r.gain_a, r.low_a, r.high_a) == pytest.approx(on_a, abs=2e-3)
        assert (r.gain_b, r.low_b, r.high_b) == pytest.approx(on_b, abs=2e-3)
        assert r.n_a == r.n_b == 3
    assert table["conclusion_a"].to_dict() == {"flip": "gain", "up": "gain", "flat": "tie"}
    assert table["conclusion_b"].to_dict() == {"flip": "loss", "up": "gain", "flat": "tie"}
    assert table["status"].to_dict() == {"flip": "flips", "up": "holds", "flat": "tie on both"}
    assert list(table.index) == ["flip", "up", "flat"]  # by the gain on A
    assert table["rank_a"].to_dict() == {"flip": 1, "up": 2, "flat": 3}
    assert table["rank_b"].to_dict() == {"flip": 3, "up": 1, "flat": 2}
    s = summary(compare(ga, gb))
    assert (s["methods"], s["holds"], s["flips"], s["tie on both"], s["only A"], s["only B"]) == (3, 1, 1, 1, 0, 0)


def test_the_correlations_of_the_small_case_by_hand():
    ga, gb = _hand()
    agree = agreement(ga, gb, draws=500, seed=0)
    # mean gains A (3, 4, 0), B (5, -5, 1): ranks (2, 3, 1) and (3, 1, 2), sum d^2 = 6, 1 - 6 * 6 / (3 * 8) = -0.5
    assert agree["spearman"] == pytest.approx(-0.5)
    # Pearson: deviations (2, 5, -7) / 3 and (14, -16, 2) / 3: -66 / sqrt(78 * 456)
    assert agree["pearson"] == pytest.approx(-66 / math.sqrt(78 * 456))
    assert agree["spearman"] == pytest.approx(scipy_stats.spearmanr([3, 4, 0], [5, -5, 1])[0])
    assert agree["pearson"] == pytest.approx(scipy_stats.pearsonr([3, 4, 0], [5, -5, 1])[0])
    assert agree["methods"] == 3 and agree["replicates_a"] == agree["replicates_b"] == 3
    # every replicate orders the methods the same way (A: flip > up > flat, B: up > flat > flip), so does every
    # resampled mean: the rank correlation does not vary; the Pearson correlation does
    assert agree["spearman_low"] == agree["spearman_high"] == pytest.approx(-0.5)
    assert -1 <= agree["pearson_low"] < agree["pearson_high"] <= 1
    # 3 replicates: a draw repeating one replicate of A three times gives A's gains of that replicate, never constant
    # here, so no draw is dropped
    assert agree["spearman_dropped"] == agree["pearson_dropped"] == 0


# --------------------------------------------------------------------------- one run's gains

def test_seed_gains_pair_each_replicate_with_none_and_average_a_seeds_rows():
    runs = _runs({"at": [1, 2, 3], "rkd": [0, -1, -2]})
    extra = runs[(runs["method"] == "at") & (runs["seed"] == 0)].assign(**{"recall@1": 0.50 + 0.03})
    runs = pd.concat([runs, extra], ignore_index=True)  # seed 0 of at twice: 1 and 3 points -> 2 on average
    runs = runs[~((runs["method"] == "rkd") & (runs["seed"] == 2))]  # rkd lacks replicate 2
    gains = seed_gains(runs, "recall@1")
    assert gains["at"].tolist() == pytest.approx([2, 2, 3])
    assert gains["rkd"].iloc[:2].tolist() == pytest.approx([0, -1]) and math.isnan(gains["rkd"].iloc[2])
    assert compare(gains, gains).set_index("method").loc["rkd", "n_a"] == 2
    no_none_2 = runs[~((runs["method"] == "none") & (runs["seed"] == 2))]
    assert seed_gains(no_none_2, "recall@1").index.tolist() == [0, 1]  # a replicate without none pairs nothing


def test_common_methods_are_the_students_both_runs_hold():
    a = seed_gains(_runs({"at": [1, 2, 3], "rkd": [0, 1, 2], "hmat": [1, 1, 1]}), "recall@1")
    b = seed_gains(_runs({"rkd": [1, 2, 3], "crd": [0, 1, 2], "at": [1, 1, 1]}), "recall@1")
    assert common_methods(a, b) == ["at", "rkd"]
    assert compare(a, b)["method"].tolist() == ["at", "rkd"]


@pytest.mark.parametrize("change,expect", [
    (lambda r: r.drop(columns="recall@1"), "no values of the metric 'recall@1'; expected one of map@r"),
    (lambda r: r[r["method"] != "none"], "no `none` rows"),
    (lambda r: r[r["seed"] == 0], "1 replicate (seed) of `none`; expected at least 2"),
    (lambda r: pd.concat([r, r[r["method"] == "at"].assign(config_hash="old")]), "at have rows of several configs"),
    (lambda r: pd.concat([r, r[r["method"] == "at"].assign(student="s2")]), "several (teacher, student) pairs"),
])
def test_a_run_that_cannot_give_gains_is_refused(change, expect):
    runs = _runs({"at": [1, 2, 3]})
    check_run(runs, "recall@1", "--proxy here")
    with pytest.raises(UserError, match="^--proxy here: ") as err:
        check_run(change(runs), "recall@1", "--proxy here")
    assert expect in str(err.value)


# --------------------------------------------------------------------------- the correlations

def test_rowwise_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 7)), rng.normal(size=(50, 7))
    x[:, 3] = x[:, 2]  # ties get average ranks
    y[0] = y[0] * 0.5 + x[0]
    spear, pear = rowwise_spearman(x, y), rowwise_pearson(x, y)
    for i in range(50):
        assert spear[i] == pytest.approx(scipy_stats.spearmanr(x[i], y[i])[0])
        assert pear[i] == pytest.approx(scipy_stats.pearsonr(x[i], y[i])[0])
    x[1] = 2.0  # a constant row has no correlation
    x[2, 0] = np.nan
    assert np.isnan(rowwise_spearman(x, y)[[1, 2]]).all() and np.isnan(rowwise_pearson(x, y)[[1, 2]]).all()


def test_draws_with_constant_gains_are_dropped_and_counted():
    a = pd.DataFrame({"m1": [1.0, 1.2], "m2": [2.0, 2.1], "m3": [3.0, 3.3]})
    b = pd.DataFrame({"m1": [0.0, 1.0], "m2": [0.0, 2.0], "m3": [0.0, 3.0]})  # replicate 0: every gain equal
    agree = agreement(a, b, draws=2000, seed=1)
    # a draw of B's replicates is constant when it picks replicate 0 twice: probability 1/4
    assert 400 < agree["spearman_dropped"] < 600 and agree["pearson_dropped"] == agree["spearman_dropped"]
    assert agree["spearman"] == agree["spearman_low"] == agree["spearman_high"] == pytest.approx(1)
    constant = agreement(a, b.assign(m1=1.0, m2=1.0, m3=1.0), draws=200)
    assert math.isnan(constant["spearman"]) and constant["spearman_dropped"] == 200
    assert math.isnan(constant["spearman_low"])


def test_the_bootstrap_is_reproducible_from_its_seed():
    rng = np.random.default_rng(3)
    a, b = _table(np.linspace(0, 2, 6), 1.0, 5, rng), _table(np.linspace(0, 2, 6), 1.0, 5, rng)
    assert agreement(a, b, draws=300, seed=7) == agreement(a, b, draws=300, seed=7)
    assert agreement(a, b, draws=300, seed=7)["pearson_low"] != agreement(a, b, draws=300, seed=8)["pearson_low"]


TRUE = np.linspace(-3, 3, 15)  # true mean gains of 15 methods on A, 0.43 points apart


def _zero_spearman_order() -> np.ndarray:
    """A permutation of 15 ranks whose Spearman correlation with the identity is exactly 0."""
    rng = np.random.default_rng(0)
    while True:
        p = rng.permutation(15)
        if ((p - np.arange(15)) ** 2).sum() == 15 * (15 ** 2 - 1) / 6:  # 1 - 6 sum d^2 / (n (n^2 - 1)) = 0
            return p


@pytest.mark.parametrize("true_b,low,high", [
    (2 * TRUE + 1, 0.9, 1.0),  # the same order of methods on B: Spearman 1
    (TRUE[_zero_spearman_order()], -0.5, 0.5),  # an order unrelated to A's: Spearman 0
    (-TRUE, -1.0, -0.9),  # the reverse order: Spearman -1
], ids=["same order", "unrelated", "reversed"])
def test_simulated_runs_with_a_known_correlation(true_b, low, high):
    rng = np.random.default_rng(5)
    a, b = _table(TRUE, 0.5, 20, rng), _table(true_b, 0.5, 20, rng)
    agree = agreement(a, b, draws=2000, seed=0)
    true = scipy_stats.spearmanr(TRUE, true_b)[0]
    assert agree["spearman_low"] <= true <= agree["spearman_high"]
    assert low <= agree["spearman"] <= high
    if true == 1:
        assert agree["spearman_low"] > 0.9 and agree["pearson_low"] > 0.9  # the interval lies high
    elif true == -1:
        assert agree["spearman_high"] < -0.9
    else:
        assert agree["spearman_low"] < 0 < agree["spearman_high"]  # the interval holds 0


def test_the_bootstrap_interval_covers_the_true_correlation():
    """200 simulated pairs of runs (15 methods, 10 replicates each, standard error of a mean gain 0.32 points,
    neighbouring true gains 0.43 apart), true Spearman of the population mean gains about 0.5: the 95%
    interval (200 draws) should hold it about 95% of the time."""
    rng = np.random.default_rng(1)
    true_b = None
    for s in itertools.count():
        order = np.random.default_rng(s).permutation(15)
        if abs(scipy_stats.spearmanr(TRUE, TRUE[order])[0] - 0.5) < 0.03:
            true_b = TRUE[order]
            break
    true = scipy_stats.spearmanr(TRUE, true_b)[0]
    cover = 0
    for k in range(200):
        agree = agreement(_table(TRUE, 1.0, 10, rng), _table(true_b, 1.0, 10, rng), draws=200, seed=k)
        cover += agree["spearman_low"] <= true <= agree["spearman_high"]
    assert 0.85 <= cover / 200 <= 1.0


# --------------------------------------------------------------------------- the report

def test_the_report_lists_every_method_and_the_correlation():
    ga, gb = _hand()
    table, agree = compare(ga, gb), agreement(ga, gb, draws=200, seed=0)
    text = to_markdown(table, agree, "Proxy check", ["a note"], labels=("synthetic", "fonts"))
    assert text.startswith("# Proxy check\n\na note  \n")
    assert f"Spearman -0.50 [{agree['spearman_low']:+.2f}, {agree['spearman_high']:+.2f}]" in text
    assert "on A (synthetic, 3 replicates)" in text and "held fixed" in text
    assert "1 hold" in text and "1 flip" in text and "1 tie on both" in text
    assert "| method | A: synthetic | rank A | B: fonts | rank B | conclusions (A / B) | status |" in text
    assert "| flip | +4.00 [+1.52, +6.48] (n=3) | 1 | -5.00 [-7.48, -2.52] (n=3) | 3 | gain / loss | flips |" in text
    assert sum(line.startswith("|") for line in text.splitlines()) == 2 + 3  # header, rule, one line per method
