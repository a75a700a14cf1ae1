"""The packaged full-scale recipes resolve over the embedded default without inheriting what
belongs to it: no generated-data pretraining, the recipe's step schedule, Recall@1 selection."""

from importlib import resources

import pytest

from benchmarks.runner.config import resolve_config
from benchmarks.runner.tasks import pretrain
from benchmarks.runner.tasks import retrieval as suite
from benchmarks.runner.tasks.common import train_options
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
        tcfg = train_options(cfg, role, progress=False)
        assert tcfg.schedule == "step" and tcfg.milestones  # the recipe's milestones are used
        assert tcfg.select_metric == "recall@1" and tcfg.eval_every == 1 and tcfg.select == "best"
        assert not cfg[role].get("output_stride")  # torchvision's own strides, not the small CNNs' 8
    assert set(cfg["run"]) <= set(list_methods())
    assert "test_per_class" not in cfg["dataset"]["options"]  # the generator's options stay with it
    suite._model({**cfg["student"], "pretrained": False})  # the spec builds: no stray keyword reaches torchvision


def test_the_embedded_default_pretrains_on_its_own_draw_in_every_replicate():
    from benchmarks.runner.replicates import replicate_config

    cfg = resolve_config("retrieval", None)
    assert cfg["replicates"] == "full" and pretrain.pretrain_section(cfg)
    seeds = set()
    for seed in cfg["seeds"]:
        rcfg = replicate_config(cfg, seed)
        spec = pretrain.pretrain_dataset_spec(rcfg)
        assert spec["options"]["seed"] != rcfg["dataset"]["options"]["seed"]  # other classes than the benchmark's
        seeds |= {spec["options"]["seed"], rcfg["dataset"]["options"]["seed"]}
    assert len(seeds) == 2 * len(cfg["seeds"])  # and other ones in every replicate


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


def test_cifar100_recipe_does_not_inherit_the_embedded_classification_default():
    """cifar100.yaml is merged over classification.yaml (generated data, pretraining, cosine
    schedule, fixed initial weights, 8 epochs); none of that may reach RepDistiller's recipe."""
    from benchmarks.runner.tasks import classification

    path = resources.files("benchmarks") / "configs" / "cifar100.yaml"
    cfg = resolve_config("classification", str(path))
    default = resolve_config("classification")
    assert pretrain.pretrain_section(default) and default["replicates"] == "full"  # what could leak
    assert cfg["dataset"] == {"name": "cifar100", "root": None, "options": {}}
    assert pretrain.pretrain_section(cfg) is None and cfg.get("init_seed") is None
    assert (cfg["teacher"]["arch"], cfg["student"]["arch"]) == ("resnet32x4", "resnet8x4")
    for role in ("teacher", "student"):
        tcfg = classification.train_config(cfg, role, progress=False)
        assert (tcfg.schedule, list(tcfg.milestones), tcfg.epochs) == ("step", [150, 180, 210], 240)
        assert (tcfg.lr, tcfg.batch_size, tcfg.weight_decay, tcfg.select) == (0.05, 64, 0.0005, "last")
    assert cfg["methods"]["at"]["beta"] == 1000 and cfg["methods"]["crd"]["num_negatives"] == 16384
    assert cfg["device"] == "cuda" and cfg["workers"] == 1 and len(cfg["seeds"]) == 3
    assert set(cfg["run"]) <= set(list_methods())


def test_the_classification_default_stands_in_for_cifar100():
    """100+ classes at 32x32; teacher and student on the same schedule; backbones pretrained on
    another draw of the generator (not the benchmark's classes)."""
    from benchmarks.runner.tasks import classification

    cfg = resolve_config("classification")
    data = classification.prepare(cfg, progress=False, log=lambda *a: None)
    assert classification.num_classes(data) >= 100 and tuple(data["test"][0]["image"].shape) == (3, 32, 32)
    teacher, student = (classification.train_config(cfg, role, progress=False) for role in ("teacher", "student"))
    assert teacher == student  # the gap is the networks', not the epochs'
    from benchmarks.runner.replicates import replicate_config

    rcfg = replicate_config(cfg, cfg["seeds"][0])  # a replicate's pretraining draws other classes than its data
    spec = pretrain.pretrain_dataset_spec(rcfg)
    assert spec["name"] == "synthetic-cls" and spec["options"]["seed"] != rcfg["dataset"]["options"]["seed"]
