"""The pieces of benchmarks.bench_data on a handful of tiny generated CUB JPEGs: the project's
loader keeps its workers across epochs while ImageFolder's restart, both deliver the same
number of images, the workers' memory is read, and the decode/resize comparison holds."""

import json

import pytest
import torch

from benchmarks import bench_data

SIZES = ((60, 64), (1.30, 1.40), 0.0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return bench_data.write_images(tmp_path_factory.mktemp("cub"), classes=6, per_class=3, sizes=SIZES)


def test_project_loader_keeps_its_workers_and_imagefolder_restarts_them(base):
    dataset = bench_data.project_dataset(base)
    assert len(dataset) == 12  # 4 fit classes of 3
    loader_for_epoch, close = bench_data.project_loaders(dataset, batch=10, workers=2)
    try:
        project = bench_data.measure(loader_for_epoch, warmup=0, epochs=2)
    finally:
        close()
    assert project["images"] == 20 and project["images_per_s"] > 0
    assert len(project["worker_pids"]) == 2 and project["worker_pids"][0] == project["worker_pids"][1]
    assert project["workers"] == 2 and project["rss_mb"] > 0 and project["uss_mb"] > 0
    assert project["worker_cpu_ms_per_image"] > 0

    folder = bench_data.imagefolder_dataset(base, dataset.paths)
    loader_for_epoch, close = bench_data.imagefolder_loaders(folder, batch=10, workers=2)
    reference = bench_data.measure(loader_for_epoch, warmup=0, epochs=2)
    assert reference["images"] == 20
    assert set(reference["worker_pids"][0]).isdisjoint(reference["worker_pids"][1])  # new workers each epoch


def test_decode_and_resize_comparison(base):
    paths = bench_data.project_dataset(base).paths[:3]
    out = bench_data.per_image_timings(paths, repeat=1)
    assert out["images"] == 3 and out["decode_jpeg_vs_pil_max_levels"] == 0
    assert out["tensor_vs_pil_resize_max_levels"] <= 1
    assert set(out["ms_per_image"]) == {"pil_image", "pil_tensor", "decode_jpeg_tensor", "pil_decode_only",
                                        "decode_jpeg_only"}


def test_jpegs_reach_the_photo_transform_as_the_decoded_tensor(base):
    """Same random crop and flip, pixels within one grey level of the PIL hand-over."""
    tensor, pil = bench_data.project_dataset(base), bench_data.project_dataset(base, tensor_jpeg=False)
    for i in range(3):
        torch.manual_seed(i)
        a = tensor[i]["image"]
        torch.manual_seed(i)
        b = pil[i]["image"]
        assert a.shape == b.shape == (3, 224, 224)
        assert (a - b).abs().max() <= 1 / 255 / 0.224 + 1e-6  # one level over the smallest std
    assert tensor.load(0).mode == "RGB"  # load() still gives the PIL image


def test_table_and_json(base, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_data, "write_images", lambda root, classes, per_class: base)
    out_file = tmp_path / "out.json"
    code = bench_data.main(["--batch", "10", "--epochs", "1", "--warmup", "0", "--repeat", "1",
                            "--variants", "project,ImageFolder", "--json", str(out_file)])
    out = json.loads(out_file.read_text())
    assert set(out["loaders"]) == {"project", "ImageFolder"} and code == (0 if out["pass"] else 1)
    assert out["ratio_vs_imagefolder"] == pytest.approx(out["loaders"]["project"]["images_per_s"]
                                                        / out["loaders"]["ImageFolder"]["images_per_s"])
    assert out["machine"]["cpus"] >= 1 and "bench_data" in out["command"]
