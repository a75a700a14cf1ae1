"""Shared test settings: one torch thread per test process (tests run in parallel with
pytest-xdist, and tiny ops run slower when two processes each spin two threads). ``retrieval`` is
imported before torch so that its CPU kernels are held to AVX2 (``retrieval.numerics``)."""

import retrieval  # noqa: F401
import torch  # noqa: E402

torch.set_num_threads(1)


# --------------------------------------------------------------------------- miniature CIFAR trees

import pickle  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def cifar_pixels(n: int, offset: int) -> np.ndarray:
    """(n, 3072) uint8 rows in the official order (1024 red, 1024 green, 1024 blue, row-major),
    each a deterministic function of its image number so the layout can be checked."""
    rng = np.random.default_rng(offset)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def _dump(path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(parent, per_batch: int = 4, test: int = 6, classes: int = 3):
    """``parent/cifar-10-batches-py`` in the official python format (5 train batches, test, meta)."""
    root = parent / "cifar-10-batches-py"
    root.mkdir(parents=True)
    data, labels = [], []
    for b in range(1, 6):
        x = cifar_pixels(per_batch, b)
        y = [(b + i) % classes for i in range(per_batch)]
        _dump(root / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": y, "data": x,
                                        "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]})
        data.append(x)
        labels += y
    x_test, y_test = cifar_pixels(test, 99), [i % classes for i in range(test)]
    _dump(root / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": y_test, "data": x_test,
                                "filenames": [f"test_{i}.png" for i in range(test)]})
    _dump(root / "batches.meta", {"label_names": [f"class{c}" for c in range(classes)],
                                  "num_cases_per_batch": per_batch, "num_vis": 3072})
    return SimpleNamespace(parent=parent, root=root, train_x=np.concatenate(data), train_y=np.array(labels),
                           test_x=x_test, test_y=np.array(y_test), classes=classes)


def write_cifar100(parent, train: int = 12, test: int = 5, classes: int = 4):
    """``parent/cifar-100-python`` in the official python format (train, test, meta)."""
    root = parent / "cifar-100-python"
    root.mkdir(parents=True)
    out = {}
    for name, n, seed in (("train", train, 1), ("test", test, 2)):
        x = cifar_pixels(n, seed)
        fine = [(3 * i + seed) % classes for i in range(n)]
        _dump(root / name, {"filenames": [f"{name}_{i}.png" for i in range(n)], "batch_label": f"{name} batch",
                            "fine_labels": fine, "coarse_labels": [f // 2 for f in fine], "data": x})
        out[name] = (x, np.array(fine))
    _dump(root / "meta", {"fine_label_names": [f"fine{c}" for c in range(classes)],
                          "coarse_label_names": [f"coarse{c}" for c in range((classes + 1) // 2)]})
    return SimpleNamespace(parent=parent, root=root, train_x=out["train"][0], train_y=out["train"][1],
                           test_x=out["test"][0], test_y=out["test"][1], classes=classes)


@pytest.fixture
def cifar10_tree(tmp_path):
    return write_cifar10(tmp_path / "data")


@pytest.fixture
def cifar100_tree(tmp_path):
    return write_cifar100(tmp_path / "data")
