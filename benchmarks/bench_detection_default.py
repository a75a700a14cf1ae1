"""Benchmark: the detection default command, timed from an empty cache, with its three targets.

    python -m benchmarks.bench_detection_default [--out results] [--json FILE] [--config FILE] [--check-only]

Runs ``python -m benchmarks.run --suite detection`` (teacher and every method over the default
seeds, embedded ``mnist-scenes`` generated into the empty cache) in a subprocess with a fresh
cache folder, then checks from the leaderboard it wrote:

1. every method's 95% interval of its AP gain over ``none`` has a half-width of at most 2.0 AP
   (paired by seed, Student t: the leaderboard's ``gain_ci_halfwidth``);
2. the teacher beats ``none`` by at least 5 AP;
3. the whole command, data generation included, takes at most 15 minutes.

The retrieval default's benchmark is ``benchmarks.bench_default_run`` (its wall-time and gap
targets are the same numbers, read from there).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.bench_default_run import MAX_SECONDS, MIN_GAP
from benchmarks.results_io import atomic_write_json

SUITE, PRIMARY = "detection", "ap"
MAX_HALFWIDTH = 2.0  # AP points


def check(board: pd.DataFrame, seconds: float | None) -> tuple[dict, dict]:
    """(numbers, {target: passed}) from a detection leaderboard (indexed by method, AP in %)."""
    students = board.drop(index=[m for m in ("teacher", "none") if m in board.index])
    halfwidths = students["gain_ci_halfwidth"]
    gap = float(board.loc["teacher", f"{PRIMARY}_mean"] - board.loc["none", f"{PRIMARY}_mean"])
    numbers = {"wall_seconds": None if seconds is None else round(seconds, 1),
               "max_gain_halfwidth_ap": round(float(halfwidths.max()), 3),
               "gain_halfwidth_by_method": {m: round(float(v), 3) for m, v in halfwidths.items()},
               "gain_by_method": {m: round(float(v), 3) for m, v in students["gain_vs_none"].items()},
               "teacher_minus_none_ap": round(gap, 2)}
    ok = {"halfwidth": bool(len(halfwidths) > 0 and halfwidths.notna().all() and halfwidths.max() <= MAX_HALFWIDTH),
          "gap": gap >= MIN_GAP}
    if seconds is not None:
        ok["time"] = seconds <= MAX_SECONDS
    return numbers, ok


def report(numbers: dict, ok: dict) -> list[str]:
    verdict = {k: "PASS" if v else "FAIL" for k, v in ok.items()}
    lines = [f"largest 95% half-width of an AP gain over none {numbers['max_gain_halfwidth_ap']:.2f} AP "
             f"(target <= {MAX_HALFWIDTH}): {verdict['halfwidth']}  {numbers['gain_halfwidth_by_method']}",
             f"gains over none {numbers['gain_by_method']}",
             f"teacher - none AP {numbers['teacher_minus_none_ap']:.2f} (target >= {MIN_GAP}): {verdict['gap']}"]
    if "time" in ok:
        lines.insert(0, f"wall time {numbers['wall_seconds']:.0f}s (target <= {MAX_SECONDS}s): {verdict['time']}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--config", help="a config merged over the default (the targets are those of the default)")
    p.add_argument("--check-only", action="store_true",
                   help="check the leaderboard already in --out, without running (no wall-time target)")
    args = p.parse_args(argv)
    from benchmarks.config import resolve_config

    cfg = resolve_config(SUITE, args.config)
    seconds = None
    if not args.check_only:
        # an empty cache (the scenes are generated into it), named relative to the working folder
        with tempfile.TemporaryDirectory(dir=".", prefix=".bench-cache-") as cache:
            cmd = [sys.executable, "-m", "benchmarks.run", "--suite", SUITE, "--out", args.out,
                   "--cache-dir", Path(cache).name, "--no-progress", *(["--config", args.config] if args.config else [])]
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            seconds = time.perf_counter() - start
    board = pd.read_csv(Path(args.out) / SUITE / cfg["dataset"]["name"] / "leaderboard.csv").set_index("method")
    numbers, ok = check(board, seconds)
    print("\n".join(report(numbers, ok)))
    if args.json:
        atomic_write_json(args.json, {**numbers, "pass": ok})
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
