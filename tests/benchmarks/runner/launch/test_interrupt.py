"""SIGINT and SIGTERM in a command: an ``Interrupted`` in the main thread, once; one line saying what stopped
and how to resume; exit 130 or 143. (The whole runs, under each launcher: test_interrupt_run.py.)"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time

import pytest

from benchmarks.runner.jobs import run_jobs
from benchmarks.runner.launch import SlurmLauncher, interrupt
from benchmarks.runner.launch.interrupt import Interrupted, describe, handling_signals, reports_interrupts


def _wait_for_signal():
    deadline = time.time() + 5
    while time.time() < deadline:
        time.sleep(0.01)
    raise AssertionError("no signal arrived")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_raises_once_and_the_handlers_come_back(sig, code):
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with pytest.raises(Interrupted) as raised:
        with handling_signals():
            os.kill(os.getpid(), sig)
            _wait_for_signal()
    assert raised.value.signum == sig and isinstance(raised.value, KeyboardInterrupt)
    assert interrupt.exit_code(raised.value) == code
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before


def test_a_second_signal_does_not_cut_the_stopping_short():
    stopped = []
    with pytest.raises(Interrupted):
        with handling_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                _wait_for_signal()
            finally:  # the pool stopping its jobs: a second Ctrl-C arrives meanwhile
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                stopped.append(True)
    assert stopped == [True]


def test_a_library_that_raises_its_own_keyboard_interrupt_keeps_the_signal(capsys):
    """Ray ends a wait on a signal with a KeyboardInterrupt of its own: the exit code is still SIGTERM's."""
    @reports_interrupts("python -m demo")
    def main(argv=None):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        except Interrupted:
            raise KeyboardInterrupt from None

    assert main([]) == 143
    assert "interrupted by SIGTERM;" in capsys.readouterr().err
    assert interrupt.exit_code(KeyboardInterrupt()) == 130  # outside: Ctrl-C


def test_a_library_handler_is_replaced_again():
    with handling_signals():
        signal.signal(signal.SIGTERM, lambda *a: None)  # as ray.init does
        interrupt.reinstall()
        assert signal.getsignal(signal.SIGTERM) is interrupt._raise


def test_the_line_says_what_stopped_and_how_to_resume():
    exc = Interrupted(signal.SIGTERM)
    interrupt.note(exc, done=4, total=9, stopped=["rkd s0", "hmat s0"], how="ended 2 job processes and their "
                   "loader workers")
    interrupt.note(exc, rows="results/retrieval/synthetic/runs.csv", done=0)  # the innermost note wins
    line = describe(exc, "python -m benchmarks.run --seeds 0")
    assert line == ("interrupted by SIGTERM; 4 of 9 jobs had finished, 'rkd s0', 'hmat s0' stopped; ended 2 job "
                    "processes and their loader workers; finished jobs are kept (rows in "
                    "results/retrieval/synthetic/runs.csv); rerun the same command to resume, each stopped training "
                    "from its last finished epoch: python -m benchmarks.run --seeds 0")
    line = describe(KeyboardInterrupt(), "x")
    assert line.startswith("interrupted by SIGINT (Ctrl-C); every job it had started was stopped; ")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_command_prints_one_line_and_exits_with_128_plus_the_signal(capsys, sig, code):
    @reports_interrupts("python -m demo")
    def main(argv=None):
        os.kill(os.getpid(), sig)
        _wait_for_signal()

    assert main(["--out", "my results"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"python -m demo: interrupted by {signal.Signals(sig).name}"), err
    assert err[0].endswith("python -m demo --out 'my results'")


# ---------------------------------------------------------------------------- the pools stop their jobs

def _signal_when_started(folder, count: int, sig) -> list:
    """``sig`` to this process once ``count`` sleeper jobs have begun (a file each in ``folder``); the list
    returned gets the time it was sent."""
    sent = []

    def send():
        deadline = time.time() + 120
        while len(list(folder.iterdir())) < count and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), sig)

    threading.Thread(target=send, daemon=True).start()
    return sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_local_pool_ends_every_job_process(tmp_path, monkeypatch, sig):
    from test_job_death import Descendants, alive, student_job, teacher_job

    monkeypatch.setenv("SLEEPERS_STARTED", str(tmp_path))  # the pool's processes inherit it
    with Descendants() as seen:
        sent = _signal_when_started(tmp_path, 2, sig)
        with pytest.raises(Interrupted) as raised, handling_signals():
            run_jobs(teacher_job, student_job, [0, 1], ["sleeper"], workers=2, log=lambda *a: None)
        stopped_in = time.perf_counter() - sent[0]
    assert len(seen.pids) >= 2 and alive(seen.pids, within=max(0.0, 10 - stopped_in)) == []
    assert stopped_in < 10
    notes = raised.value.notes
    assert notes["done"] == 2 and notes["total"] == 4  # the two teachers
    assert sorted(notes["stopped"]) == ["sleeper s0", "sleeper s1"]
    assert notes["how"] == "ended 2 job processes and their loader workers"


def test_the_slurm_pool_cancels_its_jobs(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from test_job_death import Descendants, alive, student_job, teacher_job

    started = tmp_path / "started"
    started.mkdir()
    monkeypatch.setenv("SLEEPERS_STARTED", str(started))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))  # the job imports test_job_death
    launcher = SlurmLauncher({"cluster": "local", "time_min": 5, "cpus_per_task": 1}, folder=tmp_path / "slurm")
    with Descendants() as seen:
        sent = _signal_when_started(started, 1, signal.SIGTERM)
        with pytest.raises(Interrupted) as raised, handling_signals():
            run_jobs(teacher_job, student_job, [0], ["sleeper"], workers=1, log=lambda *a: None, launcher=launcher)
        stopped_in = time.perf_counter() - sent[0]
    assert seen.pids and alive(seen.pids, within=max(0.0, 10 - stopped_in)) == []
    notes = raised.value.notes
    assert notes["stopped"] == ["sleeper s0"] and notes["done"] == 1 and notes["total"] == 2
    assert re.fullmatch(r"cancelled 1 SLURM job \(\d+\)", notes["how"]), notes["how"]


def test_one_worker_stops_the_job_it_runs_itself():
    def teacher(seed):
        return {"seed": seed, "method": "teacher"}

    def student(seed, method):
        os.kill(os.getpid(), signal.SIGTERM)  # mid-job
        _wait_for_signal()

    with pytest.raises(Interrupted) as raised, handling_signals():
        run_jobs(teacher, student, [0], ["at", "rkd"], workers=1)
    assert raised.value.notes == {"done": 1, "total": 3, "stopped": ["at s0"],
                                  "how": "stopped the job running in this process and its loader workers"}
