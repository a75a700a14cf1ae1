"""Benchmark: approximate (IVF, HNSW) against exact leave-one-out Recall@K on a large gallery.

1,000,000 L2-normalised 128-d embeddings by default, in classes of 10 around random
centres (so Recall@K is neither 0 nor 1). For each index the script prints the time
to build it, the time to search every item as a query (k + 1 neighbours), the peak
resident memory of that measurement (each runs in its own subprocess) and Recall@K.

Exact search of every item against 1M others is O(N²·d) (about 1.3e14 multiply-adds:
tens of minutes on two cores), so Recall@K of *all three* searches is measured on the
same random sample of ``--queries`` queries (the gallery is always all N items), and
the exact search's time for all N queries is extrapolated from the sample and marked so.

    python -m benchmarks.bench_ann [--n 1000000] [--dim 128] [--queries 20000] [--json OUT]
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

from benchmarks.runner.results_io import atomic_write_json
from retrieval.metrics.approximate import approximate_recall_at_k, build_approximate_index
from retrieval.metrics.knn import knn_leave_one_out
from retrieval.metrics.retrieval_metrics import _recall_hits

KS = (1, 10, 100)


def make_data(n: int, dim: int, per_class: int = 10, noise: float = 0.12, seed: int = 0):
    """Unit-norm float32 embeddings: class centres on the sphere plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    n_classes = max(1, n // per_class)
    labels = rng.permutation(np.arange(n) % n_classes)
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[labels] + rng.standard_normal((n, dim), dtype=np.float32) * np.float32(noise)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x), labels


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(kind: str, n: int, dim: int, queries: int, options: dict) -> dict:
    """One measurement in this process: build (approximate only), search, recall on the sample."""
    x, labels = make_data(n, dim)
    sample = np.sort(np.random.default_rng(1).choice(n, size=min(queries, n), replace=False))
    base_mb = peak_rss_mb()
    out = {"index": kind}
    if kind == "exact":
        t = time.perf_counter()
        hits = np.zeros(len(KS), dtype=np.int64)  # the library's exact search, for the sample's queries
        for ids, nbr in knn_leave_one_out(x, sample, max(KS), "ip", 4096):
            hits += _recall_hits(labels[nbr] == labels[ids][:, None], KS)
        sample_s = time.perf_counter() - t
        out.update({"build_s": 0.0, "search_s": sample_s * n / len(sample), "search_extrapolated": True,
                    **{f"recall@{k}": float(h) / len(sample) for k, h in zip(KS, hits)}})
    else:
        t = time.perf_counter()
        index = build_approximate_index(x, "ip", kind, **options)
        out["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for start in range(0, n, 65536):
            index.search(x[start:start + 65536], max(KS) + 1)
        out["search_s"] = time.perf_counter() - t
        out["search_extrapolated"] = False
        out.update(approximate_recall_at_k(x, labels, KS, index=index, metric="ip", query_ids=sample))
    out["peak_mb"] = peak_rss_mb()
    out["data_mb"] = base_mb
    out["threads"] = faiss.omp_get_max_threads()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ann", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=20_000, help="queries whose recall is measured (default 20000)")
    p.add_argument("--nprobe", type=int, default=16, help="IVF cells searched per query (default 16)")
    p.add_argument("--ef-search", type=int, default=128, help="HNSW search beam (default 128)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        options = {"ivf": {"nprobe": args.nprobe}, "hnsw": {"ef_search": args.ef_search}}.get(args.child, {})
        print(json.dumps(measure(args.child, args.n, args.dim, args.queries, options)))
        return 0
    results = []
    for kind in ("exact", "ivf", "hnsw"):
        cmd = [sys.executable, "-m", "benchmarks.bench_ann", "--child", kind, "--n", str(args.n), "--dim",
               str(args.dim), "--queries", str(args.queries), "--nprobe", str(args.nprobe), "--ef-search",
               str(args.ef_search)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    exact = results[0]
    print(f"{args.n:,} x {args.dim} unit-norm embeddings, classes of 10; recall on {args.queries:,} sampled "
          f"queries against the whole gallery; faiss threads {exact['threads']}; ivf nprobe {args.nprobe}, "
          f"hnsw M 32 efSearch {args.ef_search}")
    print(f"{'index':<6} {'build s':>8} {'search s':>10} {'peak MB':>8} " +
          " ".join(f"{'R@' + str(k):>7} {'diff':>6}" for k in KS))
    for r in results:
        search = f"{r['search_s']:.1f}" + ("*" if r["search_extrapolated"] else "")
        cells = " ".join(f"{100 * r[f'recall@{k}']:7.2f} {100 * (r[f'recall@{k}'] - exact[f'recall@{k}']):+6.2f}"
                         for k in KS)
        print(f"{r['index']:<6} {r['build_s']:8.1f} {search:>10} {r['peak_mb']:8.0f} {cells}")
    print("* exact search time for all queries extrapolated from the sample; diff = recall minus exact, in points")
    if args.json:
        atomic_write_json(args.json, {"n": args.n, "dim": args.dim, "queries": args.queries, "nprobe": args.nprobe,
                                      "ef_search": args.ef_search, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
