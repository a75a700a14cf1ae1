"""Jobs as SLURM jobs through submitit: the ``slurm`` launcher's pool (``benchmarks.runner.launch``).

``SlurmPool(workers, folder, events=None, steps=False, run=None, partition=None, time_min=240,
cpus_per_task=1, gpus_per_node=0, mem_gb=None, max_jobs=None, cluster=None, additional=None)``
submits each ``Job`` with ``submitit.AutoExecutor`` (``folder``: its job files and logs, on storage
every node sees), at most ``max_jobs`` (default: ``workers``) in the queue at once. ``cluster``
is submitit's: ``None`` or ``slurm`` submits to SLURM (sbatch); ``local`` runs each job in a
process of this machine through the same submission code (submitit's local executor: how the
tests run it). ``additional``: more ``#SBATCH`` options, e.g. ``{account: lab, qos: high}``.

A SLURM job has no channel back while it runs: the driver reports each job's start (when it is
submitted) and end; the job's own messages go to its log in ``folder`` (submitit's
``<job id>_0_log.out``). A job that raises re-raises its own exception from ``result()`` (it is
pickled back with its traceback); a job that SLURM or the system ends (time limit, out of memory,
a node failure, a cancel) raises ``JobDied`` with the log to read. Leaving the ``with`` block on an
error cancels every job still queued or running.
"""

from __future__ import annotations

import pickle
import time
import traceback
from collections import deque
from pathlib import Path

from benchmarks.runner.launch.job_pool import Job, JobDied, JobTraceback, deliver

POLL = 1.0
"""Seconds between two looks at the submitted jobs (submitit caches SLURM's answers itself)."""


def _task(name: str, fn, args: tuple, run):
    """What a SLURM job runs: ``run(name, fn, *args)``; an exception comes back as a value, pickled with
    its traceback, so that the driver re-raises the job's own error."""
    try:
        return "done", (run(name, fn, *args) if run is not None else fn(*args))
    except BaseException as exc:  # noqa: BLE001 (sent back whole; the driver re-raises it)
        text = traceback.format_exc()
        try:
            blob = pickle.dumps(exc)
        except Exception:
            blob = None
        return "error", (blob, text)


class SlurmPool:
    """See the module docstring."""

    def __init__(self, workers: int, folder, events=None, steps: bool = False, run=None, partition: str | None = None,
                 time_min: int = 240, cpus_per_task: int = 1, gpus_per_node: int = 0, mem_gb: float | None = None,
                 max_jobs: int | None = None, cluster: str | None = None, additional: dict | None = None):
        import submitit

        self.events, self.run = events, run
        self.size = int(max_jobs or workers)
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        params = dict(timeout_min=int(time_min), cpus_per_task=int(cpus_per_task), name="hmat-bench")
        if gpus_per_node:
            params["gpus_per_node"] = int(gpus_per_node)
        if mem_gb:
            params["mem_gb"] = mem_gb
        if partition:
            params["slurm_partition"] = partition
        if additional:
            params["slurm_additional_parameters"] = dict(additional)
        self.executor.update_parameters(**params)
        self.waiting: deque[Job] = deque()
        self.running: list[tuple[object, Job, float]] = []  # (submitit job, Job, when submitted)
        self.stopped: list[str] = []  # the jobs running when the pool was stopped, and how (for an interrupt)
        self.how = ""

    def submit(self, job: Job) -> None:
        self.waiting.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and len(self.running) < self.size:
            job = self.waiting.popleft()
            handle = self.executor.submit(_task, job.name, job.fn, job.args, self.run)
            self.running.append((handle, job, time.perf_counter()))
            self._event({"event": "start", "job": job.name})

    def result(self) -> tuple[Job, object]:
        while True:
            if not self.running:
                raise RuntimeError("no job is running")
            for entry in self.running:
                handle, job, since = entry
                if handle.done():
                    self.running.remove(entry)
                    return job, self._outcome(handle, job, since)
            time.sleep(POLL)

    def _outcome(self, handle, job: Job, since: float):
        seconds = time.perf_counter() - since
        try:
            kind, value = handle.result()
        except Exception as exc:  # the job did not end by itself: time limit, memory, node, cancel
            self._event({"event": "failed", "job": job.name, "seconds": seconds})
            about = f" ({job.about})" if job.about else ""
            state = getattr(handle, "state", "?")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JobDied(f"job {job.name!r}{about}, SLURM job {handle.job_id}, ended without a result (state "
                          f"{state}: {first}); its log is {handle.paths.stderr}; the other jobs were stopped; rerun "
                          f"the same command to resume", job) from None
        if kind == "error":
            self._event({"event": "failed", "job": job.name, "seconds": seconds})
            blob, text = value
            try:
                error = pickle.loads(blob) if blob is not None else None
            except Exception:
                error = None
            if error is None:
                error = RuntimeError(text.strip().splitlines()[-1] if text.strip() else "a job failed")
            raise error from JobTraceback(text)
        self._event({"event": "done", "job": job.name, "seconds": seconds})
        self._dispatch()
        return value

    def _event(self, event: dict) -> None:
        deliver(self.events, event)

    def kill(self) -> None:
        """Cancel every job still queued or running (``scancel``; the local executor kills the process)."""
        cancelled = []
        for handle, _, _ in self.running:
            try:
                handle.cancel(check=False)
                cancelled.append(str(handle.job_id))
            except Exception:
                pass
        if self.running:
            self.stopped = [job.name for _, job, _ in self.running]
            self.how = (f"cancelled {len(cancelled)} SLURM job{'s' if len(cancelled) != 1 else ''}"
                        + (f" ({', '.join(cancelled)})" if cancelled else ""))
        self.running.clear()
        self.waiting.clear()

    def __enter__(self) -> "SlurmPool":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.kill()
