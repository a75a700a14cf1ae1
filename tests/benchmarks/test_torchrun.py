"""End-to-end: ``torchrun --nproc_per_node=2 -m benchmarks.run --suite retrieval`` on tiny data (CPU, gloo).

Checks the multi-process plumbing, not the numbers (tests/engine/test_distributed.py compares
2 processes with 1): rank 0 alone writes the tables, one row per run, one run JSON each, the
cached teacher and the student checkpoints; the config's ``workers: 2`` is forced to 1 with a
log line; a second identical command loads the teacher from the cache and reuses the finished
student runs (their training-state files) instead of training again.
"""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from tiny_retrieval import tiny_retrieval

ROOT = Path(__file__).resolve().parents[2]
TINY = tiny_retrieval(methods={"crd": {"num_negatives": 16, "feat_dim": 8}}, seeds=[0], workers=2)


def _torchrun(tmp_path, config):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "benchmarks.run", "--suite", "retrieval", "--config", str(config), "--methods", "none,rkd,crd",
           "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_torchrun_two_processes_rank0_writes_once(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = _torchrun(tmp_path, config)
    assert out.count("workers 2 -> 1") == 1  # logged by rank 0 only
    assert out.count("# retrieval: synthetic") == 1  # the leaderboard printed once
    assert out.count("teacher seed 0: test recall@1") == 1
    dest = tmp_path / "results" / "retrieval" / "synthetic"
    runs = pd.read_csv(dest / "runs.csv")
    assert sorted(runs["method"]) == ["crd", "none", "rkd", "teacher"]  # one row each
    assert runs["recall@1"].between(0, 1).all()
    assert sorted(p.name.split("-")[0] for p in (dest / "runs").glob("*.json")) == ["crd", "none", "rkd", "teacher"]
    board = pd.read_csv(dest / "leaderboard.csv")
    assert sorted(board["method"]) == ["crd", "none", "rkd", "teacher"]
    cache = tmp_path / "cache"
    assert len(list((cache / "teachers").rglob("*.pt"))) == 1  # the teacher's state file was removed
    students = cache / "students" / "retrieval" / "synthetic"
    assert len(list(students.glob("*.state.pt"))) == 3 and len(list(students.glob("*-s0.pt"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind

    again = _torchrun(tmp_path, config)
    assert again.count("loaded from cache") == 1 and "trained in" not in again
    rerun = pd.read_csv(dest / "runs.csv")
    assert len(rerun) == 4
    assert rerun.set_index("run_id")["recall@1"].to_dict() == runs.set_index("run_id")["recall@1"].to_dict()
