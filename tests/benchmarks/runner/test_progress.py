"""Live progress: jobs in 2 spawned worker processes report to one reporter in the main process,
which draws tqdm bars on a terminal (a pseudo-terminal here) and prints one line per event
through a pipe; each message is printed once, and progress=False gives no bars."""

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.runner.progress import Reporter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


# ---------------------------------------------------------------------------- the fake jobs (in the workers)

def _tiny_train(name: str, epochs: int = 2, steps: int = 4, pause: float = 0.05):
    """A real ``retrieval.engine.train`` of a one-weight model on 4 batches: the loop's own events."""
    import torch

    from retrieval.engine import TrainConfig, train

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 2 * steps

        def __getitem__(self, i):
            return {"x": torch.tensor([float(i + 1)])}

    class Method(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student = torch.nn.Linear(1, 1)

        def trainable_parameters(self):
            return list(self.student.parameters())

        def training_step(self, batch):
            time.sleep(pause)  # long enough for the bars to show some steps
            return None, {"task": (self.student(batch["x"]) ** 2).mean()}

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=epochs, batch_size=2, sampler="random", select="last", progress=False)
    return train(Method(), Data(), None, cfg, name=name)


def fake_teacher(seed):
    from benchmarks.runner.progress import job_log

    job_log(f"message from teacher {seed}")
    _tiny_train(f"teacher s{seed}")
    return {"seed": seed, "method": "teacher", "pid": os.getpid()}


def fake_student(seed, method):
    from benchmarks.runner.progress import job_log, job_phase

    _tiny_train(f"{method} s{seed}")
    job_phase("test")
    job_log(f"message from {method} {seed}")
    return {"seed": seed, "method": method, "pid": os.getpid()}


CHILD = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]
from benchmarks.runner.jobs import run_jobs
from benchmarks.runner.progress import Reporter
import test_progress as t
with Reporter(4, progress=PROGRESS) as reporter:
    rows = run_jobs(t.fake_teacher, t.fake_student, [0, 1], ["a"], workers=2, reporter=reporter)
print("rows", [(r["seed"], r["method"]) for r in rows], len({{r["pid"] for r in rows}}) <= 2)
"""
EXPECTED_ROWS = "rows [(0, 'teacher'), (0, 'a'), (1, 'teacher'), (1, 'a')] True"
MESSAGES = ["message from teacher 0", "message from teacher 1", "message from a 0", "message from a 1",
            "seed 0: teacher done; 1 student job(s) queued", "seed 1: teacher done; 1 student job(s) queued"]
JOBS = ["teacher s0", "teacher s1", "a s0", "a s1"]
TIMEOUT = 120  # seconds; a loaded machine starts 2 torch workers slowly


def _child_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COLUMNS", "LINES"))}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TERM="xterm")
    return env


def _run_in_pipe(progress=True) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD.replace("PROGRESS", str(progress))], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=TIMEOUT, cwd=ROOT, env=_child_env())
    out = done.stdout.decode()
    assert done.returncode == 0, out
    return out


def _run_in_pty(code: str, columns=120) -> str:
    """``python -c code`` with its stdout and stderr on one pseudo-terminal of ``columns`` columns;
    all it wrote."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    child = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                             env=_child_env(), start_new_session=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif child.poll() is not None:
                break
        else:
            os.killpg(child.pid, signal.SIGKILL)
            pytest.fail(f"the child did not finish in {TIMEOUT}s; it wrote {b''.join(chunks)[-2000:]!r}")
        assert child.wait(timeout=10) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    return b"".join(chunks).decode(errors="replace")


# ---------------------------------------------------------------------------- 2 workers, pipe and pty

def test_a_pipe_gets_one_line_per_event_and_each_message_once():
    out = _run_in_pipe()
    assert "\r" not in out and "\x1b[" not in out  # no bar drawing
    lines = out.splitlines()
    assert lines[-1] == EXPECTED_ROWS
    for message in MESSAGES:
        assert lines.count(message) == 1, (message, out)
    for job in JOBS:
        assert len([ln for ln in lines if ln.startswith(f"started {job} (")]) == 1, (job, out)
        assert len([ln for ln in lines if ln.startswith(f"finished {job} in ")]) == 1, (job, out)
        for epoch in (1, 2):
            assert len([ln for ln in lines if ln.startswith(f"{job}: epoch {epoch}/2, loss ")]) == 1, (job, out)
    assert not [ln for ln in lines if "step" in ln], out  # no line per step
    assert "finished" in lines[-2] and "(4/4 jobs done, " in lines[-2]
    # 4 starts, 4 ends, 8 epochs, 6 messages and the rows: nothing else
    assert len(lines) == 4 + 4 + 8 + len(MESSAGES) + 1, out
    # a student starts after its teacher is finished, and its messages come between its start and its end
    for seed in (0, 1):
        assert lines.index(f"message from a {seed}") > next(i for i, ln in enumerate(lines)
                                                            if ln.startswith(f"started a s{seed} ("))
        assert next(i for i, ln in enumerate(lines) if ln.startswith(f"started a s{seed} (")) > \
            next(i for i, ln in enumerate(lines) if ln.startswith(f"finished teacher s{seed} "))


def test_a_terminal_gets_an_overall_bar_and_a_line_per_running_job():
    out = _run_in_pty(CHILD.replace("PROGRESS", "True"))
    assert EXPECTED_ROWS in out
    assert "\r" in out  # bars redrawn in place
    assert "jobs: 4/4 |" in out and " elapsed, ETA " in out
    final = out.rsplit("jobs: 4/4 |", 1)[1].split("\n", 1)[0]
    assert "elapsed" in final  # the overall bar is left on screen, with its elapsed time
    for job in JOBS:  # its line: the run, epoch, step of the epoch and latest loss
        assert re.search(rf"{job} epoch 2/2 \|[^|\n]*\| step [1-4]/4, loss \d+\.\d{{4}} \[", out), (job, out)
        assert re.search(rf"{job} epoch [12]/2 \|[^|\n]*\| step 4/4, loss \d+\.\d{{4}} \[", out), (job, out)
    for message in MESSAGES:
        assert out.count(message) == 1, (message, out)
    assert "started teacher s0 (" not in out  # no plain lines when the bars are shown
    assert "teacher s0: epoch 1/2, loss" not in out


REPORTER_ALONE = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]
from benchmarks.runner.progress import Reporter
import test_progress as t
with Reporter(1, progress=PROGRESS) as reporter:
    print("bars", reporter.bars)
    for event in t._events():
        reporter.handle(event)
"""


@pytest.mark.parametrize("progress", [True, False])
def test_the_terminal_is_detected_and_no_progress_turns_the_bars_off(progress):
    out = _run_in_pty(REPORTER_ALONE.replace("PROGRESS", str(progress)))
    assert f"bars {progress}" in out and out.count("at seed 0: test recall@1 25.00") == 1
    if progress:
        assert "jobs: 1/1 |" in out and "at s0 epoch 2/2 |" in out and "step 3/3, loss 0.3333" in out
    else:
        lines = out.replace("\r\n", "\n").split("\n")  # the terminal ends each line with \r\n
        assert "\r" not in "\n".join(lines) and "\x1b[" not in out and "jobs: " not in out
        assert lines[0] == "bars False" and lines[1].startswith("started at s0 (0/1 jobs done, ")
        assert lines[2:5] == ["at s0: epoch 1/2, loss 0.5000, val recall@1 25.00",
                              "at s0: epoch 2/2, loss 0.5000, val recall@1 25.00", "at seed 0: test recall@1 25.00"]
        assert lines[5].startswith("finished at s0 in 2s (1/1 jobs done, ") and lines[6:] == [""]


# ---------------------------------------------------------------------------- the reporter alone

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _events(job="at s0", run="at s0"):
    yield {"event": "start", "job": job}
    for epoch in (1, 2):
        yield {"event": "epoch_start", "job": job, "run": run, "epoch": epoch, "epochs": 2, "steps": 3}
        for step in (1, 2, 3):
            yield {"event": "step", "job": job, "run": run, "epoch": epoch, "epochs": 2, "step": step, "steps": 3,
                   "loss": 1.0 / step}
        yield {"event": "eval", "job": job, "run": run, "epoch": epoch, "epochs": 2, "split": "val"}
        yield {"event": "epoch", "job": job, "run": run, "epoch": epoch, "epochs": 2, "loss": 0.5,
               "metric": "recall@1", "value": 0.25}
    yield {"event": "end", "job": job, "run": run, "seconds": 1.0}
    yield {"event": "log", "job": job, "message": "at seed 0: test recall@1 25.00"}
    yield {"event": "done", "job": job, "seconds": 2.0}


def test_lines_name_the_job_epoch_loss_and_validation_metric():
    lines = []
    with Reporter(1, progress=True, log=lines.append, stream=io.StringIO()) as reporter:
        for event in _events():
            reporter.handle(event)
    assert lines[0].startswith("started at s0 (0/1 jobs done, 0:00:0")
    assert lines[1:4] == ["at s0: epoch 1/2, loss 0.5000, val recall@1 25.00",
                          "at s0: epoch 2/2, loss 0.5000, val recall@1 25.00", "at seed 0: test recall@1 25.00"]
    assert lines[4].startswith("finished at s0 in 2s (1/1 jobs done, ") and len(lines) == 5


@pytest.mark.parametrize("progress", [True, False])
def test_the_bars_go_to_the_terminal_and_the_messages_to_log(progress, capsys):
    lines, terminal = [], _Terminal()
    with Reporter(1, progress=progress, log=lines.append, stream=terminal) as reporter:
        assert reporter.bars is progress
        for event in _events(run="pretrain student"):
            reporter.handle(event)
    drawn = terminal.getvalue()
    assert "at seed 0: test recall@1 25.00" in lines
    if progress:
        assert "pretrain student epoch 2/2 |" in drawn and "step 3/3, loss 0.3333" in drawn
        assert "pretrain student epoch 1/2: val" in drawn and "jobs: 1/1 |" in drawn
        assert len(lines) == 1  # only the message: the events are drawn
    else:
        assert drawn == "" and len(lines) == 5


def test_a_failed_job_is_said_once():
    lines = []
    with Reporter(2, progress=False, log=lines.append) as reporter:
        reporter.handle({"event": "start", "job": "boom s0"})
        reporter.handle({"event": "failed", "job": "boom s0", "seconds": 3.0})
    assert lines[1].startswith("failed boom s0 after 3s (0/2 jobs done, ")


# ---------------------------------------------------------------------------- end to end, 2 workers

def test_a_suite_run_with_2_workers_says_each_thing_once(tmp_path):
    from tiny_retrieval import tiny_retrieval

    from benchmarks.runner.config import deep_merge, resolve_config
    from benchmarks.runner.tasks import get_task

    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval(seeds=[0], run=["none"], workers=2))
    lines = []
    get_task("retrieval").run(cfg, tmp_path / "out", tmp_path / "cache", "test", progress=True, log=lines.append)
    data = [ln for ln in lines if ln.startswith("data synthetic: ")]
    assert len(data) == 1, lines  # said by the main process only, not once more by each worker
    for job, run in [("setup teacher s0", "pretrain teacher"), ("setup student s0", "pretrain student"),
                     ("teacher s0", "teacher s0"), ("none s0", "none s0")]:
        assert len([ln for ln in lines if ln.startswith(f"started {job} (")]) == 1, (job, lines)
        assert len([ln for ln in lines if ln.startswith(f"finished {job} in ")]) == 1, (job, lines)
        epochs = 1 if job.startswith("setup") else 2
        assert [ln.split(",")[0] for ln in lines if ln.startswith(f"{run}: epoch ")] == [
            f"{run}: epoch {e}/{epochs}" for e in range(1, epochs + 1)], (run, lines)
    assert len([ln for ln in lines if ln.startswith("pretrained the teacher backbone")]) == 1
    assert len([ln for ln in lines if "none seed 0: test recall@1" in ln]) == 1
    assert len(lines) == len(set(lines)), lines  # no line twice


def failing_student(seed, method):
    from benchmarks.runner.progress import job_log

    job_log(f"{method} s{seed} is about to fail")
    raise RuntimeError(f"job {method} of seed {seed} failed")


def test_a_failing_job_is_reported_once_and_raises_its_error():
    from benchmarks.runner.jobs import run_jobs

    lines = []
    with pytest.raises(RuntimeError, match="job boom of seed 0 failed"):
        with Reporter(2, progress=True, log=lines.append, stream=io.StringIO()) as reporter:
            run_jobs(lambda seed: {"seed": seed}, failing_student, [0], ["boom"], workers=1, reporter=reporter)
    assert [ln.split(" (")[0] for ln in lines] == ["started teacher s0", "finished teacher s0 in 0s",
                                                   "started boom s0", "boom s0 is about to fail",
                                                   "failed boom s0 after 0s"]
