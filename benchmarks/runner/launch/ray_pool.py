"""Jobs as Ray tasks: the ``ray`` launcher's pool (``benchmarks.runner.launch``).

``RayPool(workers, events=None, steps=False, run=None, address=None, cpus_per_job=1, gpus_per_job=0)``
joins the Ray cluster at ``address`` (``auto``: the one this node belongs to) or, without one, starts
a Ray instance on this machine for the run (stopped when the pool closes). Each submitted ``Job``
becomes a task declaring ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs, at most ``workers`` at
once; Ray reuses its worker processes, so a worker keeps the data its jobs built
(``suite_runner._PREPARED``).

The jobs' progress events (``benchmarks.runner.progress``) come back through a Ray queue and reach
``events`` as they come. A job that raises re-raises its own exception from ``result()``, with the
remote traceback as its cause; a task whose worker or node dies raises ``JobDied``. Leaving the
``with`` block on an error cancels every task still running (force: their processes are killed), so
a relaunched command resumes from the training states saved after each epoch.
"""

from __future__ import annotations

import os
import sys
from collections import deque

from benchmarks.runner import progress as live
from benchmarks.runner.launch import interrupt
from benchmarks.runner.launch.job_pool import Job, JobDied, JobTraceback, deliver

POLL = 0.2
"""Seconds between two looks at the running tasks and the event queue."""


def _task(name: str, fn, args: tuple, run, queue, steps: bool):
    """What a Ray worker runs for one job: ``run(name, fn, *args)`` with the job's events on ``queue``."""
    saved = live._SINK, live._STEPS  # a reused worker process: the next job starts as this one did
    if queue is not None:
        live._init_worker(_Put(queue), steps)
    try:
        return run(name, fn, *args) if run is not None else fn(*args)
    finally:
        live._SINK, live._STEPS = saved


class _Put:
    """A progress sink that puts events on a Ray queue without waiting (``put_nowait``)."""

    def __init__(self, queue):
        self.queue = queue

    def put(self, event: dict) -> None:
        self.queue.put_nowait(event)


class RayPool:
    """See the module docstring."""

    def __init__(self, workers: int, events=None, steps: bool = False, run=None, address: str | None = None,
                 cpus_per_job: float = 1, gpus_per_job: float = 0, num_cpus: int | None = None):
        import ray
        from ray.util.queue import Queue

        self.ray, self.size, self.events, self.steps, self.run = ray, int(workers), events, bool(steps), run
        self.started = False
        if not ray.is_initialized():
            # a local instance sees this process's import path (tests, a checkout not installed)
            os.environ.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
            kwargs = dict(address=address) if address else dict(num_cpus=num_cpus)
            ray.init(include_dashboard=False, log_to_driver=True, configure_logging=False, **kwargs)
            self.started = True
            interrupt.reinstall()  # ray.init makes SIGTERM a SystemExit; the command's handler stops the run
        self.queue = Queue(actor_options={"num_cpus": 0}) if events is not None else None
        self.remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0)(_task)
        self.waiting: deque[Job] = deque()
        self.running: dict = {}  # ObjectRef -> Job
        self.stopped: list[str] = []  # the jobs running when the pool was stopped, and how (for an interrupt)
        self.how = ""

    def submit(self, job: Job) -> None:
        self.waiting.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and len(self.running) < self.size:
            job = self.waiting.popleft()
            ref = self.remote.remote(job.name, job.fn, job.args, self.run, self.queue, self.steps)
            self.running[ref] = job

    def result(self) -> tuple[Job, object]:
        from ray.exceptions import RayTaskError

        while True:
            self._drain()
            if not self.running:
                raise RuntimeError("no job is running")
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL)
            if not ready:
                continue
            ref = ready[0]
            job = self.running.pop(ref)
            try:
                value = self.ray.get(ref)
            except RayTaskError as exc:  # the job raised: its own error, the remote traceback as the cause
                self._drain()
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                cause.__cause__ = JobTraceback(getattr(exc, "traceback_str", str(exc)))
                raise cause from cause.__cause__
            except self.ray.exceptions.RayError as exc:  # the worker or its node died
                self._drain()
                self._event({"event": "failed", "job": job.name, "seconds": 0.0})
                about = f" ({job.about})" if job.about else ""
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise JobDied(f"job {job.name!r}{about} died on Ray ({type(exc).__name__}: {first}); the other "
                              f"jobs were stopped; rerun the same command to resume", job) from None
            self._drain()
            self._dispatch()
            return job, value

    def _drain(self) -> None:
        if self.queue is None:
            return
        while True:
            try:
                batch = self.queue.get_nowait_batch(max(1, self.queue.qsize()))
            except Exception:
                return
            if not batch:
                return
            for event in batch:
                self._event(event)

    def _event(self, event: dict) -> None:
        deliver(self.events, event)

    def kill(self) -> None:
        """Cancel every running task (its worker process is killed) and forget the queued ones."""
        cancelled = 0
        for ref in list(self.running):
            try:
                self.ray.cancel(ref, force=True)
                cancelled += 1
            except Exception:
                pass
        if self.running:
            self.stopped = [job.name for job in self.running.values()]
            whose = "its worker process" if cancelled == 1 else "their worker processes"
            self.how = f"cancelled {cancelled} Ray task{'s' if cancelled != 1 else ''} ({whose} killed)"
        self.running.clear()
        self.waiting.clear()

    def close(self) -> None:
        self.kill()
        if self.started:
            self.ray.shutdown()
            self.started = False
            if self.how:
                self.how += " and shut down the Ray instance started for the run"

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            self._drain()
        except Exception:
            pass
        self.close()
