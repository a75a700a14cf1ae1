"""A short digest of the data a network learns from, so that a cached network is never reused on other data.

The runner names a cached teacher or student by the hash of its config (``benchmarks.runner.config``),
and a config names its data (dataset, root, options, seed), not the images. When the images behind one
config change (a dataset loader fixed, a package upgraded, a cache of preprocessed images rebuilt under
other rules) the config hash stays the same, and a network cached on the old images would be read as if
it had been trained on the new ones: its numbers reproduce nowhere else, and its training classes may be
another split's test classes. So each cached network records the digest of the data it was trained on,
and a cached file of another digest is set aside and trained again.

``digest(dataset)`` asks the dataset first (``dataset.fingerprint()``): in-memory images are hashed in
full, files through their names and a fixed sample of decoded images. Anything else is hashed by its
type, length and labels. A digest is a hex string; ``data_digest`` combines the named splits of a run's
data dict (the splits that decide the network's weights: those it trains and selects on).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

SAMPLED = 16
"""Decoded items hashed by ``sampled_indices`` for data that is not in memory (evenly spaced, first and last)."""


def sampled_indices(n: int, k: int = SAMPLED) -> list[int]:
    """``k`` evenly spaced indices of ``range(n)``, the first and the last included (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def update(h, value) -> None:
    """Feed ``value`` to the hash ``h``: arrays and tensors by dtype, shape and bytes; PIL images by mode,
    size and pixels; anything else by its ``repr``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        h.update(f"{value.mode}{value.size}".encode())
        h.update(value.tobytes())
    else:
        h.update(repr(value).encode())


def digest(dataset) -> str:
    """The dataset's own ``fingerprint()`` when it has one (kept on the object: computed once), else the hash of
    its type, length and ``labels``."""
    cached = getattr(dataset, "_fingerprint", None)
    if cached is not None:
        return cached
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        value = own()
    else:
        h = hashlib.sha256(type(dataset).__name__.encode())
        update(h, len(dataset) if hasattr(dataset, "__len__") else None)
        if getattr(dataset, "labels", None) is not None:
            update(h, np.asarray(dataset.labels))
        value = h.hexdigest()
    try:
        dataset._fingerprint = value
    except AttributeError:  # an object that takes no new attributes: computed again next time
        pass
    return value


def data_digest(data: dict, splits=("train", "fit", "val")) -> str:
    """The digest of the ``splits`` of a run's data dict that it holds (a short hex string)."""
    h = hashlib.sha256()
    for split in splits:
        if split in data:
            h.update(f"{split}:{digest(data[split])};".encode())
    return h.hexdigest()[:16]
