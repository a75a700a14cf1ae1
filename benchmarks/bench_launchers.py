"""Benchmark: what each launcher costs on one machine: wall time and peak memory of a tiny grid.

The same grid (the test's: 20 generated classes of 16x16 images, 2 seeds x (teacher, ``none``, ``at``),
1 thread per job) runs once per launcher, each time as ``python -m benchmarks.run`` in a process
of its own with an empty cache and ``--workers 2``:

- ``local``: the process pool;
- ``ray``: Ray tasks on a Ray instance the command starts for the run (``num_cpus`` 2);
- ``slurm``: submitit's local executor (the SLURM submission code; a process per job).

Memory is sampled every ``--interval`` seconds over the command's whole process tree (the
command, its pool or Ray's processes, and the jobs): the sum of their proportional set sizes
(PSS: a page shared by n processes counts 1/n in each, so shared libraries count once). The
peak is the largest sum seen. The rows of every launcher are compared with the local ones.

    python -m benchmarks.bench_launchers [--launchers local,ray,slurm] [--interval 0.2]
        [--out results/benchmarks/bench_launchers.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.launch import make_launcher
from benchmarks.runner.results_io import atomic_write_text, git_commit

LAUNCHERS = ("local", "ray", "slurm")
DEFAULT_OUT = Path("results/benchmarks/bench_launchers.md")
GRID = {
    "dataset": {"name": "synthetic", "options": {"classes": 20, "per_class": 10, "size": 16, "test_per_class": None}},
    "pretrain": None, "threads": 1, "seeds": [0, 1], "run": ["none", "at"],
    "teacher": {"arch": "small_cnn_s", "embedding_dim": 16, "train": {"epochs": 2, "eval_every": 2}},
    "student": {"arch": "small_cnn_xs", "embedding_dim": 8, "train": {"epochs": 2, "eval_every": 2}},
    "train": {"batch_size": 20, "m_per_class": 5, "milestones": [], "eval_every": 2},
}
SECTIONS = {"local": None, "ray": {"name": "ray", "ray": {"num_cpus": 2}},
            "slurm": {"name": "slurm", "slurm": {"cluster": "local", "time_min": 10, "cpus_per_task": 1}}}
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]


def _tree_pss(root: psutil.Process) -> tuple[int, int]:
    """(sum of the PSS of ``root`` and its descendants, how many processes), in bytes."""
    total, count = 0, 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        total += getattr(info, "pss", info.rss)
        count += 1
    return total, count


def measure(launcher: str, folder: Path, interval: float) -> dict:
    """Run the grid under ``launcher`` in ``folder``; its wall time, peak memory and rows."""
    cfg = {**GRID, **({"launcher": SECTIONS[launcher]} if SECTIONS[launcher] else {})}
    config = folder / "grid.yaml"
    config.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", "retrieval", "--config", str(config), "--out",
            str(folder / "results"), "--cache-dir", str(folder / "cache"), "--workers", "2", "--no-progress"]
    start = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        root, peak, peak_procs = psutil.Process(proc.pid), 0, 0
        while proc.poll() is None:
            pss, count = _tree_pss(root)
            if pss > peak:
                peak, peak_procs = pss, count
            time.sleep(interval)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise UserError(f"launcher {launcher}: the grid failed (exit code {proc.returncode}); see "
                        f"{folder / 'log.txt'}")
    runs = pd.read_csv(folder / "results" / "retrieval" / "synthetic" / "runs.csv")
    rows = runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[["run_id", *METRICS]]
    return {"launcher": launcher, "seconds": seconds, "peak_bytes": peak, "processes": peak_procs, "rows": rows}


def table(results: list[dict], commit: str, interval: float) -> str:
    local = next((r["rows"] for r in results if r["launcher"] == "local"), None)
    lines = ["# Launchers on one machine: a tiny grid", "",
             f"Command: `python -m benchmarks.bench_launchers --launchers {','.join(r['launcher'] for r in results)}`  ",
             f"Commit: `{commit}`; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB; memory sampled every {interval} s.  ",
             "Grid: 2 seeds x (teacher, none, at), 20 generated classes of 16x16 images, 2 epochs, 1 thread per "
             "job, `--workers 2`, empty cache.", "",
             "| launcher | wall s | peak memory (PSS, whole tree) | processes at the peak | rows equal the local ones |",
             "|---|---|---|---|---|"]
    for r in results:
        same = "-" if local is None or r["launcher"] == "local" else ("yes" if r["rows"].equals(local) else "NO")
        lines.append(f"| {r['launcher']} | {r['seconds']:.1f} | {r['peak_bytes'] / 2**30:.2f} GiB | "
                     f"{r['processes']} | {same} |")
    lines += ["", "Wall time includes each launcher's start (a Ray instance, a process per SLURM job) and the "
              "import of torch in every job process; on a real cluster the jobs are hours long and these costs "
              "are small beside them."]
    return "\n".join(lines) + "\n"


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launchers", default=",".join(LAUNCHERS), help=f"some of {', '.join(LAUNCHERS)}")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between two memory samples")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the markdown table (default: %(default)s)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    launchers = [name.strip() for name in args.launchers.split(",") if name.strip()]
    bad = [name for name in launchers if name not in LAUNCHERS]
    if bad or not launchers:
        raise UserError(f"--launchers {args.launchers}: expected some of {', '.join(LAUNCHERS)}")
    if args.interval <= 0:
        raise UserError(f"--interval {args.interval}: expected a positive number of seconds")

    for name in launchers:
        make_launcher(SECTIONS[name])  # a missing extra is named before any run
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-launchers-") as tmp:
        for name in launchers:
            folder = Path(tmp) / name
            folder.mkdir()
            print(f"{name}: running the grid ...", flush=True)
            results.append(measure(name, folder, args.interval))
            r = results[-1]
            print(f"{name}: {r['seconds']:.1f} s, peak {r['peak_bytes'] / 2**30:.2f} GiB over {r['processes']} "
                  f"processes", flush=True)
    text = table(results, git_commit(), args.interval)
    atomic_write_text(args.out, text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
