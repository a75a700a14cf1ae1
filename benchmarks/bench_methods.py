"""Benchmark: each KD method's training step time and peak memory, relative to ``none``.

On the embedded default of each suite: its teacher and student (built as the suite builds them,
without the pretrained weights, which do not change the cost), its batch (size and sampler, real
images of its training split), its method options and its optimizer (Adam). A step is what the
trainer does per batch: the method's ``training_step`` (the student's forward, the frozen
teacher's forward, every named loss), the backward pass and the optimizer step.

Each method runs in its own process, so one method's memory does not count for the next:
- step time: the median over ``--steps`` steps after ``--warmup`` unmeasured ones;
- peak memory: the peak resident memory over all the steps minus the resident memory just before
  the first one (models, batch and any memory bank allocated; activations, gradients and the
  optimizer's state are what it measures). The first step is the one that allocates: later ones
  reuse the memory the allocator keeps. On Linux the peak is reset before the first step
  (``/proc/self/clear_refs``); elsewhere it is the process's peak so far, and the table says so.
Both are given in absolute terms and as a ratio to ``none``'s on the same suite. Every method
that declares the suite's task is measured; methods that read no teacher (``none``) skip the
teacher's forward, as in a real run.

    python -m benchmarks.bench_methods [--suites retrieval,classification] [--methods all]
        [--steps 20] [--warmup 3] [--threads 2] [--out results/benchmarks/bench_methods.md]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from benchmarks.runner.config import default_config
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_json, atomic_write_text, git_commit
from benchmarks.runner.schema import typed, typed_train
from benchmarks.runner.tasks import suite_task
from retrieval.methods import list_methods, methods_for_task, needs_teacher
from retrieval.numerics import cpu_numerics

SUITES = ("retrieval", "classification")
DEFAULT_OUT = Path("results/benchmarks/bench_methods.md")


# ----------------------------------------------------------------------------- one method (child)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024.0

    return psutil.Process().memory_info().rss / 2 ** 20


def _peak_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 1024.0)


def default_setup(suite: str) -> dict:
    """The suite's default config, without its pretraining and with a token test split (unused)."""
    cfg = default_config(suite)
    cfg.pop("pretrain", None)
    cfg["dataset"].setdefault("options", {})["test_per_class"] = 2
    return cfg


def training_split(data: dict):
    """The split a default's students train on: ``fit`` (retrieval), ``train`` (classification, ``select: last``)."""
    return data["fit"] if "fit" in data else data["train"]


def make_batch(dataset, batch_size: int, m_per_class: int | None, seed: int = 0) -> dict:
    """A training batch of real images: ``m_per_class`` images of each of batch/m classes, or a
    seeded random draw (the trainer's two samplers)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    if m_per_class:
        classes = rng.permutation(np.unique(labels))[: batch_size // m_per_class]
        picks = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:m_per_class] for c in classes])
    else:
        picks = rng.permutation(len(labels))[:batch_size]
    items = [dataset[int(i)] for i in picks]
    return {"image": torch.stack([it["image"] for it in items]),
            "label": torch.tensor([it["label"] for it in items]),
            "index": torch.tensor([it["index"] for it in items]), "epoch": 1000}


def measure(suite: str, method_name: str, steps: int, warmup: int, threads: int) -> dict:
    """Time and peak memory of ``method_name``'s training step on ``suite``'s default."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = importlib.import_module(f"benchmarks.runner.tasks.{suite}")
    cfg = default_setup(suite)
    data = module.prepare(cfg, log=lambda *a: None)
    train, spec = typed_train(cfg, "student"), typed(cfg)
    batch = make_batch(training_split(data), train.batch_size,
                       train.m_per_class if (train.sampler or "m_per_class") != "random" else None)
    teacher = module._network(cfg, data, "teacher") if needs_teacher(method_name) else None
    method = module.build_student_method(cfg, data, teacher, method_name, cfg["methods"].get(method_name))
    method.train()
    optimizer = torch.optim.Adam(method.trainable_parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        _, losses = method.training_step(batch)
        sum(losses.values()).backward()
        optimizer.step()

    del data
    gc.collect()
    reset = _reset_peak()
    before = _rss_mb()  # models, optimizer, batch (and any memory bank) in place; no step taken yet
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {"suite": suite, "method": method_name, "step_ms": 1000 * statistics.median(times),
            "peak_extra_mb": max(0.0, _peak_mb() - before), "peak_reset": reset, "batch": int(batch["image"].shape[0]),
            "student": spec.student.arch, "teacher": spec.teacher.arch,
            "image": list(batch["image"].shape[1:])}


# ----------------------------------------------------------------------------- the table (parent)


def suite_methods(suite: str, wanted: list[str] | None) -> list[str]:
    runs = methods_for_task(suite_task(suite))
    if wanted is None:
        return runs
    unknown = [m for m in wanted if m not in list_methods()]
    if unknown:
        raise UserError(f"--methods: unknown method(s) {unknown}; known: {', '.join(list_methods())}")
    return ["none"] + [m for m in wanted if m in runs and m != "none"]


def run_child(suite: str, method: str, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_methods", "--child", f"{suite}:{method}", "--steps",
           str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{suite} {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    lines = ["| suite | method | step (ms) | x none | peak extra memory (MB) | x none |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['suite']} | `{r['method']}` | {r['step_ms']:.1f} | {r['time_ratio']:.2f} | "
                     f"{r['peak_extra_mb']:.0f} | {r['memory_ratio']:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_methods", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default=",".join(SUITES), help=f"some of {', '.join(SUITES)}")
    parser.add_argument("--methods", default="all", help="comma-separated methods, or all (none always runs)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="markdown table (a .json beside it holds the rows)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for flag in ("steps", "warmup", "threads"):
        if getattr(args, flag) < (1 if flag != "warmup" else 0):
            raise UserError(f"--{flag} {getattr(args, flag)}: expected a positive number")
    return args


@reports_user_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        suite, method = args.child.split(":", 1)
        print(json.dumps(measure(suite, method, args.steps, args.warmup, args.threads)))
        return 0
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    bad = [s for s in suites if s not in SUITES]
    if bad or not suites:
        raise UserError(f"--suites {args.suites}: expected some of {', '.join(SUITES)}")
    wanted = None if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    plan = [(suite, m) for suite in suites for m in suite_methods(suite, wanted)]
    shown = list(argv) if argv is not None else sys.argv[1:]
    rows = []
    start = time.perf_counter()
    for i, (suite, method) in enumerate(plan, 1):
        row = run_child(suite, method, args)
        rows.append(row)
        print(f"[{i}/{len(plan)}] {suite} {method}: {row['step_ms']:.1f} ms, +{row['peak_extra_mb']:.0f} MB",
              flush=True)
    for suite in suites:
        ref = next(r for r in rows if r["suite"] == suite and r["method"] == "none")
        for r in rows:
            if r["suite"] == suite:
                r["time_ratio"] = r["step_ms"] / ref["step_ms"]
                r["memory_ratio"] = r["peak_extra_mb"] / ref["peak_extra_mb"] if ref["peak_extra_mb"] else float("nan")
    pairs = "; ".join(f"{s}: teacher {r['teacher']}, student {r['student']}, batch {r['batch']} of "
                      f"{'x'.join(map(str, r['image']))}"
                      for s in suites for r in rows if r["suite"] == s and r["method"] == "none")
    header = ["# Training step cost of each KD method, relative to `none`", "",
              f"command: `python -m benchmarks.bench_methods{''.join(' ' + a for a in shown)}`; "
              f"commit {git_commit()}; {time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
              f"{args.threads} threads, CPU kernels {cpu_numerics()}; {time.perf_counter() - start:.0f} s", "",
              f"Embedded defaults ({pairs}); median of {args.steps} steps after {args.warmup}; peak extra memory = "
              f"peak resident memory over the steps minus that before the first"
              + ("" if all(r["peak_reset"] for r in rows) else " (peak not resettable here: the process's peak)")
              + ".", ""]
    out = Path(args.out)
    atomic_write_text(out, "\n".join(header) + "\n" + format_table(rows) + "\n")
    atomic_write_json(out.with_suffix(".json"), {"rows": rows, "commit": git_commit(),
                                                 "command": ["python", "-m", "benchmarks.bench_methods",
                                                             *shown]})
    print(format_table(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
