"""Dry-run every full-scale recipe on generated data in its official format, on this machine.

    python -m benchmarks.check_recipes [--recipes cub200,cars196,sop,cifar100,detection_coco] [--keep DIR]

For each recipe it writes a small tree in the dataset's official layout with images of the
real dataset's sizes (``benchmarks.make_recipe_data``), puts random stand-ins for the
recipe's pretrained weights under their torchvision cache file names in a temporary
``TORCH_HOME``, and runs

    python -m benchmarks.run --config benchmarks/configs/<recipe>.yaml --data-root <tree> --dry-run
        --device cpu --dry-steps 2 --dry-batch B --dry-eval M

in a process of its own: every job of the recipe (teacher, each student) with the recipe's
architectures, resolution, loss, sampler, method options and AMP setting, for 2 steps with
a small batch (one image for the detector at 800 px), then the real evaluator on a
bounded sample. It prints each dry run's table and exits 1 if any recipe failed. CI runs
it; it takes a few minutes on 2 cores. Numbers from random weights and generated images
mean nothing: this checks that the recipes run, not what they score.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import make_recipe_data as make

CONFIGS = Path(__file__).parent / "configs"
# recipe -> (dataset writer, writer options, dry batch, evaluated images per split)
RECIPES = {
    "cub200": ("write_cub", {"classes": 4, "per_class": 10}, 10, 16),
    "cars196": ("write_cars", {"classes": 4, "per_class": 10}, 10, 16),
    "sop": ("write_sop", {"classes": 4, "per_class": 10}, 10, 16),
    "cifar100": ("write_cifar100", {"classes": 100, "per_class": 2}, 8, 32),
    "detection_coco": ("write_coco", {"classes": 4, "per_class": 2}, 1, 2),  # 800 px: batch 1 keeps CI short
}


def suite_of(recipe: str) -> str:
    return {"cifar100": "classification", "detection_coco": "detection"}.get(recipe, "retrieval")


def command(recipe: str, root: Path, out: Path, cache: Path) -> list[str]:
    _, _, batch, evaluated = RECIPES[recipe]
    return [sys.executable, "-m", "benchmarks.run", "--suite", suite_of(recipe), "--config",
            str(CONFIGS / f"{recipe}.yaml"), "--data-root", str(root), "--dry-run", "--device", "cpu",
            "--dry-steps", "2", "--dry-batch", str(batch), "--dry-eval", str(evaluated), "--out", str(out),
            "--cache-dir", str(cache), "--no-progress"]


def check(recipes: list[str], work: Path, log=print) -> dict[str, tuple[int, float]]:
    """(exit status, seconds) of the dry run of each recipe, run with data and weights under ``work``."""
    torch_home = work / "torch_home"
    archs = sorted(make.recipe_weights())
    make.write_random_weights(torch_home, archs, make.recipe_weights())
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    outcome = {}
    for recipe in recipes:
        writer, options, _, _ = RECIPES[recipe]
        root = getattr(make, writer)(work / "data" / recipe, **options)
        start = time.perf_counter()
        log(f"== {recipe}: {' '.join(command(recipe, root, work / 'dry-run', work / 'cache')[1:])}", flush=True)
        done = subprocess.run(command(recipe, root, work / "dry-run", work / "cache"), env=env,
                              cwd=Path(__file__).parents[1])
        outcome[recipe] = (done.returncode, time.perf_counter() - start)
        log(f"== {recipe}: {'ok' if done.returncode == 0 else f'FAILED (exit {done.returncode})'} in "
            f"{outcome[recipe][1]:.0f}s", flush=True)
    return outcome


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.check_recipes", description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, some of {list(RECIPES)}")
    p.add_argument("--keep", help="keep the generated data and the dry-run tables in this folder")
    args = p.parse_args(argv)
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {unknown}; expected some of {list(RECIPES)}")
    start = time.perf_counter()
    if args.keep:
        outcome = check(recipes, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="check-recipes-") as tmp:
            outcome = check(recipes, Path(tmp))
    failed = [r for r, (code, _) in outcome.items() if code != 0]
    print(f"dry runs of {len(recipes)} recipe(s) in {time.perf_counter() - start:.0f}s: "
          + ", ".join(f"{r} {'ok' if c == 0 else 'FAILED'} ({s:.0f}s)" for r, (c, s) in outcome.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
