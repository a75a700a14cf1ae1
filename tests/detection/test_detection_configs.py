"""The detection default's protocol (fixed initial weights, last epoch, same schedule for teacher and
students, per-role detector sizes) and the full-scale COCO recipe, merged over it, keeping its own."""

from importlib import resources

from benchmarks.runner.config import deep_merge, resolve_config
from benchmarks.runner.tasks.detection import teacher_identity, train_config


def _coco():
    return resolve_config("detection", str(resources.files("benchmarks") / "configs" / "detection_coco.yaml"))


def _role_detector(cfg, role):
    return deep_merge(cfg.get("detector", {}), cfg[role].get("detector", {}))


def test_the_default_draws_scenes_weights_and_teacher_per_replicate_and_reports_the_last_epoch():
    cfg = resolve_config("detection", None)
    assert cfg["teacher_cache"] is True  # the embedded scenes are of one size and not augmented
    assert cfg["methods"]["hmat"]["terms"][0] == ["position", 2]  # the FPN's finest stage (stride 4)
    assert cfg["replicates"] == "full" and len(cfg["seeds"]) == 4  # a teacher and a scene draw per replicate
    assert cfg.get("init_seed") is None and cfg.get("teacher_seed") is None
    t, s = (train_config(cfg, role, progress=False) for role in ("teacher", "student"))
    assert t.epochs == s.epochs and t.schedule == s.schedule == "cosine"  # the gap comes from capacity
    assert s.select == "last" and s.eval_every <= s.epochs  # the last epoch's val AP (tuning) is always scored
    assert _role_detector(cfg, "teacher")["fpn_channels"] > _role_detector(cfg, "student")["fpn_channels"]


def test_the_coco_recipe_does_not_inherit_the_defaults_protocol():
    cfg = _coco()
    assert cfg["init_seed"] is None  # initial weights from the run seed, as before the default fixed them
    assert cfg["teacher_seed"] is None  # a teacher per seed
    assert teacher_identity(cfg)["init_seed"] is None  # so the recipe's teacher cache names keep their init
    assert cfg["dataset"]["name"] == "coco" and "train_images" not in cfg["dataset"]["options"]
    assert cfg["teacher_cache"] is False  # COCO's images differ in size
    # HMAT's position attention on the FPN's finest stage: stride 4 is stage 1 of a ResNet (stage 2 of the
    # default's small CNN, whose stage 1 has stride 2)
    assert cfg["methods"]["hmat"]["terms"][0] == ["position", 1]
    for role in ("teacher", "student"):
        det = _role_detector(cfg, role)
        assert det["fpn_channels"] == 256 and det["representation_size"] == 1024  # torchvision's sizes
        assert det["box_batch_size_per_image"] == 512
        tcfg = train_config(cfg, role, progress=False)
        assert tcfg.epochs == 12 and tcfg.schedule == "step" and tcfg.select == "last" and tcfg.eval_every == 4
        assert tcfg.lr == 0.02  # the 1x schedule for both roles (the default's teacher trains at 0.001)


def test_the_teacher_cache_is_refused_on_images_of_several_sizes():
    from types import SimpleNamespace

    import pytest

    from benchmarks.runner.tasks.detection import check_one_size

    def split(*sizes):
        return SimpleNamespace(coco=SimpleNamespace(imgs={i: {"width": w, "height": h} for i, (w, h) in enumerate(sizes)}))

    check_one_size(split((64, 64), (64, 64)))
    with pytest.raises(ValueError, match="teacher_cache: true needs training images of one size, got 2 sizes"):
        check_one_size(split((64, 64), (640, 480), (64, 64)))
