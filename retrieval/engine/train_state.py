"""The state a training run needs to continue after a crash, saved atomically after every epoch.

It holds the method's trainable weights (everything but the frozen teacher), the
optimizer and scheduler, every random generator a run draws from (Python, numpy's
global state, which pytorch-metric-learning's samplers use, and torch's), the history,
the best validation epoch so far with its weights, and the elapsed training time.
Restoring all of it at an epoch boundary makes the rest of the run draw exactly the
batches, augmentations and samples an uninterrupted run would have drawn.

Only tensors, numbers, strings and containers of them are stored, so the file loads
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from retrieval.utils.atomic import atomic_write_via
from retrieval.utils.cache_files import has_keys, load_torch

FORMAT = 1


def trainable_state(method) -> dict:
    """The method's state dict without the frozen teacher's entries (``teacher.*``, or ``*.teacher.*``
    when the method is wrapped, as a detection distiller wraps its KD method in ``kd``)."""
    return {k: v for k, v in method.state_dict().items() if ".teacher." not in f".{k}"}


def capture_rng() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": {"name": name, "keys": torch.from_numpy(keys.copy()),
                                                   "pos": int(pos), "has_gauss": int(has_gauss),
                                                   "cached": float(cached)},
            "torch": torch.get_rng_state()}


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy(), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])


def save_train_state(path: Path, **state) -> None:
    """Write ``state`` (plus the format version) to ``path`` atomically: a crash leaves the old file."""
    atomic_write_via(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_train_state(path: Path) -> dict | None:
    """The saved state, or None when there is none or it is damaged (cut short, garbage: it is then moved
    aside with a line saying so, ``retrieval.utils.cache_files``, and the run starts afresh); a file from
    another format version is an error."""
    state = load_torch(path, has_keys("format"), then="the run starts from its first epoch")
    if state is None:
        return None
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: training state format {state.get('format')!r}, expected {FORMAT}; "
                         f"delete the file to start the run afresh")
    return state
