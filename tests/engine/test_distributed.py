"""Data-parallel training (retrieval.engine.distributed): 2 processes (gloo, CPU) train like 1.

The process test trains every retrieval method for 2 epochs x 2 steps of a global batch of
20 (10 per process) with ``train()`` itself, once in this process without a process group
and once in 2 spawned processes, and compares the logged losses, the validation metrics,
the final student weights (and CRD's memory banks).

Tolerance, and why: the models here have their BatchNorm layers removed. On CPU torch has
no SyncBatchNorm, so with BatchNorm each process would normalise with the statistics of its
own 10 images and the runs would differ by design (measured in docs/distributed.md). Without
it, what remains is float summation order: DDP sums the gradient of two half batches
instead of one batch, and the convolutions run on 10 instead of 20 images. Measured: losses
agree to ~1e-7 and weights to ~1e-7 after 4 Adam steps (lr 1e-3), so we ask for 1e-5 on
both, 100x the measured difference and far below one Adam step (1e-3 per weight): a
per-process loss or a missing gather (e.g. the metric loss on 10 instead of 20 images, or a
gradient twice too large) moves them by 1e-2 to 1e-1. RKD is the exception (tests/ddp_compare.py):
a few weights with gradients near 0 take Adam steps of another size, so the weights are held to
a mean |difference| of 2e-4 per tensor and 1e-3 for any one entry, the losses to 5e-4 relative.
The validation metrics, computed by rank 0 alone from those weights, must be equal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from pytorch_metric_learning.samplers import MPerClassSampler
from torch import nn
from torch.utils.data import BatchSampler

from ddp_compare import REL_LOSS, assert_same_weights, gloo_group, without_batchnorm
from retrieval.engine import TrainConfig, distributed, evaluate_model, seed_everything, train
from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.models import create_model

METHODS = {"none": {}, "at": {"beta": 1, "stages": [2, 3, 4]},
           "hmat": {"beta_pos": 0.1, "beta_act": 5, "beta_ch": 0.1},
           "rkd": {"distance_weight": 1, "angle_weight": 2}, "crd": {"weight": 0.8, "num_negatives": 16, "feat_dim": 8}}
ATOL_LOSS, ATOL_WEIGHT = 1e-5, 3e-5


class TinySet(torch.utils.data.Dataset):
    """``classes`` x ``per_class`` random 3x32x32 images, no augmentation."""

    def __init__(self, classes: int, per_class: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = np.repeat(np.arange(classes), per_class)
        self.images = torch.randn(len(self.labels), 3, 32, 32, generator=g) + \
            torch.as_tensor(self.labels, dtype=torch.float32)[:, None, None, None] / classes
        self.num_classes = classes

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": int(self.labels[i]), "index": int(i)}


def _build(name: str, fit) -> nn.Module:
    torch.manual_seed(0)
    teacher = without_batchnorm(create_model("small_cnn_s", embedding_dim=16, normalize=True))
    student = without_batchnorm(create_model("small_cnn_xs", embedding_dim=8, normalize=True))
    return without_batchnorm(build_method(  # also HMAT's connector
        name, student=student, teacher=teacher, train_labels=fit.labels,
        task_loss=build_task_loss("multi_similarity", miner="multi_similarity"), **METHODS[name]))


def _trainable(method) -> dict:
    return {k: v.clone() for k, v in method.state_dict().items() if not k.startswith("teacher.")}


def _train_all() -> dict:
    """Train every method on the same data from the same weights; return what to compare."""
    torch.set_num_threads(1)
    fit, val = TinySet(8, 6, seed=1), TinySet(4, 5, seed=2)
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=20, m_per_class=5, schedule="cosine", progress=False)
    out = {}
    for name in METHODS:
        method = _build(name, fit)
        seed_everything(0)
        result = train(method, fit, val, cfg, name=name)
        out[name] = {"history": result.history, "best_epoch": result.best_epoch, "state": _trainable(method)}
    return out


def _resume(out_dir: Path) -> dict:
    """CRD (memory banks, random negatives) for 2 epochs with a state file, and again from the
    state saved after epoch 1 (copied aside by the evaluator, which rank 0 runs in epoch 2)."""
    fit, val = TinySet(8, 6, seed=1), TinySet(4, 5, seed=2)
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=20, m_per_class=5, schedule="cosine", progress=False)
    state, epoch1, resumed = out_dir / "crd.state.pt", out_dir / "crd.epoch1.pt", out_dir / "crd.resumed.pt"

    def evaluator(model, dataset, cfg, desc):
        if state.exists() and not epoch1.exists():
            shutil.copy(state, epoch1)
            shutil.copy(state, resumed)
        return evaluate_model(model, dataset, cfg, desc)

    whole = _build("crd", fit)
    seed_everything(0)
    train(whole, fit, val, cfg, state_path=state, evaluator=evaluator)
    distributed.barrier()
    again = _build("crd", fit)
    seed_everything(123)  # the saved state restores every generator
    result = train(again, fit, val, cfg, state_path=resumed)
    return {"whole": _trainable(whole), "resumed": _trainable(again), "epochs": len(result.history)}


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    with gloo_group(rank, world, init_file):
        torch.save(_train_all(), f"{out_dir}/rank{rank}.pt")
        torch.save(_resume(Path(out_dir)), f"{out_dir}/resume{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    assert not distributed.is_distributed()
    single = _train_all()
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=True)
    return (single, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)],
            [torch.load(tmp / f"resume{r}.pt", weights_only=False) for r in range(2)])


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_like_one(runs, method):
    single, ranks, _ = runs
    one, two = single[method], ranks[0][method]
    assert len(one["history"]) == len(two["history"]) == 2
    for h1, h2 in zip(one["history"], two["history"]):
        assert h1.keys() == h2.keys()
        for key in h1:
            if key.startswith("loss/"):
                assert h2[key] == pytest.approx(h1[key], abs=ATOL_LOSS, rel=REL_LOSS), key
            elif key.startswith("val/"):
                assert h2[key] == h1[key], key
    assert one["best_epoch"] == two["best_epoch"]
    moved = 0.0
    for key, value in one["state"].items():
        assert_same_weights(two["state"][key], value, ATOL_WEIGHT, key)
        torch.testing.assert_close(ranks[1][method]["state"][key], two["state"][key], atol=0, rtol=0)  # ranks agree
        moved = max(moved, float((value - _initial_state(method)[key]).abs().max()))
    assert moved > 30 * ATOL_WEIGHT  # training moved the weights far more than the tolerance


def _initial_state(method: str) -> dict:
    return _trainable(_build(method, TinySet(8, 6, seed=1)))


def test_two_processes_resume_bit_for_bit(runs):
    """A 2-process run resumed from its epoch-1 state file ends with the weights (and CRD banks)
    of the uninterrupted 2-process run, exactly, on both ranks."""
    for r, saved in enumerate(runs[2]):
        assert saved["epochs"] == 2
        for key, value in saved["whole"].items():
            torch.testing.assert_close(saved["resumed"][key], value, atol=0, rtol=0, msg=f"rank {r} {key}")


def test_rank_slices_rebuild_the_single_process_batches():
    """The ranks' slices of each step, concatenated in rank order, are the single-process batch."""
    labels = np.repeat(np.arange(12), 7)
    cfg = TrainConfig(batch_size=30, m_per_class=5)
    np.random.seed(3)
    single = list(BatchSampler(MPerClassSampler(labels, m=5, batch_size=30, length_before_new_iter=len(labels)),
                               30, drop_last=True))
    dataset = type("D", (), {"labels": labels, "__len__": lambda self: len(labels)})()
    for world in (1, 3):
        per_rank = []
        for r in range(world):
            np.random.seed(3)  # every rank starts from the same random state
            per_rank.append(list(distributed.rank_batch_sampler(dataset, cfg, rank_index=r, world=world)))
        assert [sum((per_rank[r][step] for r in range(world)), []) for step in range(len(single))] == single
        for r in range(world):  # each slice holds whole groups of 5 images of one class
            for batch in per_rank[r]:
                groups = np.asarray(labels[batch]).reshape(-1, 5)
                assert (groups == groups[:, :1]).all()


def test_per_rank_batch_must_keep_class_groups_whole():
    dataset = type("D", (), {"labels": np.repeat(np.arange(10), 10), "__len__": lambda self: 100})()
    with pytest.raises(ValueError, match="5 images per process, not a multiple of m_per_class 10"):
        distributed.rank_batch_sampler(dataset, TrainConfig(batch_size=20, m_per_class=10), rank_index=0, world=4)
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        distributed.rank_batch_sampler(dataset, TrainConfig(batch_size=20, m_per_class=5), rank_index=0, world=3)
    sampler = distributed.rank_batch_sampler(dataset, TrainConfig(batch_size=20, m_per_class=5), rank_index=1, world=2)
    assert len(sampler) == 5 and all(len(b) == 10 for b in sampler)


def test_helpers_are_identity_without_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    x = torch.randn(3, 2)
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.gather(x) is x and distributed.gather_with_grad(x) is x and distributed.broadcast(x) is x
    method = build_method("none", student=create_model("small_cnn_xs", embedding_dim=8),
                          task_loss=build_task_loss("multi_similarity"))
    assert distributed.wrap_for_training(method, "cpu") == method.training_step
    assert not distributed.init_from_env()  # WORLD_SIZE unset: no process group
