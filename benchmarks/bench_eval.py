"""Benchmark: ``retrieval.metrics.evaluate`` against a bare FAISS flat-index search.

SOP-sized by default: 60,502 random L2-normalised 128-d embeddings in 11,316
classes of about 5 images (each class at least 2), Recall@{1,10,100,1000} plus
MAP@R and R-Precision. Each measurement runs in its own subprocess, so the peak
resident memory reported is that of one measurement alone:

(a) bare search: one ``IndexFlatIP.search`` of all N queries for as many
    neighbours as ``evaluate`` fetches per query;
(b) ``evaluate(embeddings, labels, ks)``: batched search, exact leave-one-out,
    every metric.

Targets: time(b) / time(a) <= 1.1 and peak RSS of (b) < 1 GB.

Wall-clock times on a shared machine are noisy, so the measurements alternate
(a, b, a, b, ...) ``--repeat`` times and the fastest run of each is compared.

    python -m benchmarks.bench_eval [--n 60502] [--dim 128] [--k 1000] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import faiss
import numpy as np

from retrieval.metrics import evaluate
from retrieval.metrics.knn import fetch_count

SOP_IMAGES, SOP_CLASSES = 60502, 11316
MAX_TIME_RATIO = 1.1
MAX_PEAK_MB = 1000.0


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised Gaussian float32 embeddings and SOP-like labels (classes of ~5, >= 2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n_classes = max(1, min(n // 2, round(n * SOP_CLASSES / SOP_IMAGES)))
    labels = np.concatenate([np.repeat(np.arange(n_classes), 2),
                             rng.integers(0, n_classes, n - 2 * n_classes)])
    return x, rng.permutation(labels)


def parse_ks(text: str, k_max: int, n: int) -> tuple[int, ...]:
    """SOP-style ks (1, 10, 100, 1000) up to ``k_max``, or an explicit comma list; all < n."""
    if text:
        ks = [int(k) for k in text.split(",")]
    else:
        ks = [k for k in (1, 10, 100, 1000) if k < k_max] + [k_max]
    return tuple(k for k in ks if k < n)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_search(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict:
    """(a) One bare FAISS search of all queries for evaluate's per-query fetch count."""
    n_others = np.bincount(labels)[labels] - 1
    n_fetch = fetch_count(max(max(ks), int(n_others.max())), len(x))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    start = time.perf_counter()
    index.search(x, n_fetch)
    return {"seconds": time.perf_counter() - start, "n_fetch": n_fetch}


def measure_evaluate(x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict:
    """(b) ``retrieval.metrics.evaluate`` with every metric."""
    start = time.perf_counter()
    metrics = evaluate(x, labels, ks=ks)
    return {"seconds": time.perf_counter() - start, "metrics": metrics}


MEASUREMENTS = {"search": measure_search, "evaluate": measure_evaluate}


def run_child(args: argparse.Namespace) -> None:
    """Inside the subprocess: build the data, run one measurement, print JSON."""
    x, labels = make_data(args.n, args.dim, args.seed)
    ks = parse_ks(args.ks, args.k, args.n)
    before = cpu_seconds()
    result = MEASUREMENTS[args.child](x, labels, ks)
    result["cpu_seconds"] = cpu_seconds() - before
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def spawn(mode: str, args: argparse.Namespace) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_eval", "--child", mode, "--n", str(args.n),
           "--dim", str(args.dim), "--k", str(args.k), "--seed", str(args.seed)]
    if args.ks:
        cmd += ["--ks", args.ks]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {mode!r} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fastest(runs: list[dict]) -> dict:
    """The run with the smallest wall time, with the largest peak RSS seen in any run."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def report(args: argparse.Namespace, searches: list[dict], evals: list[dict]) -> dict:
    """Print the numbers and the PASS/FAIL line; return them as a dict."""
    search, ev = fastest(searches), fastest(evals)
    ratio = ev["seconds"] / search["seconds"]
    ok = ratio <= MAX_TIME_RATIO and ev["peak_rss_mb"] < MAX_PEAK_MB
    ks = parse_ks(args.ks, args.k, args.n)
    runs = lambda rs: ", ".join(f"{r['seconds']:.2f}" for r in rs)  # noqa: E731
    print(f"data: n={args.n} dim={args.dim} ks={list(ks)} fetched per query={search['n_fetch']} "
          f"repeats={len(searches)}")
    print(f"(a) bare faiss search : {search['seconds']:.2f} s  (runs: {runs(searches)}; "
          f"CPU {search['cpu_seconds']:.1f} s; peak RSS {search['peak_rss_mb']:.0f} MB)")
    print(f"(b) evaluate          : {ev['seconds']:.2f} s  (runs: {runs(evals)}; "
          f"CPU {ev['cpu_seconds']:.1f} s; peak RSS {ev['peak_rss_mb']:.0f} MB)")
    print(f"time ratio (b)/(a)    : {ratio:.3f}  (target <= {MAX_TIME_RATIO})")
    print(f"peak RSS of (b)       : {ev['peak_rss_mb']:.0f} MB  (target < {MAX_PEAK_MB:.0f} MB)")
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in ev["metrics"].items()))
    print(("PASS" if ok else "FAIL") + f": ratio {ratio:.3f} <= {MAX_TIME_RATIO} and "
          f"peak {ev['peak_rss_mb']:.0f} MB < {MAX_PEAK_MB:.0f} MB")
    return {"n": args.n, "dim": args.dim, "ks": list(ks), "n_fetch": search["n_fetch"],
            "search_seconds": search["seconds"], "evaluate_seconds": ev["seconds"],
            "search_runs_seconds": [r["seconds"] for r in searches],
            "evaluate_runs_seconds": [r["seconds"] for r in evals],
            "search_cpu_seconds": search["cpu_seconds"], "evaluate_cpu_seconds": ev["cpu_seconds"],
            "time_ratio": ratio, "search_peak_rss_mb": search["peak_rss_mb"],
            "evaluate_peak_rss_mb": ev["peak_rss_mb"], "metrics": ev["metrics"], "pass": ok}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=SOP_IMAGES, help="number of embeddings")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--k", type=int, default=1000, help="largest K (ks = 1, 10, 100, ..., k)")
    parser.add_argument("--ks", default="", help="explicit comma-separated ks; overrides --k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternating runs of each measurement; the fastest counts")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    parser.add_argument("--child", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    searches, evals = [], []
    for _ in range(args.repeat):
        searches.append(spawn("search", args))
        evals.append(spawn("evaluate", args))
    numbers = report(args, searches, evals)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=2)
    return 0 if numbers["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
