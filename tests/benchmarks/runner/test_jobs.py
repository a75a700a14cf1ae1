"""The job runner: students wait for their seed's teacher, rows come back in a fixed order,
the same with one worker or a process pool, and a failing job stops the run with its error."""

import functools
import os
from pathlib import Path

import pytest

from benchmarks.runner.jobs import job_count, run_jobs


def teacher_job(seed):
    return {"seed": seed, "method": "teacher", "pid": os.getpid()}


def student_job(seed, method):
    if method == "boom":
        raise RuntimeError(f"job {method} of seed {seed} failed")
    return {"seed": seed, "method": method, "pid": os.getpid()}


def marking_teacher(folder, seed):
    Path(folder, f"teacher{seed}").write_text("done")
    return teacher_job(seed)


def checking_student(folder, seed, method):
    assert Path(folder, f"teacher{seed}").exists(), f"student {method} of seed {seed} started before its teacher"
    return student_job(seed, method)


def _keys(rows):
    return [(r["seed"], r["method"]) for r in rows]


EXPECTED = [(0, "teacher"), (0, "a"), (0, "b"), (1, "teacher"), (1, "a"), (1, "b")]


def test_one_worker_runs_in_this_process_in_order():
    rows = run_jobs(teacher_job, student_job, [0, 1], ["a", "b"], workers=1)
    assert _keys(rows) == EXPECTED
    assert {r["pid"] for r in rows} == {os.getpid()}


def test_a_pool_gives_the_same_rows_in_the_same_order():
    rows = run_jobs(teacher_job, student_job, [0, 1], ["a", "b"], workers=2, log=lambda *a: None)
    assert _keys(rows) == EXPECTED
    assert os.getpid() not in {r["pid"] for r in rows}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_raises_its_error(workers):
    with pytest.raises(RuntimeError, match="job boom of seed 0 failed"):
        run_jobs(teacher_job, student_job, [0], ["a", "boom"], workers=workers, log=lambda *a: None)


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        run_jobs(teacher_job, student_job, [0], ["a"], workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_students_start_after_their_teacher(tmp_path, workers):
    rows = run_jobs(functools.partial(marking_teacher, str(tmp_path)), functools.partial(checking_student, str(tmp_path)),
                    [0, 1, 2], ["a", "b", "c"], workers=workers, log=lambda *a: None)
    assert len(rows) == 12


def marking_setup(folder, name):
    Path(folder, f"setup-{name}").write_text("done")


def teacher_after_setup(folder, seed):
    missing = [n for n in ("x", "y") if not Path(folder, f"setup-{n}").exists()]
    assert not missing, f"teacher of seed {seed} started before setup job(s) {missing}"
    return teacher_job(seed)


@pytest.mark.parametrize("workers", [1, 2])
def test_setup_jobs_finish_before_any_teacher(tmp_path, workers):
    setup = [functools.partial(marking_setup, str(tmp_path), name) for name in ("x", "y")]
    rows = run_jobs(functools.partial(teacher_after_setup, str(tmp_path)), student_job, [0, 1], ["a", "b"],
                    workers=workers, log=lambda *a: None, setup=setup)
    assert _keys(rows) == EXPECTED  # setup jobs add no rows


def failing_setup():
    raise RuntimeError("setup failed")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_setup_job_stops_the_run(workers):
    with pytest.raises(RuntimeError, match="setup failed"):
        run_jobs(teacher_job, student_job, [0], ["a"], workers=workers, log=lambda *a: None, setup=[failing_setup])


def counting_teacher(folder, seed):
    marker = Path(folder, f"teacher{seed}")
    assert not marker.exists(), f"the teacher of seed {seed} was trained twice"
    marker.write_text("done")
    return teacher_job(seed)


def shared_teacher_student(folder, seed, method):
    assert Path(folder, "teacher0").exists(), f"student {method} of seed {seed} started before the shared teacher"
    return student_job(seed, method)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_teacher_shared_by_every_seed_is_trained_once(tmp_path, workers):
    rows = run_jobs(functools.partial(counting_teacher, str(tmp_path)),
                    functools.partial(shared_teacher_student, str(tmp_path)), [2, 0, 1], ["a", "b"],
                    workers=workers, log=lambda *a: None, teacher_of=lambda seed: 0)
    assert _keys(rows) == [(0, "teacher"), (2, "a"), (2, "b"), (0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher0"]
    assert job_count([2, 0, 1], ["a", "b"], teacher_of=lambda seed: 0) == len(rows)
    assert job_count([2, 0, 1], ["a", "b"]) == 9  # a teacher per seed


@pytest.mark.parametrize("workers", [1, 2])
def test_seeds_may_share_some_teachers(tmp_path, workers):
    rows = run_jobs(functools.partial(counting_teacher, str(tmp_path)), student_job, [0, 1, 2, 3], ["a"],
                    workers=workers, log=lambda *a: None, teacher_of=lambda seed: seed % 2)
    assert _keys(rows) == [(0, "teacher"), (0, "a"), (1, "teacher"), (1, "a"), (2, "a"), (3, "a")]


def teacher_waiting_for_free_students(folder, seed):
    """Finishes only once every teacher-free student of the run has run: proves they do not wait for it."""
    import time

    deadline = time.monotonic() + 60
    while not all(Path(folder, f"free{s}").exists() for s in (0, 1)):
        assert time.monotonic() < deadline, "the teacher-free students did not run beside the teacher"
        time.sleep(0.05)
    return marking_teacher(folder, seed)


def free_or_checking_student(folder, seed, method):
    if method == "free":
        assert not Path(folder, "teacher0").exists(), "the teacher-free student waited for the teacher"
        Path(folder, f"free{seed}").write_text("done")
        return student_job(seed, method)
    assert Path(folder, "teacher0").exists(), f"student {method} of seed {seed} started before its teacher"
    return student_job(seed, method)


def test_students_that_need_no_teacher_run_beside_it(tmp_path):
    rows = run_jobs(functools.partial(teacher_waiting_for_free_students, str(tmp_path)),
                    functools.partial(free_or_checking_student, str(tmp_path)), [0, 1], ["free", "a"], workers=2,
                    log=lambda *a: None, teacher_of=lambda seed: 0, needs_teacher=lambda method: method != "free")
    assert _keys(rows) == [(0, "teacher"), (0, "free"), (0, "a"), (1, "free"), (1, "a")]


def test_with_one_worker_a_teacher_free_student_keeps_its_place(tmp_path):
    rows = run_jobs(teacher_job, student_job, [0, 1], ["a", "b"], workers=1, needs_teacher=lambda m: m != "a")
    assert _keys(rows) == EXPECTED
