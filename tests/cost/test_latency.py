"""Measured latency: positive medians, the thread count applied during the run and restored after."""

import pytest
import torch
from torch import nn

from retrieval.cost import cost_columns, measure_latency, saved_row


class ThreadSpy(nn.Module):
    """Records torch's thread count and the batch size at each forward pass."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(12, 2)
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.get_num_threads(), x.shape[0], torch.is_inference_mode_enabled()))
        return self.linear(x.flatten(1))


def test_latency_is_positive_and_uses_the_requested_threads():
    spy = ThreadSpy().train()
    before = torch.get_num_threads()
    seconds = measure_latency(spy, (3, 2, 2), batch=4, threads=2, repeats=3, warmup=2)
    assert seconds > 0
    assert spy.seen == [(2, 4, True)] * 5  # 2 warm-up + 3 timed passes, all with 2 threads and batch 4
    assert torch.get_num_threads() == before and spy.training


def test_more_work_takes_longer():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    small = measure_latency(net, (3, 8, 8), batch=1, threads=1, repeats=5, warmup=1)
    large = measure_latency(net, (3, 64, 64), batch=8, threads=1, repeats=5, warmup=1)
    assert large > 5 * small  # 512x the work; a wide margin for a shared, noisy machine


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="threads"):
        measure_latency(ThreadSpy(), (3, 2, 2), threads=0)
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(ThreadSpy(), (3, 2, 2), repeats=0)


def test_cost_columns_are_flat_and_positive():
    cols = cost_columns(ThreadSpy(), (3, 2, 2), threads=1, repeats=2, warmup=1)
    assert cols["params"] == 12 * 2 + 2 and cols["macs"] == 24 and cols["cost_threads"] == 1
    assert cols["latency_ms_b1"] > 0 and cols["throughput_b64"] > 0 and cols["weights_bytes"] > 0
    kept = saved_row({"run_id": "x", **cols})
    assert "latency_ms_b1" not in kept and "throughput_b64" not in kept and kept["macs"] == 24
