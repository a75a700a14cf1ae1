"""Data-parallel training of classifiers: 2 processes (gloo, CPU) train like 1.

The classification suite's pieces under ``train()``: ClassifierNets (resnet20 student, wrn_16_2
teacher) on real 8x8 digits (no augmentation), cross-entropy task loss, the ``random`` sampler
(a shuffled pass, sliced by ``distributed.rank_batch_sampler``) and top-1 evaluation on rank 0.
Each method trains for 2 epochs x 2 steps of a global batch of 20 (10 per process), once in this
process without a process group and once in 2 processes started from it.

The suite's optimizer (SGD with momentum, lr 0.01 here) and ``select: last``, so the final
weights are those of the last step (with Adam's first, sign-like steps, or with a best epoch
selected early, a wrong batch in epoch 2 would hardly show in the weights).

Tolerance, and why: as in tests/engine/test_distributed.py the networks have their BatchNorm
layers removed (on CPU there is no SyncBatchNorm, so each process would normalise with the
statistics of its own 10 images: a different model, not rounding). What remains is float
summation order: DDP averages two half-batch gradients, and the per-process means of the
cross-entropy and KD terms (each the mean over 10 images) average to the mean over 20.
Measured: losses within 1e-6 and weights within 2e-7. We ask for 1e-5 on both. Each process
shuffling with its own generator (rank 0 alone evaluates, so from epoch 2 on the generators
differ) moves the epoch-2 losses by 2.6e-3 to 0.35 and the weights by 2.6e-4 to 0.55, which
the test catches; no gradient averaging makes the ranks' weights differ. The test accuracies,
from rank 0's weights, must be equal.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddp_compare import assert_same_history, assert_same_weights, gloo_group, two_processes, without_batchnorm
from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, distributed, evaluate_classifier, seed_everything, train
from retrieval.methods import build_method
from retrieval.models import create_classifier

METHODS = {"none": {}, "kd": {"task_weight": 0.1, "weight": 0.9, "temperature": 4},
           "rkd": {"distance_weight": 25, "angle_weight": 50}, "crd": {"weight": 0.8, "num_negatives": 16,
                                                                      "feat_dim": 8},
           "hmat+kd": {"beta_pos": 1, "beta_act": 50, "beta_ch": 1, "task_weight": 0.1, "kd_weight": 0.9}}
ATOL_LOSS, ATOL_WEIGHT = 1e-5, 1e-5


def _data() -> dict:
    opts = {"per_class": 6, "test_fraction": 0.3, "augment": False}  # 40 train images, 20 test, 10 classes
    return {split: build_dataset("digits-cls", None, split, **opts) for split in ("train", "test")}


def _build(name: str, train_set) -> nn.Module:
    torch.manual_seed(0)
    teacher = without_batchnorm(create_classifier("wrn_16_2", 10))
    student = without_batchnorm(create_classifier("resnet20", 10))
    return without_batchnorm(build_method(name, student=student, teacher=teacher, task_loss=nn.CrossEntropyLoss(),
                                           train_labels=train_set.labels, **METHODS[name]))


def _trainable(method) -> dict:
    return {k: v.clone() for k, v in method.state_dict().items() if not k.startswith("teacher.")}


def _train_all() -> dict:
    torch.set_num_threads(1)
    data = _data()
    cfg = TrainConfig(epochs=2, optimizer="sgd", lr=0.01, momentum=0.9, batch_size=20, sampler="random", select="last",
                      schedule="cosine", ks=(1, 5), select_metric="top1", progress=False)
    out = {}
    for name in METHODS:
        method = _build(name, data["train"])
        seed_everything(0)
        result = train(method, data["train"], data["test"], cfg, name=name, evaluator=evaluate_classifier)
        out[name] = {"history": result.history, "best_epoch": result.best_epoch, "state": _trainable(method)}
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_file):
        torch.save(_train_all(), f"{out_dir}/rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_cls")
    assert not distributed.is_distributed()
    single = _train_all()
    two_processes(_worker, (2, str(tmp / "init"), str(tmp)))
    return single, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_a_classifier_like_one(runs, method):
    single, ranks = runs
    one, two = single[method], ranks[0][method]
    assert_same_history(one["history"], two["history"], 2, ATOL_LOSS, required={"val/top1", "val/top5"})
    initial = _trainable(_build(method, _data()["train"]))
    moved = 0.0
    for key, value in one["state"].items():
        assert_same_weights(two["state"][key], value, ATOL_WEIGHT, key)
        torch.testing.assert_close(ranks[1][method]["state"][key], two["state"][key], atol=0, rtol=0)  # ranks agree
        moved = max(moved, float((value - initial[key]).abs().max()))
    assert moved > 30 * ATOL_WEIGHT  # training moved the weights far more than the tolerance
