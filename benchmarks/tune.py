"""Tune KD method options on the validation classes only (never on test).

    python -m benchmarks.tune --grid benchmarks/configs/tune_retrieval.yaml [--config FILE] [--seed 0]

For each method of the grid file, every combination of the listed option values
trains one student (on ``fit``, the training classes minus ``val``); the table holds
the best validation Recall@1 of each, and the best combination per method is printed
as YAML ready to paste into a config. The test split is never built here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.config import config_hash, deep_merge, load_yaml, resolve_config
from benchmarks.results_io import atomic_write_text, git_commit
from benchmarks.suites import retrieval as suite


def expand(grid: dict) -> list[tuple[str, dict]]:
    """[(method, options)] for every combination of each method's listed values."""
    out = []
    for method, space in grid.items():
        keys = sorted(space or {})
        for values in itertools.product(*(space[k] if isinstance(space[k], list) else [space[k]] for k in keys)):
            out.append((method, dict(zip(keys, values))))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="YAML: {method: {option: [values, ...]}}")
    p.add_argument("--config", help="YAML merged over the retrieval default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = resolve_config("retrieval", args.config)
    grid = load_yaml(args.grid).get("grid") or {}
    if not grid:
        raise SystemExit(f"{args.grid}: expected a top-level 'grid' mapping of method -> options")
    cells = expand(grid)
    data = suite.prepare(cfg)
    data = {k: v for k, v in data.items() if k != "test"}  # tuning never looks at the test classes
    teacher, _, _ = suite.load_or_train_teacher(cfg, data, args.seed, Path(args.cache_dir), not args.no_progress)
    rows, commit = [], git_commit()
    for i, (method, options) in enumerate(cells, 1):
        merged = deep_merge(cfg["methods"].get(method) or {}, options)
        _, result = suite.train_student(cfg, data, teacher, method, merged, args.seed, not args.no_progress)
        row = {"method": method, **{f"opt.{k}": v for k, v in options.items()}, "seed": args.seed,
               "val_recall@1": result.best_val["recall@1"], "val_map@r": result.best_val["map@r"],
               "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 1),
               "options_hash": config_hash(merged)}
        rows.append(row)
        print(f"[{i}/{len(cells)}] {method} {options}: val recall@1 {100 * row['val_recall@1']:.2f}", flush=True)
    table = pd.DataFrame(rows).sort_values(["method", "val_recall@1"], ascending=[True, False])
    dest = Path(args.out) / "retrieval" / cfg["dataset"]["name"]
    command = "python -m benchmarks.tune " + " ".join(argv if argv is not None else sys.argv[1:])
    header = f"# command: {command}\n# commit: {commit}\n# date: {time.strftime('%Y-%m-%d')}\n"
    atomic_write_text(dest / "tuning.csv", header + table.to_csv(index=False, float_format="%.4f"))
    print(table.to_string(index=False))
    print("\nbest on validation:")
    for method, part in table.groupby("method"):
        best = part.iloc[0]
        opts = {k[4:]: best[k] for k in part.columns if k.startswith("opt.") and not pd.isna(best[k])}
        print(f"  {method}: {opts}  (val recall@1 {100 * best['val_recall@1']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
