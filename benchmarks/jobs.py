"""Runs a suite's jobs: setup jobs, one teacher per seed, then one student per (seed, method).

``run_jobs(teacher_job, student_job, seeds, methods, workers, setup=jobs)`` first calls
every zero-argument ``setup`` job (e.g. pretraining a backbone) and waits for them all,
then calls ``teacher_job(seed)`` and ``student_job(seed, method)`` (each returns its
result row), starting the students of a seed only once that seed's teacher is done. With one
worker the jobs run in this process in order (seed by seed); with more, in a pool of
``workers`` processes (``spawn``: each one imports torch afresh and runs its job on
its own threads). Every job seeds itself and reads its teacher from the cache, so the
rows do not depend on the number of workers or on the order the jobs finish in.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait


def run_jobs(teacher_job, student_job, seeds, methods, workers: int = 1, log=print, setup=()) -> list[dict]:
    """Rows of every teacher and student job, ordered by seed, with the teacher first and the methods
    in the given order (setup jobs return nothing)."""
    seeds, methods = list(seeds), list(methods)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        for job in setup:
            job()
        rows = []
        for seed in seeds:
            rows.append(teacher_job(seed))
            rows.extend(student_job(seed, method) for method in methods)
        return rows
    results: dict[tuple, dict] = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for future in [pool.submit(job) for job in setup]:
            future.result()  # a failed setup job stops the run with its own error
        pending = {pool.submit(teacher_job, seed): (seed, None) for seed in seeds}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                seed, method = pending.pop(future)
                results[seed, method] = future.result()  # a failed job stops the run with its own error
                if method is None:
                    log(f"seed {seed}: teacher done; {len(methods)} student job(s) queued")
                    pending.update({pool.submit(student_job, seed, m): (seed, m) for m in methods})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[seed, method] for seed in seeds for method in [None, *methods]]
