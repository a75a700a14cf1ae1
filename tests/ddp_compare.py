"""Helpers the 1-vs-2-process tests share (tests/engine/test_distributed*.py): networks without
BatchNorm (CPU has no SyncBatchNorm), two processes started cheaply in a gloo group, and
histories compared."""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def without_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm2d replaced by the identity (in place)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return model


@contextlib.contextmanager
def gloo_group(rank: int, world: int, init_file: str):
    """Within the block, this process is rank ``rank`` of a gloo group of ``world`` (file rendezvous)."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def two_processes(worker, args) -> None:
    """Two processes: forked from this one where that is safe (Linux; no re-import of torch and the
    project, a few seconds instead of half a minute), else spawned."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    mp.start_processes(worker, args=args, nprocs=2, join=True, start_method=method)


# Adam's first steps are about +-lr whatever the gradient's size, so a weight whose gradient is
# float noise (near 0) can step differently in the two runs: measured with RKD (its distances are
# normalised by their mean), up to 0.6% of a tensor's entries differed by up to 2.8e-4 after 4
# steps (mean 6e-7; 5e-5 for the classifier of test_distributed_classification), and the next
# epoch's RKD losses by up to 2e-4 relative. A per-process loss or a
# missing gather moves every weight by 1e-2 to 1e-1 and a loss by 1e-2 relative or more.
REL_LOSS = 5e-4  # relative tolerance of a logged loss, beside the tests' absolute one
MEAN_WEIGHT = 2e-4  # the mean |difference| of a tensor's entries
MAX_WEIGHT = 1e-3  # no single weight may differ by half an Adam step (2 lr, lr 1e-3) or more


def assert_same_weights(two: torch.Tensor, one: torch.Tensor, atol_mean: float, key: str) -> None:
    """One tensor of two runs: the mean |difference| at most ``atol_mean`` (the test's own tolerance,
    or ``MEAN_WEIGHT`` where that is larger), every entry within ``MAX_WEIGHT``. An entry larger than 1 in
    size is compared relative to its size: a buffer such as CRD's normalisation constants (about 1e5) holds
    float32 values whose last bit is worth about 1e-2, and the order of a sum, which may differ from one CPU
    to another, moves it by that much."""
    atol_mean = max(atol_mean, MEAN_WEIGHT)
    diff = (two - one).abs() / one.abs().clamp(min=1)
    assert float(diff.mean()) <= atol_mean, f"{key}: mean |difference| {float(diff.mean()):.2e} > {atol_mean}"
    assert float(diff.max()) <= MAX_WEIGHT, f"{key}: max |difference| {float(diff.max()):.2e} > {MAX_WEIGHT}"


def assert_same_history(one: list[dict], two: list[dict], epochs: int, atol_loss: float, required=()) -> None:
    """Two training histories of ``epochs`` epochs: the same keys (``required`` among them), every
    loss within ``atol_loss`` or ``REL_LOSS`` of its value, every validation metric equal."""
    assert len(one) == len(two) == epochs
    for h1, h2 in zip(one, two):
        assert h1.keys() == h2.keys()
        assert set(required) <= h1.keys()
        for key in h1:
            if key.startswith("loss/"):
                assert h2[key] == pytest.approx(h1[key], abs=atol_loss, rel=REL_LOSS), key
            elif key.startswith("val/"):
                assert h2[key] == h1[key], key
