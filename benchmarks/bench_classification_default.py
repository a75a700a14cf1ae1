"""Benchmark: the classification default command, timed from an empty cache, with its targets.

    python -m benchmarks.bench_classification_default [--out results] [--json FILE] [--config FILE]
        [--check-only] [--convergence]

Runs ``python -m benchmarks.run --suite classification`` (backbone pretraining, a teacher per
seed and every method, on the generated ``synthetic-cls``) in a subprocess with a fresh cache
folder, then checks from the leaderboard it wrote and from its config:

1. every method's 95% interval of its top-1 gain over ``none`` has a half-width of at most
   1.0 point (paired by seed, Student t: the leaderboard's ``gain_ci_halfwidth``);
2. the teacher beats ``none`` by at least 3 points of top-1;
3. teacher and student train under the same schedule (epochs, learning rate, schedule,
   batch), so the gap is the networks' and not the epochs';
4. the whole command, pretraining included, takes at most 10 minutes.

``--convergence`` also reruns the teacher and ``none`` with twice the epochs (same schedule
shape, other seeds unchanged, into a temporary folder) and reports how much each moved and
the gap at twice the epochs, which must stay at least 3 points: the gap is not an artefact
of stopping early.
"""

from __future__ import annotations

import sys
import tempfile

import pandas as pd

from benchmarks.bench_default_run import finish, gains, parser, read_board, target_lines, timed_default_run, verdicts
from benchmarks.runner.config import resolve_config
from benchmarks.runner.tasks.classification import train_config

SUITE, PRIMARY = "classification", "top1"
MAX_SECONDS, MIN_GAP, MAX_HALFWIDTH = 10 * 60, 3.0, 1.0


def same_schedule(cfg: dict) -> bool:
    """Whether teacher and student train with the same options (epochs, lr, schedule, batch...)."""
    return train_config(cfg, "teacher", False) == train_config(cfg, "student", False)


def gap(board: pd.DataFrame) -> float:
    return float(board.loc["teacher", f"{PRIMARY}_mean"] - board.loc["none", f"{PRIMARY}_mean"])


def check(board: pd.DataFrame, schedule_ok: bool, seconds: float | None,
          longer: pd.DataFrame | None = None) -> tuple[dict, dict]:
    """(numbers, {target: passed}) from a leaderboard (indexed by method, accuracy in %), whether the
    roles share a schedule, the wall time and, optionally, the teacher/none board at twice the epochs."""
    numbers, ok = gains(board, PRIMARY, MAX_HALFWIDTH, seconds, MIN_GAP, MAX_SECONDS)
    numbers["same_schedule"] = schedule_ok
    ok["schedule"] = schedule_ok
    if longer is not None:
        numbers["twice_the_epochs"] = {
            "teacher_minus_none_top1": round(gap(longer), 2),
            "teacher_change": round(float(longer.loc["teacher", f"{PRIMARY}_mean"] - board.loc["teacher", f"{PRIMARY}_mean"]), 2),
            "none_change": round(float(longer.loc["none", f"{PRIMARY}_mean"] - board.loc["none", f"{PRIMARY}_mean"]), 2)}
        ok["gap_at_twice_the_epochs"] = gap(longer) >= MIN_GAP
    return numbers, ok


def report(numbers: dict, ok: dict) -> list[str]:
    verdict = verdicts(ok)
    lines = target_lines(numbers, ok, PRIMARY, "top-1", "points", MAX_HALFWIDTH, MIN_GAP, MAX_SECONDS)
    lines.append(f"teacher and student on the same schedule: {verdict['schedule']}")
    if "twice_the_epochs" in numbers:
        t = numbers["twice_the_epochs"]
        lines.append(f"at twice the epochs: teacher {t['teacher_change']:+.2f}, none {t['none_change']:+.2f} points; "
                     f"teacher - none {t['teacher_minus_none_top1']:.2f} (target >= {MIN_GAP}): "
                     f"{verdict['gap_at_twice_the_epochs']}")
    return lines


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--convergence", action="store_true",
                   help="also train the teacher and none with twice the epochs and check the gap there")
    args = p.parse_args(argv)
    cfg = resolve_config(SUITE, args.config)
    seconds = None if args.check_only else timed_default_run(SUITE, args.out, args.config, keep_cache=args.keep_cache)
    longer = None
    if args.convergence:
        epochs = 2 * train_config(cfg, "student", False).epochs
        with tempfile.TemporaryDirectory(dir=".", prefix=".bench-longer-") as out:
            timed_default_run(SUITE, out, args.config, ("--methods", "none", "--epochs", str(epochs)))
            longer = read_board(out, SUITE, cfg)
    numbers, ok = check(read_board(args.out, SUITE, cfg), same_schedule(cfg), seconds, longer)
    return finish(numbers, ok, report(numbers, ok), args.json)


if __name__ == "__main__":
    sys.exit(main())
