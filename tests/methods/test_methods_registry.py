"""KD method registry and the Distiller contract, on tiny CPU models."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from retrieval.methods import (
    Distiller,
    build_method,
    is_method,
    list_methods,
    method_class,
    method_tasks,
    register_method,
    registry,
)
from retrieval.metric_losses import build_task_loss
from tests.methods.tiny_nets import make_batch, make_models

TRAIN_LABELS = [i // 5 for i in range(20)]  # 4 classes x 5 samples


def options(name):
    return {"crd": {"train_labels": TRAIN_LABELS, "num_negatives": 8, "feat_dim": 8},
            "hmat": {"block_elements": 4096}}.get(name, {})


def build(name, task_weight=1.0, seed=0, **extra):
    student, teacher = make_models(seed)
    return build_method(name, student=student, teacher=teacher, task_loss=build_task_loss("triplet"),
                        task_weight=task_weight, **{**options(name), **extra})


EXPECTED_TERMS = {
    "none": set(),
    "at": {"at"},
    "rkd": {"rkd_distance", "rkd_angle"},
    "crd": {"crd"},
    "hmat": {"pos1", "act2", "act3", "act4", "cha4"},
}


def test_list_methods():
    names = list_methods()
    for name in ("none", "at", "rkd", "crd", "hmat"):
        assert name in names


@pytest.mark.parametrize("name", ["none", "at", "rkd", "crd", "hmat"])
@pytest.mark.parametrize("task_weight", [1.0, 0.0])
def test_training_step_returns_named_finite_scalars(name, task_weight):
    method = build(name, task_weight=task_weight).train()
    output, losses = method.training_step(make_batch())
    assert output.shape == (10, 16)
    assert isinstance(losses, dict)
    expected = EXPECTED_TERMS[name] | ({"task"} if task_weight > 0 else set())
    assert set(losses) == expected
    for key, value in losses.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, key
        assert math.isfinite(value.item()), key
    if losses:
        total = sum(losses.values())
        total.backward()
        grads = [p.grad for p in method.student.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        if method.teacher is not None:
            assert all(p.grad is None for p in method.teacher.parameters())


def test_unknown_method_names_known_ones():
    with pytest.raises(ValueError) as err:
        build_method("no_such_method", student=None)
    for name in ("none", "at", "rkd", "crd", "hmat"):
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["none", "at", "rkd", "crd", "hmat"])
def test_unknown_option_is_type_error(name):
    with pytest.raises(TypeError):
        build(name, no_such_option=3)


@pytest.mark.parametrize("name", ["at", "rkd", "crd", "hmat"])
def test_teacher_frozen_and_kept_in_eval(name):
    method = build(name)
    teacher_ids = {id(p) for p in method.teacher.parameters()}
    trainable = method.trainable_parameters()
    assert trainable and not teacher_ids & {id(p) for p in trainable}
    assert {id(p) for p in method.student.parameters()} <= {id(p) for p in trainable}
    assert all(not p.requires_grad for p in method.teacher.parameters())
    method.train()
    assert method.training and method.student.training
    assert not method.teacher.training
    assert all(not m.training for m in method.teacher.modules())
    method.eval()
    assert not method.student.training and not method.teacher.training


def test_teacher_bn_statistics_untouched_by_training_step():
    method = build("at").train()
    before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    method.training_step(make_batch())
    for k, v in method.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_none_needs_no_teacher():
    student, _ = make_models()
    method = build_method("none", student=student, task_loss=build_task_loss("triplet"))
    _, losses = method.training_step(make_batch())
    assert set(losses) == {"task"}


def test_task_weight_without_task_loss_rejected():
    student, teacher = make_models()
    with pytest.raises(ValueError):
        build_method("at", student=student, teacher=teacher, task_loss=None, task_weight=1.0)


def test_crd_needs_train_labels():
    student, teacher = make_models()
    with pytest.raises(ValueError):
        build_method("crd", student=student, teacher=teacher, task_loss=None, task_weight=0.0)


def test_hmat_connectors_and_crd_heads_are_trainable():
    hmat = build("hmat")
    ids = {id(p) for p in hmat.trainable_parameters()}
    conn = list(hmat.connectors.parameters())
    assert conn and all(id(p) in ids for p in conn)
    assert hmat.connectors["4"].proj[0].weight.shape == (128, 64, 1, 1)  # small_cnn_xs 64 -> small_cnn_s 128

    crd = build("crd")
    ids = {id(p) for p in crd.trainable_parameters()}
    heads = list(crd.crd.embed_s.parameters()) + list(crd.crd.embed_t.parameters())
    assert all(id(p) in ids for p in heads)


def test_hmat_connector_gets_gradient_from_step():
    method = build("hmat").train()
    _, losses = method.training_step(make_batch())
    losses["cha4"].backward()
    assert method.connectors["4"].proj[0].weight.grad is not None
    assert method.connectors["4"].proj[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("terms", [[("spatial", 1)], [("activation", 0)], [("activation", 5)], [("channel", 7)]])
def test_hmat_bad_term(terms):
    with pytest.raises(ValueError):
        build("hmat", terms=terms)


def test_hmat_term_names_for_custom_terms():
    method = build("hmat", terms=[("channel", s) for s in (1, 2, 3, 4)] + [("position", 2)], task_weight=0.0)
    _, losses = method.training_step(make_batch())
    assert set(losses) == {"cha1", "cha2", "cha3", "cha4", "pos2"}
    assert set(method.connectors) == {"1", "2", "3", "4"}


@pytest.mark.parametrize("beta", [1.0, 1000.0])
def test_hmat_activation_only_equals_at(beta):
    """An independent cross-check: hmat with activation terms at stages 2-4 is AT on stages 2-4."""
    batch = make_batch(seed=3)
    at = build("at", seed=5, beta=beta, stages=(2, 3, 4)).train()
    hmat = build("hmat", seed=5, beta_act=beta, terms=[("activation", s) for s in (2, 3, 4)]).train()
    for p_at, p_h in zip(at.student.state_dict().values(), hmat.student.state_dict().values()):
        assert torch.equal(p_at, p_h)
    _, l_at = at.training_step(batch)
    _, l_h = hmat.training_step(batch)
    assert set(l_h) == {"task", "act2", "act3", "act4"}
    assert l_h["task"].item() == pytest.approx(l_at["task"].item(), rel=1e-6)
    hmat_total = (l_h["act2"] + l_h["act3"] + l_h["act4"]).item()
    assert l_at["at"].item() > 0
    assert hmat_total == pytest.approx(l_at["at"].item(), rel=1e-5)


def test_hmat_position_term_independent_of_block_size():
    batch = make_batch(seed=4)
    values = []
    for block in (1 << 22, 10 * 256 * 7):  # one block, and 7-row blocks over N = 256
        method = build("hmat", seed=6, block_elements=block, terms=[("position", 1)], task_weight=0.0).train()
        _, losses = method.training_step(batch)
        values.append(losses["pos1"].item())
    assert values[1] == pytest.approx(values[0], rel=1e-5)


def test_every_method_declares_the_tasks_it_runs_on():
    from retrieval.methods import method_tasks
    from retrieval.methods.distiller import TASKS

    logit_methods = {"kd", "hmat+kd", "dkd", "dist"}  # soft targets need class logits
    for name in list_methods():
        tasks = method_tasks(name)
        assert tasks and set(tasks) <= set(TASKS), (name, tasks)
        if name in logit_methods:
            assert tasks == ("classification",)
        else:  # every feature and relational method runs on embeddings/stages of both
            assert {"retrieval", "classification"} <= set(tasks), name
    detection = {name for name in list_methods() if "detection" in method_tasks(name)}
    assert detection == {"none", "at", "hmat", "mimic"}  # rkd and crd read an embedding a detector lacks
    with pytest.raises(ValueError, match="unknown KD method 'bogus'"):
        method_tasks("bogus")


def test_the_registry_module_imports_no_method_and_lists_builtins_in_their_order():
    """The registry imports no method module itself (timm's style); the built-ins are listed in ``BUILTIN``
    order whatever module was imported first, so ``--methods all`` keeps its order."""
    code = ("import retrieval.methods.ofd, retrieval.methods.kd; "
            "import retrieval.methods.registry as r; "
            "names = r.list_methods(); "
            "assert names[:5] == ['none', 'at', 'rkd', 'crd', 'hmat'] and names[-2:] == ['darkrank', 'ofd'], names")
    subprocess.run([sys.executable, "-c", code], check=True)
    source = open(sys.modules["retrieval.methods.registry"].__file__).read()
    assert "from retrieval.methods." not in source and "import retrieval.methods." not in source


def test_register_method_decorates_an_outside_class_and_refuses_a_taken_name(monkeypatch):
    registry.list_methods()  # the built-ins register in the real table first, then the test works on a copy
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))

    @register_method("my_kd_for_test")
    class MyKD(Distiller):
        pass

    assert is_method("my_kd_for_test") and method_class("my_kd_for_test") is MyKD
    assert list_methods()[-1] == "my_kd_for_test"  # after the built-ins
    assert method_tasks("my_kd_for_test") == tuple(Distiller.tasks)
    with pytest.raises(ValueError, match="registered twice"):
        register_method("at")(MyKD)
