"""End to end: SIGINT or SIGTERM to the main process of ``python -m benchmarks.run`` while a student trains
(workers 2, loader workers in each job): every process of the run is gone within 10 s, the command exits
with 130 or 143 after one line saying what stopped and how to resume, and the same command then resumes
and gives the rows of an uninterrupted run. The local pool for both signals; Ray (an instance the run
starts) for SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from benchmarks import run
from test_job_death import alive
from tiny_retrieval import tiny_retrieval

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 6
TINY = tiny_retrieval(pretrain=None, student={"train": {"epochs": EPOCHS}}, train={"num_workers": 2},
                      run=["none", "at"], seeds=[0], workers=2, threads=1)
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]
STOP_SECONDS = 10


def _argv(tmp_path, tag, *flags):
    return ["--suite", "retrieval", "--config", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / tag / "results"),
            "--cache-dir", str(tmp_path / tag / "cache"), "--no-progress", *flags]


def _metrics(folder: Path) -> pd.DataFrame:
    runs = pd.read_csv(folder / "results" / "retrieval" / "synthetic" / "runs.csv")
    return runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[METRICS]


def _as_background_job():
    """What a script's shell does to a command it starts with ``&``: SIGINT ignored (Python then keeps
    ignoring it unless the command installs a handler, and ``kill -INT`` did nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start(argv, log: Path):
    """The command, run outside the checkout: its training states are tagged with no commit
    (``unknown``), so that a commit made in the checkout meanwhile does not stop the resume."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.run", *argv], cwd=log.parent, env=env,
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_as_background_job)


def _tree(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The rows of an uninterrupted run of the config (one worker: the rows do not depend on it)."""
    folder = tmp_path_factory.mktemp("whole")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert run.main(_argv(folder, "run", "--workers", "1")) == 0
    return _metrics(folder / "run")


def _interrupt_and_resume(tmp_path, sig, whole, *flags, processes: int = 3):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    log = tmp_path / "stopped.log"
    proc = _start(_argv(tmp_path, "stopped", *flags), log)
    seen: set[int] = set()
    try:
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:  # mid-student: it has saved two epochs
            seen |= _tree(proc.pid)
            if f"at s0: epoch 3/{EPOCHS}" in log.read_text():
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the student was seen mid-run:\n{log.read_text()}"
        seen |= _tree(proc.pid)
        proc.send_signal(sig)
        sent = time.perf_counter()
        code = proc.wait(timeout=60)
        left = alive(seen, within=max(0.0, STOP_SECONDS - (time.perf_counter() - sent)))
        stopped_in = time.perf_counter() - sent
    finally:
        proc.kill()
    output = log.read_text()
    assert code == 128 + sig, output
    assert left == [] and stopped_in < STOP_SECONDS, (left, stopped_in, output)
    assert len(seen) >= processes, f"expected the job processes and their loader workers, saw {sorted(seen)}"
    lines = [line for line in output.splitlines() if "interrupted by" in line]
    name = signal.Signals(sig).name
    assert len(lines) == 1 and lines[0].startswith(f"python -m benchmarks.run: interrupted by {name}"), output
    stopped = re.search(r"finished, (.+?) stopped;", lines[0])  # 'at s0' alone, or with the next job just started
    assert stopped and "'at s0'" in stopped.group(1).split(", "), lines[0]
    assert "rerun the same command to resume" in lines[0], lines[0]
    assert "Traceback" not in output, output

    rerun_log = tmp_path / "rerun.log"
    rerun = _start(_argv(tmp_path, "stopped", *flags), rerun_log)
    assert rerun.wait(timeout=300) == 0, rerun_log.read_text()
    resumed = rerun_log.read_text()
    assert f"at s0: epoch {EPOCHS}/{EPOCHS}" in resumed, resumed
    assert f"at s0: epoch 1/{EPOCHS}" not in resumed, resumed  # it went on from its saved epochs
    assert "teacher s0: epoch" not in resumed  # loaded from the cache
    pd.testing.assert_frame_equal(_metrics(tmp_path / "stopped"), whole)
    return lines[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_local_run_and_the_rerun_resumes(tmp_path, whole, sig):
    line = _interrupt_and_resume(tmp_path, sig, whole)
    assert re.search(r"ended [12] job process(es)? and their loader workers", line), line


def test_sigterm_stops_a_ray_run_and_the_rerun_resumes(tmp_path, whole):
    pytest.importorskip("ray")
    line = _interrupt_and_resume(tmp_path, signal.SIGTERM, whole, "--launcher", "ray", processes=4)
    assert re.search(r"cancelled (1 Ray task \(its worker process|2 Ray tasks \(their worker processes) killed\) "
                     r"and shut down the Ray instance started for the run", line), line


def test_sigterm_stops_a_dry_run_and_its_job_process(tmp_path):
    """A dry run's job runs in a process of its own (forked from a server): it ends with the command."""
    cfg = tiny_retrieval(pretrain=None, run=["at"], seeds=[0], threads=1,  # an epoch of 1000 steps: seconds
                         dataset={"options": {"per_class": 1000}})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    log = tmp_path / "dry.log"
    proc = _start(_argv(tmp_path, "dry", "--dry-run", "--dry-steps", "100000"), log)
    seen: set[int] = set()
    try:
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline and len(seen) < 2:  # the server and a job process
            seen |= _tree(proc.pid)
            time.sleep(0.1)
        time.sleep(0.5)  # the fork server may still be starting the job's process: that is stopped too
        seen |= _tree(proc.pid)
        assert proc.poll() is None and len(seen) >= 2, log.read_text()
        proc.send_signal(signal.SIGTERM)
        sent = time.perf_counter()
        code = proc.wait(timeout=60)
        left = alive(seen, within=max(0.0, STOP_SECONDS - (time.perf_counter() - sent)))
    finally:
        proc.kill()
    output = log.read_text()
    assert code == 143 and left == [], (code, left, output)
    assert "python -m benchmarks.run: interrupted by SIGTERM" in output and "Traceback" not in output, output
