"""A pool of long-lived job processes that knows which job each one runs and how it ended.

``JobPool(workers, events=None, steps=False)`` starts up to ``workers`` ``spawn`` processes,
one more only when a job waits and none is idle, and keeps them for the whole run, so that a
process keeps what its jobs built (``suite_runner._PREPARED``). ``submit(job)`` queues a
``Job`` (run first come, first served); ``result()`` waits for the next finished job and
returns ``(job, value)``.

Each process talks to the main process through its own pipe: tasks one way; results, errors
and, when ``events`` is given, the job's progress events (``benchmarks.runner.progress``; passed to
``events`` as they come, a job's events always before its result) the other way. A process
shares no lock with another, so a process that dies cannot block the rest.

Each process leads its own process group (``os.setpgid(0, 0)`` when it starts), which its
DataLoader workers inherit. Every process's memory is sampled (``SAMPLE_INTERVAL``): its RSS
plus that of its children, the loader workers (less the library pages they share with it).

When a job raises, ``result()`` raises the job's exception with the job's traceback text as its
cause. When a job's process dies (the OOM killer, a signal, a crash in native code, an exit),
``result()`` raises ``JobDied``: the job, how the process ended and the memory it had reached.
Either way, and on any other exception or interrupt, leaving the ``with`` block kills every
process group (loader workers included) and reaps the processes; a clean exit asks the
processes to stop and reaps them.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing import connection, get_context

import psutil

from benchmarks.runner import progress as live
from benchmarks.runner.errors import UserError

SAMPLE_INTERVAL = 0.5
"""Seconds between two samples of a running job's memory."""

STOP_TIMEOUT = 30.0
"""Seconds a process is given to exit after the last job before it is killed."""

PARENT_CHECK = 1.0
"""Seconds between two checks, in a job process, that the main process is still there."""


@dataclass
class Job:
    """``fn(*args)`` under the name ``name`` (``rkd s0``); ``about`` says what it is, for messages
    (``suite retrieval, method rkd, seed 0``); ``key`` is the caller's own handle on it."""

    name: str
    fn: object
    args: tuple = ()
    about: str = ""
    key: object = None


class JobDied(UserError):
    """A job's process died: the message (one line) names the job, how it ended and its memory."""

    def __init__(self, message: str, job: Job | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.job, self.exitcode = job, exitcode


class JobTraceback(Exception):
    """The traceback text of an exception raised in a job process (the cause of the re-raised one)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def how_it_ended(exitcode: int | None) -> str:
    """``killed by SIGKILL (possibly out of memory)``, ``killed by SIGSEGV``, ``exited with code 3``."""
    if exitcode is None:
        return "stopped"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (" (possibly out of memory)" if -exitcode == signal.SIGKILL else "")
    return f"exited with code {exitcode}"


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.0f} MB"


@dataclass
class Memory:
    """The samples of one process's memory since its last job started: the last one and the peak."""

    last: int = 0
    peak: int = 0
    children: int = 0   # at the peak
    samples: int = 0

    def add(self, rss: int, children: int) -> None:
        self.last, self.samples = rss, self.samples + 1
        if rss >= self.peak:
            self.peak, self.children = rss, children

    def describe(self) -> str:
        if not self.samples:
            return "before its memory was sampled"
        helpers = f" with its {self.children} loader worker{'s' if self.children != 1 else ''}" if self.children else ""
        last = f", {_size(self.last)} at the last sample" if _size(self.last) != _size(self.peak) else ""
        return f"after reaching {_size(self.peak)} RSS{helpers}{last}"


def _sample(process: psutil.Process) -> tuple[int, int] | None:
    """(memory of ``process`` and its descendants, how many descendants), or None once it is gone.

    The memory is the RSS of ``process`` plus that of each descendant less its file-backed shared
    pages: the loader workers are forks of the job process, and their copies of its libraries
    (hundreds of MB of torch alone) are the same pages, counted once."""
    try:
        children = process.children(recursive=True)
        rss = process.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if not rss:  # exiting (a zombie has no memory left to count)
        return None
    for child in children:
        try:
            info = child.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss - getattr(info, "shared", 0)
    return rss, len(children)


def has_exited(process) -> bool:
    """Whether the started ``multiprocessing.Process`` has ended, without reaping it where the
    system allows (so that its pid, and the id of its process group, stay its own until joined).
    Its sentinel alone does not tell: the loader workers it forked inherit it and keep it open."""
    if not hasattr(os, "waitid") or not hasattr(os, "WNOWAIT"):
        return process.exitcode is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def _exit_fd(pid: int) -> int | None:
    """A descriptor of process ``pid`` that becomes readable when it exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def deliver(events, event: dict) -> None:
    """Give a job's progress ``event`` to the pool's ``events`` callback (if any): a display problem
    is printed, never raised, so that it cannot stop the run."""
    if events is None:
        return
    try:
        events(event)
    except Exception as exc:
        print(f"progress: could not show {event.get('event')!r} ({exc})")


# ---------------------------------------------------------------------- the job process's side

class _EventChannel:
    """What a job process's progress sink puts events on: its pipe to the main process."""

    def __init__(self, conn):
        self.conn, self.lock = conn, threading.Lock()

    def put(self, event: dict) -> None:
        with self.lock:
            self.conn.send(("event", event))


def _watch_parent(parent: int) -> None:
    """End this process group once the main process ``parent`` is gone (killed before it could stop it)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os.killpg(0, signal.SIGKILL)


def _serve(conn, parent: int, events: bool, steps: bool) -> None:
    """A job process: lead a process group, then run the jobs sent on ``conn`` until a ``None``."""
    os.setpgid(0, 0)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    channel = _EventChannel(conn)
    if events:
        options = live.pool_options(channel, steps)
        options["initializer"](*options["initargs"])
    while True:
        try:
            task = conn.recv_bytes()
        except EOFError:  # the main process is gone
            return
        try:
            task = pickle.loads(task)  # here, so that a job that cannot be loaded fails like one that raises
            if task is None:
                return
            run, args = task
            value = run(*args)
        except BaseException as exc:
            text = traceback.format_exc()
            try:
                blob = pickle.dumps(exc)
            except Exception:
                blob = None
            reply = ("error", blob, text)
        else:
            reply = ("done", value)
        with channel.lock:
            try:
                conn.send(reply)
            except Exception as exc:  # a result that does not pickle
                conn.send(("error", None, f"the result of the job could not be sent back: {exc!r}\n"))


# ---------------------------------------------------------------------- the main process's side

@dataclass
class _Worker:
    process: object
    conn: object
    watch: psutil.Process | None = None
    job: Job | None = None      # the job it runs now
    last: str = ""              # the name of the last job it was given
    memory: Memory = field(default_factory=Memory)
    since: float = 0.0
    exit_fd: int | None = None  # readable once the process has exited (a pidfd, where the system has them)
    open: bool = True           # the pipe has not reached its end
    reaped: bool = False        # killed (if need be) and joined

    def kill_group(self) -> None:
        """SIGKILL the process's group (its loader workers too) and the process itself."""
        for kill, target in ((os.killpg, self.process.pid), (os.kill, self.process.pid)):
            try:
                kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class JobPool:
    """Up to ``workers`` job processes (see the module docstring). ``events(event)`` receives the
    jobs' progress events; ``steps`` whether they send step events."""

    def __init__(self, workers: int, events=None, steps: bool = False, run=None):
        self.size, self.events, self.steps = int(workers), events, bool(steps)
        self.run = run  # how a process runs a job: run(job.name, job.fn, *job.args); None: job.fn(*job.args)
        self.context = get_context("spawn")
        self.workers: list[_Worker] = []
        self.processes: list = []  # every process started, registered before its start (see kill)
        self.waiting: deque[Job] = deque()
        self.finished: deque[tuple[Job, object]] = deque()
        self.next_sample = 0.0
        self.stopped: list[str] = []  # the jobs running when the pool was stopped, and how (for an interrupt)
        self.how = ""

    # ------------------------------------------------------------------ jobs

    def submit(self, job: Job) -> None:
        """Queue ``job``; it starts as soon as a process is free."""
        self.waiting.append(job)
        self._dispatch()

    def result(self) -> tuple[Job, object]:
        """The next finished job and what it returned (see the module docstring for failures)."""
        while not self.finished:
            if not any(w.job is not None for w in self.workers):
                raise RuntimeError("no job is running")
            self._poll(max(0.0, self.next_sample - time.monotonic()))
            if time.monotonic() >= self.next_sample:
                self._sample()
        return self.finished.popleft()

    def _dispatch(self) -> None:
        while self.waiting:
            idle = next((w for w in self.workers if w.job is None), None)
            if idle is None:
                if len(self.workers) >= self.size:
                    return
                idle = self._start()
            job = self.waiting.popleft()
            task = (self.run, (job.name, job.fn, *job.args)) if self.run else (job.fn, job.args)
            idle.conn.send(task)
            idle.job, idle.last, idle.memory, idle.since = job, job.name, Memory(), time.perf_counter()
        self.next_sample = min(self.next_sample, time.monotonic())  # sample the new jobs soon

    def _start(self) -> _Worker:
        mine, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(target=_serve, name=f"job-process-{len(self.workers) + 1}",
                                       args=(theirs, os.getpid(), self.events is not None, self.steps))
        self.processes.append(process)  # before start: an interrupt (Ctrl-C) between the start and the
        process.start()                  # worker's registration below must not leave it running
        theirs.close()  # the process holds the only other end: its death ends the pipe
        try:
            watch = psutil.Process(process.pid)
        except psutil.Error:
            watch = None
        worker = _Worker(process, mine, watch, _exit_fd(process.pid))
        self.workers.append(worker)
        return worker

    # ------------------------------------------------------------------ waiting

    def _poll(self, timeout: float) -> None:
        handles = {w.conn: w for w in self.workers if w.open}
        handles.update({w.process.sentinel if w.exit_fd is None else w.exit_fd: w
                        for w in self.workers if not w.reaped})
        for handle in connection.wait(list(handles), timeout):  # a job's last events and result come first
            worker = handles[handle]
            if handle is worker.conn:
                self._read(worker)
        for worker in self.workers:
            if not worker.reaped and has_exited(worker.process):
                self._read(worker)  # what is left (its loader workers may hold the pipe open: no end to wait for)
                self._died(worker)

    def _read(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message[0] == "event":
                    self._event(message[1])
                    continue
                job, worker.job = worker.job, None
                if message[0] == "done":
                    self.finished.append((job, message[1]))
                    self._dispatch()
                else:
                    raise self._rebuild(*message[1:])
        except (EOFError, OSError):
            worker.open = False

    def _event(self, event: dict) -> None:
        deliver(self.events, event)

    @staticmethod
    def _rebuild(blob, text: str) -> BaseException:
        try:
            exc = pickle.loads(blob) if blob is not None else None
        except Exception:
            exc = None
        if exc is None:
            exc = RuntimeError(text.strip().splitlines()[-1] if text.strip() else "a job failed")
        exc.__cause__ = JobTraceback(text)
        return exc

    def _died(self, worker: _Worker) -> None:
        self.kill()  # the others and every loader worker, before anything else
        job, code = worker.job, worker.process.exitcode
        ended = how_it_ended(code)
        ended = f"was {ended}" if ended.startswith("killed") else ended
        if job is None:
            after = f" after job {worker.last!r}" if worker.last else ""
            raise JobDied(f"an idle job process{after} {ended} {worker.memory.describe()}; the other jobs were "
                          f"stopped; rerun the same command to resume", None, code)
        self._event({"event": "failed", "job": job.name, "seconds": time.perf_counter() - worker.since})
        about = f" ({job.about})" if job.about else ""
        raise JobDied(f"job {job.name!r}{about} {ended} {worker.memory.describe()}; the other jobs were stopped; "
                      f"rerun the same command to resume", job, code)

    def _sample(self) -> None:
        for worker in self.workers:
            if not worker.reaped and worker.watch is not None:
                sample = _sample(worker.watch)
                if sample is not None:
                    worker.memory.add(*sample)
        self.next_sample = time.monotonic() + SAMPLE_INTERVAL

    # ------------------------------------------------------------------ the end

    def kill(self) -> None:
        """SIGKILL every process group (the job processes and their loader workers) and reap them,
        also a process started but not yet registered as a worker (interrupted in between: else the
        interpreter's exit would wait for it, and it for a job, forever)."""
        alive = [w for w in self.workers if not w.reaped]
        self.stopped = [w.job.name for w in alive if w.job is not None]  # what an interrupt stopped
        if alive:
            self.how = f"ended {len(alive)} job process{'es' if len(alive) != 1 else ''} and their loader workers"
        for worker in alive:  # the groups first, while their leaders are not yet reaped
            worker.kill_group()
        known = {id(w.process) for w in self.workers}
        stray = [p for p in self.processes if id(p) not in known and p.pid is not None]
        for process in stray:
            _Worker(process, None).kill_group()
        for worker in alive:
            worker.process.join(timeout=5)
            worker.conn.close()
            if worker.exit_fd is not None:
                os.close(worker.exit_fd)
            worker.reaped = True
        for process in stray:
            process.join(timeout=5)

    def close(self) -> None:
        """Ask every process to stop, wait for them (``STOP_TIMEOUT``), then clear their groups and reap."""
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        running = [w.process for w in self.workers if not w.reaped]
        while running and time.monotonic() < deadline:
            connection.wait([p.sentinel for p in running], 0.1)
            running = [p for p in running if not has_exited(p)]
        self.kill()

    def __enter__(self) -> "JobPool":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.kill()

