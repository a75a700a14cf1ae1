"""Runs a suite's jobs: setup jobs, one teacher per seed, then one student per (seed, method).

``run_jobs(teacher_job, student_job, seeds, methods, workers, setup=jobs)`` first calls
every zero-argument ``setup`` job (e.g. pretraining a backbone) and waits for them all,
then calls ``teacher_job(seed)`` and ``student_job(seed, method)`` (each returns its
result row), starting the students of a seed only once that seed's teacher is done. With
``teacher_of`` (seed -> the seed of its teacher; e.g. always 0, for one teacher shared by every
seed), each distinct teacher is trained once, before the students that use it. With
``needs_teacher`` (method -> bool), the students of a method that reads no teacher (``none``)
start at once, beside the teachers, instead of waiting for theirs. The ``launcher``
(``benchmarks.runner.launch``; default: local) says where the jobs run. Locally, with one
worker the jobs run in this process in order (seed by seed); with more, in a pool of
``workers`` long-lived processes (``benchmarks.runner.launch.job_pool``; ``spawn``: each one imports torch
afresh, runs its jobs on its own threads and keeps its data from job to job). With the ``ray``
or ``slurm`` launcher, up to ``workers`` jobs at once are Ray tasks or SLURM jobs, in the same
order: the teachers before the students that read them. Every job seeds
itself and reads its teacher from the cache, so the rows do not depend on the number of
workers or on the order the jobs finish in.

With a ``reporter`` (``benchmarks.runner.progress.Reporter``) every job runs under
``benchmarks.runner.progress.run_job``: its start, training progress, messages (``job_log``) and
end reach the reporter, from a pool process through its pipe, so that the main process
shows them all, the same way with one worker or several. Jobs are named ``teacher s<seed>``,
``<method> s<seed>`` and, for setup jobs given as ``(name, job)`` pairs, by their name.

A job that raises stops the run with its own error. A job whose process dies (the OOM
killer, a signal, a crash in native code) stops it with ``benchmarks.runner.launch.job_pool.JobDied``, one
line naming the job (suite, method, seed), the signal and the memory it had reached. Either
way, and on Ctrl-C or SIGTERM (``benchmarks.runner.launch.interrupt``: the interrupt is noted with the jobs
done and stopped), every other job and every DataLoader worker is killed at once; the
training states saved after each epoch let the same command resume.
"""

from __future__ import annotations

import contextlib

from benchmarks.runner import progress as live
from benchmarks.runner.launch import LocalLauncher, interrupt
from benchmarks.runner.launch.job_pool import Job


def job_count(seeds, methods, setup=(), teacher_of=None) -> int:
    """How many jobs ``run_jobs`` runs: the setup jobs, a teacher per distinct teacher seed (one per
    seed without ``teacher_of``), a student per (seed, method)."""
    seeds = list(seeds)
    return len(list(setup)) + len(teacher_seeds(seeds, teacher_of)) + len(seeds) * len(list(methods))


def teacher_seeds(seeds, teacher_of=None) -> list:
    """The distinct teachers the ``seeds`` use, in the order of their first student seed."""
    return list(dict.fromkeys(seeds if teacher_of is None else (teacher_of(s) for s in seeds)))


def _named_setup(setup) -> list[tuple[str, object]]:
    return [job if isinstance(job, tuple) else (f"setup {i + 1}", job) for i, job in enumerate(setup)]


def run_jobs(teacher_job, student_job, seeds, methods, workers: int = 1, log=print, setup=(),
             reporter=None, suite: str | None = None, teacher_of=None, needs_teacher=None,
             launcher=None) -> list[dict]:
    """Rows of every teacher and student job, ordered by seed, each teacher before the students of
    the first seed that uses it and the methods in the given order (setup jobs, callables or ``(name,
    callable)`` pairs, return nothing). ``suite`` names the suite in the message of a job whose process
    dies; ``teacher_of(seed)``, the teacher a seed's students use (default: the seed's own);
    ``needs_teacher(method)``, whether a method's students wait for their teacher (default: all do);
    ``launcher``, where the jobs run (default: ``LocalLauncher``)."""
    seeds, methods, setup = list(seeds), list(methods), _named_setup(setup)
    teacher_of = teacher_of or (lambda seed: seed)
    waits = [m for m in methods if needs_teacher is None or needs_teacher(m)]
    teachers = teacher_seeds(seeds, teacher_of)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    say = reporter.write if reporter is not None else log
    launcher = launcher or LocalLauncher()
    total = len(setup) + len(teachers) + len(seeds) * len(methods)
    if workers == 1 and launcher.in_process:
        run, done = (live.run_job if reporter is not None else (lambda name, fn, *a: fn(*a))), []

        def tracked(name, fn, *args):  # which job an interrupt stops, how many had finished
            try:
                value = run(name, fn, *args)
            except KeyboardInterrupt as exc:
                interrupt.note(exc, done=len(done), total=total, stopped=[name],
                               how="stopped the job running in this process and its loader workers")
                raise
            done.append(name)
            return value

        with live.reporting_to(reporter) if reporter is not None else contextlib.nullcontext():
            return _in_order(teacher_job, student_job, seeds, methods, setup, teacher_of, tracked)
    where = [f"suite {suite}"] if suite else []

    def about(method, seed):
        return ", ".join([*where, f"method {method}", f"seed {seed}"])

    def student(s, m):
        return Job(f"{m} s{s}", student_job, (s, m), about(m, s), (s, m))

    results: dict[tuple, dict] = {}
    events = dict(events=reporter.handle, steps=reporter.wants_steps, run=live.run_job) if reporter else {}
    pool, setup_done = None, 0
    try:
        pool = launcher.pool(workers, **events)
        with pool:
            for name, job in setup:
                pool.submit(Job(name, job, about=", ".join(where)))
            for _ in setup:
                pool.result()  # a failed setup job stops the run with its own error
                setup_done += 1
            for seed in teachers:
                pool.submit(Job(f"teacher s{seed}", teacher_job, (seed,), about("teacher", seed), (seed, None)))
            for s in seeds:  # students that read no teacher queue behind the teachers, not after them
                for m in methods:
                    if m not in waits:
                        pool.submit(student(s, m))
            while len(results) < len(teachers) + len(seeds) * len(methods):
                job, row = pool.result()  # a failed job stops the run with its own error, a dead one with JobDied
                results[job.key] = row
                seed, method = job.key
                if method is None:
                    users = [s for s in seeds if teacher_of(s) == seed]
                    say(f"seed {seed}: teacher done; {len(waits) * len(users)} student job(s) queued")
                    for s in users:
                        for m in waits:
                            pool.submit(student(s, m))
    except KeyboardInterrupt as exc:  # the pool has stopped every job on its way out: say which, and how
        interrupt.note(exc, done=setup_done + len(results), total=total, stopped=getattr(pool, "stopped", []),
                       how=getattr(pool, "how", ""))
        raise
    return _ordered(seeds, methods, teacher_of, results)


def _ordered(seeds, methods, teacher_of, results: dict) -> list[dict]:
    """Seed by seed: the seed's teacher (where it is first used), then its students."""
    rows, teachers = [], set()
    for seed in seeds:
        if teacher_of(seed) not in teachers:
            teachers.add(teacher_of(seed))
            rows.append(results[teacher_of(seed), None])
        rows.extend(results[seed, method] for method in methods)
    return rows


def _in_order(teacher_job, student_job, seeds, methods, setup, teacher_of, run) -> list[dict]:
    for name, job in setup:
        run(name, job)
    results = {}
    for seed in seeds:
        if (teacher_of(seed), None) not in results:
            results[teacher_of(seed), None] = run(f"teacher s{teacher_of(seed)}", teacher_job, teacher_of(seed))
        results.update({(seed, method): run(f"{method} s{seed}", student_job, seed, method) for method in methods})
    return _ordered(seeds, methods, teacher_of, results)
