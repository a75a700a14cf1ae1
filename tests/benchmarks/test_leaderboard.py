"""The cross-suite leaderboard: merge rule, aggregation per folder, markdown and plots."""

import json

import pandas as pd
import pytest

from benchmarks import leaderboard
from benchmarks.report.tables import build
from user_error import user_error


def _folder(results, suite, dataset, metric_values, config_hash="c1", commit="abc1234", board=True, extra=None,
            replicates=None, seeds=(0, 1)):
    """A fake <results>/<suite>/<dataset>/ with runs.csv, leaderboard.csv and runs/<id>.json histories."""
    folder = results / suite / dataset
    (folder / "runs").mkdir(parents=True)
    rows = []
    for method, values in metric_values.items():
        for seed in seeds:  # values(seed) -> {metric: value}
            v = values
            run_id = f"{method}-{config_hash}-s{seed}"
            row = {"run_id": run_id, "suite": suite, "dataset": dataset, "teacher": "T",
                   "student": "T" if method == "teacher" else "S", "method": method, "seed": seed, **v(seed),
                   "train_seconds": 1.0, "commit": commit, "config_hash": config_hash,
                   **({"replicates": replicates} if replicates else {})}
            rows.append(row)
            history = [{"epoch": e, "loss/task": 1.0 / e, **({"loss/kd": 0.5 / e} if method == "hmat" else {}),
                        **{f"val/{k}": x for k, x in v(seed).items()}} for e in (1, 2, 3)]
            (folder / "runs" / f"{run_id}.json").write_text(json.dumps({"row": row, "history": history}))
    runs = pd.DataFrame(rows + list(extra or []))
    runs.to_csv(folder / "runs.csv", index=False)
    if board:
        pd.DataFrame({"method": sorted(metric_values), "config_hash": config_hash}).to_csv(
            folder / "leaderboard.csv", index=False)
    return folder


def _retrieval(r1):
    return lambda seed: {"recall@1": r1[seed], "recall@2": r1[seed] + 0.1, "recall@4": r1[seed] + 0.2,
                         "map@r": r1[seed] / 2}


def _classification(top1):
    return lambda seed: {"top1": top1[seed], "top5": top1[seed] + 0.2}


def test_merge_two_suites(tmp_path, capsys):
    results = tmp_path / "results"
    stale = {"run_id": "hmat-old-s0", "suite": "retrieval", "dataset": "synthetic", "teacher": "T", "student": "S",
             "method": "hmat", "seed": 0, "recall@1": 0.01, "recall@2": 0.1, "recall@4": 0.2, "map@r": 0.0,
             "train_seconds": 1.0, "commit": "old0000", "config_hash": "old"}
    _folder(results, "retrieval", "synthetic",
            {"teacher": _retrieval([0.8, 0.9]), "none": _retrieval([0.4, 0.5]), "hmat": _retrieval([0.7, 0.8])},
            extra=[stale])
    _folder(results, "classification", "cifar100",
            {"teacher": _classification([0.7, 0.7]), "none": _classification([0.5, 0.6]),
             "kd": _classification([0.6, 0.6])}, config_hash="c2", commit="def5678", replicates="full")
    assert leaderboard.main(["--results", str(results)]) == 0

    table = pd.read_csv(results / "leaderboard.csv")
    assert set(zip(table["suite"], table["method"])) == {
        ("retrieval", "teacher"), ("retrieval", "none"), ("retrieval", "hmat"),
        ("classification", "teacher"), ("classification", "none"), ("classification", "kd")}
    assert "old" not in set(table["config_hash"].astype(str))  # the stale config is not in the folder's leaderboard
    ret = table[table["suite"] == "retrieval"].set_index("method")
    assert ret.loc["hmat", "primary"] == "recall@1"
    assert ret.loc["hmat", "recall@1_mean"] == pytest.approx(75.0)
    assert ret.loc["hmat", "gain_vs_none"] == pytest.approx(30.0)
    assert ret.loc["hmat", "gap_closed"] == pytest.approx(30.0 / 40.0)
    assert str(ret.loc["hmat", "rank"]) == "1" and str(ret.loc["none", "rank"]) == "2"  # 30, 30 points: significant
    assert ret.loc["hmat", "gain_seeds"] == 2 and ret.loc["hmat", "gain_ci_low"] == pytest.approx(30.0)
    cls = table[table["suite"] == "classification"].set_index("method")
    assert cls.loc["kd", "primary"] == "top1"
    assert cls.loc["kd", "gain_vs_none"] == pytest.approx(5.0)
    assert cls.loc["kd", "gap_closed"] == pytest.approx(5.0 / 15.0, abs=1e-3)

    md = (results / "leaderboard.md").read_text()
    assert "python -m benchmarks.leaderboard" in md
    block = md.split("## retrieval: synthetic")[1]
    assert "Resolving power: median 95% half-width of the gains over none" in block and "points of recall@1" in block
    assert "points of top1" in md.split("## classification: cifar100")[1].split("## ")[0]
    # each section says what its intervals cover: rows without a replicates column were conditional
    assert "Replicates: conditional. The intervals: " in block.split("## ")[0]
    assert "Replicates: full. The intervals: " in md.split("## classification: cifar100")[1].split("## ")[0]
    assert "## retrieval: synthetic" in md and "## classification: cifar100" in md
    assert "`abc1234`" in md and "`def5678`" in md and "old0000" not in md
    for name in ("retrieval_synthetic_recall.png", "retrieval_synthetic_curves.png",
                 "classification_cifar100_topk.png", "classification_cifar100_curves.png"):
        png = results / "plots" / name
        assert png.read_bytes()[:4] == b"\x89PNG", name
    assert not [p for p in results.rglob("*.tmp")]
    assert "wrote" in capsys.readouterr().out


def test_folder_without_leaderboard_keeps_every_config(tmp_path):
    results = tmp_path / "results"
    folder = _folder(results, "retrieval", "synthetic", {"none": _retrieval([0.4, 0.5])}, board=False)
    more = pd.read_csv(folder / "runs.csv").assign(config_hash="c9", run_id=lambda d: d["run_id"] + "x")
    pd.concat([pd.read_csv(folder / "runs.csv"), more]).to_csv(folder / "runs.csv", index=False)
    table, md = build(results, "cmd", plots=False)
    assert sorted(table["config_hash"].astype(str)) == ["c1", "c9"]


def test_no_results_is_a_clear_error(tmp_path, capsys):
    assert "no results to merge" in user_error(capsys, leaderboard.main, ["--results", str(tmp_path)])


def test_rebuild_rewrites_a_folder_from_its_runs_csv(tmp_path, capsys):
    results = tmp_path / "results"
    stale = {"run_id": "hmat-old-s0", "suite": "retrieval", "dataset": "synthetic", "teacher": "T", "student": "S",
             "method": "hmat", "seed": 0, "recall@1": 0.01, "recall@2": 0.1, "recall@4": 0.2, "map@r": 0.0,
             "train_seconds": 1.0, "commit": "old0000", "config_hash": "old"}
    folder = _folder(results, "retrieval", "synthetic",
                     {"teacher": _retrieval([0.8, 0.9]), "none": _retrieval([0.4, 0.5]),
                      "at": _retrieval([0.5, 0.55]), "hmat": _retrieval([0.7, 0.8])}, extra=[stale])
    (folder / "leaderboard.md").write_text("# retrieval: synthetic\n\nCommand: `the suite run`  \nCommit: `abc`.  \n\n"
                                           "| method |\n|---|\n| old |\n\nold note under the table\n")
    assert leaderboard.main(["--rebuild", str(folder)]) == 0
    board = pd.read_csv(folder / "leaderboard.csv").set_index("method")
    assert sorted(board.index) == ["at", "hmat", "none", "teacher"]  # the stale config stays out
    for col in ("gain_vs_none", "gain_vs_none_std", "gain_ci_low", "gain_ci_high", "gain_ci_halfwidth", "gain_seeds",
                "rank_low", "rank_high", "rank"):
        assert col in board.columns, col
    pairs = pd.read_csv(folder / "pairwise.csv")
    assert list(pairs.columns) == ["suite", "dataset", "teacher", "student", "method_a", "config_hash_a", "method_b",
                                   "config_hash_b", "metric", "mean_diff", "sd_diff", "ci_low", "ci_high", "halfwidth",
                                   "n_seeds", "significant"]
    assert len(pairs[pairs["metric"] == "recall@1"]) == 3 and "teacher" not in set(pairs["method_a"])
    md = (folder / "leaderboard.md").read_text()
    assert md.startswith("# retrieval: synthetic\n\nCommand: `the suite run`  \nCommit: `abc`.  \n\n| method |")
    assert "old note" not in md and "| old |" not in md and "Resolving power" in md
    assert not [p for p in results.rglob("*.tmp")]
    assert "pairwise.csv" in capsys.readouterr().out


def test_pool_joins_runs_of_one_config_on_disjoint_replicates(tmp_path, capsys):
    from scipy import stats

    first = _folder(tmp_path / "a", "retrieval", "fonts", {"teacher": lambda s: {"recall@1": 0.9, "map@r": 0.3},
                                                            "none": lambda s: {"recall@1": 0.5 + s / 100, "map@r": 0.1},
                                                            "rkd": lambda s: {"recall@1": 0.52 + s / 50, "map@r": 0.12}})
    (first / "leaderboard.md").write_text("# retrieval: fonts\n\nCommand: `the run`  \nCommit: `abc`; seeds [0, 1]; metrics in % (over seeds).  \n"
                                          "Replicates: full.  \n\n| method |\n")
    second = _folder(tmp_path / "b", "retrieval", "fonts", {"teacher": lambda s: {"recall@1": 0.9, "map@r": 0.3},
                                                             "none": lambda s: {"recall@1": 0.5 + s / 100, "map@r": 0.1},
                                                             "rkd": lambda s: {"recall@1": 0.5 - s / 80, "map@r": 0.1}},
                     seeds=(6, 7), commit="def5678")
    out = tmp_path / "pooled" / "retrieval" / "fonts"
    assert leaderboard.main(["--pool", str(out), str(first), str(second)]) == 0
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    gains = [100 * ((0.52 + s / 50) - (0.5 + s / 100)) for s in (0, 1)] + \
            [100 * ((0.5 - s / 80) - (0.5 + s / 100)) for s in (6, 7)]
    mean = sum(gains) / 4
    half = stats.t.ppf(0.975, 3) * pd.Series(gains).std() / 2
    assert board.loc["rkd", "gain_vs_none"] == pytest.approx(mean, abs=1e-3)
    assert board.loc["rkd", "gain_ci_halfwidth"] == pytest.approx(half, abs=1e-3)
    assert board.loc["rkd", "gain_seeds"] == 4 and len(pd.read_csv(out / "runs.csv")) == 12
    md = (out / "leaderboard.md").read_text()
    assert f"seeds [0, 1]; {second} seeds [6, 7] (rows from commits abc1234, def5678)" in md
    assert "Replicates: full." in md and "Commit: `abc`" not in md and "`the run`" not in md
    assert "\nMetrics in % (over seeds).  \n" in md

    err = user_error(capsys, leaderboard.main, ["--pool", str(tmp_path / "x"), str(first), str(first)])
    assert "seeds [0, 1] appear in more than one folder" in err  # the same replicates twice are not independent
    other = _folder(tmp_path / "c", "retrieval", "fonts", {"none": lambda s: {"recall@1": 0.5, "map@r": 0.1}},
                    config_hash="c2", seeds=(9,))
    assert user_error(capsys, leaderboard.main, ["--pool", str(tmp_path / "y"), str(first), str(other)]) == (
        f"error: --pool: every folder must hold runs of one config; none has config hash c1 in {first} but c2 in "
        f"{other}")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before anything is written
    only_none = _folder(tmp_path / "d", "retrieval", "fonts", {"none": lambda s: {"recall@1": 0.5, "map@r": 0.1}},
                        seeds=(9,))
    err = user_error(capsys, leaderboard.main, ["--pool", str(tmp_path / "z"), str(first), str(only_none)])
    assert "expected none and at least one other method in every folder" in err


def test_pool_keeps_the_methods_every_folder_ran(tmp_path):
    """A rerun of a few methods of a zoo pools with the zoo on those methods; the others are left out, and said."""
    runs = {"teacher": lambda s: {"recall@1": 0.9, "map@r": 0.3}, "none": lambda s: {"recall@1": 0.5, "map@r": 0.1},
            "rkd": lambda s: {"recall@1": 0.52 + s / 100, "map@r": 0.12}, "at": lambda s: {"recall@1": 0.4, "map@r": 0.1}}
    zoo = _folder(tmp_path / "a", "retrieval", "fonts", runs)
    rerun = _folder(tmp_path / "b", "retrieval", "fonts", {m: runs[m] for m in ("teacher", "none", "rkd")}, seeds=(6, 7))
    out = tmp_path / "pooled" / "retrieval" / "fonts"
    assert leaderboard.main(["--pool", str(out), str(zoo), str(rerun)]) == 0
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert sorted(board.index) == ["none", "rkd", "teacher"] and board.loc["rkd", "gain_seeds"] == 4
    gains = [100 * (0.02 + s / 100) for s in (0, 1, 6, 7)]
    assert board.loc["rkd", "gain_vs_none"] == pytest.approx(sum(gains) / 4, abs=1e-3)
    assert "Left out, not run in every pooled folder: at." in (out / "leaderboard.md").read_text()
