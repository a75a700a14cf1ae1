"""The packaged full-scale recipes resolve over the embedded default without inheriting what
belongs to it: no generated-data pretraining, the recipe's step schedule, Recall@1 selection."""

from importlib import resources

import pytest

from benchmarks.config import resolve_config
from benchmarks.suites import pretrain
from benchmarks.suites import retrieval as suite
from benchmarks.suites.retrieval import _train_config
from retrieval.methods import list_methods

FULL_SCALE = ["cub200", "cars196", "sop"]


@pytest.mark.parametrize("name", FULL_SCALE)
def test_full_scale_recipes_keep_their_own_protocol(name):
    path = resources.files("benchmarks") / "configs" / f"{name}.yaml"
    cfg = resolve_config("retrieval", str(path))
    assert cfg["dataset"]["name"] == name
    assert pretrain.pretrain_section(cfg) is None  # ImageNet weights, checked against the pretrain section
    assert cfg["teacher"]["pretrained"] and cfg["student"]["pretrained"]
    for role in ("teacher", "student"):
        tcfg = _train_config(cfg, role, progress=False)
        assert tcfg.schedule == "step" and tcfg.milestones  # the recipe's milestones are used
        assert tcfg.select_metric == "recall@1" and tcfg.eval_every == 1 and tcfg.select == "best"
        assert not cfg[role].get("output_stride")  # torchvision's own strides, not the small CNNs' 8
    assert set(cfg["run"]) <= set(list_methods())
    assert "test_per_class" not in cfg["dataset"]["options"]  # the generator's options stay with it
    suite._model({**cfg["student"], "pretrained": False})  # the spec builds: no stray keyword reaches torchvision


def test_the_embedded_default_pretrains():
    cfg = resolve_config("retrieval", None)
    assert pretrain.pretrain_section(cfg)["dataset"]["options"]["seed"] != cfg["dataset"]["options"].get("seed", 0)


def test_a_config_naming_another_dataset_does_not_inherit_the_generators_options(tmp_path):
    path = tmp_path / "folder.yaml"
    path.write_text("dataset: {name: folder, options: {image_size: 64}}\n")
    cfg = resolve_config("retrieval", str(path))
    assert cfg["dataset"] == {"name": "folder", "root": None, "options": {"image_size": 64}}
    path.write_text("dataset: {options: {test_per_class: 40}}\n")  # the same dataset: merged
    same = resolve_config("retrieval", str(path))
    default = resolve_config("retrieval")["dataset"]
    assert same["dataset"] == {**default, "options": {**default["options"], "test_per_class": 40}}


def test_default_networks_stage_sizes_on_the_default_data():
    """Issue targets: stage 1 maps at least 16x16 and stage 4 at least 4x4, teacher and student,
    on an image of the default test split (the full-scale ResNets at 224 px: 56 and 7)."""
    from benchmarks.bench_default_run import stage_sizes

    sizes = stage_sizes(resolve_config("retrieval"))
    assert sizes == {"teacher": [(16, 16), (8, 8), (4, 4), (4, 4)], "student": [(16, 16), (8, 8), (4, 4), (4, 4)]}
