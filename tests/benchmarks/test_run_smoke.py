"""End-to-end: the runner on tiny generated data, every method, teacher cache reused."""

import json

import pandas as pd
import pytest
import yaml

from benchmarks import run
from tiny_retrieval import tiny_retrieval

TINY = tiny_retrieval(methods={"crd": {"num_negatives": 16, "feat_dim": 8}}, seeds=[0, 1], workers=1)


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _run(tmp_path, config, *extra):
    argv = ["--suite", "retrieval", "--config", str(config), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]
    assert run.main(argv) == 0
    return tmp_path / "results" / "retrieval" / "synthetic"


def test_runner_writes_runs_and_leaderboard(tmp_path, tiny_config, capsys):
    dest = _run(tmp_path, tiny_config)
    runs = pd.read_csv(dest / "runs.csv")
    assert sorted(runs["method"].unique()) == ["at", "crd", "hmat", "none", "rkd", "teacher"]
    assert len(runs) == 2 * 6  # five students and the teacher, for each of two seeds
    for col in ["suite", "dataset", "teacher", "student", "method", "seed", "recall@1", "recall@2", "recall@4",
                "recall@8", "map@r", "r_precision", "train_seconds", "commit", "config_hash"]:
        assert col in runs.columns, col
    assert runs["recall@1"].between(0, 1).all()
    assert (runs["recall@1"] <= runs["recall@8"]).all()
    board = pd.read_csv(dest / "leaderboard.csv")
    assert set(board["method"]) == {"teacher", "none", "at", "rkd", "crd", "hmat"}
    assert (board["seeds"] == 2).all()
    none = board.set_index("method").loc["none"]
    sub = runs[runs["method"] == "none"]["recall@1"]
    assert none["recall@1_mean"] == pytest.approx(100 * sub.mean(), abs=1e-3)
    assert none["recall@1_std"] == pytest.approx(100 * sub.std(ddof=1), abs=1e-3)
    assert "| teacher |" in (dest / "leaderboard.md").read_text()
    assert {"gain_ci_low", "gain_ci_high", "gain_ci_halfwidth", "gain_seeds", "rank_low", "rank_high"} <= set(board.columns)
    assert (board.loc[board["method"] != "teacher", "gain_seeds"] == 2).all()
    pairs = pd.read_csv(dest / "pairwise.csv")  # every pair of the five students, per metric, beside the leaderboard
    assert len(pairs[pairs["metric"] == "recall@1"]) == 10 and (pairs["n_seeds"] == 2).all()
    assert "Resolving power" in (dest / "leaderboard.md").read_text()
    saved = json.loads(next((dest / "runs").glob("hmat-*-s0.json")).read_text())
    assert saved["config"]["methods"]["hmat"]["tau_pos"] == 0.1
    assert saved["history"][0]["epoch"] == 1 and "loss/pos1" in saved["history"][0]
    assert "retrieval: synthetic" in capsys.readouterr().out


def test_teacher_is_cached_and_rerun_replaces_rows(tmp_path, tiny_config, capsys):
    _run(tmp_path, tiny_config, "--methods", "none", "--seeds", "0")
    capsys.readouterr()
    dest = _run(tmp_path, tiny_config, "--methods", "none", "--seeds", "0")
    assert "loaded from cache" in capsys.readouterr().out
    runs = pd.read_csv(dest / "runs.csv")
    assert len(runs) == 2  # the rerun replaced the same run ids instead of duplicating them


def test_same_seed_same_result(tmp_path, tiny_config):
    a = _run(tmp_path / "a", tiny_config, "--methods", "none", "--seeds", "0")
    b = _run(tmp_path / "b", tiny_config, "--methods", "none", "--seeds", "0")
    ra, rb = pd.read_csv(a / "runs.csv"), pd.read_csv(b / "runs.csv")
    assert ra["recall@1"].tolist() == rb["recall@1"].tolist()


def test_ablation_suite_runs_named_variants(tmp_path, tiny_config):
    argv = ["--suite", "hmat-ablation", "--config", str(tiny_config), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--seeds", "0",
            "--methods", "pos-only,cha-everywhere"]
    assert run.main(argv) == 0
    dest = tmp_path / "results" / "hmat-ablation" / "synthetic"
    runs = pd.read_csv(dest / "runs.csv")
    assert set(runs["method"]) == {"teacher", "pos-only", "cha-everywhere"}
    saved = json.loads(next((dest / "runs").glob("cha-everywhere-*.json")).read_text())
    assert {"loss/cha1", "loss/cha4"} <= set(saved["history"][0]) and "loss/pos1" not in saved["history"][0]


def test_bad_arguments_give_clear_errors(tmp_path, tiny_config, capsys):
    def error_of(*argv):
        capsys.readouterr()
        assert run.main(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        return err

    assert "unknown suite 'segmentation'" in error_of("--suite", "segmentation")
    common = ["--config", str(tiny_config), "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c")]
    assert "run[1]: unknown name 'bogus'" in error_of(*common, "--methods", "none,bogus")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert "mapping" in error_of("--config", str(bad))
    assert not (tmp_path / "results").exists() and not (tmp_path / "c").exists()  # nothing written


def test_visualize_draws_from_the_run_checkpoints(tmp_path, tiny_config):
    from benchmarks import visualize

    _run(tmp_path, tiny_config, "--methods", "none,hmat", "--seeds", "0")
    out = tmp_path / "maps.png"
    assert visualize.main(["--config", str(tiny_config), "--cache-dir", str(tmp_path / "cache"),
                           "--images", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert visualize.main(["--config", str(tiny_config), "--cache-dir", str(tmp_path / "cache"), "--seed", "5",
                           "--out", str(out)]) == 2  # no cached networks for seed 5: nothing is trained
