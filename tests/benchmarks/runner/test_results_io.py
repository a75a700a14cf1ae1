"""Result files are written atomically and runs.csv upserts keep every other row, also when
two writers run at once or a writer is killed mid-write."""

import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.runner import results_io
from benchmarks.runner.results_io import atomic_write_text, atomic_write_via, read_header, read_runs, upsert_rows
from retrieval.utils import atomic


def test_upsert_replaces_same_run_id_and_keeps_others(tmp_path):
    path = tmp_path / "runs.csv"
    upsert_rows(path, [{"run_id": "a", "x": 1}, {"run_id": "b", "x": 2}])
    table = upsert_rows(path, [{"run_id": "b", "x": 3}, {"run_id": "c", "x": 4}])
    on_disk = pd.read_csv(path).sort_values("run_id")
    assert on_disk["run_id"].tolist() == ["a", "b", "c"] and on_disk["x"].tolist() == [1, 3, 4]
    assert len(table) == 3


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _upsert_many(path, prefix, n):
    for i in range(n):
        upsert_rows(path, [{"run_id": f"{prefix}-{i}", "writer": prefix, "i": i}])


def test_two_concurrent_writers_lose_no_row(tmp_path):
    path = tmp_path / "runs.csv"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_upsert_many, args=(path, name, 50)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    table = pd.read_csv(path)
    assert len(table) == 100 and table["run_id"].is_unique
    assert sorted(table.loc[table["writer"] == "a", "i"]) == list(range(50))
    assert sorted(table.loc[table["writer"] == "b", "i"]) == list(range(50))


# A child that starts an atomic write of a large table and stops just before the rename
# (its fsync is made to hang): the parent SIGKILLs it there.
KILLED_WRITER = """
import sys, time
from benchmarks.runner import results_io
from retrieval.utils import atomic
def hang(fd):
    print("written", flush=True)
    time.sleep(60)
atomic.os.fsync = hang
results_io.atomic_write_text(sys.argv[1], "new,table\\n" + "1,2\\n" * 2_000_000)
"""


def test_kill_during_a_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "runs.csv"
    atomic_write_text(path, "run_id,x\na,1\n")
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"  # the new content is in the temp file
        leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) == 1 and leftovers[0].stat().st_size > 1_000_000
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert path.read_text() == "run_id,x\na,1\n"
    assert pd.read_csv(path)["run_id"].tolist() == ["a"]
    # the orphaned temp file is hidden (.runs.csv.*.tmp): no reader that looks for *.csv takes it for a table
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["runs.csv"]
    assert sorted(p.name for p in tmp_path.glob("*/runs.csv")) == []
    upsert_rows(path, [{"run_id": "b", "x": 2}])  # and the next write works as usual
    assert pd.read_csv(path)["run_id"].tolist() == ["a", "b"]


def test_atomic_write_via_and_modes(tmp_path):
    path = tmp_path / "sub" / "blob.bin"
    atomic_write_via(path, lambda tmp: Path(tmp).write_bytes(b"abc"))
    assert path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o644 == 0o644  # not the 0600 of a bare temp file

    def broken(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write_via(path, broken)
    assert path.read_bytes() == b"abc" and [p.name for p in path.parent.iterdir()] == ["blob.bin"]


def test_read_runs_skips_the_header(tmp_path):
    path = tmp_path / "baseline.csv"
    path.write_text("# command: python -m benchmarks.run\n# commit: abc\nrun_id,x\na,1\n")
    assert read_runs(path)["run_id"].tolist() == ["a"]
    assert read_header(path) == {"command": "python -m benchmarks.run", "commit": "abc"}
    versions = results_io.package_versions()
    assert "torch" in versions and "numpy" in versions


def test_hashes_that_look_like_numbers_stay_text(tmp_path):
    path = tmp_path / "runs.csv"
    upsert_rows(path, [{"run_id": "a", "commit": "0123456", "config_hash": "12e4567890", "x": 1}])
    upsert_rows(path, [{"run_id": "b", "commit": "0123456", "config_hash": "12e4567890", "x": 2}])
    table = read_runs(path)
    assert table["commit"].tolist() == ["0123456"] * 2 and table["config_hash"].tolist() == ["12e4567890"] * 2


def test_commit_is_dirty_for_code_changes_but_not_for_results(tmp_path):
    import subprocess

    from benchmarks.runner.results_io import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) >= 7 and not clean.endswith("-dirty")
    (tmp_path / "results" / "runs.csv").write_text("a\nb\n")  # what a run writes
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"
