"""``benchmarks.bench_gpu``: the parts that run on a CPU (no test needs a GPU)."""

import numpy as np
import pytest
import torch

from benchmarks import bench_gpu
from benchmarks.bench_eval import make_data
from benchmarks.runner.config import deep_merge, default_config
from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.metrics import evaluate
from retrieval.models import create_model


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path, capsys):
    assert bench_gpu.main(["--json", str(tmp_path / "out.json")]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert not (tmp_path / "out.json").exists()


def _method():
    torch.manual_seed(0)
    net = create_model("small_cnn_xs", embedding_dim=8)
    return build_method("none", student=net, task_loss=build_task_loss(name="triplet", miner="distance_weighted",
                                                                        loss_options={"margin": 0.2}))


@pytest.mark.parametrize("amp,channels_last", bench_gpu.COMBOS)
def test_measure_trains_the_steps_on_cpu(amp, channels_last):
    method = _method()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    torch.manual_seed(1)
    batch = {"image": torch.randn(10, 3, 16, 16), "label": torch.arange(10) // 5, "index": torch.arange(10)}
    cfg = deep_merge(default_config("retrieval"), {"train": {"lr": 0.01}, "student": {"train": {"lr": 0.01}},
                                                   "eval": {"ks": [1]}, "device": "cpu"})
    out = bench_gpu.measure(method, batch, cfg, "student", "cpu", amp, channels_last, steps=2)
    assert out["images_per_s"] == pytest.approx(10 / out["s_per_step"])
    assert out["peak_gpu_mb"] is None
    changed = [k for k, v in method.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed  # 3 warm-up + 2 timed optimiser steps moved the weights


def test_faiss_comparison_on_cpu_matches_evaluate():
    out = bench_gpu.faiss_comparison(n=600, dim=8, ks=(1, 10))
    x, labels = make_data(600, 8, 0)
    assert out["cpu"] == evaluate(x, labels, ks=(1, 10))
    if not out["faiss_gpu"]:
        assert "gpu" not in out
        text = bench_gpu.markdown("CPU", [], out, 2, "cmd")
        assert "no GPU support" in text
    else:
        assert out["max_abs_difference"] < 1e-6


def test_markdown_lists_every_measurement():
    rows = [{"job": "teacher", "amp": a, "channels_last": c, "batch": 125, "images_per_s": 100.0 + i,
             "peak_gpu_mb": 2048.0} for i, (a, c) in enumerate(bench_gpu.COMBOS)]
    search = {"n": 60502, "dim": 128, "ks": [1, 10], "cpu_seconds": 3.0, "faiss_gpu": True, "gpu_seconds": 0.5,
              "max_abs_difference": 0.0}
    text = bench_gpu.markdown("NVIDIA H200", rows, search, 20, "python -m benchmarks.bench_gpu")
    assert text.count("| teacher |") == 4 and "| on | on | 125 | 103.0 | 2.00 |" in text
    assert "GPU 0.5 s" in text and "NVIDIA H200" in text
    assert np.isfinite(search["cpu_seconds"])
