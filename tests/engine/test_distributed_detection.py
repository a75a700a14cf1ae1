"""Data-parallel training of detectors: 2 processes (gloo, CPU) train like 1.

The detection suite's pieces under ``train()``: tiny Faster R-CNN + FPN detectors on generated
64x64 scenes read back as COCO json (``CocoDetectionDataset`` and its ``collate_fn``: lists of
images and targets), the ``DetectionDistiller`` around ``none``, ``at``, ``mimic`` and ``hmat``,
the ``random`` sampler and COCOeval on rank 0. Each method trains 3 epochs of one global batch of 6
images (3 per process), once in this process and once in 2 processes started from it.

What has to be fixed for the two to be comparable, and why:

- BatchNorm is removed (also from HMAT's connector), as in tests/engine/test_distributed.py
  (CPU has no SyncBatchNorm: with BatchNorm left in HMAT's connector alone, its losses
  differ by 5e-4 and the ranks' running statistics differ).
- torchvision samples anchors (RPN) and proposals (RoI heads) at random, per image, from the
  process's generator: a process holding half the images draws other samples than one
  holding all. The detectors here keep *every* candidate (sampling quotas above the candidate
  counts, equal foreground/background IoU thresholds so none is ignored, NMS at IoU 1.0 so every
  image keeps its 20 proposals, one object per image), so the losses no longer depend on the
  draw and each image contributes the same number of anchors and proposals. The detector's
  losses are means over them, so the mean of the two processes' means is the mean over the
  whole batch. (With the default quotas each image also fills its quota of 256 anchors and 64
  or 512 proposals, so the global loss is the same; only which anchors are drawn differs.)
- With one batch per epoch the order of the shuffle does not change the batch, so later
  epochs compare too, although the single process's generator (which drew the samples of 6
  images) and rank 0's (3 images) may have moved apart. The two ranks' generators differ after
  epoch 1 (checked): rank 0 alone evaluates, and its loaders draw from its generator.
  ``distributed.SharedShuffle`` makes both ranks take rank 0's shuffle; without it the two
  halves of an epoch overlap and the losses of epochs 2-3 move by 8e-3 to 0.13 and the
  weights by 1.7e-3.

What remains is float summation order: measured differences within 5e-7 on losses and weights;
we ask for 1e-5 on both. The validation AP, computed by rank 0 alone, must be equal (it is 0
after 3 steps: this checks that rank 0's evaluation reaches every rank's history).
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler

from ddp_compare import assert_same_history, gloo_group, two_processes, without_batchnorm
from retrieval.detection import create_detector, evaluate_detector
from retrieval.detection.data import mnist_scenes
from retrieval.detection.distiller import build_detection_method
from retrieval.engine import TrainConfig, distributed, seed_everything, train

METHODS = {"none": {}, "at": {"beta": 250, "stages": [2, 3, 4]}, "mimic": {"weight": 0.05, "features": "fpn"},
           "hmat": {"beta_pos": 0.1, "beta_act": 250, "beta_ch": 0.1, "block_elements": 65536}}
SCENES = {"size": 64, "max_objects": 1, "min_height": 10, "max_height": 20, "train_images": 6, "val_images": 4,
          "test_images": 2}
EVERY_CANDIDATE = dict(  # keep every anchor and proposal: the losses do not depend on the random draw
    rpn_batch_size_per_image=100_000, rpn_positive_fraction=0.5, rpn_fg_iou_thresh=0.5, rpn_bg_iou_thresh=0.5,
    rpn_nms_thresh=1.0, box_batch_size_per_image=1_000, box_positive_fraction=0.5, box_fg_iou_thresh=0.5,
    box_bg_iou_thresh=0.5)
TINY = dict(fpn_channels=8, fpn_stages=[2, 3, 4], min_size=64, max_size=64, representation_size=32,
            rpn_pre_nms_top_n_train=50, rpn_post_nms_top_n_train=20, rpn_pre_nms_top_n_test=50,
            rpn_post_nms_top_n_test=20, **EVERY_CANDIDATE)
ATOL_LOSS, ATOL_WEIGHT = 1e-5, 1e-5


def _data(cache_dir) -> dict:
    return {split: mnist_scenes(cache_dir, split, **SCENES) for split in ("train", "val")}


def _build(name: str, num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    teacher = without_batchnorm(create_detector("small_cnn_xs", num_classes, **TINY))
    student = without_batchnorm(create_detector("small_cnn_xs", num_classes, **TINY))
    return without_batchnorm(build_detection_method(name, student, teacher, **METHODS[name]))  # also HMAT's connector


def _trainable(method) -> dict:
    return {k: v.clone() for k, v in method.kd.state_dict().items() if not k.startswith("teacher.")}


def _rng_digest() -> str:
    return hashlib.sha256(torch.random.get_rng_state().numpy().tobytes()).hexdigest()


def _train_all(cache_dir) -> dict:
    torch.set_num_threads(1)
    data = _data(cache_dir)
    cfg = TrainConfig(epochs=3, lr=1e-3, batch_size=6, sampler="random", schedule="cosine", select="last",
                      select_metric="ap", progress=False)
    out = {}
    for name in METHODS:
        method = _build(name, data["train"].num_classes)
        seed_everything(0)
        result = train(method, data["train"], data["val"], cfg, name=name, evaluator=evaluate_detector)
        out[name] = {"history": result.history, "state": _trainable(method), "rng": _rng_digest()}
    return out


def _shuffled_slices(seed: int) -> list:
    """This rank's batches of a shuffled pass over 10 items (global batch 4), its generator seeded with ``seed``."""
    torch.manual_seed(seed)
    dataset = type("D", (), {"__len__": lambda self: 10})()
    return list(distributed.rank_batch_sampler(dataset, TrainConfig(batch_size=4, sampler="random")))


def _worker(rank: int, world: int, init_file: str, cache_dir: str) -> None:
    with gloo_group(rank, world, init_file):
        out = _train_all(cache_dir)
        out["slices"] = _shuffled_slices(100 + rank)  # the ranks' generators differ
        torch.save(out, f"{cache_dir}/rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_det")
    assert not distributed.is_distributed()
    data = _data(tmp)  # the scenes are written once, before the processes start
    assert all(len(data["train"].target(i)["boxes"]) == 1 for i in data["train"].image_ids)  # one object each
    single = _train_all(tmp)
    two_processes(_worker, (2, str(tmp / "init"), str(tmp)))
    return single, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_a_detector_like_one(runs, method):
    single, ranks = runs
    one, two = single[method], ranks[0][method]
    assert_same_history(one["history"], two["history"], 3, ATOL_LOSS, required={"loss/det/loss_objectness", "loss/det/loss_classifier"})
    assert all("val/ap" in h for h in one["history"])
    assert ranks[0][method]["rng"] != ranks[1][method]["rng"]  # the ranks' generators moved apart
    initial = _trainable(_build(method, 10))
    moved = 0.0
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, atol=ATOL_WEIGHT, rtol=0, msg=key)
        torch.testing.assert_close(ranks[1][method]["state"][key], two["state"][key], atol=0, rtol=0)  # ranks agree
        moved = max(moved, float((value - initial[key]).abs().max()))
    assert moved > 30 * ATOL_WEIGHT  # training moved the weights far more than the tolerance


def test_shuffled_slices_share_rank0_order(runs):
    """With the ranks' generators in different states, the slices of each step still rebuild the
    global batch of the single-process shuffle seeded like rank 0."""
    _, ranks = runs
    torch.manual_seed(100)
    single = list(BatchSampler(RandomSampler(range(10)), 4, drop_last=True))
    assert [ranks[0]["slices"][s] + ranks[1]["slices"][s] for s in range(len(single))] == single
    assert _shuffled_slices(100) == single  # in one process: RandomSampler's own batches
