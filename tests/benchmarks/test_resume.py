"""A killed suite run resumes where it stopped and ends with the metrics of an uninterrupted
run; a pool of workers gives the same rows as one process; --index adds approximate recall."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from benchmarks import run
from tiny_retrieval import tiny_retrieval
from user_error import user_error

ROOT = Path(__file__).resolve().parents[2]
TINY = tiny_retrieval(student={"train": {"epochs": 6}}, run=["none", "at"], seeds=[0], workers=1)
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]


def _argv(tmp_path, config, tag):
    return ["--suite", "retrieval", "--config", str(config), "--out", str(tmp_path / tag / "results"),
            "--cache-dir", str(tmp_path / tag / "cache"), "--no-progress"]


def _metrics(tmp_path, tag):
    runs = pd.read_csv(tmp_path / tag / "results" / "retrieval" / "synthetic" / "runs.csv")
    return runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[METRICS]


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _in_progress_state(cache: Path):
    """A student's training state saved after an epoch of an unfinished run, if any."""
    for path in (cache / "students").rglob("at-*.state.pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # being replaced right now
            continue
        if not state.get("complete") and state.get("epoch", 0) >= 2:
            return state
    return None


def test_kill_minus_nine_then_rerun_equals_an_uninterrupted_run(tmp_path, config, monkeypatch):
    assert run.main(_argv(tmp_path, config, "whole")) == 0

    argv = [sys.executable, "-m", "benchmarks.run", *_argv(tmp_path, config, "killed")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    state = None
    while state is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        state = _in_progress_state(tmp_path / "killed" / "cache")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state is not None, "the run ended before a mid-run state of the 'at' student was seen"
    assert proc.returncode == -signal.SIGKILL
    stopped_after = _in_progress_state(tmp_path / "killed" / "cache")["epoch"]  # what the kill left on disk

    from retrieval.engine import trainer
    epochs_trained = []
    real_loader = trainer.make_train_loader
    monkeypatch.setattr(trainer, "make_train_loader", lambda *a: epochs_trained.append(1) or real_loader(*a))
    assert run.main(_argv(tmp_path, config, "killed")) == 0
    # the teacher and the finished 'none' student are not retrained; 'at' trains only its remaining epochs
    assert len(epochs_trained) == TINY["student"]["train"]["epochs"] - stopped_after
    pd.testing.assert_frame_equal(_metrics(tmp_path, "killed"), _metrics(tmp_path, "whole"))


def test_two_workers_give_the_rows_of_one(tmp_path, config):
    assert run.main(_argv(tmp_path, config, "one") + ["--seeds", "0,1", "--epochs", "2"]) == 0
    assert run.main(_argv(tmp_path, config, "two") + ["--seeds", "0,1", "--epochs", "2", "--workers", "2"]) == 0
    pd.testing.assert_frame_equal(_metrics(tmp_path, "two"), _metrics(tmp_path, "one"))


def test_index_option_adds_approximate_recall(tmp_path, config):
    assert run.main(_argv(tmp_path, config, "ann") + ["--epochs", "1", "--index", "ivf,hnsw"]) == 0
    runs = pd.read_csv(tmp_path / "ann" / "results" / "retrieval" / "synthetic" / "runs.csv")
    for index in ("ivf", "hnsw"):
        assert runs[f"{index}_recall@1"].between(0, 1).all()
    board = pd.read_csv(tmp_path / "ann" / "results" / "retrieval" / "synthetic" / "leaderboard.csv")
    assert "ivf_recall@1_mean" in board.columns


def test_bad_index_name_is_refused(tmp_path, config, capsys):
    assert "eval.index" in user_error(capsys, run.main, _argv(tmp_path, config, "bad") + ["--index", "lsh"])
