"""Data-parallel training under ``torchrun``: process group, rank helpers, sampler, gathers.

Everything here is a no-op in a single process: without ``torchrun`` (``WORLD_SIZE``
unset or 1) no process group is created, ``is_distributed()`` is False, the gathers
return their input and ``wrap_for_training`` returns ``method.training_step`` itself,
so the single-process run is the code path it always was.

Under ``torchrun --nproc_per_node=N`` (see docs/distributed.md):

- ``cfg.batch_size`` is the *global* batch. Every rank builds the same global batch
  sequence (MPerClassSampler or a shuffled pass, from the same seeded random state) and
  takes its contiguous slice of each global batch, so the N slices of a step are the
  single-process batch in order. MPerClassSampler lays out a batch as consecutive groups
  of ``m_per_class`` images of one class, so a slice whose size is a multiple of
  ``m_per_class`` keeps every class group whole.
- The method runs inside ``DistributedDataParallel`` (gradients averaged over ranks).
  Losses that relate the samples of a batch (the metric loss and its miner, RKD, CRD)
  are computed on the global batch: ``gather_with_grad`` concatenates the ranks'
  tensors in rank order and sends each rank the gradient of its own rows summed over
  ranks (N times the gradient of the loss, which every rank computes identically), so
  after DDP's averaging the gradient is that of the single-process loss.
- BatchNorm becomes SyncBatchNorm on CUDA. On CPU torch has no SyncBatchNorm kernels
  (``batch_norm_stats`` is CUDA-only), so each rank normalises with the statistics of
  its own slice; this is the one difference from a single process that is not float
  summation order.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc
from pytorch_metric_learning.samplers import MPerClassSampler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, RandomSampler, Sampler

# --------------------------------------------------------------------------- process group and ranks

def env_world_size() -> int:
    """The world size ``torchrun`` announced in the environment (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ...): nccl on CUDA (one GPU per local rank), gloo on CPU. Returns
    whether a group is in use; does nothing without torchrun or when already initialised."""
    if env_world_size() <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def teardown(wait: bool = True) -> None:
    """Wait for every rank (unless ``wait`` is False), then leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that evaluates and writes files."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Run the block on rank 0 first and on the other ranks once it is done (e.g. rank 0 writes
    a cache that the others then read). In a single process it only runs the block."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():  # also when rank 0 failed: the others go on and meet the same error
            barrier()


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (``obj`` itself in a single process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process). ``obj`` travels as
    ``torch.save`` bytes (tensors, numbers, strings and containers of them): torch 2.14's
    ``all_gather_object`` fails to unpickle CPU tensors on gloo."""
    if not is_distributed():
        return [obj]
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    out = [None] * world_size()
    dist.all_gather_object(out, buffer.getvalue())
    return [torch.load(io.BytesIO(b), weights_only=True) for b in out]


# --------------------------------------------------------------------------- tensors

def gather(x: torch.Tensor) -> torch.Tensor:
    """The ranks' ``x`` concatenated along dim 0 in rank order, without gradient
    (``x`` itself in a single process). Every rank must pass the same shape."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Like ``gather`` but differentiable: the backward pass sums the gradient of each
    rank's rows over all ranks and returns it to that rank (torch's functional
    all-gather). When every rank computes the same loss of the gathered tensor, a rank's
    gradient is ``world_size`` times that of its rows, which DDP's averaging undoes."""
    if not is_distributed():
        return x

    # all_gather_single_autograd is the newer name of all_gather_tensor_autograd (deprecated in torch 2.14)
    gather_autograd = getattr(fc, "all_gather_single_autograd", None) or fc.all_gather_tensor_autograd
    out = gather_autograd(x.contiguous(), 0, dist.group.WORLD)
    return fc.wait_tensor(out) if isinstance(out, fc.AsyncCollectiveTensor) else out


def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``x`` on every rank, in place (``x`` itself in a single process)."""
    if is_distributed():
        dist.broadcast(x, src=src)
    return x


def average(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of ``values`` (a detached float tensor; itself in a single process)."""
    if not is_distributed():
        return values
    values = values.detach().clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / world_size()


# --------------------------------------------------------------------------- sampler

class SharedShuffle(Sampler):
    """A shuffled pass over ``range(length)`` that is the same on every rank: the seed of the
    permutation is drawn from torch's global generator when iteration starts, as
    ``RandomSampler`` draws it, and rank 0's seed is used by every rank. In one process (or on
    rank 0) it yields exactly what ``RandomSampler`` would. The ranks' generators need not agree:
    a detector's proposal sampling (``torch.randperm`` over each image's anchors) draws a
    different amount of random numbers for each rank's images, so from the second epoch on
    each rank would otherwise shuffle differently and the slices would overlap."""

    def __init__(self, length: int):
        self.length = length

    def __iter__(self) -> Iterator[int]:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator()
        generator.manual_seed(broadcast_object(seed))
        yield from RandomSampler(range(self.length), generator=generator)

    def __len__(self) -> int:
        return self.length


class RankSliceBatchSampler(Sampler):
    """Rank ``rank``'s contiguous slice of every batch of ``global_batches`` (a batch
    sampler over the global batch). All ranks must draw the same global batches, which
    they do when their random state is the same when iteration starts."""

    def __init__(self, global_batches: BatchSampler, rank: int, world_size: int):
        if global_batches.batch_size % world_size:
            raise ValueError(f"the global batch_size {global_batches.batch_size} must be divisible by the "
                             f"number of processes ({world_size})")
        self.global_batches, self.rank, self.world_size = global_batches, rank, world_size
        self.per_rank = global_batches.batch_size // world_size

    def __iter__(self) -> Iterator[list]:
        lo = self.rank * self.per_rank
        for batch in self.global_batches:
            yield batch[lo:lo + self.per_rank]

    def __len__(self) -> int:
        return len(self.global_batches)


def rank_batch_sampler(dataset, cfg, rank_index: int | None = None, world: int | None = None) -> RankSliceBatchSampler:
    """The batches of this rank for one epoch: the global batches the single-process
    loader would draw (``cfg.sampler``: m_per_class or random, the latter shuffled with rank
    0's seed on every rank: see ``SharedShuffle``), sliced. With m_per_class,
    the per-rank batch must be a multiple of ``m_per_class`` so each class group of
    ``m_per_class`` consecutive images stays on one rank."""
    rank_index = rank() if rank_index is None else rank_index
    world = world_size() if world is None else world
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) must be divisible by the number of "
                         f"processes ({world})")
    per_rank = cfg.batch_size // world
    if cfg.sampler == "random":
        if len(dataset) < cfg.batch_size:
            raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch of {cfg.batch_size}")
        return RankSliceBatchSampler(BatchSampler(SharedShuffle(len(dataset)), cfg.batch_size, drop_last=True),
                                     rank_index, world)
    if cfg.batch_size % cfg.m_per_class:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of m_per_class {cfg.m_per_class}")
    if per_rank % cfg.m_per_class:
        raise ValueError(f"batch_size {cfg.batch_size} over {world} processes gives {per_rank} images per "
                         f"process, not a multiple of m_per_class {cfg.m_per_class}: a class group would be "
                         f"split between processes; use a global batch_size that is a multiple of "
                         f"{world * cfg.m_per_class}")
    sampler = MPerClassSampler(dataset.labels, m=cfg.m_per_class, batch_size=cfg.batch_size,
                               length_before_new_iter=len(dataset))
    return RankSliceBatchSampler(BatchSampler(sampler, cfg.batch_size, drop_last=True), rank_index, world)


# --------------------------------------------------------------------------- model

class _TrainingStep(nn.Module):
    """``forward(batch) = method.training_step(batch)``, so DDP sees the step as a forward."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch):
        return self.method.training_step(batch)


def wrap_for_training(method: nn.Module, device: str) -> Callable:
    """The callable that runs one training step: ``method.training_step`` in a single
    process, else the method inside DistributedDataParallel (BatchNorm -> SyncBatchNorm
    on CUDA; buffers are not re-broadcast each step: CRD banks are kept identical by
    their gathered updates, and only rank 0's BatchNorm statistics are evaluated or saved)."""
    if not is_distributed():
        return method.training_step

    dev = torch.device(device)
    if dev.type == "cuda":
        for name, child in list(method.named_children()):
            setattr(method, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        ids = [torch.cuda.current_device()]
    else:
        ids = None
    # buffers are synchronised from rank 0 once, at construction, and not before every forward
    # (``forward_sync_buffers`` is the newer name of ``broadcast_buffers``); the graph of a step is
    # the same at every step, so a static graph also covers parameters a method leaves unused
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(_TrainingStep(method), device_ids=ids, static_graph=True, **no_sync)
