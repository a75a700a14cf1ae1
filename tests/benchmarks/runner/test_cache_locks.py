"""What a killed process leaves in the cache is harmless: its ``<path>.lock`` (an fcntl lock, which the kernel
drops with the process that held it) and the temp file of an atomic write it did not finish. The next process
takes the lock at once, and readers never see the temp file."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from benchmarks.runner.results_io import file_lock, upsert_rows

ROOT = Path(__file__).resolve().parents[3]

HOLDER = """
import sys, time
from benchmarks.runner.results_io import file_lock
with file_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


def _takes(path, within: float) -> bool:
    """Whether this process gets ``file_lock(path)`` within ``within`` seconds (tried on a thread)."""
    got = threading.Event()

    def take():
        with file_lock(path):
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got.wait(within)


def test_a_lock_left_by_a_killed_process_is_taken_at_once(tmp_path):
    path = tmp_path / "cache" / "pretrained" / "backbone.pt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not _takes(path, within=0.5)  # held: a second process waits
        holder.send_signal(signal.SIGKILL)  # killed while holding it, as by the OOM killer or kill -9
        holder.wait(timeout=10)
    finally:
        holder.kill()
    assert Path(str(path) + ".lock").exists()  # the file stays behind ...
    start = time.perf_counter()
    assert _takes(path, within=5)  # ... and holds nothing
    assert time.perf_counter() - start < 1


def test_a_stale_lock_file_and_an_unfinished_write_are_ignored(tmp_path):
    runs = tmp_path / "runs.csv"
    upsert_rows(runs, [{"run_id": "a", "value": 1}])
    Path(str(runs) + ".lock").write_text("pid 12345, long gone\n")  # any content: only the fcntl lock counts
    (tmp_path / ".runs.csv.x1y2z3.tmp").write_text("run_id,value\nhalf")  # a write killed before its rename
    table = upsert_rows(runs, [{"run_id": "b", "value": 2}])
    assert table["run_id"].tolist() == ["a", "b"]
    assert pd.read_csv(runs)["run_id"].tolist() == ["a", "b"]
