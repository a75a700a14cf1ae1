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

import sys

import pandas as pd

from benchmarks.bench_default_run import (
    MAX_SECONDS,
    MIN_GAP,
    finish,
    gains,
    parser,
    read_board,
    target_lines,
    timed_default_run,
)
from benchmarks.runner.config import resolve_config

SUITE, PRIMARY = "detection", "ap"
MAX_HALFWIDTH = 2.0  # AP points


def check(board: pd.DataFrame, seconds: float | None) -> tuple[dict, dict]:
    """(numbers, {target: passed}) from a detection leaderboard (indexed by method, AP in %)."""
    return gains(board, PRIMARY, MAX_HALFWIDTH, seconds, MIN_GAP, MAX_SECONDS)


def report(numbers: dict, ok: dict) -> list[str]:
    return target_lines(numbers, ok, PRIMARY, "AP", "AP", MAX_HALFWIDTH, MIN_GAP, MAX_SECONDS)


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)

    cfg = resolve_config(SUITE, args.config)
    # an empty cache: the scenes are generated into it
    seconds = None if args.check_only else timed_default_run(SUITE, args.out, args.config, keep_cache=args.keep_cache)
    numbers, ok = check(read_board(args.out, SUITE, cfg), seconds)
    return finish(numbers, ok, report(numbers, ok), args.json)


if __name__ == "__main__":
    sys.exit(main())
