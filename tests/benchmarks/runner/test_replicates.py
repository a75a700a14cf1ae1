"""Full replicates: each seed draws the data, pretraining, initial weights and teacher anew, and every
method of one replicate shares them (benchmarks.runner.replicates, through the run loop)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tiny_retrieval import tiny_retrieval

from benchmarks import run
from benchmarks.runner.config import deep_merge
from benchmarks.runner.replicates import (STREAMS, design_note, design_of, design_problems, draw,
                                          replicate_config, replicate_draws)
from benchmarks.runner.schema import config_problems
from benchmarks.runner.tasks import get_suite
from benchmarks.runner.tasks.pretrain import pretrained_path
from benchmarks.runner.tasks.retrieval import _model, build_student_method, prepare


def _cfg(**changes):
    from benchmarks.runner.config import default_config

    return deep_merge(default_config("retrieval"), tiny_retrieval(**changes))


def test_draws_are_distinct_per_stream_and_replicate_and_fixed():
    seeds = [draw(r, s) for r in range(50) for s in STREAMS]
    assert len(set(seeds)) == len(seeds)  # no two streams of no two replicates share a seed
    assert all(0 <= s < 2 ** 31 for s in seeds)
    # SeedSequence's documented output, computed independently: a fixed function of (seed, stream)
    expected = int(np.random.SeedSequence([3, STREAMS["init"]]).generate_state(1)[0]) & 0x7FFFFFFF
    assert draw(3, "init") == expected


def test_two_replicates_differ_in_every_drawn_part_and_one_replicate_is_one_config():
    cfg = _cfg()
    a, b = replicate_config(cfg, 0), replicate_config(cfg, 1)
    assert replicate_config(cfg, 0) == a  # pure
    da, db = replicate_draws(cfg, 0), replicate_draws(cfg, 1)
    for key in ("data_seed", "pretrain_data_seed", "pretrain_seed", "init_seed"):
        assert da[key] is not None and da[key] != db[key], key
    assert a["dataset"]["options"]["seed"] == da["data_seed"] and a["init_seed"] == da["init_seed"]
    assert cfg.get("init_seed") is None and "seed" not in cfg["pretrain"]  # the design config is not changed
    cache = Path("cache")
    for role in ("teacher", "student"):  # a pretrained backbone per replicate
        assert pretrained_path(a, role, cache) != pretrained_path(b, role, cache)
    suite = get_suite("retrieval")
    assert suite.teacher_checkpoint(a, cache, 0) != suite.teacher_checkpoint(b, cache, 0)  # and a teacher
    assert suite.run_id_of(a, "at", 0)[0] != suite.run_id_of(b, "at", 1)[0]


def test_replicates_draw_other_data_and_weights(tmp_path):
    cfg = _cfg()
    a, b = (prepare(replicate_config(cfg, s), log=lambda *x: None) for s in (0, 1))
    assert not np.array_equal(a["test"].images, b["test"].images)  # new classes and images
    assert not np.array_equal(a["fit"].images, b["fit"].images)
    again = prepare(replicate_config(cfg, 0), log=lambda *x: None)
    assert np.array_equal(a["test"].images, again["test"].images)  # the same replicate, the same pixels


def test_methods_of_one_replicate_share_initial_weights_and_replicates_do_not():
    cfg = _cfg()
    cfg.pop("pretrain")  # no pretraining: the student's weights are its initial draw
    nets = {}
    for seed in (0, 1):
        rcfg = replicate_config(cfg, seed)
        data = prepare(rcfg, log=lambda *x: None)
        for method in ("none", "at"):
            from benchmarks.runner.suite_runner import seed_init

            seed_init(rcfg, seed)
            teacher = None if method == "none" else _model(rcfg["teacher"])
            seed_init(rcfg, seed)  # as train_seeded_student does before building the method
            m = build_student_method(rcfg, data, teacher, method, rcfg["methods"].get(method))
            nets[seed, method] = m.student.state_dict()

    def same(x, y):
        return all(torch.equal(x[k], y[k]) for k in x)

    assert same(nets[0, "none"], nets[0, "at"]) and same(nets[1, "none"], nets[1, "at"])
    assert not same(nets[0, "none"], nets[1, "none"])


def test_conditional_keeps_the_config_and_full_refuses_its_fixed_draws():
    cfg = _cfg(replicates="conditional", init_seed=0, teacher_seed=0)
    assert replicate_config(cfg, 3) is cfg and design_of(cfg) == "conditional"
    assert "conditional" in design_note(cfg) and "init_seed 0" in design_note(cfg)
    full = _cfg(init_seed=0)
    assert design_of(full) == "full"
    problems = dict(design_problems(full))
    assert "init_seed" in problems and "replicates: conditional" in problems["init_seed"]
    assert any(path == "init_seed" for path, _ in config_problems(full))
    with pytest.raises(ValueError, match="init_seed"):
        replicate_config(full, 0)
    assert any(path == "replicates" for path, _ in config_problems(_cfg(replicates="some")))


def test_design_note_says_what_a_replicate_draws_and_what_stays_fixed():
    full = design_note(_cfg())
    assert full.startswith("Replicates: full") and "generated data" in full and "teacher" in full
    real = design_note(deep_merge(_cfg(), {"dataset": {"name": "mnist", "options": {}}}))
    assert "fixed: the data (mnist" in real and "generated data" not in real


def test_a_full_run_pairs_methods_within_replicates_and_groups_them(tmp_path):
    """End to end: two replicates, two methods. Each replicate has its own pretrained backbones and teacher;
    both methods of a replicate read the same ones; the rows of all replicates form one leaderboard group."""
    config = tmp_path / "full.yaml"
    config.write_text(yaml.safe_dump(tiny_retrieval(run=["none", "at"], seeds=[0, 1])))
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run.main(["--suite", "retrieval", "--config", str(config), "--out", str(out), "--cache-dir", str(cache),
                     "--no-progress", "--workers", "1"]) == 0
    dest = out / "retrieval" / "synthetic"
    runs = pd.read_csv(dest / "runs.csv")
    assert set(runs["replicates"]) == {"full"}
    assert runs.groupby("method")["config_hash"].nunique().eq(1).all()  # one group per method
    assert len(runs["run_id"].unique()) == len(runs) == 6
    assert len(list((cache / "teachers").rglob("*.pt"))) == 2
    assert len(list((cache / "pretrained").rglob("*.pt"))) == 4  # 2 roles x 2 replicates
    records = {(r["method"], r["seed"]): json.loads((dest / "runs" / f"{r['run_id']}.json").read_text())["replicate"]
               for _, r in runs.iterrows()}
    for seed in (0, 1):
        assert records["none", seed] == records["at", seed] == records["teacher", seed] == replicate_draws(
            yaml.safe_load(config.read_text()), seed)
    assert records["none", 0]["data_seed"] != records["none", 1]["data_seed"]
    board = (dest / "leaderboard.md").read_text()
    assert "Replicates: full" in board and "Student t over the replicates" in board


@pytest.mark.parametrize("suite_name", ["classification", "detection"])
def test_every_suite_default_draws_its_data_and_teacher_per_replicate(suite_name):
    from benchmarks.runner.config import resolve_config

    cfg = resolve_config(suite_name)
    assert design_of(cfg) == "full" and not design_problems(cfg)
    suite = get_suite(suite_name)
    a, b = (replicate_config(cfg, s) for s in cfg["seeds"][:2])
    assert a["dataset"]["options"]["seed"] != b["dataset"]["options"]["seed"]
    assert a["init_seed"] != b["init_seed"]
    assert suite.teacher_checkpoint(a, Path("c"), 0) != suite.teacher_checkpoint(b, Path("c"), 0)
    if cfg.get("pretrain"):
        for role in ("teacher", "student"):
            assert pretrained_path(a, role, "c") != pretrained_path(b, role, "c")
    if suite_name == "detection":  # the scenes are generated into a folder named by their options
        from retrieval.detection.data import scenes_root

        assert scenes_root("c", a["dataset"]["options"]) != scenes_root("c", b["dataset"]["options"])
