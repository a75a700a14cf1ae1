"""Replication check: run a suite's config twice, on disjoint replicates, and compare the gains.

    python -m benchmarks.replicate --suite retrieval [--seeds 0,1,...] [--second-seeds 10,11,...]
        [--first FOLDER] [--out results/replication] [any flag of benchmarks.run: --config, --cache-dir, ...]

The first run is an ordinary ``python -m benchmarks.run`` with the given flags, on the config's seeds
(or ``--seeds``), written to ``<out>/first/<suite>/<dataset>/``; with the cache of an earlier run of the
same config at the same commit (``--cache-dir``) it trains nothing and gives that run's rows. With
``--first FOLDER`` (a results folder ``<results>/<suite>/<dataset>`` of the same config, e.g. a committed
default) its rows are the first run and nothing of it is trained: every one of its rows must carry the
run id that the given config gives its method and seed, or the check stops before any training. The second is the same
command on other replicates (``--second-seeds``; by default as many seeds as the first run has,
numbered after its largest), written to ``<out>/second/<suite>/<dataset>/``. Per method and metric the
check prints both gains over ``none``, their difference with its 95% interval and z, and every
conclusion of one run that the other contradicts (``benchmarks.report.replication``), and writes
``<out>/<suite>_<dataset>.md`` and ``.csv``.

If the intervals cover what varies between reruns, about 1 difference in 20 lies outside its
interval and no conclusion is contradicted. Seeds shared by the two runs are an error: the runs
would share replicates and not be independent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks import run as runner
from benchmarks.report.replication import compare, summary, to_markdown
from benchmarks.report.rows import current_rows
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.results_io import atomic_write_json, command_line, git_commit, write_report
from benchmarks.runner.schema import check_config, typed
from benchmarks.runner.tasks import get_suite


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from exc
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected one or more seeds >= 0, got {text!r}")
    return seeds


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    p = ArgumentParser(prog="python -m benchmarks.replicate", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="retrieval", help="the suite whose config runs twice")
    p.add_argument("--seeds", type=_seeds, help="the first run's replicates (default: the config's seeds)")
    p.add_argument("--second-seeds", type=_seeds,
                   help="the second run's replicates (default: as many as the first, after its largest)")
    p.add_argument("--first", help="a results folder of the same config whose rows are the first run (not rerun)")
    p.add_argument("--out", default="results/replication",
                   help="where both runs and the report go (default: results/replication)")
    add_debug_flag(p)
    args, rest = p.parse_known_args(argv)
    for flag in ("--dry-run", "--reproduce"):
        if any(a == flag or a.startswith(flag + "=") for a in rest):
            raise UserError(f"{flag}: a replication check runs the config in full, twice; drop {flag}")
    return args, rest


def first_rows(folder: Path, cfg: dict) -> list[int]:
    """The seeds of an existing run in ``folder`` whose rows are those of ``cfg`` (the run id of every
    student row of a method that ``cfg`` runs is the one ``cfg`` gives its method and seed); a one-line error
    otherwise. Rows of methods that ``cfg`` does not run (a zoo folder checked on a few of its methods) are
    left out of the check and of the comparison."""
    if not (folder / "runs.csv").is_file() or not (folder / "pairwise.csv").is_file():
        raise UserError(f"--first {folder}: no runs.csv and pairwise.csv there; expected a results folder "
                        f"<results>/<suite>/<dataset> written by python -m benchmarks.run")
    rows = current_rows(folder)
    students = rows[rows["method"] != "teacher"]
    if students.empty:
        raise UserError(f"--first {folder}: no student rows")
    spec = typed(cfg)
    students = students[students["method"].isin(spec.run)]
    suite = get_suite(spec.suite)
    wrong = []
    for _, row in students.iterrows():
        seed = int(row["seed"])
        expected, _ = suite.run_id_of(replicate_config(cfg, seed), row["method"], seed)
        if expected != row["run_id"]:
            wrong.append(f"{row['run_id']} (the config gives {expected})")
    if wrong:
        raise UserError(f"--first {folder}: {len(wrong)} row(s) are not of this config, e.g. {wrong[0]}; pass the "
                        f"flags and --config of the run that wrote the folder")
    missing = sorted(set(spec.run) - set(students["method"]))
    if missing:
        raise UserError(f"--first {folder}: no rows of {', '.join(missing)}; the config runs {', '.join(spec.run)}")
    return sorted(int(s) for s in students["seed"].unique())


def plan(args, rest: list[str]) -> tuple[dict, list[int], list[int]]:
    """(config, first seeds, second seeds), checked before any training."""
    cfg, origin = runner.build_config(runner.parse_args(["--suite", args.suite, *rest]))
    check_config(cfg, origin)  # each problem named with the file or flag it came from, before anything is read
    spec = typed(cfg)
    if "none" not in spec.run:
        raise UserError(f"the run list {','.join(spec.run)} has no none: the check compares each method's gain "
                        f"over none in both runs; add it (e.g. --methods none,{','.join(spec.run)})")
    if args.first and args.seeds:
        raise UserError("--first takes the first run's seeds from its rows; drop --seeds")
    first = first_rows(Path(args.first), cfg) if args.first else list(args.seeds or spec.seeds)
    second = list(args.second_seeds or range(max(first) + 1, max(first) + 1 + len(first)))
    shared = sorted(set(first) & set(second))
    if shared:
        raise UserError(f"--seeds {','.join(map(str, first))} and --second-seeds {','.join(map(str, second))} share "
                        f"{shared}: the two runs must use disjoint replicates (seeds) to be independent")
    if len(set(first)) < len(first) or len(set(second)) < len(second):
        raise UserError("a seed is listed twice: each replicate runs once")
    return cfg, first, second


@reports_user_errors
def main(argv=None) -> int:
    args, rest = parse_args(argv)
    cfg, first, second = plan(args, rest)
    spec = typed(cfg)
    out = Path(args.out)
    runs = [Path(args.first)] if args.first else []
    for seeds, which in ((first, "first"), (second, "second"))[1 if args.first else 0:]:
        print(f"\n== replication, {which} run: seeds {','.join(map(str, seeds))} -> {out / which}", flush=True)
        start = time.perf_counter()
        code = runner.main(["--suite", args.suite, "--seeds", ",".join(map(str, seeds)), "--out", str(out / which),
                            *rest])
        if code:
            return code
        runs.append(out / which / spec.suite / spec.dataset.name)
    # the second run's wall time (its networks are new unless the cache already held them), for bench_frontier
    atomic_write_json(runs[1] / "timing.json", {"wall_seconds": round(time.perf_counter() - start, 1),
                                                "seeds": second, "commit": git_commit()})
    pairs = [pd.read_csv(dest / "pairwise.csv") for dest in runs]
    table = compare(*pairs)
    design = sorted({str(d) for dest in runs for d in pd.read_csv(dest / "leaderboard.csv").get(
        "replicates", pd.Series(["conditional"])).dropna()})
    notes = [f"Command: `{command_line('benchmarks.replicate', argv)}`",
             f"Commit: `{git_commit()}`; replicates ({'/'.join(design)}): first run seeds {first} ({runs[0]}), "
             f"second run seeds {second} ({runs[1]})."]
    title = f"Replication check: {spec.suite}, {spec.dataset.name}"
    text = to_markdown(table, title, notes)
    report = out / f"{spec.suite}_{spec.dataset.name}"
    write_report(report, table, text)
    print("\n" + text)
    s = summary(table)
    print(f"wrote {report}.md and .csv: {s['outside']} of {s['comparisons']} differences outside "
          f"their 95% interval, {s['contradictions']} contradiction(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
