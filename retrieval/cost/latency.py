"""Measured CPU speed of a model: median wall time of repeated forward passes after warm-up."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from torch import nn


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored after."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1, threads: int = 1,
                    repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one forward pass on a batch of ``batch`` random images of ``input_shape``.

    The model runs in eval mode under ``torch.inference_mode`` with ``threads`` intra-op
    threads, ``warmup`` untimed passes first, then ``repeats`` timed passes (``time.perf_counter``).
    """
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch >= 1; got {repeats}, {warmup}, {batch}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    try:
        with torch_threads(threads), torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)
