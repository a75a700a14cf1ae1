"""The generated closed-set classification set ``synthetic-cls`` (the classification default)."""

import hashlib

import numpy as np
import pytest
import torch

from retrieval.data import build_dataset
from retrieval.data.synthetic import generate_fine_grained

SMALL = {"classes": 20, "train_per_class": 6, "test_per_class": 5}


def _raw(split, **opts):
    return build_dataset("synthetic-cls", None, split, transform=lambda x: x, **{**SMALL, **opts})


def _digest(ds) -> str:
    return hashlib.sha256(ds.images.numpy().tobytes() + np.asarray(ds.labels).tobytes()).hexdigest()


def test_deterministic_by_seed():
    assert _digest(_raw("train")) == _digest(_raw("train"))
    assert _digest(_raw("test")) == _digest(_raw("test"))
    assert _digest(_raw("train", seed=1)) != _digest(_raw("train"))


def test_train_and_test_images_are_disjoint_and_hold_every_class():
    train, test = _raw("train"), _raw("test")
    assert len(train) == 20 * 6 and len(test) == 20 * 5
    for ds, n in ((train, 6), (test, 5)):
        assert np.bincount(np.asarray(ds.labels), minlength=20).tolist() == [n] * 20
    seen = {img.numpy().tobytes() for img in train.images}
    assert not any(img.numpy().tobytes() in seen for img in test.images)  # no image in both splits
    assert tuple(train.images.shape[1:]) == (3, 32, 32) and train.images.dtype == torch.uint8


def test_val_and_fit_split_the_training_images_of_every_class():
    train, fit, val = _raw("train"), _raw("fit", val_fraction=0.5), _raw("val", val_fraction=0.5)
    assert len(fit) + len(val) == len(train)
    assert set(np.asarray(fit.labels).tolist()) == set(np.asarray(val.labels).tolist()) == set(range(20))
    pool = {img.numpy().tobytes() for img in train.images}
    fit_set = {img.numpy().tobytes() for img in fit.images}
    val_set = {img.numpy().tobytes() for img in val.images}
    assert fit_set | val_set == pool and not fit_set & val_set


def test_more_test_images_leave_the_training_images_unchanged():
    assert _digest(_raw("train", test_per_class=9)) == _digest(_raw("train"))
    assert len(_raw("test", test_per_class=9)) == 20 * 9


def test_both_image_streams_draw_the_same_classes(monkeypatch):
    """The class parameters come from ``seed`` alone: the train and test streams render every
    label with the same parameters, and another ``seed`` gives other classes."""
    from retrieval.data import synthetic

    seen = []
    render = synthetic._render
    monkeypatch.setattr(synthetic, "_render", lambda p, rng, size: seen.append(repr(p)) or render(p, rng, size))
    _, labels_a = generate_fine_grained(seed=4, genera=2, species=10, per_class=2, image_seed=[4, 1])
    first, seen[:] = list(seen), []
    _, labels_b = generate_fine_grained(seed=4, genera=2, species=10, per_class=2, image_seed=[4, 2])
    assert labels_a.tolist() == labels_b.tolist() and first == seen
    seen[:] = []
    generate_fine_grained(seed=5, genera=2, species=10, per_class=2, image_seed=[4, 2])
    assert not set(first) & set(seen)


def test_the_retrieval_generator_without_image_seed_is_unchanged():
    x, y = generate_fine_grained(seed=0, genera=2, species=10, per_class=3, size=32, test_per_class=4)
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    assert digest == "3d4e20b3e686c75a07b6debe27c78445f87eb9cd2a7891e34218c3be3d5837da"  # before image_seed existed


@pytest.mark.parametrize("bad, message", [({"classes": 15}, "multiple of 10"), ({"train_per_class": 1}, ">= 2"),
                                          ({"test_per_class": 0}, ">= 2")])
def test_bad_options_name_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        _raw("train", **bad)


def test_training_augmentation_keeps_the_size_and_test_has_none():
    fit = build_dataset("synthetic-cls", None, "train", **SMALL)
    test = build_dataset("synthetic-cls", None, "test", **SMALL)
    assert fit[0]["image"].shape == (3, 32, 32) and fit[0]["image"].dtype == torch.float32
    assert torch.equal(test[0]["image"], test[0]["image"])
