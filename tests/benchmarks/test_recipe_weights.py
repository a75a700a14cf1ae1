"""A recipe names the torchvision weights its published numbers used (``weights:``): the
backbone loads that file from the local torch hub cache, the schema rejects a name torchvision
does not know (listing the known ones) and ``weights`` on an architecture without torchvision
weights, a missing file names the exact file, and the teacher cache follows the weights."""

import os
import socket
import urllib.request
from importlib import resources

import pytest
import torch
import yaml

from benchmarks.make_recipe_data import recipe_weights, write_random_weights
from benchmarks.runner.config import deep_merge, default_config, key_origin, resolve_config
from benchmarks.runner.errors import UserError
from benchmarks.runner.schema import check_config, config_problems
from retrieval.models import create_model
from retrieval.models.torchvision_backbones import PretrainedWeightsNotFound, cached_weights_path, known_weights

CONFIGS = resources.files("benchmarks") / "configs"
RECIPES = {"cub200": "retrieval", "cars196": "retrieval", "sop": "retrieval", "detection_coco": "detection"}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """``TORCH_HOME`` in a fresh folder (its hub cache empty) and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() follows TORCH_HOME; restored afterwards

    def no_network(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return tmp_path / "torch"


def _same(module_state: dict, path) -> bool:
    saved = torch.load(path, weights_only=True)
    return all(torch.equal(v, saved[k]) for k, v in module_state.items())


@pytest.fixture
def two_weights(hub):
    """Random stand-ins for mobilenet_v3_large's IMAGENET1K_V1 and V2 (= DEFAULT), different tensors."""
    v1, v2 = write_random_weights(hub, "mobilenet_v3_large", ["IMAGENET1K_V1", "IMAGENET1K_V2"])
    assert (v1.name, v2.name) == ("mobilenet_v3_large-8738ca79.pth", "mobilenet_v3_large-5c1a4163.pth")
    return v1, v2


def test_the_named_weights_load_their_file_and_default_stays_default(two_weights):
    v1, v2 = two_weights
    assert cached_weights_path("mobilenet_v3_large", "IMAGENET1K_V1") == str(v1)
    named = create_model("mobilenet_v3_large", pretrained=True, weights="IMAGENET1K_V1").backbone.body.state_dict()
    assert _same(named, v1) and not _same(named, v2)
    qualified = create_model("mobilenet_v3_large", pretrained=True, weights="MobileNet_V3_Large_Weights.IMAGENET1K_V1")
    assert _same(qualified.backbone.body.state_dict(), v1)
    default = create_model("mobilenet_v3_large", pretrained=True).backbone.body.state_dict()  # no weights: DEFAULT
    assert _same(default, v2)
    assert not _same(create_model("mobilenet_v3_large", weights="IMAGENET1K_V1").backbone.body.state_dict(), v1)


def test_each_suite_passes_its_roles_weights(two_weights):
    from benchmarks.runner.config import deep_merge, default_config
    from benchmarks.runner.tasks import classification, detection, retrieval

    v1, _ = two_weights
    spec = {"arch": "mobilenet_v3_large", "pretrained": True, "weights": "IMAGENET1K_V1"}
    assert "weights" in retrieval.MODEL_KEYS
    embedding = retrieval._model({**spec, "embedding_dim": 8, "normalize": True})
    assert _same(embedding.backbone.body.state_dict(), v1)
    assert _same(classification._classifier(spec, 3).backbone.body.state_dict(), v1)
    cfg = deep_merge(default_config("detection"), {"teacher": spec, "detector": {"min_size": 64, "max_size": 64}})
    detector = detection._detector(cfg, "teacher", 2)
    assert _same(detector.detector.backbone.body.body.state_dict(), v1)


def test_a_missing_file_names_the_exact_file_of_those_weights(hub):
    checkpoints = os.path.join(str(hub), "hub", "checkpoints")
    for weights, filename in [("IMAGENET1K_V1", "resnet50-0676ba61.pth"), (None, "resnet50-11ad3fa6.pth")]:
        with pytest.raises(PretrainedWeightsNotFound) as err:
            create_model("resnet50", pretrained=True, weights=weights)
        assert os.path.join(checkpoints, filename) in str(err.value)
        assert ("IMAGENET1K_V1" if weights else "IMAGENET1K_V2") in str(err.value)
    assert not os.path.exists(checkpoints)


def test_a_bad_name_fails_in_the_model_too():
    with pytest.raises(ValueError, match=r"IMAGENET1K_V1.*IMAGENET1K_V2.*DEFAULT"):
        create_model("resnet50", weights="IMAGENET1K_V3")
    with pytest.raises(ValueError, match="no torchvision weights"):
        create_model("small_cnn_xs", weights="IMAGENET1K_V1")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_recipes_pin_the_weights_of_their_published_numbers(name):
    cfg = resolve_config(RECIPES[name], str(CONFIGS / f"{name}.yaml"))
    assert cfg["teacher"]["arch"] == "resnet50" and cfg["student"]["arch"] == "resnet18"
    for role in ("teacher", "student"):  # RKD (2019) and torchvision's Faster R-CNN references: V1
        assert cfg[role]["pretrained"] and cfg[role]["weights"] == "IMAGENET1K_V1"
    assert config_problems(cfg) == []


def test_cifar_recipe_and_embedded_defaults_have_no_weights():
    cifar = resolve_config("classification", str(CONFIGS / "cifar100.yaml"))
    assert "weights" not in cifar["teacher"] and "weights" not in cifar["student"]
    for suite in ("retrieval", "hmat-ablation", "classification", "detection"):  # their config hashes do not move
        cfg = default_config(suite)
        assert not any("weights" in (cfg.get(role) or {}) for role in ("teacher", "student")), suite
    assert recipe_weights() == {"resnet50": ["IMAGENET1K_V1"], "resnet18": ["IMAGENET1K_V1"]}


def test_the_schema_lists_the_known_names_and_names_the_file():
    cub = resolve_config("retrieval", str(CONFIGS / "cub200.yaml"))
    user = {"teacher": {"weights": "IMAGENET1K_V3"}}
    origin = lambda path: key_origin(path, [("mine.yaml", user)], "benchmarks/configs/cub200.yaml")  # noqa: E731
    with pytest.raises(UserError) as err:
        check_config(deep_merge(cub, user), origin)
    assert str(err.value) == ("mine.yaml: teacher.weights: unknown weights 'IMAGENET1K_V3' for resnet50; expected "
                              "one of ['IMAGENET1K_V1', 'IMAGENET1K_V2', 'DEFAULT'] "
                              "(torchvision.models.get_model_weights('resnet50'))")
    assert known_weights("resnet18") == ["IMAGENET1K_V1", "DEFAULT"]
    detection = resolve_config("detection", str(CONFIGS / "detection_coco.yaml"))
    problems = dict(config_problems(deep_merge(detection, {"student": {"weights": "IMAGENET1K_V2"}})))
    assert "unknown weights 'IMAGENET1K_V2' for resnet18" in problems["student.weights"]
    assert config_problems(deep_merge(detection, {"teacher": {"weights": "DEFAULT"}})) == []
    assert "valid string" in dict(config_problems(deep_merge(cub, {"student": {"weights": 1}})))["student.weights"]


@pytest.mark.parametrize("suite, role, arch", [("retrieval", "teacher", "small_cnn_s"),
                                                ("classification", "student", "resnet20"),
                                                ("detection", "student", "small_cnn_xs")])
def test_weights_on_an_architecture_without_torchvision_weights_is_an_error(suite, role, arch):
    cfg = deep_merge(default_config(suite), {role: {"arch": arch, "weights": "IMAGENET1K_V1"}})
    message = dict(config_problems(cfg))[f"{role}.weights"]
    assert f"{arch} has no torchvision weights" in message and "resnet50" in message


def test_the_teacher_cache_follows_the_weights(tmp_path):
    from pathlib import Path

    from benchmarks.runner.tasks import get_task

    retrieval, detection = get_task("retrieval"), get_task("detection")
    cub = resolve_config("retrieval", str(CONFIGS / "cub200.yaml"))
    v1 = retrieval.teacher_checkpoint(cub, Path("cache"), 0)
    v2 = retrieval.teacher_checkpoint(deep_merge(cub, {"teacher": {"weights": "IMAGENET1K_V2"}}), Path("cache"), 0)
    assert v1 != v2
    coco = resolve_config("detection", str(CONFIGS / "detection_coco.yaml"))
    assert (detection.teacher_checkpoint(coco, Path("cache"), 0) !=
            detection.teacher_checkpoint(deep_merge(coco, {"teacher": {"weights": "DEFAULT"}}), Path("cache"), 0))


def test_the_runner_reports_a_bad_name_before_any_training(tmp_path, monkeypatch, capsys):
    from benchmarks.run import main

    cfg = yaml.safe_load((CONFIGS / "cub200.yaml").read_text())
    cfg["student"]["weights"] = "IMAGENET1K_V2"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(["--config", "mine.yaml", "--out", "results", "--cache-dir", "cache", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: mine.yaml: student.weights: unknown weights 'IMAGENET1K_V2' for resnet18; expected one of "
        "['IMAGENET1K_V1', 'DEFAULT'] (torchvision.models.get_model_weights('resnet18'))")
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()
