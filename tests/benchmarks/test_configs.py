"""The packaged full-scale recipes resolve over the embedded default without inheriting what
belongs to it: no generated-data pretraining, the recipe's step schedule, Recall@1 selection."""

from importlib import resources

import pytest

from benchmarks.config import resolve_config
from benchmarks.suites import pretrain
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
        assert tcfg.select_metric == "recall@1" and tcfg.eval_every == 1
    assert set(cfg["run"]) <= set(list_methods())


def test_the_embedded_default_pretrains():
    cfg = resolve_config("retrieval", None)
    assert pretrain.pretrain_section(cfg)["dataset"]["options"]["seed"] != cfg["dataset"]["options"].get("seed", 0)
