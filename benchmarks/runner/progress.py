"""Live progress of a suite's jobs, shown by the main process and fed by the jobs themselves.

Every job, in this process or in a pool worker, sends events (plain dicts) to one
``Reporter`` in the main process: ``start`` and ``done`` (or ``failed``) around the job,
``log`` for each message the job logs, ``phase`` for what it does between trainings
(``test``), and the training loop's own events (``epoch_start``, ``step``, ``eval``,
``epoch``, ``end``; see ``retrieval.engine.trainer.train``), tagged with the job's name.
A pool worker sends them through what it is handed when it starts (``pool_options``: any
object with a ``put``; ``benchmarks.runner.launch.job_pool`` gives each process its own pipe, on which a
job's events come before its result), read by the main process; a job run in this process
sends them to the reporter directly. Either way the main process prints everything, so each
message appears once.

What the reporter shows:

* on a terminal (stderr is a TTY) with progress on: one overall tqdm bar (jobs done of
  the total, elapsed time, ETA) and one line per running job (its training run, epoch,
  step of the epoch and latest batch loss, or what it is doing: ``val``, ``test``);
  messages are written above the bars;
* otherwise (a pipe, a file, CI, or progress off): one plain line per event worth one
  (a job started, each epoch finished with its mean loss and validation metric, a job
  done or failed) and each message, never a line per step and no carriage return.

The events only read numbers the jobs compute anyway, so progress changes no result.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

from tqdm import tqdm

from retrieval.engine.trainer import reporting_progress

STEP_INTERVAL = 0.1
"""Seconds between two step events a job sends (the last step of an epoch is always sent)."""

TICK = 1.0
"""Seconds between two redraws of the bars when no event comes (the elapsed time keeps running)."""

JOB_FORMAT = "{desc} |{bar:12}| step {n_fmt}/{total_fmt}{postfix} [{elapsed}<{remaining}]"
TEXT_FORMAT = "{desc}"
OVERALL_FORMAT = "{desc}: {n_fmt}/{total_fmt} |{bar:20}| {elapsed} elapsed, ETA {remaining}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Reporter:
    """Shows the progress of ``total`` jobs from their events (``handle``) and messages (``log``).

    ``progress`` False, or a ``stream`` (default: stderr, where tqdm draws) that is no
    terminal, gives plain lines through ``log``; otherwise tqdm bars on ``stream``, with
    the messages written above them (still through ``log``). Use it as a context manager
    (or call ``close``): the bars are taken down, the overall one is left on screen."""

    def __init__(self, total: int, progress: bool = True, log=print, stream=None):
        self.total, self.log = int(total), log
        self.stream = stream if stream is not None else sys.stderr
        self.bars = bool(progress) and _is_terminal(self.stream)
        self.done = 0
        self.start = time.perf_counter()
        self._lock = threading.RLock()
        self._jobs: dict[str, dict] = {}  # running job -> {"since": its start, "slot": index of its bar or None}
        self._slots: list = []             # the per-job bars, reused from job to job
        self._holders: list = []           # the job each of them shows (None: idle)
        self._overall = None
        self._closed = threading.Event()
        self._ticker = None
        if self.bars:
            self._tqdm = tqdm
            self._overall = tqdm(total=self.total, desc="jobs", unit="job", position=0, leave=True,
                                 file=self.stream, bar_format=OVERALL_FORMAT, dynamic_ncols=True)
            self._ticker = threading.Thread(target=self._tick, name="progress-ticker", daemon=True)
            self._ticker.start()

    # ------------------------------------------------------------------ what the jobs send

    @property
    def wants_steps(self) -> bool:
        """Whether step events are shown (only the bars show them)."""
        return self.bars

    def handle(self, event: dict) -> None:
        """Show one event of a job (see the module's docstring)."""
        with self._lock:
            kind, job = event.get("event"), event.get("job", "?")
            if kind == "log":
                self.write(event["message"])
            elif self._closed.is_set():  # late news of a run that has ended: nothing to draw
                return
            elif kind == "start":
                self._jobs[job] = {"since": time.perf_counter(), "slot": None}
                if self.bars:
                    self._show(job, f"{job}: started")
                else:
                    self.write(f"started {job} ({self._count()})")
            elif kind in ("done", "failed"):
                info = self._jobs.pop(job, None)
                seconds = event.get("seconds", time.perf_counter() - info["since"] if info else 0.0)
                if kind == "done":
                    self.done += 1
                if self.bars:
                    self._release(info)
                    if kind == "done":
                        self._overall.update(1)
                    else:
                        self.write(f"failed {job} after {seconds:.0f}s")
                elif kind == "done":
                    self.write(f"finished {job} in {seconds:.0f}s ({self._count()})")
                else:
                    self.write(f"failed {job} after {seconds:.0f}s ({self._count()})")
            elif kind == "epoch":
                if not self.bars:
                    self.write(self._epoch_line(event))
            elif self.bars:
                self._show_training(job, event)

    def write(self, message: str) -> None:
        """Print one message (above the bars when they are shown)."""
        with self._lock:
            if self.bars and self._overall is not None:
                with self._tqdm.external_write_mode(file=sys.stdout):
                    self.log(message)
                    _flush(sys.stdout)
            else:
                self.log(message)
                _flush(sys.stdout)

    # ------------------------------------------------------------------ lines and bars

    def _count(self) -> str:
        return f"{self.done}/{self.total} jobs done, {_clock(time.perf_counter() - self.start)} elapsed"

    @staticmethod
    def _epoch_line(event: dict) -> str:
        run = event.get("run", event.get("job"))
        line = f"{run}: epoch {event['epoch']}/{event['epochs']}, loss {event['loss']:.4f}"
        if event.get("value") is not None:
            line += f", val {event['metric']} {100 * event['value']:.2f}"
        return line

    def _show_training(self, job: str, event: dict) -> None:
        kind, run = event.get("event"), event.get("run", job)
        where = f"{run} epoch {event.get('epoch')}/{event.get('epochs')}"
        if kind == "epoch_start":
            self._show(job, where, total=event["steps"])
        elif kind == "step":
            bar = self._slot_of(job)
            if bar.bar_format != JOB_FORMAT or bar.total != event["steps"]:
                bar = self._show(job, where, total=event["steps"])
            bar.set_postfix_str(f"loss {event['loss']:.4f}", refresh=False)
            bar.update(event["step"] - bar.n)
            if event["step"] == event["steps"]:
                bar.refresh()
        elif kind == "eval":
            self._show(job, f"{where}: {event.get('split', 'val')}")
        elif kind == "end":
            self._show(job, f"{run}: trained in {event.get('seconds', 0):.0f}s")
        elif kind == "phase":
            self._show(job, f"{job}: {event.get('text', '')}")

    def _slot_of(self, job: str):
        info = self._jobs.setdefault(job, {"since": time.perf_counter(), "slot": None})
        if info["slot"] is None:
            if None in self._holders:
                info["slot"] = self._holders.index(None)
            else:
                position = len(self._slots) + 1
                self._slots.append(self._tqdm(total=1, position=position, leave=False, file=self.stream,
                                              bar_format=TEXT_FORMAT, dynamic_ncols=True))
                self._holders.append(None)
                info["slot"] = len(self._slots) - 1
            self._holders[info["slot"]] = job
        return self._slots[info["slot"]]

    def _show(self, job: str, text: str, total: int | None = None):
        """Put ``text`` on ``job``'s line: a step bar of ``total`` steps, or the text alone."""
        bar = self._slot_of(job)
        bar.set_description_str(text, refresh=False)
        if total is None:
            bar.bar_format = TEXT_FORMAT
        else:
            bar.bar_format = JOB_FORMAT
            bar.set_postfix_str("", refresh=False)
            bar.reset(total=total)
        bar.refresh()
        return bar

    def _release(self, info: dict | None) -> None:
        if info and info["slot"] is not None:
            bar = self._slots[info["slot"]]
            self._holders[info["slot"]] = None
            bar.bar_format = TEXT_FORMAT
            bar.set_description_str("idle", refresh=False)
            bar.refresh()

    def _tick(self) -> None:
        while not self._closed.wait(TICK):
            with self._lock:
                if self._overall is not None:
                    self._overall.refresh()

    def close(self) -> None:
        """Take the per-job bars down; leave the overall bar (or, in lines, nothing more)."""
        with self._lock:
            self._closed.set()
            for bar in reversed(self._slots):
                bar.close()
            self._slots, self._holders = [], []
            if self._overall is not None:
                self._overall.close()
                self._overall = None
        if self._ticker is not None:
            self._ticker.join(timeout=2 * TICK)

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _flush(stream) -> None:
    try:
        stream.flush()
    except (AttributeError, ValueError, OSError):
        pass


# ---------------------------------------------------------------------- the job's side

_SINK = None       # where this process's jobs send their events: a queue's put, or a reporter's handle
_STEPS = False     # whether to send step events at all
_JOB = None        # the job running in this process


def pool_options(queue, steps: bool) -> dict:
    """``initializer`` and ``initargs`` of a pool process that sends its events to ``queue`` (its ``put``)."""
    return {"initializer": _init_worker, "initargs": (queue, steps)}


def _init_worker(queue, steps: bool) -> None:
    global _SINK, _STEPS
    _SINK, _STEPS = queue.put, steps


@contextmanager
def reporting_to(reporter: "Reporter"):
    """Within the block, jobs run in this process (``run_job``) report to ``reporter``."""
    global _SINK, _STEPS
    saved = _SINK, _STEPS
    _SINK, _STEPS = reporter.handle, reporter.wants_steps
    try:
        yield reporter
    finally:
        _SINK, _STEPS = saved


class _TrainingEvents:
    """The callback a job gives the training loop: its events, tagged with the job, to the sink
    (step events at most every ``STEP_INTERVAL`` seconds, and only when they are shown)."""

    def __init__(self, job: str, sink, steps: bool):
        self.job, self.sink, self.steps, self.last = job, sink, steps, 0.0

    def __call__(self, event: dict) -> None:
        if event.get("event") == "step":
            if not self.steps:
                return
            now = time.perf_counter()
            if now - self.last < STEP_INTERVAL and event["step"] != event["steps"]:
                return
            self.last = now
        self.sink({**event, "job": self.job})


def run_job(name: str, fn, *args):
    """``fn(*args)`` as the job ``name``: its start, training progress, messages and end go to this
    process's sink (nowhere, and ``fn`` simply runs, when there is none)."""
    global _JOB
    sink = _SINK
    if sink is None:
        return fn(*args)

    previous, _JOB = _JOB, name
    sink({"event": "start", "job": name})
    start = time.perf_counter()
    try:
        with reporting_progress(_TrainingEvents(name, sink, _STEPS)):
            result = fn(*args)
    except BaseException:
        sink({"event": "failed", "job": name, "seconds": time.perf_counter() - start})
        raise
    finally:
        _JOB = previous
    sink({"event": "done", "job": name, "seconds": time.perf_counter() - start})
    return result


def job_log(message: str) -> None:
    """Log ``message`` from a job: through the reporter when there is one (printed once, by the
    main process), else printed."""
    if _SINK is None:
        print(message)
    else:
        _SINK({"event": "log", "job": _JOB, "message": str(message)})


def job_phase(text: str) -> None:
    """Say what the running job does now (shown on its line; no line of its own)."""
    if _SINK is not None and _JOB is not None:
        _SINK({"event": "phase", "job": _JOB, "text": text})
