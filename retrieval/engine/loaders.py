"""Loader workers that start once and cheaply, and batches that do not depend on them.

With ``num_workers > 0`` the trainer builds its training loader once per ``train`` call:

- workers start with ``worker_context()``: ``fork`` on Linux, so a worker is a copy of
  the job process (no re-import of torch and the project, its pages shared until
  written), ``forkserver`` on other POSIX systems and ``spawn`` only where nothing else
  exists (Windows);
- they are persistent (started at the first epoch, reused by every later epoch, shut
  down by ``close_loader`` when ``train`` returns; after an exception, when the loader is
  garbage-collected, or with their process group when a job pool stops the run);
- ``EpochSeededBatchSampler`` draws, at the start of each epoch in the main process, one
  epoch seed from torch's global generator, then the epoch's batches from a fresh batch
  sampler (MPerClassSampler draws from numpy's global state, RandomSampler from torch's),
  and gives every item of the epoch its own seed (from the epoch seed and the item's
  position in the epoch); ``SeededItems`` seeds torch's, Python's and numpy's generators
  of the worker from that seed before loading and transforming the item.

So an item's augmentation depends only on the global random state at the epoch's start
(which the training state saves and restores) and its position in the epoch: not on the
number of workers, which worker loads it or how far ahead they prefetch. The loader's own
``generator`` makes its base-seed draw leave the global generator alone, so the first
epoch draws what any later (or resumed) epoch draws.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
from typing import Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

_MASK64 = (1 << 64) - 1


def worker_context():
    """The multiprocessing context of DataLoader workers: fork on Linux, forkserver on other
    POSIX systems (fork is unsafe on macOS), spawn where it is the only one (Windows)."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def loader_generator() -> torch.Generator:
    """A fixed generator for a DataLoader's base-seed draw, so that drawing it does not advance
    torch's global generator (the items are seeded by ``SeededItems`` instead)."""
    return torch.Generator().manual_seed(0)


def splitmix64(x: int) -> int:
    """SplitMix64's output function: a well-mixed 64-bit integer from any integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def item_seed(epoch_seed: int, position: int) -> int:
    """The seed of the item at ``position`` (0-based, over the whole epoch) of an epoch."""
    return splitmix64((splitmix64(epoch_seed) + position) & _MASK64)


class EpochSeededBatchSampler(Sampler):
    """Batches of ``(item seed, index)`` pairs. ``make_batches()`` returns one epoch's batch
    sampler (a fresh one each epoch: MPerClassSampler shuffles its label list in place);
    ``stride`` is the number of items per (global) batch and ``offset`` this process's first
    position within it, so an item's seed is that of its position in the global epoch.
    Each epoch's draws are made at its first batch, all at once, in the process iterating it.
    ``share_seed(seed)`` returns the epoch seed to use (under torchrun: rank 0's, so that every
    position is augmented as in one process although the ranks' generators may differ)."""

    def __init__(self, make_batches: Callable[[], Iterable], stride: int, offset: int = 0,
                 share_seed: Callable[[int], int] | None = None):
        self.make_batches, self.stride, self.offset = make_batches, int(stride), int(offset)
        self.share_seed = share_seed
        self._length = len(make_batches())

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        epoch_seed = int(torch.empty((), dtype=torch.int64).random_().item())
        if self.share_seed is not None:
            epoch_seed = int(self.share_seed(epoch_seed))
        batches = [list(batch) for batch in self.make_batches()]
        for b, batch in enumerate(batches):
            start = b * self.stride + self.offset
            yield [(item_seed(epoch_seed, start + j), int(i)) for j, i in enumerate(batch)]


class SeededItems(Dataset):
    """``dataset`` indexed by ``(seed, index)``: seeds torch's, Python's and numpy's generators
    from ``seed``, then returns ``dataset[index]``. In a loader worker the generators are the
    worker's own; in the main process they are restored afterwards."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        seed, index = key
        if get_worker_info() is not None:
            _seed_all(seed)
            return self.dataset[index]
        saved = torch.get_rng_state(), random.getstate(), np.random.get_state()
        try:
            _seed_all(seed)
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])


def _seed_all(seed: int) -> None:
    torch.default_generator.manual_seed(seed)  # the CPU generator only: no CUDA call in a forked worker
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)


def close_loader(loader) -> None:
    """Shut down the persistent workers of ``loader`` (if it has started any)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    if iterator is not None:
        loader._iterator = None


class Lazy:
    """``iterable`` (with its length), iterated only when a loop over it starts. tqdm.auto's bar
    (its asyncio class) calls ``iter()`` on what it wraps as it is built: on a loader with
    workers that starts (or resets) them and draws an epoch whose batches are then dropped."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __len__(self) -> int:
        return len(self.iterable)

    def __iter__(self):
        yield from self.iterable
