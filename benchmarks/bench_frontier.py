"""Benchmark: the resolving power a suite's default can buy per minute, under full replicates.

    python -m benchmarks.bench_frontier --suite retrieval --design NAME=SOURCE [--design ...]
        [--run] [--target 0.5] [--budget 900] [--out results/frontier]

A design's SOURCE is either a config (a YAML file merged over the suite's default: its own schedule,
pretraining budget, replicates), which ``--run`` runs once as ``python -m benchmarks.run --suite SUITE
--config CONFIG`` from an empty cache, timed, into ``<out>/<suite>/<NAME>/`` (its tables, ``timing.json``
and the run's log ``<NAME>.log``); or the result folders of runs already made (``FOLDER[+FOLDER...]``,
each with its ``runs.csv`` and a ``timing.json`` or ``bench_default_run.json`` that holds its
``wall_seconds``: a default run of ``bench_default_run --keep-cache``, the second run of
``benchmarks.replicate``), pooled over their replicates. Then, for every design, from its rows:

- measured: the replicates n, the wall time, the largest and median 95% half-width of a gain over
  ``none`` on the suite's primary metric (full replicates: the interval covers a rerun);
- projected: with the SD of each method's per-replicate gain as measured, the half-width at m
  replicates is t(0.975, m - 1) * sd / sqrt(m), and the wall time is wall * m / n (a replicate's work
  dominates; the few seconds of set-up are counted as if they grew too, a slight overestimate).
  The smallest m whose largest half-width meets ``--target``, and its minutes.

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

from benchmarks.report.rows import current_rows
from benchmarks.report.stats import t_quantile
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_json, atomic_write_text, git_commit
from benchmarks.runner.tasks import get_suite

TARGETS = {"retrieval": 0.5, "classification": 1.0, "detection": 2.0}
BUDGETS = {"retrieval": 900, "classification": 600, "detection": 900}


def _design(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=SOURCE (a name without '/'; SOURCE a YAML config, or result "
                                         f"folders FOLDER[+FOLDER...]), got {text!r}")
    return name, source


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


def _is_config(source: str) -> bool:
    """A design's SOURCE is a config file (to run) rather than result folders (to read)."""
    return source.endswith((".yaml", ".yml"))


def read_design(source: str, out: Path, suite: str, name: str) -> tuple[pd.DataFrame, float, str]:
    """(rows, wall seconds, what they are) of a design: its ``--run`` folder, or the result folders of
    ``source`` (``FOLDER[+FOLDER...]``, each holding ``runs.csv`` and a timing file)."""
    if _is_config(source):
        dest = out / suite / name
        folders, label = [Path(p).parent for p in sorted(dest.glob("*/*/runs.csv"))], source
    else:
        folders, label = [Path(p) for p in source.split("+")], source
    if not folders:
        raise UserError(f"--design {name}: no run of {source} under {out / suite / name}; add --run")
    rows, wall = [], 0.0
    for folder in folders:
        timing = next((folder / f for f in ("timing.json", "bench_default_run.json") if (folder / f).is_file()), None)
        timing = timing or (folder.parent.parent / "timing.json")  # a --run folder keeps it above suite/dataset
        if not (folder / "runs.csv").is_file() or not timing.is_file():
            raise UserError(f"--design {name}: {folder} lacks runs.csv or a timing file (timing.json or "
                            f"bench_default_run.json with wall_seconds)")
        rows.append(current_rows(folder))
        wall += float(json.loads(timing.read_text())["wall_seconds"])
    runs = pd.concat(rows, ignore_index=True)
    if runs.groupby(["method", "seed"]).size().max() > 1:
        raise UserError(f"--design {name}: the folders {source} share replicates (seeds); pool disjoint runs only")
    return runs, wall, label


def frontier(suite: str, name: str, runs: pd.DataFrame, wall: float, label: str, primary: str, target: float,
             budget: float, max_m: int = 24) -> pd.DataFrame:
    """The design's measured point and projected curve (one row per m = 2..max_m)."""
    n = int(runs["seed"].nunique())
    sds = gain_sds(runs, primary)
    means = runs.groupby("method")[primary].mean() * 100
    gap = float(means["teacher"] - means["none"])
    rows = []
    for m in range(2, max_m + 1):
        widths = {k: halfwidth(sd, m) for k, sd in sds.items()}
        seconds = wall * m / n
        rows.append({"suite": suite, "design": name, "source": label, "replicates": m, "measured": m == n,
                     "minutes": seconds / 60, "max_halfwidth": max(widths.values()),
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
        lines.append(f"- {design} ({part['source'].iloc[0]}): {sds}")
    return "\n".join(lines) + "\n"


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.bench_frontier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="retrieval", choices=sorted(TARGETS))
    p.add_argument("--design", type=_design, action="append", required=True, help="NAME=CONFIG.yaml or NAME=FOLDER[+FOLDER...] (repeat)")
    p.add_argument("--run", action="store_true", help="run each design first (from an empty cache, timed)")
    p.add_argument("--target", type=float, help="largest half-width allowed (default: the suite's target)")
    p.add_argument("--budget", type=float, help="wall seconds allowed (default: the suite's budget)")
    p.add_argument("--out", default="results/frontier")
    add_debug_flag(p)
    args = p.parse_args(argv)

    primary = get_suite(args.suite).PRIMARY
    target = args.target or TARGETS[args.suite]
    budget = args.budget or BUDGETS[args.suite]
    out = Path(args.out)
    for name, source in args.design:
        if _is_config(source) and not Path(source).is_file():
            raise UserError(f"--design {name}={source}: no such config file; expected a YAML file")
        if args.run and not _is_config(source):
            raise UserError(f"--design {name}={source}: --run runs configs; result folders are read as they are")
    if args.run:
        for name, config in args.design:
            print(f"running design {name} ({config}) ...", flush=True)
            print(f"  {run_design(args.suite, name, config, out):.0f}s", flush=True)
    parts = []
    for name, source in args.design:
        runs, wall, label = read_design(source, out, args.suite, name)
        parts.append(frontier(args.suite, name, runs, wall, label, primary, target, budget))
    table = pd.concat(parts, ignore_index=True)
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
