"""``python -m benchmarks.export``: ONNX round trip of tiny trained students, the faiss index of
an image folder, a failed check stops loudly, and a bad run id is a clear error."""

import json
import re

import faiss
import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from PIL import Image

from benchmarks import export, run
from tiny_retrieval import tiny_retrieval
from user_error import user_error

RETRIEVAL = tiny_retrieval(teacher={"train": {"epochs": 1}}, student={"train": {"epochs": 1}},
                           cost={"repeats": 1, "warmup": 0}, run=["at"], seeds=[0])
CLASSIFICATION = {
    "pretrain": None, "workers": 1,  # not the default's generated-data pretraining, one job at a time
    "dataset": {"name": "digits-cls", "options": {"per_class": 20, "test_fraction": 0.5}},
    "teacher": {"arch": "resnet8x4", "train": {"epochs": 1, "milestones": []}},
    "student": {"arch": "resnet20", "train": {"epochs": 1, "milestones": []}},
    "train": {"batch_size": 25},
    "cost": {"repeats": 1, "warmup": 0},
    "run": ["kd"],
    "seeds": [0],
}


def _train(root, suite, config):
    path = root / f"{suite}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run.main(["--suite", suite, "--config", str(path), "--out", str(root / "results"),
                     "--cache-dir", str(root / "cache"), "--no-progress"]) == 0
    return next(p.stem for p in (root / "results").glob(f"{suite}/*/runs/{config['run'][0]}-*-s0.json"))


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return root, _train(root, "retrieval", RETRIEVAL)


def _export(root, run_id, *extra):
    return export.main(["--run", run_id, "--format", "onnx", "--out", str(root / "results"),
                        "--cache-dir", str(root / "cache"), *extra])


def _write_gallery(folder):
    """Six synthetic test images as PNG files, in two class sub-folders."""
    from retrieval.data import build_dataset

    test = build_dataset("synthetic", None, "test", classes=20, per_class=10, size=16)
    for i in range(6):
        (folder / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(folder / "ab"[i % 2] / f"img{i}.png")
    return test


def test_retrieval_student_round_trip_and_index(retrieval_run, tmp_path, capsys):
    root, run_id = retrieval_run
    dest = tmp_path / "student.onnx"
    gallery = tmp_path / "gallery"
    test = _write_gallery(gallery)
    assert _export(root, run_id, "--dest", str(dest), "--index-folder", str(gallery)) == 0
    out = capsys.readouterr().out
    assert "check OK" in out and "max |difference|" in out

    record = json.loads((tmp_path / "student.onnx.json").read_text())
    assert record["run_id"] == run_id and record["check"]["ok"] and record["check"]["images"] == 64
    assert record["check"]["max_abs_diff"] <= 1e-4 and record["input"]["shape"] == ["batch", 3, 16, 16]

    # the ONNX file alone reproduces the trained student's embeddings of real test images
    net = export.build_network(json.loads(next(root.glob(f"results/*/*/runs/{run_id}.json")).read_text()),
                                        root / "cache").net
    images = torch.stack([test[i]["image"] for i in range(10)])
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": images.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(images).numpy(), atol=1e-4, rtol=1e-3)
    trained = torch.load(next(root.glob(f"cache/students/*/*/{run_id}.pt")), weights_only=True)
    assert torch.equal(net.embed.weight, trained["student.embed.weight"])  # the run's weights, not fresh ones

    # the index holds the gallery in path order, normalised embeddings searched by inner product
    index = faiss.read_index(str(tmp_path / "student.faiss"))
    listing = json.loads((tmp_path / "student.faiss.json").read_text())
    assert index.ntotal == 6 and isinstance(index, faiss.IndexFlatIP) and listing["metric"] == "inner_product"
    assert [r["path"] for r in listing["images"]] == ["a/img0.png", "a/img2.png", "a/img4.png", "b/img1.png",
                                                      "b/img3.png", "b/img5.png"]
    assert [r["class"] for r in listing["images"]] == ["a"] * 3 + ["b"] * 3
    query = got[[2]]  # test image 2 is a/img2.png, id 1: the PNG round trip is lossless at the same size
    _, ids = index.search(query, 1)
    assert ids[0, 0] == 1
    np.testing.assert_allclose(index.reconstruct(1), got[2], atol=1e-5)


def test_classifier_round_trip(tmp_path, capsys):
    run_id = _train(tmp_path, "classification", CLASSIFICATION)
    dest = tmp_path / "classifier.onnx"
    assert _export(tmp_path, run_id, "--dest", str(dest), "--check-images", "16") == 0
    record = json.loads((tmp_path / "classifier.onnx.json").read_text())
    assert record["output"] == {"names": ["output"], "meaning": "logits"} and record["check"]["ok"] and record["check"]["images"] == 16
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[-1] == 10  # the ten digit classes
    assert "needs a retrieval run" in user_error(capsys, lambda argv: _export(tmp_path, run_id, *argv),
                                                 ["--index-folder", str(tmp_path)])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter says it is legacy
def test_a_failing_check_stops_loudly(retrieval_run, tmp_path, monkeypatch):
    root, run_id = retrieval_run
    real_export = export.export_onnx

    def export_a_different_network(net, example, dest, *args):
        import copy

        other = copy.deepcopy(net)
        with torch.no_grad():
            other.embed.bias.add_(0.5)
        real_export(other, example, dest, *args)

    monkeypatch.setattr(export, "export_onnx", export_a_different_network)
    with pytest.raises(export.ExportMismatch, match=r"export check FAILED.*differ from PyTorch's by up to") as err:
        _export(root, run_id, "--dest", str(tmp_path / "bad.onnx"), "--exporter", "torchscript")
    assert err.value.code != 0


def test_bad_run_id_and_missing_weights_are_clear_errors(retrieval_run, tmp_path, capsys):
    root, run_id = retrieval_run
    err = user_error(capsys, lambda argv: _export(root, *argv), ["hmat-0000000000-s0"])
    assert re.search(r"no saved run 'hmat-0000000000-s0'.*looked in .*known run ids there: .*at-", err)
    assert run_id in err
    assert "bad run id" in user_error(capsys, lambda argv: _export(root, *argv), ["../../etc/passwd"])
    assert "known run ids there: none" in user_error(capsys, export.main, ["--run", "at-x-s0", "--out", str(tmp_path)])
    err = user_error(capsys, export.main, ["--run", run_id, "--out", str(root / "results"),
                                           "--cache-dir", str(tmp_path / "empty")])
    assert re.search(r"no weights for run .*does not exist.*--cache-dir", err)
    assert "not a folder" in user_error(capsys, lambda argv: _export(root, run_id, *argv),
                                        ["--index-folder", str(tmp_path / "nowhere")])


def test_detector_backbone_round_trip(tmp_path):
    detection = {
        "dataset": {"options": {"size": 64, "max_objects": 2, "min_height": 10, "max_height": 20,
                                "train_images": 8, "val_images": 4, "test_images": 4}},
        "detector": {"fpn_channels": 8, "representation_size": 32, "rpn_pre_nms_top_n_train": 50,
                     "rpn_post_nms_top_n_train": 20, "rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20,
                     "box_batch_size_per_image": 16},
        "teacher": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
        "student": {"arch": "small_cnn_xs", "train": {"epochs": 1}},
        "train": {"batch_size": 4},
        "run": ["none"],
        "seeds": [0],
    }
    run_id = _train(tmp_path, "detection", detection)
    dest = tmp_path / "backbone.onnx"
    assert _export(tmp_path, run_id, "--dest", str(dest)) == 0
    record = json.loads((tmp_path / "backbone.onnx.json").read_text())
    assert record["output"]["names"] == ["p2", "p3", "p4", "pool"] and record["check"]["ok"]
    assert record["input"]["shape"] == ["batch", 3, 64, 64] and "GeneralizedRCNNTransform" in record["input"][
        "preprocessing"]
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    levels = session.run(None, {"input": np.zeros((2, 3, 64, 64), np.float32)})
    assert [level.shape for level in levels] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]


def test_fresh_network_is_the_suites_network_output_stride_included():
    from benchmarks.runner.config import resolve_config
    from benchmarks.export import fresh_network

    cfg = resolve_config("retrieval")
    for role in ("teacher", "student"):
        net = fresh_network(cfg, role)
        assert [s.stride for s in net.stages] == [2, 4, 8, cfg[role]["output_stride"]] == [2, 4, 8, 8]
        x = torch.zeros(1, 3, 32, 32)
        assert tuple(net.forward_features(x)["stages"][3].shape[-2:]) == (4, 4)
