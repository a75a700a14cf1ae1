"""Pretrained backbones for the embedded track: trained once per architecture on data disjoint
from the benchmark's, cached, and loaded into every teacher and student (embedding layer new)."""

import numpy as np
import pytest
import torch
from tiny_retrieval import tiny_retrieval

from benchmarks.runner.config import deep_merge, resolve_config
from benchmarks.runner.replicates import replicate_config
from benchmarks.runner.suite_runner import train_state_path
from benchmarks.runner.tasks import get_task, pretrain, retrieval as suite


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = replicate_config(deep_merge(resolve_config("retrieval", None), tiny_retrieval()), 0)  # as a run's job
    data = suite.prepare(cfg, log=lambda *a: None, cache_dir=cache)
    for role in get_task("retrieval").setup_names(cfg):
        get_task("retrieval").setup(cfg, data, role, progress=False, log=lambda *a: None)
    return cfg, data, cache


def test_both_backbones_are_cached_and_differ_from_a_fresh_init(tiny):
    cfg, _, cache = tiny
    for role in ("teacher", "student"):
        path = pretrain.pretrained_path(cfg, role, cache)
        assert path.is_file() and not train_state_path(path).exists()
        saved = torch.load(path, weights_only=True)
        fresh = suite._model(cfg[role]).backbone.state_dict()
        assert saved.keys() == fresh.keys()
        assert any(not torch.equal(saved[k], fresh[k]) for k in saved if saved[k].is_floating_point())


def test_a_cached_backbone_is_not_trained_again(tiny, monkeypatch):
    cfg, _, cache = tiny
    monkeypatch.setattr(pretrain, "train", lambda *a, **k: pytest.fail("pretrained again"))
    assert pretrain.ensure_pretrained(cfg, "student", cache, suite._model) == pretrain.pretrained_path(
        cfg, "student", cache)


def test_teacher_and_student_start_from_the_pretrained_backbone_with_a_new_embedding(tiny):
    cfg, data, cache = tiny
    for role in ("teacher", "student"):
        saved = torch.load(pretrain.pretrained_path(cfg, role, cache), weights_only=True)
        suite.seed_init(cfg, 0)
        net = suite._network(cfg, data, role)
        for key, value in net.backbone.state_dict().items():
            assert torch.equal(value, saved[key]), key
        suite.seed_init(cfg, 0)
        assert torch.equal(net.embed.weight, suite._model(cfg[role]).embed.weight)  # fixed by init_seed, not loaded
    method = suite.build_student_method(cfg, data, None, "none", None)
    saved = torch.load(pretrain.pretrained_path(cfg, "student", cache), weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in method.student.backbone.state_dict().items())


def test_pretraining_data_share_no_image_with_the_benchmark(tiny):
    from retrieval.data import build_dataset

    cfg, data, _ = tiny
    spec = pretrain.pretrain_dataset_spec(cfg)
    assert spec["options"]["seed"] != cfg["dataset"]["options"]["seed"]
    pre = build_dataset(spec["name"], None, "train", **spec["options"]).images.reshape(-1, 16 * 16 * 3).numpy()
    ours = np.concatenate([data[s].images.reshape(-1, 16 * 16 * 3).numpy() for s in ("fit", "val", "test")])
    common = {row.tobytes() for row in pre} & {row.tobytes() for row in ours}
    assert not common


def test_the_file_name_follows_what_decides_the_weights(tmp_path):
    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval())
    path = pretrain.pretrained_path(cfg, "student", tmp_path)
    assert pretrain.pretrained_path(cfg, "student", tmp_path) == path
    assert pretrain.pretrained_path(cfg, "teacher", tmp_path) != path
    for change in ({"pretrain": {"train": {"epochs": 2}}}, {"pretrain": {"dataset": {"options": {"seed": 2}}}},
                   {"student": {"embedding_dim": 4}}):
        assert pretrain.pretrained_path(deep_merge(cfg, change), "student", tmp_path) != path
    # the student's own training options do not change its pretrained backbone
    assert pretrain.pretrained_path(deep_merge(cfg, {"student": {"train": {"lr": 0.5}}}), "student", tmp_path) == path


def test_the_teacher_cache_depends_on_the_pretrain_section(tmp_path):
    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval())
    other = deep_merge(cfg, {"pretrain": {"train": {"epochs": 3}}})
    task = get_task("retrieval")
    assert task.teacher_checkpoint(cfg, tmp_path, 0) != task.teacher_checkpoint(other, tmp_path, 0)
    assert suite.run_id_of(cfg, "at", 0) != suite.run_id_of(other, "at", 0)


def test_bad_pretrain_sections_are_clear_errors():
    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval())
    with pytest.raises(ValueError, match=r"pretrain: unknown key\(s\) \['epochs'\]"):
        pretrain.pretrain_section(deep_merge(cfg, {"pretrain": {"epochs": 3}}))
    with pytest.raises(ValueError, match="student: pretrained weights and a pretrain section exclude each other"):
        pretrain.pretrain_section(deep_merge(cfg, {"student": {"pretrained": True}}))
    data = suite.prepare(cfg, log=lambda *a: None)  # no cache folder
    with pytest.raises(ValueError, match="pretrain section needs the cache folder"):
        suite._network(cfg, data, "student")


def test_without_a_pretrain_section_networks_start_from_scratch():
    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval(pretrain=None))
    assert get_task("retrieval").setup_names(cfg) == []
    data = suite.prepare(cfg, log=lambda *a: None)
    suite.seed_init(cfg, 0)
    net = suite._network(cfg, data, "student")
    suite.seed_init(cfg, 0)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), suite._model(cfg["student"]).state_dict().values()))


def _pretrain_in_a_process(cache: str) -> list[str]:
    torch.set_num_threads(1)
    cfg = deep_merge(resolve_config("retrieval", None), tiny_retrieval())
    said = []
    pretrain.ensure_pretrained(cfg, "student", cache, suite._model, log=said.append)
    return said


def test_processes_sharing_a_cache_pretrain_once(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        said = [m for ms in pool.map(_pretrain_in_a_process, [str(tmp_path)] * 2) for m in ms]
    assert len([m for m in said if m.startswith("pretrained the student backbone")]) == 1


def test_another_dataset_pretrains_on_the_generated_set_alone():
    cfg = deep_merge(resolve_config("retrieval", None), {"dataset": {"name": "mnist", "options": {"val_fraction": 0.4}}})
    spec = pretrain.pretrain_dataset_spec(cfg)
    assert spec["name"] == "synthetic" and spec["options"] == {"classes": 400, "test_per_class": None}  # no mnist option
    seed = replicate_config(cfg, 3)["pretrain"]["dataset"]["options"]["seed"]  # drawn per replicate
    assert pretrain.pretrain_dataset_spec(replicate_config(cfg, 3))["options"] == {"classes": 400, "test_per_class": None,
                                                                                  "seed": seed}
    same = pretrain.pretrain_dataset_spec(deep_merge(resolve_config("retrieval", None), tiny_retrieval()))
    assert same["options"] == {"classes": 20, "per_class": 10, "size": 16, "test_per_class": None}  # the run's generator options
