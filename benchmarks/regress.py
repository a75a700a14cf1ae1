"""Regression gate: compare a fresh quick run (or a given runs.csv) with a committed baseline.

    python -m benchmarks.regress --baseline results/baselines/quick_retrieval.csv
        [--current runs.csv] [--tolerance 0.01] [--level 0.95] [--metrics recall@1,map@r]
    python -m benchmarks.regress --write-baseline results/baselines/quick_retrieval.csv

Without ``--current`` it runs the quick config of each suite in the baseline
(``benchmarks/configs/quick_<suite>.yaml``, or ``--config``) into a temporary folder.
For every (suite, dataset, teacher, student, method) of the baseline and every compared
metric, the current rows are paired with the baseline rows by seed, d = current - baseline
(the statistics of ``benchmarks.report.stats``). A ``REGRESSION`` is

- a significant drop: the one-sided upper bound mean(d) + t(level, n-1) * sd(d) / sqrt(n) is
  below 0 (with sd == 0: mean(d) < 0; a bit-identical rerun, d == 0, is no drop), or
- a drop beyond tolerance: mean(d) < -tolerance,

and the line says which (or both). With fewer than 2 shared seeds the means are compared
against the tolerance alone, and the line says so. A method of the baseline that the current
rows lack is ``MISSING``. Either makes the exit status 1. Metrics are fractions in the tables
(``--tolerance 0.01`` is one point of Recall@1) and are printed in points (%).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import pandas as pd

from benchmarks.report.aggregate import design_of_rows, metric_columns
from benchmarks.report.stats import LEVEL, MIN_SEEDS, lower_bound, paired_interval, upper_bound
from benchmarks.runner.config import resolve_config
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_text, git_commit, package_versions, read_header, read_runs
from retrieval.numerics import cpu_model, cpu_numerics

KEY = ["suite", "dataset", "teacher", "student", "method"]
DEFAULT_METRICS = ("recall@1", "map@r", "top1")  # those of them that the baseline carries
QUICK = {"retrieval": "quick_retrieval.yaml"}  # suite -> packaged quick config


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m benchmarks.regress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", help="baseline runs table (runs.csv rows, optional '# key: value' header lines)")
    p.add_argument("--current", help="compare this runs.csv instead of running the quick config(s)")
    p.add_argument("--tolerance", "--floor", dest="tolerance", type=float, default=0.01,
                   help="a mean drop larger than this fails even when not significant, as a fraction "
                        "(default 0.01 = 1 point); --floor is the older name")
    p.add_argument("--level", type=float, default=LEVEL,
                   help=f"confidence level of the one-sided bound that makes a drop significant (default {LEVEL})")
    p.add_argument("--tolerance-std", type=float, help=argparse.SUPPRESS)  # removed: says so below
    p.add_argument("--metrics", help="comma-separated metrics to compare (default: those of "
                                     f"{','.join(DEFAULT_METRICS)} in the baseline)")
    p.add_argument("--suite", help="with --config: the suite it runs (default: retrieval)")
    p.add_argument("--config", help="run this config instead of the quick config(s)")
    p.add_argument("--jobs", type=int, default=2, help="seeds run in this many processes at once (default 2)")
    p.add_argument("--out", help="results folder of the fresh run (default: a temporary folder)")
    p.add_argument("--cache-dir", help="teacher cache of the fresh run (default: a temporary folder)")
    p.add_argument("--write-baseline", metavar="PATH",
                   help="write the current rows to PATH as a new baseline (with a header) and stop")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if not args.baseline and not args.write_baseline:
        p.error("--baseline is required (or --write-baseline PATH to create one)")
    if args.tolerance_std is not None:
        p.error("--tolerance-std was removed: a drop now fails when it is significant (seeds paired, one-sided "
                "--level bound below 0) or larger than --tolerance")
    if args.tolerance < 0:
        p.error("--tolerance must be >= 0")
    if not 0 < args.level < 1:
        p.error("--level must be between 0 and 1")
    return args


def _display(path: Path) -> str:
    """A path as a command line in a file shows it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def quick_config(suite: str) -> Path:
    if suite not in QUICK:
        raise SystemExit(f"no quick config for suite {suite!r} (known: {sorted(QUICK)}); "
                         f"pass --config FILE --suite {suite}, or --current runs.csv")
    return Path(str(resources.files("benchmarks") / "configs" / QUICK[suite]))


def run_quick(jobs: list[tuple[str, Path]], out: Path, cache: Path, processes: int) -> tuple[pd.DataFrame, list]:
    """Run each (suite, config) with ``python -m benchmarks.run``, its seeds split over
    ``processes`` processes that append to the same runs.csv (under its lock)."""
    commands = []
    for suite, config in jobs:
        seeds = list(resolve_config(suite, config)["seeds"])
        n = max(1, min(processes, len(seeds)))
        shown = ["python", "-m", "benchmarks.run", "--suite", suite, "--config", _display(config), "--no-progress"]
        commands.append(" ".join(shlex.quote(a) for a in shown))
        procs = []
        for i in range(n):
            part = ",".join(str(s) for s in seeds[i::n])
            cmd = [sys.executable, "-m", "benchmarks.run", "--suite", suite, "--config", str(config), "--out", str(out),
                   "--cache-dir", str(cache), "--seeds", part, "--no-progress"]
            log = tempfile.TemporaryFile("w+")
            procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, cmd))
        failed = []
        for proc, log, cmd in procs:
            proc.wait()
            log.seek(0)
            if proc.returncode:
                failed.append((cmd, proc.returncode, log.read()[-4000:]))
            log.close()
        if failed:
            for cmd, code, tail in failed:
                print(f"FAILED (exit status {code}): {' '.join(cmd)}\n{tail}", file=sys.stderr)
            raise SystemExit(2)
    tables = [read_runs(p) for p in sorted(out.glob("*/*/runs.csv"))]
    if not tables:
        raise SystemExit(f"the quick run wrote no runs.csv under {out}")
    return pd.concat(tables, ignore_index=True), commands


def select_current(current: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Per key, the rows of one config: the baseline's config hash if the current rows have it,
    else the most recent one (a runs.csv may hold runs of several configs)."""
    if "config_hash" not in current.columns:
        return current
    keep = []
    for key, part in current.groupby(KEY, sort=False, dropna=False):
        hashes = list(part["config_hash"].astype(str).unique())
        chosen = None
        if "config_hash" in baseline.columns:
            base = baseline
            for col, value in zip(KEY, key):
                base = base[base[col] == value]
            matching = [h for h in hashes if h in set(base["config_hash"].astype(str))]
            chosen = matching[0] if matching else None
        if chosen is None:
            latest = part.sort_values("timestamp") if "timestamp" in part.columns else part
            chosen = str(latest["config_hash"].iloc[-1])
        keep.append(part[part["config_hash"].astype(str) == chosen])
    return pd.concat(keep, ignore_index=True) if keep else current.iloc[:0]


COLUMNS = KEY + ["metric", "base_seeds", "base_mean", "base_std", "cur_seeds", "cur_mean", "paired_seeds", "delta",
                 "delta_sd", "upper", "lower", "tolerance", "pairing", "status", "reason"]
"""One row of the comparison: ``delta`` = mean of the paired differences current - baseline (the
difference of the means when unpaired); ``upper``/``lower`` = its one-sided bounds at the level."""


def _by_seed(part: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` per seed (the mean of a seed's rows), NaNs dropped; without a seed column, one value per row."""
    if "seed" not in part.columns:
        return part[metric].dropna().reset_index(drop=True).rename(None)
    return part.groupby("seed")[metric].mean().dropna()


def judge(base: pd.Series, cur: pd.Series, tolerance: float = 0.01, level: float = LEVEL) -> dict:
    """The verdict on one (key, metric): ``base`` and ``cur`` are per-seed values (index: seed).

    Paired on the shared seeds when there are at least 2: d = cur - base, REGRESSION on a significant
    drop (one-sided upper bound < 0; sd == 0 with mean < 0 counts, mean == 0 does not) or a mean drop
    beyond ``tolerance``. Otherwise the difference of the means against the tolerance alone."""
    shared = base.index.intersection(cur.index) if "seed" == base.index.name == cur.index.name else pd.Index([])
    out = {"paired_seeds": len(shared), "delta_sd": float("nan"), "upper": float("nan"), "lower": float("nan")}
    if len(shared) >= MIN_SEEDS:
        d = cur.loc[shared] - base.loc[shared]
        iv = paired_interval(d, level)
        out.update(delta=iv["mean"], delta_sd=iv["sd"])
        # with sd == 0 (every seed moved by the same amount) both bounds are the mean: any drop is significant
        out.update(upper=upper_bound(d, level), lower=lower_bound(d, level))
        significant_drop, significant_rise = out["upper"] < 0, out["lower"] > 0
        seeds = max(len(base), len(cur))
        out["pairing"] = (f"paired, {len(shared)} seeds" if len(shared) == seeds
                          else f"paired on the {len(shared)} shared seeds of {seeds}")
    else:
        out["delta"] = float(cur.mean() - base.mean())
        significant_drop = significant_rise = False
        out["pairing"] = (f"unpaired: {len(shared)} shared seed(s), the means are compared against the tolerance "
                          f"only")
    beyond = out["delta"] < -tolerance
    reasons = [r for r, hit in (("significant drop", significant_drop), ("drop beyond tolerance", beyond)) if hit]
    if reasons:
        out.update(status="REGRESSION", reason=" and ".join(reasons))
    elif significant_rise or out["delta"] > tolerance:
        out.update(status="better", reason="significant rise" if significant_rise else "rise beyond tolerance")
    else:
        out.update(status="ok", reason="")
    return out


def compare(baseline: pd.DataFrame, current: pd.DataFrame, metrics, tolerance: float = 0.01,
            level: float = LEVEL) -> pd.DataFrame:
    """One row per (key, metric) (``COLUMNS``): baseline mean/std, current mean, the paired delta and its
    one-sided bounds, the tolerance, status (``REGRESSION``, ``MISSING``, ``ok``, ``better``, or ``new``
    for a key only the current has) and the reason (see ``judge``)."""
    for name, table in (("baseline", baseline), ("current", current)):
        lacking = [c for c in KEY if c not in table.columns]
        if lacking:
            raise ValueError(f"the {name} table lacks the column(s) {lacking}")
    current = select_current(current, baseline)
    designs = {name: design_of_rows(table) for name, table in (("baseline", baseline), ("current", current))}
    if len(current) and designs["baseline"] != designs["current"]:  # pairing by seed would pair different draws
        raise UserError(f"the baseline's rows have {designs['baseline']} replicates and the current rows "
                        f"{designs['current']}: a seed is not the same draw under both, so they cannot be paired; "
                        f"write the baseline again under the current design (--write-baseline)")
    cur_groups = {key: part for key, part in current.groupby(KEY, sort=False, dropna=False)}
    rows = []
    for key, base in baseline.groupby(KEY, sort=False, dropna=False):
        cur = cur_groups.pop(key, None)
        for metric in metrics:
            if metric not in base.columns or base[metric].isna().all():
                continue
            b = _by_seed(base, metric)
            row = {**dict(zip(KEY, key)), "metric": metric, "base_seeds": len(b), "base_mean": float(b.mean()),
                   "base_std": float(b.std(ddof=1)) if len(b) > 1 else 0.0, "cur_seeds": 0,
                   "cur_mean": float("nan"), "paired_seeds": 0, "delta": float("nan"), "delta_sd": float("nan"),
                   "upper": float("nan"), "lower": float("nan"), "tolerance": tolerance, "pairing": "",
                   "status": "MISSING", "reason": "not in the current rows"}
            if cur is not None and metric in cur.columns and cur[metric].notna().any():
                c = _by_seed(cur, metric)
                row.update(cur_seeds=len(c), cur_mean=float(c.mean()), **judge(b, c, tolerance, level))
            rows.append(row)
    for key, cur in cur_groups.items():  # only in the current rows
        for metric in metrics:
            if metric in cur.columns and cur[metric].notna().any():
                c = _by_seed(cur, metric)
                rows.append({**dict(zip(KEY, key)), "metric": metric, "base_seeds": 0, "base_mean": float("nan"),
                             "base_std": float("nan"), "cur_seeds": len(c), "cur_mean": float(c.mean()),
                             "paired_seeds": 0, "delta": float("nan"), "delta_sd": float("nan"),
                             "upper": float("nan"), "lower": float("nan"), "tolerance": float("nan"),
                             "pairing": "", "status": "new", "reason": "only in the current rows"})
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(table: pd.DataFrame, level: float = LEVEL) -> str:
    """The comparison in points (%), for the terminal: one line per (key, metric)."""
    def pts(v, sign=False):
        return "" if pd.isna(v) else (f"{100 * v:+.2f}" if sign else f"{100 * v:.2f}")

    shown = table[KEY + ["metric"]].copy()
    shown["baseline"] = [f"{pts(m)} ± {pts(s)} ({n})" if n else "" for m, s, n in
                         zip(table["base_mean"], table["base_std"], table["base_seeds"])]
    shown["current"] = [f"{pts(m)} ({n})" if n else "" for m, n in zip(table["cur_mean"], table["cur_seeds"])]
    shown["delta"] = [pts(v, True) for v in table["delta"]]
    shown[f"{100 * level:g}% upper"] = [pts(v, True) for v in table["upper"]]
    shown["seeds"] = table["pairing"]
    shown["status"] = [f"{s}: {r}" if r and s in ("REGRESSION", "better") else s
                       for s, r in zip(table["status"], table["reason"])]
    cells = [list(shown.columns)] + [[str(v) for v in row] for row in shown.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(shown.columns))]
    right = {i for i, c in enumerate(shown.columns) if c in ("baseline", "current", "delta") or c.endswith("upper")}
    return "\n".join("  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
                     .rstrip() for r in cells)


def write_baseline(path: Path, rows: pd.DataFrame, commands: list[str]) -> None:
    """``rows`` as a baseline table, headed by the commands that made them, the commit and the date."""
    env = package_versions(("torch", "numpy", "faiss-cpu", "pytorch-metric-learning"))
    header = [f"# command: {c}" for c in commands]
    header += [f"# commit: {git_commit()}", f"# date: {time.strftime('%Y-%m-%d')}",
               f"# packages: {', '.join(f'{k} {v}' for k, v in env.items())}",
               f"# cpu: {cpu_numerics()}", f"# machine: {cpu_model() or 'unknown'}",
               "# refresh: python -m benchmarks.regress --write-baseline " + _display(path)]
    atomic_write_text(path, "\n".join(header) + "\n" + rows.to_csv(index=False))


@reports_user_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.baseline and not Path(args.baseline).is_file():
        raise UserError(f"--baseline {args.baseline}: no such file; expected a runs.csv-style table, e.g. "
                        f"results/baselines/quick_retrieval.csv (write one with --write-baseline)")
    for flag, path in (("--current", args.current), ("--config", args.config)):
        if path and not Path(path).is_file():
            raise UserError(f"{flag} {path}: no such file")
    baseline = read_runs(args.baseline) if args.baseline else None
    if baseline is not None and not args.write_baseline:  # the metrics compared, checked before the quick run
        metrics = args.metrics.split(",") if args.metrics else [m for m in DEFAULT_METRICS if m in baseline.columns]
        unknown = [m for m in metrics if m not in baseline.columns]
        if unknown or not metrics:
            raise UserError(f"metric(s) {unknown or metrics} not in the baseline; it has {metric_columns(baseline)}")
    if args.current:
        current = read_runs(args.current)
        commands = [f"rows of {_display(Path(args.current))}"]
    else:
        if args.config:
            jobs = [(args.suite or "retrieval", Path(args.config))]
        else:
            suites = sorted(baseline["suite"].unique()) if baseline is not None else ["retrieval"]
            jobs = [(s, quick_config(s)) for s in suites]
        with tempfile.TemporaryDirectory(prefix="regress-") as tmp:
            out = Path(args.out) if args.out else Path(tmp) / "results"
            cache = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "cache"
            out.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            current, commands = run_quick(jobs, out, cache, args.jobs)
            print(f"ran {'; '.join(commands)} in {time.perf_counter() - start:.0f}s")
    if args.write_baseline:
        write_baseline(Path(args.write_baseline), current, commands)
        print(f"wrote the baseline {args.write_baseline} ({len(current)} rows)")
        return 0
    table = compare(baseline, current, metrics, args.tolerance, args.level)
    meta = read_header(args.baseline)
    made = f" (commit {meta['commit']}, {meta.get('date', '')})" if "commit" in meta else ""
    print(f"baseline {args.baseline}{made}")
    print(f"current  {'; '.join(commands)}; commit {git_commit()}")
    if meta.get("cpu") and meta["cpu"].split()[0] != cpu_numerics().split()[0]:
        print(f"note: the baseline's CPU kernels were {meta['cpu']}, this run's are {cpu_numerics()}; rows made "
              f"with other vector instructions differ in their last bits, and training amplifies that "
              f"(see retrieval/numerics.py)")
    elif meta.get("machine") and meta["machine"] != ((machine := cpu_model()) or "unknown"):
        print(f"note: the baseline was made on {meta['machine']}, this run on {machine or 'an unknown CPU'}; "
              f"held to AVX2, CPUs of other generations usually give the same rows bit for bit, but not always "
              f"(docs/results.md): small deltas on every row then are the machine, not the change")
    print(f"a regression = a significant drop (seeds paired, d = current - baseline: the one-sided "
          f"{100 * args.level:g}% upper bound of mean(d) < 0) or a mean drop beyond the tolerance "
          f"({100 * args.tolerance:.2f} points); delta and bound in points\n")
    print(format_table(table, args.level))
    unpaired = table["pairing"].str.startswith("unpaired")
    if unpaired.any():
        print(f"\n{int(unpaired.sum())} comparison(s) unpaired (the seeds do not match): means against the "
              f"tolerance only")
    bad = table[table["status"].isin(["REGRESSION", "MISSING"])]
    if len(bad):
        print(f"\n{len(bad)} regression(s) / missing:\n")
        print(format_table(bad, args.level))
        return 1
    print(f"\nno regression: {len(table)} comparisons, none a significant drop or beyond tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
