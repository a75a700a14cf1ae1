"""benchmarks.bench_methods: the batch it builds, the methods it picks, and a tiny end-to-end run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from benchmarks import bench_methods
from user_error import user_error


class FakeData:
    def __init__(self, labels):
        self.labels = labels

    def __getitem__(self, i):
        return {"image": torch.full((3, 2, 2), float(i)), "label": self.labels[i], "index": i}


def test_batches_follow_the_two_samplers():
    data = FakeData([c for c in range(6) for _ in range(4)])
    batch = bench_methods.make_batch(data, 6, m_per_class=2)
    labels = batch["label"].tolist()
    assert len(labels) == 6 and all(labels.count(c) == 2 for c in set(labels)) and len(set(labels)) == 3
    assert [data.labels[i] for i in batch["index"].tolist()] == labels
    assert batch["image"][:, 0, 0, 0].tolist() == [float(i) for i in batch["index"].tolist()]
    plain = bench_methods.make_batch(data, 5, m_per_class=None)
    assert len(set(plain["index"].tolist())) == 5


def test_methods_are_those_of_the_suites_task():
    retrieval = bench_methods.suite_methods("retrieval", None)
    classification = bench_methods.suite_methods("classification", None)
    assert retrieval[0] == "none" and "hmat" in retrieval and "darkrank" in retrieval
    assert "kd" not in retrieval and "dkd" not in retrieval
    assert {"kd", "dkd", "dist", "hmat"} <= set(classification)
    assert bench_methods.suite_methods("retrieval", ["kd", "at"]) == ["none", "at"]  # kd has no retrieval run


def test_bad_arguments_are_one_line(capsys):
    assert "unknown method(s) ['atx']" in user_error(capsys, bench_methods.main, ["--methods", "atx"])
    assert "--suites detection: expected some of retrieval, classification" in user_error(
        capsys, bench_methods.main, ["--suites", "detection"])
    assert "--steps 0: expected a positive number" in user_error(capsys, bench_methods.main, ["--steps", "0"])


def test_a_tiny_run_writes_the_table_relative_to_none(tmp_path):
    out = tmp_path / "methods.md"
    assert bench_methods.main(["--suites", "retrieval", "--methods", "at", "--steps", "2", "--warmup", "0",
                               "--threads", "1", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["none", "at"]
    none, at = rows
    assert none["time_ratio"] == 1.0 and none["step_ms"] > 0 and at["step_ms"] > 0
    assert at["time_ratio"] == pytest.approx(at["step_ms"] / none["step_ms"])
    assert (none["student"], none["teacher"], none["batch"]) == ("small_cnn_xs", "small_cnn_s", 100)
    text = out.read_text()
    assert "| retrieval | `at` |" in text and "--methods at" in text


def test_format_table_rounds_each_column():
    row = SimpleNamespace(suite="retrieval", method="sp", step_ms=12.345, time_ratio=1.234, peak_extra_mb=50.4,
                          memory_ratio=0.5)
    assert "| retrieval | `sp` | 12.3 | 1.23 | 50 | 0.50 |" in bench_methods.format_table([vars(row)])


@pytest.mark.parametrize("suite", bench_methods.SUITES)
def test_every_method_of_the_defaults_builds_and_takes_a_step(suite):
    """What ``--methods all`` runs: each method of the suite's task on the default's own networks
    and options (pretraining left out), one training step on a small batch of its real images."""
    import importlib

    from retrieval.methods import needs_teacher

    module = importlib.import_module(f"benchmarks.runner.tasks.{suite}")
    cfg = bench_methods.default_setup(suite)
    data = module.prepare(cfg, log=lambda *a: None)
    batch = bench_methods.make_batch(bench_methods.training_split(data), 20, 5 if suite == "retrieval" else None)
    teacher = module._network(cfg, data, "teacher")
    for name in bench_methods.suite_methods(suite, None):
        method = module.build_student_method(cfg, data, teacher if needs_teacher(name) else None, name,
                                             cfg["methods"].get(name))
        method.train()
        _, losses = method.training_step(batch)
        total = sum(losses.values())
        assert torch.isfinite(total), (name, losses)
        total.backward()
