"""benchmarks.runner.sampler_fit: batch size and sampler fitted to the splits, by hand-computed cases."""

from __future__ import annotations

import copy
from importlib import resources

import numpy as np
import pytest

from benchmarks.runner.config import deep_merge, resolve_config
from benchmarks.runner.errors import UserError
from benchmarks.runner.sampler_fit import TRAIN_DEFAULTS, fit_sampler, split_stats


def stats(fit, val, test):
    """Each split as (images, classes, min_per_class)."""
    return {name: dict(zip(("images", "classes", "min_per_class"), s))
            for name, s in (("fit", fit), ("val", val), ("test", test))}


DEFAULT_STATS = stats((2400, 80, 30), (600, 20, 30), (10000, 100, 100))
"""The embedded default: 200 generated classes x 30 images, halves, val 0.2 of the 100 training
classes; test_per_class 100."""


def packaged(name: str) -> dict:
    return resolve_config("retrieval", str(resources.files("benchmarks") / "configs" / f"{name}.yaml"))


def test_split_stats():
    class DS:
        labels = np.array([3, 3, 3, 7, 7, 9, 9, 9, 9])

    assert split_stats(DS()) == {"images": 9, "classes": 3, "min_per_class": 2}


def test_split_stats_of_a_real_split(tmp_path):
    from PIL import Image

    from retrieval.data import build_dataset

    for c in range(4):
        for i in range(c + 2):
            (tmp_path / f"k{c}").mkdir(exist_ok=True)
            Image.new("RGB", (4, 4)).save(tmp_path / f"k{c}" / f"{i}.png")
    assert split_stats(build_dataset("folder", tmp_path, "test")) == {"images": 9, "classes": 2, "min_per_class": 4}


def test_the_default_comes_back_unchanged():
    cfg = resolve_config("retrieval")
    before = copy.deepcopy(cfg)
    out, notes = fit_sampler(cfg, DEFAULT_STATS)
    assert out == before and notes == [] and cfg == before
    assert out is not cfg


def test_the_default_on_its_real_splits_comes_back_unchanged():
    from retrieval.data import build_dataset

    cfg = resolve_config("retrieval")
    d = cfg["dataset"]
    real = {s: split_stats(build_dataset(d["name"], d["root"], s, **d["options"])) for s in ("fit", "val", "test")}
    assert real == DEFAULT_STATS
    assert fit_sampler(cfg, real) == (cfg, [])


@pytest.mark.parametrize("name, counts", [
    ("cub200", stats((4700, 80, 41), (1164, 20, 48), (5924, 100, 41))),
    ("cars196", stats((6500, 78, 24), (1554, 20, 40), (8131, 98, 41))),
    ("sop", stats((47600, 9054, 2), (11951, 2264, 2), (60502, 11316, 2))),  # m 5 > 2: sampled with replacement, as
])                                                                          # the recipe does: left alone
def test_the_full_scale_recipes_come_back_unchanged(name, counts):
    cfg = packaged(name)
    assert fit_sampler(cfg, counts) == (cfg, [])


def test_train_defaults_are_the_trainers():
    from retrieval.engine import TrainConfig

    t = TrainConfig()
    assert TRAIN_DEFAULTS == {"batch_size": t.batch_size, "m_per_class": t.m_per_class, "sampler": t.sampler}


def test_ten_classes_of_digits():
    """The measured failure: 10 classes of ~180 images, fit 3 / val 2 / test 5 classes."""
    cfg = resolve_config("retrieval")
    out, notes = fit_sampler(cfg, stats((540, 3, 174), (358, 2, 176), (899, 5, 177)))
    assert notes == ["teacher.train.batch_size 100 -> 15: the fit split has 3 classes x m_per_class 5",
                     "student.train.batch_size 100 -> 15: the fit split has 3 classes x m_per_class 5"]
    for role in ("teacher", "student"):
        assert out[role]["train"] == {**cfg[role]["train"], "batch_size": 15}
    assert out["train"] == cfg["train"] and out["pretrain"] == cfg["pretrain"]  # pretraining on generated data unmoved
    assert {k: v for k, v in out.items() if k not in ("teacher", "student")} == \
        {k: v for k, v in cfg.items() if k not in ("teacher", "student")}


def test_eight_classes_of_four_images():
    """fit 2 x 4, val 2 x 4, test 4 x 4: m 5 -> 4, batch 8 (the whole fit split), K = 8 dropped."""
    cfg = packaged("folder")
    out, notes = fit_sampler(cfg, stats((8, 2, 4), (8, 2, 4), (16, 4, 4)))
    assert notes == ["eval.ks [1, 2, 4, 8] -> [1, 2, 4]: the val split has 8 images (Recall@K needs K < images)",
                     "teacher.train.m_per_class 5 -> 4: the smallest class of the fit split has 4 images",
                     "teacher.train.batch_size 100 -> 8: the fit split has 2 classes x m_per_class 4",
                     "student.train.m_per_class 5 -> 4: the smallest class of the fit split has 4 images",
                     "student.train.batch_size 100 -> 8: the fit split has 2 classes x m_per_class 4"]
    assert out["eval"]["ks"] == [1, 2, 4]
    assert out["teacher"]["train"]["batch_size"] == 8 and out["teacher"]["train"]["m_per_class"] == 4
    assert out["train"]["batch_size"] == 100  # the shared section is not rewritten


def test_the_batch_is_capped_by_the_images():
    """12 classes but only 2 to 6 images each (40 in all): m 5 -> 2; 2 x 12 = 24 <= 40."""
    cfg = resolve_config("retrieval")
    out, notes = fit_sampler(cfg, stats((40, 12, 2), (600, 20, 30), (900, 30, 30)))
    assert out["student"]["train"]["m_per_class"] == 2 and out["student"]["train"]["batch_size"] == 24
    # 30 classes of 3 images with m 5: 150 >= 100 classes x m, but 90 images < 100
    out, notes = fit_sampler(cfg, stats((90, 30, 3), (600, 20, 30), (900, 30, 30)))
    assert out["teacher"]["train"]["m_per_class"] == 3 and out["teacher"]["train"]["batch_size"] == 90
    assert "teacher.train.batch_size 100 -> 90: the fit split has 30 classes x m_per_class 3" in notes
    # 40 classes, some of 1 image (70 in all): m 2; 40 x 2 = 80 > 70 images -> 35 classes x 2
    out, notes = fit_sampler(cfg, stats((70, 40, 1), (600, 20, 30), (900, 30, 30)))
    assert out["teacher"]["train"]["m_per_class"] == 2 and out["teacher"]["train"]["batch_size"] == 70
    assert notes[1] == "teacher.train.batch_size 100 -> 70: the fit split has 70 images (a batch holds at most the images)"


def test_a_role_override_is_kept_and_adapted_alone():
    cfg = deep_merge(resolve_config("retrieval"), {"teacher": {"train": {"batch_size": 6, "m_per_class": 2}}})
    out, notes = fit_sampler(cfg, stats((540, 3, 174), (358, 2, 176), (899, 5, 177)))
    assert out["teacher"] == cfg["teacher"]  # 3 classes x 2 already hold a batch of 6
    assert notes == ["student.train.batch_size 100 -> 15: the fit split has 3 classes x m_per_class 5"]


def test_random_sampler_needs_a_batch_of_images():
    cfg = deep_merge(resolve_config("retrieval"), {"train": {"sampler": "random", "batch_size": 64}})
    assert fit_sampler(cfg, stats((540, 3, 174), (358, 2, 176), (899, 5, 177))) == (cfg, [])
    out, notes = fit_sampler(cfg, stats((40, 3, 10), (358, 2, 176), (899, 5, 177)))
    assert out["teacher"]["train"]["batch_size"] == 40
    assert notes[0] == "teacher.train.batch_size 64 -> 40: the fit split has 40 images (sampler random)"


def test_pretraining_on_the_runs_own_data_is_fitted_to_its_training_half():
    cfg = {**packaged("folder"), "pretrain": {"dataset": {"name": "folder"}, "train": {"epochs": 3}}}
    out, notes = fit_sampler(cfg, stats((540, 3, 174), (358, 2, 176), (899, 5, 177)))
    assert out["pretrain"]["train"] == {"epochs": 3, "batch_size": 25}  # 5 training classes x 5
    assert "pretrain.train.batch_size 100 -> 25: the training half has 5 classes x m_per_class 5" in notes
    other = packaged("folder")  # the recipe pretrains on the generated set: not moved
    assert other["pretrain"]["dataset"] and "pretrain" not in " ".join(fit_sampler(other, stats((540, 3, 174), (358, 2, 176), (899, 5, 177)))[1])


@pytest.mark.parametrize("counts, message", [
    (stats((180, 1, 180), (360, 2, 180), (900, 5, 180)), "the fit split has 1 class"),
    (stats((540, 3, 180), (180, 1, 180), (900, 5, 180)), "the val split has 1 class"),
    (stats((540, 3, 180), (360, 2, 180), (180, 1, 180)), "the test split has 1 class"),
    (stats((540, 3, 180), (360, 2, 180), (900, 5, 1)), "a class of the test split has 1 image"),
    (stats((540, 3, 180), (361, 2, 1), (900, 5, 180)), "a class of the val split has 1 image"),
    (stats((2, 2, 1), (360, 2, 180), (900, 5, 180)), "the fit split has 2 images in 2 classes"),
])
def test_splits_too_small_stop_with_what_to_change(counts, message):
    cfg = packaged("folder")
    with pytest.raises(UserError, match=message) as err:
        fit_sampler(cfg, counts)
    assert "\n" not in str(err.value)
    if "class(es)" in str(err.value):
        assert "at least 7 class folders" in str(err.value)  # the folder's rule, said to its user


def test_batch_not_a_multiple_of_m_per_class():
    cfg = deep_merge(resolve_config("retrieval"), {"student": {"train": {"batch_size": 98}}})
    with pytest.raises(UserError, match="student.train.batch_size 98 is not a multiple of m_per_class 5") as err:
        fit_sampler(cfg, DEFAULT_STATS)
    assert str(err.value).endswith("set batch_size to 95 or 100")


def test_missing_split_stats():
    with pytest.raises(ValueError, match="val"):
        fit_sampler(resolve_config("retrieval"), {"fit": DEFAULT_STATS["fit"], "test": DEFAULT_STATS["test"]})


def test_the_adapted_config_trains(tmp_path):
    """The loader the trainer builds accepts the adapted options (pytorch-metric-learning's asserts)."""
    from retrieval.engine import TrainConfig
    from retrieval.engine.trainer import make_train_loader

    class DS:
        def __init__(self, counts):
            self.labels = np.repeat(np.arange(len(counts)), counts)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"label": int(self.labels[i])}

    cfg = packaged("folder")
    for counts in ([4, 4], [4, 5, 9], [2, 3, 2, 6, 2, 2, 7, 2], [30] * 3):
        fit = DS(counts)
        out, _ = fit_sampler(cfg, {"fit": split_stats(fit), "val": {"images": 8, "classes": 2, "min_per_class": 4},
                                   "test": {"images": 16, "classes": 4, "min_per_class": 4}})
        opts = deep_merge(out["train"], out["student"]["train"])
        tcfg = TrainConfig(batch_size=opts["batch_size"], m_per_class=opts["m_per_class"], progress=False)
        batches = list(make_train_loader(fit, tcfg))
        assert batches and all(len(b["label"]) == opts["batch_size"] for b in batches)
