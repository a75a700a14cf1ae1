"""End to end: a job process of ``python -m benchmarks.run`` (workers 2, 2 loader workers per job)
killed with SIGKILL mid-epoch stops the run within seconds with one line naming the job, leaves
no process behind, and the same command then resumes and gives the rows of an uninterrupted run."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

from benchmarks import run
from test_job_death import Descendants, alive
from tiny_retrieval import tiny_retrieval

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 6
TINY = tiny_retrieval(pretrain=None, student={"train": {"epochs": EPOCHS}}, train={"num_workers": 2},
                      run=["at"], seeds=[0, 1], workers=2)
STUDENTS = ["at s0", "at s1"]
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]
DIED = re.compile(r"error: job 'at s(0|1)' \(suite retrieval, method at, seed \1\) was killed by SIGKILL "
                  r"\(possibly out of memory\) after reaching [\d.]+ [MG]B RSS( with its \d+ loader workers?)?"
                  r"(, [^;]*)?; "
                  r"the other jobs were stopped; rerun the same command to resume")


def _argv(tmp_path, config, tag):
    return ["--suite", "retrieval", "--config", str(config), "--out", str(tmp_path / tag / "results"),
            "--cache-dir", str(tmp_path / tag / "cache"), "--no-progress"]


def _metrics(tmp_path, tag):
    runs = pd.read_csv(tmp_path / tag / "results" / "retrieval" / "synthetic" / "runs.csv")
    return runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[METRICS]


def _start(argv, log: Path):
    """The command, run outside the checkout: its training states are tagged with no commit
    (``unknown``), so that a commit made in the checkout meanwhile does not stop the resume."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.run", *argv], cwd=log.parent, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _job_process(run_pid: int):
    """A process of the run's pool that is running a job: one with loader workers of its own."""
    for child in psutil.Process(run_pid).children():
        try:
            if child.children():
                return child
        except psutil.Error:
            pass
    return None


def _running(text: str) -> list[str]:
    return [job for job in STUDENTS if f"started {job} " in text and f"finished {job} " not in text]


def test_a_killed_job_process_stops_the_run_and_the_rerun_resumes(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    log = tmp_path / "killed.log"
    proc = _start(_argv(tmp_path, config, "killed"), log)
    try:
        with Descendants(proc.pid) as seen:
            deadline, victim = time.time() + 240, None
            while victim is None and proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
                text = log.read_text()
                running = _running(text)
                started = all(f"started {job} " in text for job in STUDENTS)  # one started later could be killed before it saved an epoch
                if started and running and all(f"{job}: epoch 2/{EPOCHS}" in text for job in running):
                    victim = _job_process(proc.pid)  # every running student has saved its first epoch
            assert victim is not None, f"no student was seen mid-run:\n{log.read_text()}"
            seen.record()
            victim.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            proc.wait(timeout=30)
            stopped_in = time.perf_counter() - killed
    finally:
        proc.kill()
    output = log.read_text()
    running = _running(output)  # the students stopped unfinished
    assert proc.returncode == 2, output
    assert stopped_in < 10, stopped_in
    died = DIED.search(output)
    assert died and f"at s{died.group(1)}" in running, output
    assert len(seen.pids) >= 4, f"expected 2 pool processes and their loader workers, saw {sorted(seen.pids)}"
    assert alive(seen.pids) == []

    # an uninterrupted run of the students from the same teacher (copied from the killed run's cache)
    shutil.copytree(tmp_path / "killed" / "cache", tmp_path / "whole" / "cache",
                    ignore=shutil.ignore_patterns("students"))

    rerun_log = tmp_path / "rerun.log"
    rerun = _start(_argv(tmp_path, config, "killed"), rerun_log)
    assert rerun.wait(timeout=240) == 0, rerun_log.read_text()
    resumed = rerun_log.read_text()
    for job in running:  # the killed job (and one stopped with it) resume after the epochs they had saved
        assert f"{job}: epoch {EPOCHS}/{EPOCHS}" in resumed, resumed
        assert f"{job}: epoch 1/{EPOCHS}" not in resumed, resumed
    assert "teacher s0: epoch" not in resumed and "teacher s1: epoch" not in resumed  # loaded from the cache

    assert run.main(_argv(tmp_path, config, "whole") + ["--workers", "1"]) == 0
    pd.testing.assert_frame_equal(_metrics(tmp_path, "killed"), _metrics(tmp_path, "whole"))
