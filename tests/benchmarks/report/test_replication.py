"""The replication check: two runs on disjoint replicates, compared method by method
(benchmarks.report.replication, python -m benchmarks.replicate)."""

import math

import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats
from tiny_retrieval import tiny_retrieval

from benchmarks import replicate
from benchmarks.report.aggregate import tables
from benchmarks.report.replication import compare, conclusion, difference, gains_over_none, status, summary


def _runs(scores: dict, seeds) -> pd.DataFrame:
    rows = []
    for method, values in scores.items():
        for seed, v in zip(seeds, values):
            rows.append({"suite": "retrieval", "dataset": "synthetic", "teacher": "t", "student": "s", "method": method,
                         "config_hash": method, "seed": seed, "recall@1": v, "train_seconds": 1.0})
    return pd.DataFrame(rows)


def test_gains_over_none_read_either_side_of_a_pair():
    runs = _runs({"none": [0.50, 0.52, 0.51], "at": [0.53, 0.54, 0.55], "rkd": [0.48, 0.505, 0.485]}, [0, 1, 2])
    _, pairs = tables(runs)
    gains = gains_over_none(pairs).set_index("method")
    assert gains.loc["at", "gain"] == pytest.approx(100 * (0.03 + 0.02 + 0.04) / 3)
    assert gains.loc["rkd", "gain"] == pytest.approx(100 * (-0.02 - 0.015 - 0.025) / 3)
    assert gains.loc["rkd", "low"] < gains.loc["rkd", "high"] < 0  # a loss, its interval below 0
    assert set(gains.index) == {"at", "rkd"}  # at vs rkd is not a gain over none


def test_difference_is_welchs_interval_computed_by_hand():
    g1, sd1, n1, g2, sd2, n2 = 1.0, 0.6, 5, -0.2, 0.9, 8
    d = difference(g1, sd1, n1, g2, sd2, n2)
    v1, v2 = sd1 ** 2 / n1, sd2 ** 2 / n2
    df = (v1 + v2) ** 2 / (v1 ** 2 / 4 + v2 ** 2 / 7)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    assert d["diff"] == pytest.approx(1.2) and d["df"] == pytest.approx(df)
    assert (d["low"], d["high"]) == pytest.approx((1.2 - half, 1.2 + half))
    assert d["z"] == pytest.approx(1.2 / math.sqrt(v1 + v2))
    assert math.isnan(difference(1.0, float("nan"), 1, 0.0, 0.5, 5)["low"])  # one replicate: no interval


def test_welch_interval_covers_a_zero_difference_95_percent_of_the_time():
    """Simulation with a known answer: two independent runs of the same method (true difference 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    outside = 0
    for _ in range(2000):
        a, b = rng.normal(0.3, 0.8, 6), rng.normal(0.3, 0.8, 6)
        d = difference(a.mean(), a.std(ddof=1), 6, b.mean(), b.std(ddof=1), 6)
        outside += not d["low"] <= 0 <= d["high"]
    assert 0.03 <= outside / 2000 <= 0.07


def test_status_names_contradictions_and_conclusions_of_one_run_only():
    assert conclusion(0.1, 0.5) == "gain" and conclusion(-0.5, -0.1) == "loss" and conclusion(-0.1, 0.1) == "tie"
    assert status("gain", "loss") == status("loss", "gain") == "contradicted"
    assert status("gain", "gain") == "replicated" and status("gain", "tie") == "not replicated"
    assert status("tie", "tie") == "tie" and status("none", "gain") == "no interval"


def test_compare_finds_the_contradiction_between_two_runs():
    first = _runs({"none": [0.50, 0.52, 0.51, 0.49], "at": [0.53, 0.55, 0.54, 0.52], "rkd": [0.50, 0.52, 0.51, 0.50]},
                  [0, 1, 2, 3])
    second = _runs({"none": [0.50, 0.52, 0.51, 0.49], "at": [0.47, 0.49, 0.48, 0.46], "rkd": [0.50, 0.53, 0.51, 0.49]},
                   [4, 5, 6, 7])
    table = compare(tables(first)[1], tables(second)[1]).set_index("method")
    assert table.loc["at", "status"] == "contradicted" and bool(table.loc["at", "outside"])
    assert table.loc["at", "diff"] == pytest.approx(6.0)  # +3 points against -3
    assert table.loc["rkd", "status"] == "tie" and not table.loc["rkd", "outside"]
    s = summary(table.reset_index())
    assert (s["comparisons"], s["outside"], s["contradictions"]) == (2, 1, 1)


def _tiny(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_retrieval(run=["none", "at"], seeds=[0, 1])))
    return ["--config", str(config), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--workers", "1"]


def test_overlapping_or_repeated_seeds_are_one_line_errors(tmp_path, capsys):
    flags = _tiny(tmp_path)
    assert replicate.main(["--out", str(tmp_path / "out"), "--second-seeds", "1,2", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "share [1]" in err and "disjoint" in err
    assert replicate.main(["--out", str(tmp_path / "out"), "--seeds", "3,3", *flags]) == 2
    assert "listed twice" in capsys.readouterr().err
    assert replicate.main(["--out", str(tmp_path / "out"), "--dry-run", *flags]) == 2
    assert replicate.main(["--out", str(tmp_path / "out"), "--methods", "at", *flags]) == 2  # no gains without none
    assert "has no none" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # nothing ran


def test_replication_end_to_end_on_tiny_settings(tmp_path, capsys):
    out = tmp_path / "out"
    assert replicate.main(["--out", str(out), *_tiny(tmp_path)]) == 0
    first, second = out / "first" / "retrieval" / "synthetic", out / "second" / "retrieval" / "synthetic"
    runs1, runs2 = pd.read_csv(first / "runs.csv"), pd.read_csv(second / "runs.csv")
    assert set(runs1["seed"]) == {0, 1} and set(runs2["seed"]) == {2, 3}  # the next seeds, disjoint
    table = pd.read_csv(out / "retrieval_synthetic.csv")
    assert set(table["method"]) == {"at"} and "recall@1" in set(table["metric"])
    row = table.set_index("metric").loc["recall@1"]
    for dest, side in ((first, "1"), (second, "2")):
        board = pd.read_csv(dest / "leaderboard.csv").set_index("method")
        assert row[f"gain_{side}"] == pytest.approx(board.loc["at", "gain_vs_none"], abs=1e-4)
    report = (out / "retrieval_synthetic.md").read_text()
    assert "differences** lie outside" in report and "Contradictions:" in report
    assert "python -m benchmarks.replicate" in report and "first run seeds [0, 1]" in report
    assert (second / "timing.json").is_file()  # the second run's wall time, for bench_frontier


def test_an_existing_run_is_the_first_run_when_its_rows_are_of_the_config(tmp_path, capsys):
    from benchmarks import run

    flags = _tiny(tmp_path)
    done = tmp_path / "done"
    assert run.main(["--out", str(done), "--seeds", "0,1", *flags]) == 0
    folder = done / "retrieval" / "synthetic"
    before = (folder / "runs.csv").read_text()
    out = tmp_path / "out"
    assert replicate.main(["--first", str(folder), "--out", str(out), *flags]) == 0
    assert (folder / "runs.csv").read_text() == before  # the first run is read, not rerun
    assert not (out / "first").exists()
    assert set(pd.read_csv(out / "second" / "retrieval" / "synthetic" / "runs.csv")["seed"]) == {2, 3}
    report = (out / "retrieval_synthetic.md").read_text()
    assert f"first run seeds [0, 1] ({folder})" in report
    # a folder that ran more methods (a zoo) is checked on the methods the config runs; the others are left out
    # (the second run's none of seeds 2 and 3 comes from the cache of the run above: nothing is trained)
    out_none = tmp_path / "out-none"
    assert replicate.main(["--first", str(folder), "--out", str(out_none), "--methods", "none", *flags]) == 0
    assert set(pd.read_csv(out_none / "second" / "retrieval" / "synthetic" / "runs.csv")["method"]) <= {"teacher",
                                                                                                        "none"}
    assert f"first run seeds [0, 1] ({folder})" in (out_none / "retrieval_synthetic.md").read_text()
    # another config (another weight of at) gives other run ids: refused before any training
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(tiny_retrieval(run=["none", "at"], seeds=[0, 1], methods={"at": {"beta": 7}})))
    flags2 = ["--config", str(other), *flags[2:]]
    assert replicate.main(["--first", str(folder), "--out", str(tmp_path / "out2"), *flags2]) == 2
    err = capsys.readouterr().err
    assert "not of this config" in err and not (tmp_path / "out2").exists()
    assert replicate.main(["--first", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out3"), *flags]) == 2
    assert "no runs.csv and pairwise.csv" in capsys.readouterr().err
