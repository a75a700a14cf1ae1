"""KD on detectors: the features a method reads, the named loss dict, and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from retrieval.detection.distiller import build_detection_method
from tests.detection.conftest import tiny_detector

DET_TERMS = {"det/loss_objectness", "det/loss_rpn_box_reg", "det/loss_classifier", "det/loss_box_reg"}
KD_TERMS = {"none": set(), "at": {"at"}, "hmat": {"pos1", "act2", "act3", "act4", "cha4"}, "mimic": {"mimic"}}


def test_forward_features_exposes_stages_fpn_and_losses(batch):
    model = tiny_detector("small_cnn_s").train()
    out = model.forward_features(batch["image"], batch["target"])
    assert [f.shape[1] for f in out["stages"]] == [s.channels for s in model.stages] == [16, 32, 64, 128]
    assert [tuple(f.shape[-2:]) for f in out["stages"]] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert [tuple(f.shape[1:]) for f in out["fpn"]] == [(8, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2)]
    assert [lv.stride for lv in model.fpn_levels] == [4, 8, 16, 32]
    assert set(out["losses"]) == {k.split("/")[1] for k in DET_TERMS}
    model.eval()
    with torch.no_grad():
        out = model.forward_features(batch["image"])
        assert len(out["output"]) == 2 and {"boxes", "labels", "scores"} <= set(out["output"][0])
        features_only = model.forward_features(batch["image"], heads=False)
    assert features_only["output"] is None
    assert torch.equal(features_only["fpn"][0], out["fpn"][0])


@pytest.mark.parametrize("name", ["none", "at", "hmat", "mimic"])
def test_detector_losses_stay_named_beside_the_kd_terms(batch, name):
    student, teacher = tiny_detector("small_cnn_xs"), tiny_detector("small_cnn_s", seed=1)
    options = {"hmat": {"block_elements": 4096}}.get(name, {})
    method = build_detection_method(name, student, teacher if name != "none" else None, **options).train()
    _, losses = method.training_step(batch)
    assert set(losses) == DET_TERMS | KD_TERMS[name]
    assert all(v.dim() == 0 and math.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in student.detector.backbone.body.parameters())
    if name != "none":
        assert all(p.grad is None for p in teacher.parameters())
        assert not teacher.training  # the teacher stays in eval mode
        kd = sum(v for k, v in losses.items() if not k.startswith("det/"))
        assert kd.item() > 0


def test_kd_terms_are_zero_when_the_student_is_the_teacher(batch):
    teacher = tiny_detector("small_cnn_s", seed=1)
    student = tiny_detector("small_cnn_s", seed=1)
    for name in ("at", "mimic"):
        method = build_detection_method(name, student, teacher)
        method.eval()  # same BN statistics in both
        with torch.no_grad():
            s = student.forward_features(batch["image"], heads=False)
            t = teacher.forward_features(batch["image"], heads=False)
        assert all(v.item() == pytest.approx(0.0, abs=1e-12) for v in method.kd.distill_losses(s, t, batch).values())


def test_task_weight_scales_the_detector_losses(batch):
    losses = {}
    for weight in (1.0, 0.5):
        method = build_detection_method("none", tiny_detector(), task_weight=weight).train()
        torch.manual_seed(5)  # RPN / RoI sampling
        _, losses[weight] = method.training_step(batch)
    for key in DET_TERMS:
        assert losses[0.5][key].item() == pytest.approx(0.5 * losses[1.0][key].item(), rel=1e-5)


def counting(teacher):
    """``teacher`` with its ``forward_features`` counting the images it is run on (``teacher.images``)."""
    run = teacher.forward_features
    teacher.images = 0

    def forward_features(images, targets=None, heads=True):
        teacher.images += len(images)
        return run(images, targets, heads)

    teacher.forward_features = forward_features
    return teacher


@pytest.mark.parametrize("name", ["at", "hmat", "mimic"])
def test_the_teacher_cache_gives_the_live_teachers_losses_and_runs_each_image_once(batch, name):
    teacher = counting(tiny_detector("small_cnn_s", seed=1))
    options = {"hmat": {"block_elements": 4096}}.get(name, {})
    live = build_detection_method(name, tiny_detector("small_cnn_xs"), teacher, **options).train()
    cached = build_detection_method(name, tiny_detector("small_cnn_xs"), teacher, cache_teacher=True,
                                    **options).train()
    cached.load_state_dict(live.state_dict())
    swapped = {"image": batch["image"][::-1], "target": batch["target"][::-1], "index": batch["index"].flip(0)}
    for step_batch in (batch, swapped, batch):  # the same images, drawn again in another order
        teacher.images = 0
        expected = live.teacher_features(step_batch["image"], step_batch)
        assert teacher.images == 2
        teacher.images = 0
        got = cached.teacher_features(step_batch["image"], step_batch)
        for key in ("stages", "fpn"):
            for e, g in zip(expected[key], got[key]):
                torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
        seen = teacher.images
        torch.manual_seed(5)
        _, live_losses = live.training_step(step_batch)
        torch.manual_seed(5)
        _, cached_losses = cached.training_step(step_batch)
        for key in live_losses:
            assert cached_losses[key].item() == pytest.approx(live_losses[key].item(), rel=1e-4, abs=1e-6)
    assert seen == 0  # after the first batch every image comes from the cache
    assert sorted(cached.teacher_cache) == [0, 1]


def test_the_teacher_cache_refuses_images_of_several_sizes(batch):
    method = build_detection_method("at", tiny_detector("small_cnn_xs"), tiny_detector("small_cnn_s", seed=1),
                                    cache_teacher=True).train()
    small = {"image": [batch["image"][0], batch["image"][1][:, :32, :]], "target": batch["target"],  # another aspect
             "index": batch["index"]}
    with pytest.raises(ValueError, match="images of one size"):
        method.teacher_features(small["image"], small)


def test_a_method_without_teacher_keeps_no_cache():
    assert build_detection_method("none", tiny_detector(), cache_teacher=True).teacher_cache is None
