"""Helpers the 1-vs-2-process tests share (tests/engine/test_distributed*.py): networks without
BatchNorm (CPU has no SyncBatchNorm), two processes started cheaply in a gloo group, and
histories compared."""

from __future__ import annotations

import contextlib
import sys

import pytest
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


def assert_same_history(one: list[dict], two: list[dict], epochs: int, atol_loss: float, required=()) -> None:
    """Two training histories of ``epochs`` epochs: the same keys (``required`` among them), every
    loss within ``atol_loss``, every validation metric equal."""
    assert len(one) == len(two) == epochs
    for h1, h2 in zip(one, two):
        assert h1.keys() == h2.keys()
        assert set(required) <= h1.keys()
        for key in h1:
            if key.startswith("loss/"):
                assert h2[key] == pytest.approx(h1[key], abs=atol_loss), key
            elif key.startswith("val/"):
                assert h2[key] == h1[key], key
