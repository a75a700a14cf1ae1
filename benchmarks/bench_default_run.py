"""Benchmark: the README's default command, timed from an empty teacher cache, with its targets.

    python -m benchmarks.bench_default_run [--out results] [--json FILE]

Runs ``python -m benchmarks.run --suite retrieval`` (teacher and five methods, three
seeds, embedded default data) in a subprocess with a fresh cache folder, then prints
the wall time and checks the issue's targets from the leaderboard it wrote:
wall time <= 15 min; teacher Recall@1 >= none + 5 points; every method's seed std
<= 1 point.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.results_io import atomic_write_json

MAX_SECONDS, MIN_GAP, MAX_STD = 15 * 60, 5.0, 1.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    # an empty teacher cache, named relative to the working folder so the recorded command stays portable
    with tempfile.TemporaryDirectory(dir=".", prefix=".bench-cache-") as cache:
        cmd = [sys.executable, "-m", "benchmarks.run", "--suite", "retrieval", "--out", args.out,
               "--cache-dir", Path(cache).name, "--no-progress"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
    board = pd.read_csv(Path(args.out) / "retrieval" / "synthetic" / "leaderboard.csv").set_index("method")
    gap = board.loc["teacher", "recall@1_mean"] - board.loc["none", "recall@1_mean"]
    worst_std = board["recall@1_std"].max()
    checks = {"wall_seconds": round(seconds, 1), "teacher_minus_none_recall@1": round(float(gap), 2),
              "max_seed_std_recall@1": round(float(worst_std), 2),
              "std_by_method": {m: round(float(v), 2) for m, v in board["recall@1_std"].items()}}
    ok = {"time": bool(seconds <= MAX_SECONDS), "gap": bool(gap >= MIN_GAP), "std": bool(worst_std <= MAX_STD)}
    print(f"wall time {seconds:.0f}s (target <= {MAX_SECONDS}s): {'PASS' if ok['time'] else 'FAIL'}")
    print(f"teacher - none recall@1 {gap:.2f} points (target >= {MIN_GAP}): {'PASS' if ok['gap'] else 'FAIL'}")
    print(f"largest seed std of recall@1 {worst_std:.2f} points (target <= {MAX_STD}): "
          f"{'PASS' if ok['std'] else 'FAIL'}  {checks['std_by_method']}")
    if args.json:
        atomic_write_json(args.json, {**checks, "pass": ok})
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
