"""Paired intervals over seeds, pairwise comparisons and rank ranges (benchmarks.report.stats), and their use in
the leaderboard: simulated tables with a known true gain, a missing seed, a single seed."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from benchmarks.report.aggregate import leaderboard, pairwise_table, to_markdown
from benchmarks.report.stats import (
    is_significant,
    lower_bound,
    paired_interval,
    pairwise,
    rank_label,
    rank_ranges,
    upper_bound,
)


def _scores(rng, n_seeds, gains, seed_sd=2.0, noise_sd=0.5):
    """Seed x method table: a seed effect shared by every method (initial weights, batch order) plus
    each method's true gain and its own noise."""
    seed_effect = rng.normal(0, seed_sd, size=(n_seeds, 1))
    values = seed_effect + np.asarray(gains, float)[None, :] + rng.normal(0, noise_sd, size=(n_seeds, len(gains)))
    return pd.DataFrame(values, columns=[f"m{i}" for i in range(len(gains))])


def test_paired_interval_by_hand():
    iv = paired_interval([1.0, 2.0, 3.0])
    half = scipy_stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd of 1, 2, 3 is 1
    assert iv["mean"] == pytest.approx(2.0) and iv["sd"] == pytest.approx(1.0) and iv["n"] == 3
    assert iv["halfwidth"] == pytest.approx(half) and half == pytest.approx(2.484, abs=1e-3)  # t = 4.30
    assert (iv["low"], iv["high"]) == pytest.approx((2.0 - half, 2.0 + half))
    assert paired_interval([1.0, np.nan, 3.0])["n"] == 2  # NaN = a seed one side lacks
    assert upper_bound([-1.0, -1.0, -1.0]) == -1.0 and lower_bound([0.0, 0.0]) == 0.0  # sd 0: the mean
    assert upper_bound([1.0, 2.0, 3.0]) == pytest.approx(2.0 + scipy_stats.t.ppf(0.95, 2) / math.sqrt(3))
    assert is_significant(0.1, 2.0) and is_significant(-2.0, -0.1) and not is_significant(-0.1, 2.0)
    assert not is_significant(np.nan, np.nan)
    assert rank_label(2, 2) == "2" and rank_label(1, 3) == "1-3"


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_intervals_cover_the_true_gain_95_percent_of_the_time(n_seeds):
    rng = np.random.default_rng(1234 + n_seeds)
    true_gain, covered, unpaired_halfwidth, paired_halfwidth = 1.0, 0, [], []
    for _ in range(2000):
        scores = _scores(rng, n_seeds, [true_gain, 0.0])
        iv = paired_interval(scores["m0"] - scores["m1"])
        covered += iv["low"] <= true_gain <= iv["high"]
        paired_halfwidth.append(iv["halfwidth"])
        unpaired_halfwidth.append(scipy_stats.t.ppf(0.975, n_seeds - 1)
                                  * math.sqrt((scores["m0"].var() + scores["m1"].var()) / n_seeds))
    assert 0.93 <= covered / 2000 <= 0.97
    # the shared seed effect (sd 2) cancels in the pairs: the paired interval is far narrower
    assert np.median(paired_halfwidth) < 0.5 * np.median(unpaired_halfwidth)


@pytest.mark.parametrize("n_methods", [3, 4])
def test_no_true_gain_ties_every_rank(n_methods):
    rng = np.random.default_rng(7 + n_methods)
    all_tied = 0
    for _ in range(300):
        scores = _scores(rng, 3, [0.0] * n_methods)
        ranks = rank_ranges(scores.columns, pairwise(scores))
        all_tied += (ranks["rank"] == f"1-{n_methods}").all()
        assert (ranks["rank_low"] <= ranks["rank_high"]).all()
    assert all_tied / 300 >= 0.65  # about 75-85%: each of the pairs is a 5% false alarm


def test_a_large_true_gain_ranks_the_better_method_alone_first():
    rng = np.random.default_rng(3)
    for _ in range(50):
        scores = _scores(rng, 3, [0.0, 10.0, 0.0, 0.0])  # m1 is 10 points better, noise 0.5
        ranks = rank_ranges(scores.columns, pairwise(scores))
        assert ranks.loc["m1", "rank"] == "1"
        assert (ranks.drop(index="m1")["rank_low"] >= 2).all()


def _runs(values: dict, seeds=None) -> pd.DataFrame:
    """runs.csv rows from {method: [recall@1 per seed]} (fractions); NaN = the seed did not run."""
    rows = []
    for method, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            rows.append({"suite": "retrieval", "dataset": "d", "teacher": "T",
                         "student": "T" if method == "teacher" else "S", "method": method, "seed": seed,
                         "recall@1": v, "map@r": v / 2, "train_seconds": 1.0, "config_hash": f"h-{method}"})
    return pd.DataFrame(rows)


def test_pairing_by_seed_matters():
    # seeds differ by 10 points, the method is 1 point better on every seed
    runs = _runs({"teacher": [0.95, 0.95, 0.95], "none": [0.70, 0.80, 0.90], "at": [0.71, 0.812, 0.909]})
    board = leaderboard(runs).set_index("method")
    assert board.loc["at", "recall@1_std"] > 9  # each method's own std over seeds is large
    assert board.loc["at", "gain_vs_none"] == pytest.approx(1.033333, abs=1e-4)
    assert board.loc["at", "gain_ci_low"] > 0  # the paired interval excludes 0
    unpaired = scipy_stats.t.ppf(0.975, 2) * math.sqrt(
        (board.loc["at", "recall@1_std"] ** 2 + board.loc["none", "recall@1_std"] ** 2) / 3)
    assert unpaired > 10 * board.loc["at", "gain_ci_halfwidth"]  # an unpaired interval would span 0 widely
    assert board.loc["at", "rank"] == "1" and board.loc["none", "rank"] == "2"
    pairs = pairwise_table(runs)
    row = pairs[(pairs["metric"] == "recall@1")].iloc[0]
    assert (row["method_a"], row["method_b"], bool(row["significant"])) == ("none", "at", True)
    assert row["mean_diff"] == pytest.approx(-1.033333, abs=1e-4) and row["n_seeds"] == 3


def test_leaderboard_gain_is_the_paired_interval():
    rng = np.random.default_rng(5)
    scores = _scores(rng, 5, [0.0, 0.01, 0.02], seed_sd=0.02, noise_sd=0.005) + 0.5
    runs = _runs({"teacher": [0.9] * 5, "none": list(scores["m0"]), "at": list(scores["m1"]),
                  "hmat": list(scores["m2"])})
    board = leaderboard(runs).set_index("method")
    iv = paired_interval(100 * (scores["m2"] - scores["m0"]))
    assert board.loc["hmat", "gain_vs_none"] == pytest.approx(iv["mean"])
    assert board.loc["hmat", "gain_vs_none_std"] == pytest.approx(iv["sd"])
    assert (board.loc["hmat", "gain_ci_low"], board.loc["hmat", "gain_ci_high"]) == pytest.approx((iv["low"], iv["high"]))
    assert board.loc["hmat", "gain_ci_halfwidth"] == pytest.approx(iv["halfwidth"])
    assert board.loc["hmat", "gain_seeds"] == 5
    pairs = pairwise_table(runs)
    assert len(pairs) == 3 * 2  # 3 students (none included): 3 pairs, for recall@1 and map@r
    assert list(pairs["metric"].unique()) == ["recall@1", "map@r"]
    md = to_markdown(leaderboard(runs), "t", primary="recall@1")
    half = board.loc[["at", "hmat"], "gain_ci_halfwidth"].median()
    assert (f"Resolving power: median 95% half-width of the gains over none {half:.2f} points of recall@1 "
            f"(Student t over 5 paired replicates)") in md
    low, high = board.loc["hmat", "gain_ci_low"], board.loc["hmat", "gain_ci_high"]
    assert f"{board.loc['hmat', 'gain_vs_none']:+.2f} [{low:+.2f}, {high:+.2f}] |" in md


def test_a_missing_seed_pairs_on_the_shared_seeds_and_shows_the_count():
    runs = _runs({"teacher": [0.9, 0.9, 0.9], "none": [0.40, 0.50, 0.60], "at": [0.42, 0.53, None],
                  "hmat": [0.45, 0.55, 0.66]})
    board = leaderboard(runs).set_index("method")
    # paired: (42-40, 53-50) = 2, 3 -> mean 2.5, not the difference of the means (47.5 - 50 = -2.5)
    assert board.loc["at", "gain_vs_none"] == pytest.approx(2.5)
    assert board.loc["at", "gain_seeds"] == 2 and board.loc["at", "seeds"] == 2
    assert board.loc["hmat", "gain_seeds"] == 3
    md = to_markdown(leaderboard(runs), "t")
    at_line = next(line for line in md.splitlines() if line.startswith("| at |"))
    assert "(n=2)" in at_line  # fewer seeds paired than none ran
    hmat_line = next(line for line in md.splitlines() if line.startswith("| hmat |"))
    assert "(n=" not in hmat_line
    assert "Student t over 2-3 paired replicates" in md
    pairs = pairwise_table(runs, metrics=["recall@1"]).set_index(["method_a", "method_b"])
    assert pairs.loc[("none", "at"), "n_seeds"] == 2 and pairs.loc[("none", "hmat"), "n_seeds"] == 3


def test_fewer_than_two_seeds_gives_empty_intervals_and_a_note():
    runs = _runs({"teacher": [0.9], "none": [0.40], "at": [0.45], "hmat": [0.50]})
    board = leaderboard(runs).set_index("method")
    assert board.loc["hmat", "gain_vs_none"] == pytest.approx(10.0)
    for col in ("gain_vs_none_std", "gain_ci_low", "gain_ci_high", "gain_ci_halfwidth"):
        assert board[col].isna().all(), col
    assert set(board.loc[["none", "at", "hmat"], "rank"]) == {"1-3"}  # nothing can be told apart
    md = to_markdown(leaderboard(runs), "t", primary="recall@1")
    assert "intervals need at least 2 replicates (seeds); this run has 1" in md
    assert "| +10.00 |" in md
    pairs = pairwise_table(runs)
    assert pairs["ci_low"].isna().all() and not pairs["significant"].any()
    # no none row at all, or no student: still no crash
    assert leaderboard(_runs({"teacher": [0.9], "at": [0.4]}))["gain_vs_none"].isna().all()
    assert "no `none` row" in to_markdown(leaderboard(_runs({"teacher": [0.9], "at": [0.4]})), "t")
    to_markdown(leaderboard(_runs({"teacher": [0.9, 0.8]})), "t")
