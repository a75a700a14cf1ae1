"""A job whose process dies (SIGKILL as from the OOM killer, a segfault) stops a pool run within
seconds with a one-line message naming the job and how it ended, and leaves no process behind:
the other jobs, the idle pool processes and every DataLoader worker are gone."""

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from benchmarks.runner.errors import UserError
from benchmarks.runner.jobs import run_jobs
from benchmarks.runner.launch.job_pool import JobDied, how_it_ended


class Descendants:
    """Records, from a thread, every process below ``root`` (default: this process) while it runs."""

    def __init__(self, root: int | None = None):
        self.root = psutil.Process(root or os.getpid())
        self.pids: set[int] = set()
        self.before: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.is_set():
            self.record()
            time.sleep(0.05)

    def record(self):
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            return
        self.pids |= {c.pid for c in children if "resource_tracker" not in " ".join(_cmdline(c))} - self.before

    def __enter__(self):
        self.record()
        self.before, self.pids = self.pids, set()  # processes already there (a forkserver of another test)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def alive(pids, within: float = 3.0) -> list[int]:
    """The processes of ``pids`` still running (zombies are dead) after waiting up to ``within`` seconds."""
    deadline = time.time() + within
    while True:
        running = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not running or time.time() > deadline:
            return running
        time.sleep(0.1)


def teacher_job(seed):
    return {"seed": seed, "method": "teacher"}


def student_job(seed, method):
    if method == "sleeper":
        started = os.environ.get("SLEEPERS_STARTED")  # a folder: one file per sleeper that has begun
        if started:
            open(os.path.join(started, f"{os.getpid()}"), "w").close()
        time.sleep(120)
    if method in ("oom", "segfault"):
        import torch
        from torch.utils.data import DataLoader

        loader = iter(DataLoader(torch.arange(1000.0), batch_size=10, num_workers=2))
        for _ in range(5):
            next(loader)  # mid-epoch: the loader workers are running
        time.sleep(1.5)   # long enough for the pool to sample the job's memory
        os.kill(os.getpid(), signal.SIGKILL if method == "oom" else signal.SIGSEGV)
        time.sleep(60)
    return {"seed": seed, "method": method}


def _run_until_death(method):
    with Descendants() as seen:
        start = time.perf_counter()
        with pytest.raises(JobDied) as died:
            run_jobs(teacher_job, student_job, [0], ["sleeper", method], workers=2, log=lambda *a: None,
                     suite="retrieval")
        seconds = time.perf_counter() - start
    return str(died.value), seconds, seen.pids


def test_a_job_killed_by_sigkill_stops_the_run_and_every_process():
    message, seconds, pids = _run_until_death("oom")
    assert message.startswith("job 'oom s0' (suite retrieval, method oom, seed 0) was killed by SIGKILL "
                              "(possibly out of memory) after reaching "), message
    assert "with its 2 loader workers" in message
    assert message.endswith("the other jobs were stopped; rerun the same command to resume")
    assert "\n" not in message
    assert seconds < 30  # the sleeper alone would take 120 s
    assert len(pids) >= 4, f"expected 2 pool processes and 2 loader workers, saw {sorted(pids)}"
    assert alive(pids) == []


def test_a_segfault_is_named():
    message, _, pids = _run_until_death("segfault")
    assert "job 'segfault s0' (suite retrieval, method segfault, seed 0) was killed by SIGSEGV after" in message
    assert "out of memory" not in message
    assert alive(pids) == []


def test_a_dead_job_is_a_one_line_error():
    assert issubclass(JobDied, UserError)  # reported as `error: <message>`, exit code 2, by benchmarks.run


@pytest.mark.parametrize("code, text", [(-9, "killed by SIGKILL (possibly out of memory)"),
                                        (-11, "killed by SIGSEGV"), (-15, "killed by SIGTERM"),
                                        (3, "exited with code 3")])
def test_how_it_ended(code, text):
    assert how_it_ended(code) == text


def failing_student(seed, method):
    raise KeyError(f"no such thing in {method}")


def test_a_raising_job_keeps_its_error_and_traceback():
    with pytest.raises(KeyError, match="no such thing in x") as raised:
        run_jobs(teacher_job, failing_student, [0], ["x"], workers=2, log=lambda *a: None)
    assert "failing_student" in str(raised.value.__cause__)  # the job's own traceback text


SCRIPT = """
import faulthandler, os, signal, sys
def interrupted(signum, frame):  # Ctrl-C, as Python's own handler, and a main process still running
    faulthandler.dump_traceback_later(60, exit=True, file=open(os.environ["HANG_DUMP"], "w"))  # 60 s on
    raise KeyboardInterrupt                                                    # prints where it is
if os.environ.get("HANG_DUMP"):
    signal.signal(signal.SIGINT, interrupted)
sys.path[:0] = sys.argv[1:]
from benchmarks.runner.jobs import run_jobs
from test_job_death import teacher_job, student_job
run_jobs(teacher_job, student_job, [0], ["sleeper", "sleeper"], workers=2, log=print)
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_stopping_the_main_process_ends_the_pool_processes(how, tmp_path):
    """Ctrl-C (SIGINT: KeyboardInterrupt in the main process, which kills the pool) or a kill -9 of
    the main process alone (each pool process then ends its own group)."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    started = tmp_path / "started"
    started.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, root, here], cwd=root, stderr=subprocess.DEVNULL,
                            env={**os.environ, "SLEEPERS_STARTED": str(started), "HANG_DUMP": str(tmp_path / "hang")})
    try:
        with Descendants(proc.pid) as seen:
            deadline = time.time() + 120  # under the suite's load the pool processes take long to import torch
            while len(list(started.iterdir())) < 2 and time.time() < deadline:  # both jobs are running
                time.sleep(0.1)
            time.sleep(0.5)
        assert len(list(started.iterdir())) == 2 and len(seen.pids) >= 2
        proc.send_signal(how)
        proc.wait(timeout=90)
        hang = (tmp_path / "hang").read_text() if (tmp_path / "hang").exists() else ""
        assert hang == "", f"the main process had not ended 60 s after the signal; it was at:\n{hang}"
        assert alive(seen.pids) == []
    finally:
        proc.kill()


def test_a_process_interrupted_before_its_registration_is_killed_too(monkeypatch):
    """Ctrl-C between a job process's start and its registration as a worker: the pool still kills
    it (the interpreter's exit would otherwise wait for it while it waits for a job)."""
    from benchmarks.runner.launch import job_pool

    def interrupted(pid):
        raise KeyboardInterrupt

    monkeypatch.setattr(job_pool.psutil, "Process", interrupted)
    pool = job_pool.JobPool(2)
    with pytest.raises(KeyboardInterrupt):
        with pool:
            pool.submit(job_pool.Job("sleeper", time.sleep, (60,)))
    assert pool.workers == [] and len(pool.processes) == 1
    process = pool.processes[0]
    assert not process.is_alive() and process.exitcode == -signal.SIGKILL
