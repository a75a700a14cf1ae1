"""``benchmarks.check_recipes`` covers every full-scale recipe with settings the recipe accepts
(CI runs it; here only its plan is checked, the dry runs themselves take minutes)."""

import pytest

from benchmarks import check_recipes, run
from benchmarks.runner.config import deep_merge
from benchmarks.runner.schema import check_config

FULL_SCALE = {"cub200", "cars196", "sop", "cifar100", "detection_coco"}


def test_every_full_scale_recipe_is_dry_run():
    assert set(check_recipes.RECIPES) == FULL_SCALE
    for recipe in FULL_SCALE:
        assert (check_recipes.CONFIGS / f"{recipe}.yaml").is_file()


@pytest.mark.parametrize("recipe", sorted(FULL_SCALE))
def test_the_dry_batch_passes_the_recipes_schema(recipe, tmp_path):
    argv = check_recipes.command(recipe, tmp_path, tmp_path / "out", tmp_path / "cache")[3:]
    assert argv[argv.index("--dry-batch") + 1] == str(check_recipes.RECIPES[recipe][2])
    args = run.parse_args(argv)
    assert args.dry_run and args.device == "cpu" and args.dry_steps == 2
    cfg, origin = run.build_config(args)
    check_config(cfg, origin)  # raises on a batch the recipe's sampler cannot draw
    for role in ("teacher", "student"):
        train = deep_merge(cfg["train"], cfg[role].get("train") or {})
        assert train["batch_size"] == check_recipes.RECIPES[recipe][2]


def test_unknown_recipe_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        check_recipes.main(["--recipes", "cub200,imagenet"])
    assert exit_.value.code == 2 and "imagenet" in capsys.readouterr().err
