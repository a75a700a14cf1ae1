"""The README's "Adding your own KD method" skeleton, run as written: it registers, trains a step on tiny
networks, and its options become checked config keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from benchmarks.runner.config import resolve_config
from benchmarks.runner.schema import method_problems
from retrieval.methods import build_method, is_method, registry
from retrieval.metric_losses import build_task_loss
from tests.methods.tiny_nets import make_batch, make_models

README = Path(__file__).resolve().parents[2] / "README.md"


def _skeleton() -> str:
    section = README.read_text().split("## Adding your own KD method", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's method section should hold one Python block"
    return "\n".join(line[3:] if line.startswith("   ") else line for line in blocks[0].splitlines())


@pytest.fixture
def my_kd(monkeypatch):
    registry.list_methods()  # the built-ins register in the real table first, then the test works on a copy
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    namespace = {"__name__": "my_kd_from_readme"}
    exec(compile(_skeleton(), "README.md", "exec"), namespace)
    return namespace["MyKD"]


def test_the_readme_method_registers_and_trains_a_step(my_kd):
    assert is_method("my_kd")
    student, teacher = make_models()
    method = build_method("my_kd", student=student, teacher=teacher, task_loss=build_task_loss("triplet"),
                          weight=10.0, stages=(3, 4))
    _, losses = method.train().training_step(make_batch())
    assert set(losses) == {"task", "my_kd"} and torch.isfinite(losses["my_kd"]) and losses["my_kd"] > 0
    # its loss is what the skeleton says: the squared difference of the channel-mean maps, times the weight
    with torch.no_grad():  # the same batch through the same networks (train mode: batch statistics, as in the step)
        s, t = (net.forward_features(make_batch()["image"], **method.feature_options)
                for net in (method.student, method.teacher))
    expected = 10.0 * sum(((s["stages"][i - 1].mean(1) - t["stages"][i - 1].mean(1)) ** 2).mean() for i in (3, 4))
    assert torch.allclose(losses["my_kd"], expected, rtol=1e-4)


def test_the_readme_method_options_are_checked_config_keys(my_kd):
    cfg = resolve_config("retrieval", None)
    good = {**cfg, "methods": {**cfg["methods"], "my_kd": {"weight": 10}}, "run": ["none", "my_kd"]}
    assert method_problems(good) == []
    bad = {**good, "methods": {**good["methods"], "my_kd": {"weight": -1, "wieght": 2}}}
    problems = dict(method_problems(bad))
    assert "methods.my_kd.weight" in problems and "methods.my_kd.wieght" in problems
