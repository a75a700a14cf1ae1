"""The cost columns of a results row, from one model and its input size."""

from __future__ import annotations

import torch
from torch import nn

from retrieval.cost.counts import count_macs, count_parameters, weights_file_bytes
from retrieval.cost.latency import measure_latency

MEASURED = ("latency_ms_b1", "throughput_b64")
"""Timed on the machine of the run: they vary between two runs of the same model."""
TIMING_COLUMNS = MEASURED + ("cost_threads",)
COST_COLUMNS = ("params", "macs", "weights_bytes") + TIMING_COLUMNS
THROUGHPUT_BATCH = 64


def cost_columns(model: nn.Module, input_shape: tuple[int, ...], threads: int = 1, repeats: int = 5,
                 warmup: int = 2) -> dict:
    """``params``, ``macs`` (per image), ``weights_bytes``, ``latency_ms_b1`` (median ms of a batch of
    one), ``throughput_b64`` (images/s at batch 64, from the median batch time) and ``cost_threads``."""
    shape = tuple(int(s) for s in input_shape)
    b1 = measure_latency(model, shape, batch=1, threads=threads, repeats=repeats, warmup=warmup)
    b64 = measure_latency(model, shape, batch=THROUGHPUT_BATCH, threads=threads, repeats=repeats, warmup=warmup)
    return {"params": count_parameters(model), "macs": count_macs(model, shape),
            "weights_bytes": weights_file_bytes(model), "latency_ms_b1": round(1000 * b1, 4),
            "throughput_b64": round(THROUGHPUT_BATCH / b64, 1), "cost_threads": int(threads)}


def input_shape_of(dataset) -> tuple[int, ...]:
    """(C, H, W) of the first image of ``dataset`` as the model sees it (after the split's transform)."""
    if len(dataset) == 0:
        raise ValueError(f"cannot read the input size from an empty dataset {dataset!r}")
    return tuple(int(s) for s in dataset[0]["image"].shape)


def suite_cost(model: nn.Module, dataset, cfg: dict) -> dict:
    """``cost_columns`` of ``model`` at the input size of ``dataset`` (the suite's test split), with the
    config's ``cost`` section: ``threads`` (default: the config's ``threads``, else torch's current count),
    ``repeats`` (default 5) and ``warmup`` (default 2)."""
    opts = cfg.get("cost") or {}
    threads = int(opts.get("threads") or cfg.get("threads") or torch.get_num_threads())
    return cost_columns(model, input_shape_of(dataset), threads=threads, repeats=int(opts.get("repeats", 5)),
                        warmup=int(opts.get("warmup", 2)))


def saved_row(row: dict) -> dict:
    """The row as ``runs/<run_id>.json`` keeps it: without the measured timings (``latency_ms_b1``,
    ``throughput_b64``), which differ between two runs of the same model and are saved under ``cost``,
    so that ``--reproduce`` compares only what a rerun can repeat exactly."""
    return {k: v for k, v in row.items() if k not in MEASURED}


def row_record(row: dict) -> dict:
    """``{"row": saved_row(row), "cost": <the row's cost columns>}``: the start of a ``runs/<run_id>.json``."""
    return {"row": saved_row(row), "cost": {k: row[k] for k in COST_COLUMNS if k in row}}
