"""Benchmark: the README's default command, timed from an empty cache, with its five targets.

    python -m benchmarks.bench_default_run [--out results] [--json FILE] [--config FILE]

Runs ``python -m benchmarks.run --suite retrieval`` (backbone pretraining, teacher and
five methods over the default seeds, embedded default data) in a subprocess with a
fresh cache folder, then checks from the leaderboard it wrote and from the networks
of its config:

1. every method's 95% interval of its Recall@1 gain over ``none`` has a half-width of
   at most 0.5 points;
2. the teacher beats ``none`` by at least 5 points of Recall@1;
3. stage 1 maps are at least 16x16 and stage 4 maps at least 4x4, teacher and student,
   on the default data;
4. the student costs at most 0.3x the teacher's MACs;
5. the whole command, pretraining included, takes at most 15 minutes;
6. its intervals come from full replicates (each seed draws the data, the pretraining, the initial
   weights and the teacher anew: ``benchmarks.runner.replicates``), not from the conditional design.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.runner.config import resolve_config
from benchmarks.runner.results_io import atomic_write_json
from benchmarks.runner.schema import typed
from benchmarks.runner.tasks import retrieval as suite
from retrieval.data import build_dataset

MAX_SECONDS, MIN_GAP, MAX_HALFWIDTH, MAX_MACS_RATIO = 15 * 60, 5.0, 0.5, 0.3
MIN_STAGE1, MIN_STAGE4 = 16, 4


def stage_sizes(cfg: dict) -> dict:
    """{role: [(H, W) of stages 1..4]} of the config's teacher and student on one image of its test split."""
    spec = typed(cfg)
    d = spec.dataset
    image = build_dataset(d.name, d.root, "test", **dict(d.options or {}))[0]["image"]
    out = {}
    for role in ("teacher", "student"):
        net = suite._model(getattr(spec, role)).eval()
        with torch.no_grad():
            stages = net.forward_features(image[None])["stages"]
        out[role] = [tuple(int(v) for v in f.shape[-2:]) for f in stages]
    return out


def gains(board: pd.DataFrame, primary: str, max_halfwidth: float, seconds: float | None, min_gap: float,
          max_seconds: float) -> tuple[dict, dict]:
    """The targets every suite's default shares, from its leaderboard (indexed by method, metrics in
    %): (numbers, {target: passed}) for the largest 95% half-width of a gain over ``none`` (no
    interval, or no method besides none, is no pass), teacher - none on ``primary`` (at least
    ``min_gap``) and, with ``seconds``, the wall time (at most ``max_seconds``); the numbers also
    hold the gains."""
    students = board.drop(index=[m for m in ("teacher", "none") if m in board.index])
    halfwidths = students["gain_ci_halfwidth"]
    gap = float(board.loc["teacher", f"{primary}_mean"] - board.loc["none", f"{primary}_mean"])
    numbers = {"wall_seconds": None if seconds is None else round(seconds, 1),
               f"max_gain_halfwidth_{primary}": round(float(halfwidths.max()), 3),
               "gain_halfwidth_by_method": {m: round(float(v), 3) for m, v in halfwidths.items()},
               "gain_by_method": {m: round(float(v), 3) for m, v in students["gain_vs_none"].items()},
               f"teacher_minus_none_{primary}": round(gap, 2)}
    design = str(board["replicates"].dropna().iloc[0]) if "replicates" in board.columns else "conditional"
    numbers["replicates"] = design
    ok = {"halfwidth": bool(len(halfwidths) > 0 and halfwidths.notna().all() and halfwidths.max() <= max_halfwidth),
          "gap": gap >= min_gap, "design": design == "full"}
    if seconds is not None:
        ok["time"] = seconds <= max_seconds
    return numbers, ok


def verdicts(ok: dict) -> dict:
    return {k: "PASS" if v else "FAIL" for k, v in ok.items()}


def target_lines(numbers: dict, ok: dict, primary: str, label: str, unit: str, max_halfwidth: float, min_gap: float,
                 max_seconds: float) -> list[str]:
    """The report lines of the targets ``gains`` checks (wall time first when it was measured):
    ``label`` names ``primary`` in the text, ``unit`` its points ("points", "AP")."""
    verdict = verdicts(ok)
    article = "an" if label[0] in "AEIOU" else "a"
    lines = [f"largest 95% half-width of {article} {label} gain over none {numbers[f'max_gain_halfwidth_{primary}']:.2f} "
             f"{unit} (target <= {max_halfwidth}): {verdict['halfwidth']}  {numbers['gain_halfwidth_by_method']}",
             f"gains over none {numbers['gain_by_method']}",
             f"teacher - none {label} {numbers[f'teacher_minus_none_{primary}']:.2f} {unit} (target >= {min_gap}): "
             f"{verdict['gap']}",
             f"replicates {numbers['replicates']} (target: full, every source of randomness redrawn per replicate): "
             f"{verdict['design']}"]
    if "time" in ok:
        lines.insert(0, f"wall time {numbers['wall_seconds']:.0f}s (target <= {max_seconds}s): {verdict['time']}")
    return lines


def check(board: pd.DataFrame, sizes: dict, seconds: float | None) -> tuple[dict, dict]:
    """(numbers, {target: passed}) from a leaderboard (indexed by method) and the stage sizes."""
    numbers, ok = gains(board, "recall@1", MAX_HALFWIDTH, seconds, MIN_GAP, MAX_SECONDS)
    macs_ratio = float(board.loc["none", "macs"] / board.loc["teacher", "macs"])
    stage1 = min(min(s[0]) for s in sizes.values())
    stage4 = min(min(s[3]) for s in sizes.values())
    numbers.update({"macs_ratio": round(macs_ratio, 3),
                    "stage_sizes": {role: [list(s) for s in v] for role, v in sizes.items()}})
    ok.update({"stages": stage1 >= MIN_STAGE1 and stage4 >= MIN_STAGE4, "macs": macs_ratio <= MAX_MACS_RATIO})
    return numbers, ok


def report(numbers: dict, ok: dict) -> list[str]:
    verdict = verdicts(ok)
    return target_lines(numbers, ok, "recall@1", "recall@1", "points", MAX_HALFWIDTH, MIN_GAP, MAX_SECONDS) + [
        f"stage maps (H, W) {numbers['stage_sizes']} (targets: stage 1 >= {MIN_STAGE1}, stage 4 >= "
        f"{MIN_STAGE4}): {verdict['stages']}",
        f"student / teacher MACs {numbers['macs_ratio']:.3f} (target <= {MAX_MACS_RATIO}): {verdict['macs']}"]


def timed_default_run(suite: str, out: str, config: str | None = None, extra: tuple = (),
                      keep_cache: str | None = None) -> float:
    """Run ``python -m benchmarks.run --suite SUITE`` in a subprocess with an empty cache (named
    relative to the working folder, so the command recorded in the tables stays portable); the
    wall seconds of the whole command. ``keep_cache``: a folder that does not exist yet, used as the
    cache and kept (a replication check then finds the first run's networks there)."""
    if keep_cache is not None and Path(keep_cache).exists():
        raise SystemExit(f"--keep-cache {keep_cache}: the folder exists; the timed run needs an empty cache")
    with tempfile.TemporaryDirectory(dir=".", prefix=".bench-cache-") as scratch:
        cache = keep_cache or Path(scratch).name
        cmd = [sys.executable, "-m", "benchmarks.run", "--suite", suite, "--out", out, "--cache-dir",
               str(cache), "--no-progress", *(["--config", config] if config else []), *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - start


def read_board(out: str, suite: str, cfg: dict) -> pd.DataFrame:
    """The leaderboard.csv the run of ``cfg`` wrote under ``out``, indexed by method."""
    return pd.read_csv(Path(out) / suite / typed(cfg).dataset.name / "leaderboard.csv").set_index("method")


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every default-run benchmark takes."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--config", help="a config merged over the default (the targets are those of the default)")
    p.add_argument("--check-only", action="store_true",
                   help="check the leaderboard already in --out, without running (no wall-time target)")
    p.add_argument("--keep-cache", metavar="DIR",
                   help="use DIR (which must not exist yet) as the run's cache and keep it, e.g. for "
                        "python -m benchmarks.replicate --cache-dir DIR")
    return p


def finish(numbers: dict, ok: dict, lines: list[str], json_path: str | None) -> int:
    """Print the report, write the numbers and verdicts to ``json_path``; 0 when every target passed."""
    print("\n".join(lines))
    if json_path:
        atomic_write_json(json_path, {**numbers, "pass": ok})
    return 0 if all(ok.values()) else 1


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)

    cfg = resolve_config("retrieval", args.config)
    seconds = None if args.check_only else timed_default_run("retrieval", args.out, args.config,
                                                             keep_cache=args.keep_cache)
    numbers, ok = check(read_board(args.out, "retrieval", cfg), stage_sizes(cfg), seconds)
    return finish(numbers, ok, report(numbers, ok), args.json)


if __name__ == "__main__":
    sys.exit(main())
