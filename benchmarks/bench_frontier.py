"""Benchmark: the resolving power a suite's default can buy per minute, under full replicates.

    python -m benchmarks.bench_frontier --suite retrieval --design NAME=CONFIG [--design ...]
        [--run] [--target 0.5] [--budget 900] [--out results/frontier]

Each design is a config merged over the suite's default (its own schedule, pretraining budget,
replicates). With ``--run`` each design runs once as ``python -m benchmarks.run --suite SUITE --config
CONFIG`` from an empty cache, timed (``<out>/<suite>/<NAME>/``, its tables and ``timing.json``). Then,
for every design that has run, from its rows:

- measured: the replicates n, the wall time, the largest and median 95% half-width of a gain over
  ``none`` on the suite's primary metric (full replicates: the interval covers a rerun);
- projected: with the SD of each method's per-replicate gain as measured, the half-width at m
  replicates is t(0.975, m - 1) * sd / sqrt(m), and the wall time is about (wall - fixed) * m / n + fixed
  (``fixed``: the work that does not grow with the replicates, measured from the run's log when it has
  one, else 0); the smallest m whose largest half-width meets ``--target``, and its minutes.

It writes ``<out>/<suite>/frontier.md`` and ``frontier.csv`` (one row per design and m) and prints the
table. Projections rest on SDs estimated from n replicates, so they are themselves uncertain: the
table says which numbers were measured and which projected.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_json, atomic_write_text, git_commit
from benchmarks.runner.stats import t_quantile

TARGETS = {"retrieval": 0.5, "classification": 1.0, "detection": 2.0}
BUDGETS = {"retrieval": 900, "classification": 600, "detection": 900}


def _design(text: str) -> tuple[str, str]:
    name, sep, config = text.partition("=")
    if not sep or not name or not config or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=CONFIG (a name without '/', a YAML file), got {text!r}")
    return name, config


def run_design(suite: str, name: str, config: str, out: Path) -> float:
    """Run the design from an empty cache, timed; write ``timing.json``; return the wall seconds."""
    dest = out / suite / name
    with tempfile.TemporaryDirectory(dir=".", prefix=".bench-cache-") as cache:
        cmd = [sys.executable, "-m", "benchmarks.run", "--suite", suite, "--config", config, "--out", str(dest),
               "--cache-dir", Path(cache).name, "--no-progress"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(dest.parent / f"{name}.log", "w") as log:  # the run's own lines: fixed_seconds reads them
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    atomic_write_json(dest / "timing.json", {"wall_seconds": round(seconds, 1), "config": config, "commit": git_commit(),
                                             "command": f"python -m benchmarks.run --suite {suite} --config {config}"})
    return seconds


def gain_sds(runs: pd.DataFrame, primary: str) -> dict:
    """{method: SD of its per-replicate gain over none} (points) of the design's student rows."""
    scores = runs[runs["method"] != "teacher"].pivot_table(index="seed", columns="method", values=primary) * 100
    return {m: float((scores[m] - scores["none"]).dropna().std(ddof=1)) for m in scores.columns if m != "none"}


def halfwidth(sd: float, m: int) -> float:
    return t_quantile(0.975, m - 1) * sd / math.sqrt(m) if m >= 2 else float("nan")


def fixed_seconds(log: Path) -> float:
    """Seconds of the run that do not scale with the replicates: from the start to the first job, read
    from its log (``started ... 0:00:03 elapsed``); 0 without a log."""
    if not log.is_file():
        return 0.0
    for line in log.read_text().splitlines():
        if line.startswith("started ") and "elapsed)" in line:
            h, m, s = line.rsplit(", ", 1)[1].split(" ")[0].split(":")
            return 3600 * int(h) + 60 * int(m) + int(s)
    return 0.0


def frontier(suite: str, name: str, dest: Path, primary: str, target: float, budget: float,
             max_m: int = 24) -> pd.DataFrame:
    """The design's measured point and projected curve (one row per m = 2..max_m)."""
    runs = pd.read_csv(next(dest.glob("*/*/runs.csv")))
    timing = json.loads((dest / "timing.json").read_text())
    n = int(runs["seed"].nunique())
    wall = float(timing["wall_seconds"])
    fixed = fixed_seconds(dest.parent / f"{name}.log")
    sds = gain_sds(runs, primary)
    board = pd.read_csv(next(dest.glob("*/*/leaderboard.csv"))).set_index("method")
    gap = float(board.loc["teacher", f"{primary}_mean"] - board.loc["none", f"{primary}_mean"])
    rows = []
    for m in range(2, max_m + 1):
        widths = {k: halfwidth(sd, m) for k, sd in sds.items()}
        seconds = fixed + (wall - fixed) * m / n
        rows.append({"suite": suite, "design": name, "config": timing.get("config"), "replicates": m,
                     "measured": m == n, "minutes": seconds / 60, "max_halfwidth": max(widths.values()),
                     "median_halfwidth": float(pd.Series(widths).median()),
                     "widest": max(widths, key=widths.get), "meets_target": max(widths.values()) <= target,
                     "within_budget": seconds <= budget, "teacher_minus_none": gap,
                     **{f"sd_{k}": v for k, v in sds.items()}})
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, suite: str, target: float, budget: float, command: str) -> str:
    lines = [f"# Frontier: {suite}, 95% half-width of the gains over none against minutes", "",
             f"Command: `{command}`  ", f"Commit: `{git_commit()}`; target: every gain's half-width <= {target}, "
             f"budget {budget / 60:.0f} minutes on 2 cores. Full replicates (each replicate draws the data, the "
             f"pretraining, the initial weights and the teacher anew).  ",
             "Measured rows come from one run of the design; the others are projected from its per-replicate SDs "
             "(t(0.975, m-1) * sd / sqrt(m)) and its time per replicate.", "",
             "| design | replicates | measured | minutes | largest half-width (method) | median half-width | "
             "meets target | within budget | teacher - none |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['design']} | {r['replicates']} | {'measured' if r['measured'] else 'projected'} | "
                     f"{r['minutes']:.1f} | {r['max_halfwidth']:.2f} ({r['widest']}) | {r['median_halfwidth']:.2f} | "
                     f"{'yes' if r['meets_target'] else 'no'} | {'yes' if r['within_budget'] else 'no'} | "
                     f"{r['teacher_minus_none']:.2f} |")
    lines += ["", "Per design, the SD (points) of each method's per-replicate gain over none:", ""]
    sd_cols = [c for c in table.columns if c.startswith("sd_")]
    for design, part in table.groupby("design", sort=False):
        sds = ", ".join(f"{c[3:]} {part[c].iloc[0]:.2f}" for c in sd_cols if pd.notna(part[c].iloc[0]))
        lines.append(f"- {design} ({part['config'].iloc[0]}): {sds}")
    return "\n".join(lines) + "\n"


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.bench_frontier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="retrieval", choices=sorted(TARGETS))
    p.add_argument("--design", type=_design, action="append", required=True, help="NAME=CONFIG (repeat)")
    p.add_argument("--run", action="store_true", help="run each design first (from an empty cache, timed)")
    p.add_argument("--target", type=float, help="largest half-width allowed (default: the suite's target)")
    p.add_argument("--budget", type=float, help="wall seconds allowed (default: the suite's budget)")
    p.add_argument("--out", default="results/frontier")
    add_debug_flag(p)
    args = p.parse_args(argv)
    from benchmarks.runner.suites import get_suite

    primary = get_suite(args.suite).PRIMARY
    target = args.target or TARGETS[args.suite]
    budget = args.budget or BUDGETS[args.suite]
    out = Path(args.out)
    for name, config in args.design:
        if not Path(config).is_file():
            raise UserError(f"--design {name}={config}: no such config file; expected a YAML file")
        if not args.run and not (out / args.suite / name / "timing.json").is_file():
            raise UserError(f"--design {name}: no timed run in {out / args.suite / name}; add --run")
    if args.run:
        for name, config in args.design:
            print(f"running design {name} ({config}) ...", flush=True)
            print(f"  {run_design(args.suite, name, config, out):.0f}s", flush=True)
    table = pd.concat([frontier(args.suite, name, out / args.suite / name, primary, target, budget)
                       for name, _ in args.design], ignore_index=True)
    shown = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--debug"]
    command = "python -m benchmarks.bench_frontier " + " ".join(shown)
    kept = table[table["measured"] | table["replicates"].isin([3, 5, 8, 10, 12, 16, 20])]
    text = to_markdown(kept, args.suite, target, budget, command)
    atomic_write_text(out / args.suite / "frontier.md", text)
    atomic_write_text(out / args.suite / "frontier.csv", table.to_csv(index=False, float_format="%.4f"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
