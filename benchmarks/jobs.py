"""Runs a suite's jobs: setup jobs, one teacher per seed, then one student per (seed, method).

``run_jobs(teacher_job, student_job, seeds, methods, workers, setup=jobs)`` first calls
every zero-argument ``setup`` job (e.g. pretraining a backbone) and waits for them all,
then calls ``teacher_job(seed)`` and ``student_job(seed, method)`` (each returns its
result row), starting the students of a seed only once that seed's teacher is done. With one
worker the jobs run in this process in order (seed by seed); with more, in a pool of
``workers`` processes (``spawn``: each one imports torch afresh and runs its job on
its own threads). Every job seeds itself and reads its teacher from the cache, so the
rows do not depend on the number of workers or on the order the jobs finish in.

With a ``reporter`` (``benchmarks.progress.Reporter``) every job runs under
``benchmarks.progress.run_job``: its start, training progress, messages (``job_log``) and
end reach the reporter, from a pool worker through a queue, so that the main process
shows them all, the same way with one worker or several. Jobs are named ``teacher s<seed>``,
``<method> s<seed>`` and, for setup jobs given as ``(name, job)`` pairs, by their name.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from benchmarks import progress as live


def job_count(seeds, methods, setup=()) -> int:
    """How many jobs ``run_jobs`` runs: the setup jobs, a teacher per seed, a student per (seed, method)."""
    return len(list(setup)) + len(list(seeds)) * (1 + len(list(methods)))


def _named_setup(setup) -> list[tuple[str, object]]:
    return [job if isinstance(job, tuple) else (f"setup {i + 1}", job) for i, job in enumerate(setup)]


def run_jobs(teacher_job, student_job, seeds, methods, workers: int = 1, log=print, setup=(),
             reporter=None) -> list[dict]:
    """Rows of every teacher and student job, ordered by seed, with the teacher first and the methods
    in the given order (setup jobs, callables or ``(name, callable)`` pairs, return nothing)."""
    seeds, methods, setup = list(seeds), list(methods), _named_setup(setup)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    say = reporter.write if reporter is not None else log
    if workers == 1:
        if reporter is None:
            return _in_order(teacher_job, student_job, seeds, methods, setup, lambda name, fn, *a: fn(*a))
        with live.reporting_to(reporter):
            return _in_order(teacher_job, student_job, seeds, methods, setup, live.run_job)
    results: dict[tuple, dict] = {}
    context = multiprocessing.get_context("spawn")
    queue = options = listener = None
    if reporter is not None:
        # a SimpleQueue writes at once: a job's last event is in the pipe before its result is returned
        queue = context.SimpleQueue()
        options = live.pool_options(queue, reporter.wants_steps)
        listener = live.drain(queue, reporter)
        say = lambda message: queue.put({"event": "log", "message": message})  # noqa: E731 (after the jobs' events)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, **(options or {}))

    def submit(name, fn, *args):
        return pool.submit(live.run_job, name, fn, *args) if reporter is not None else pool.submit(fn, *args)

    try:
        for future in [submit(name, job) for name, job in setup]:
            future.result()  # a failed setup job stops the run with its own error
        pending = {submit(f"teacher s{seed}", teacher_job, seed): (seed, None) for seed in seeds}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                seed, method = pending.pop(future)
                results[seed, method] = future.result()  # a failed job stops the run with its own error
                if method is None:
                    say(f"seed {seed}: teacher done; {len(methods)} student job(s) queued")
                    pending.update({submit(f"{m} s{seed}", student_job, seed, m): (seed, m) for m in methods})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if listener is not None:  # the workers have exited: everything they sent is in the queue
            queue.put(None)
            listener.join(timeout=10)
            queue.close()
    return [results[seed, method] for seed in seeds for method in [None, *methods]]


def _in_order(teacher_job, student_job, seeds, methods, setup, run) -> list[dict]:
    for name, job in setup:
        run(name, job)
    rows = []
    for seed in seeds:
        rows.append(run(f"teacher s{seed}", teacher_job, seed))
        rows.extend(run(f"{method} s{seed}", student_job, seed, method) for method in methods)
    return rows
