"""Training with loader workers: one persistent loader per ``train`` call, started with fork
(Linux), whose batches and augmentations depend only on the random state at each epoch's
start. So a run resumed after epoch k ends exactly like an uninterrupted one, 1 and 2
workers draw the same batches, and the num_workers=0 path is the loader it always was."""

import multiprocessing
import sys

import numpy as np
import pytest
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader

from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, compute_embeddings, loaders, make_train_loader, seed_everything, train
from retrieval.engine import distributed
from retrieval.engine.train_state import capture_rng, load_train_state
from retrieval.metric_losses import build_task_loss
from retrieval.methods import build_method
from retrieval.models import create_model

OPTS = {"classes": 20, "per_class": 10, "size": 16}
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is the Linux context")


@pytest.fixture(scope="module")
def data():
    return {s: build_dataset("synthetic", None, s, **OPTS) for s in ("fit", "val")}


def _cfg(**kw):
    base = dict(epochs=2, batch_size=20, m_per_class=5, progress=False, lr=3e-3, schedule="cosine")
    return TrainConfig(**{**base, **kw})


def _method(seed=0):
    seed_everything(0)
    model = create_model("small_cnn_xs", embedding_dim=8)
    method = build_method("none", student=model,
                          task_loss=build_task_loss("multi_similarity", miner="multi_similarity"))
    seed_everything(seed)  # the run's seed: batch order and augmentation
    return method


def _weights(method):
    return {k: v.clone() for k, v in method.student.state_dict().items()}


def _epochs(loader, n):
    return [[{k: v.clone() for k, v in batch.items()} for batch in loader] for _ in range(n)]


def _same_batches(a, b):
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        assert len(ea) == len(eb)
        for ba, bb in zip(ea, eb):
            assert ba.keys() == bb.keys()
            for k in ba:
                assert torch.equal(ba[k], bb[k]), k


class _Crash(RuntimeError):
    pass


def _crash_after(epochs):
    from retrieval.engine import evaluate_model
    calls = {"n": 0}

    def evaluator(model, dataset, cfg, desc):
        calls["n"] += 1
        if calls["n"] > epochs:
            raise _Crash("killed")
        return evaluate_model(model, dataset, cfg, desc)
    return evaluator


@pytest.mark.parametrize("sampler", ["m_per_class", "random"])
def test_resumed_run_with_workers_equals_uninterrupted_run(data, tmp_path, sampler):
    cfg = _cfg(num_workers=2, sampler=sampler)
    reference = _method()
    expected = train(reference, data["fit"], data["val"], cfg)

    state = tmp_path / "run.state.pt"
    with pytest.raises(_Crash):  # dies while validating epoch 2: epoch 1's state is on disk
        train(_method(), data["fit"], data["val"], cfg, evaluator=_crash_after(1), state_path=state)
    assert load_train_state(state)["epoch"] == 1
    resumed_method = _method(seed=123)  # a fresh process would not have the crashed run's random state
    resumed = train(resumed_method, data["fit"], data["val"], cfg, state_path=state)

    assert resumed.history == expected.history
    assert resumed.best_epoch == expected.best_epoch
    for k, v in _weights(reference).items():
        assert torch.equal(v, _weights(resumed_method)[k]), k


def test_one_and_two_workers_draw_the_same_batches_and_augmentations(data):
    runs = []
    for workers in (1, 2):
        seed_everything(3)
        loader = make_train_loader(data["fit"], _cfg(num_workers=workers))
        runs.append(_epochs(loader, 2))
        loaders.close_loader(loader)
        runs[-1].append(capture_rng())  # the main process drew the same from its generators
    _same_batches(runs[0][:2], runs[1][:2])
    assert torch.equal(runs[0][2]["torch"], runs[1][2]["torch"])
    assert torch.equal(runs[0][2]["numpy"]["keys"], runs[1][2]["numpy"]["keys"])
    first, second = runs[0][0], runs[0][1]
    assert not torch.equal(first[0]["index"], second[0]["index"])  # each epoch draws new batches


def test_augmentation_follows_the_item_position_not_the_worker(data):
    """An index drawn twice in an epoch is augmented independently; the same (seed, index)
    gives the same item in the main process and in a worker, and the main process's
    generators are left as they were."""
    items = loaders.SeededItems(data["fit"])
    seed_everything(0)
    before = torch.get_rng_state()
    a, b, c = items[(11, 4)], items[(11, 4)], items[(12, 4)]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], c["image"])
    loader = DataLoader(items, batch_sampler=[[(11, 4), (12, 4)]], num_workers=1,
                        multiprocessing_context=loaders.worker_context())
    (batch,) = list(loader)
    assert torch.equal(batch["image"][0], a["image"]) and torch.equal(batch["image"][1], c["image"])
    assert loaders.item_seed(5, 0) != loaders.item_seed(5, 1) != loaders.item_seed(6, 1)


class _CountingFork(type(multiprocessing.get_context("fork"))):
    """The fork context, counting the worker processes started through it."""
    started = []

    class Process(multiprocessing.get_context("fork").Process):
        def start(self):
            _CountingFork.started.append(self._start_method)
            super().start()


@linux_only
def test_workers_are_forked_once_per_train_call(data, monkeypatch):
    assert loaders.worker_context().get_start_method() == "fork"
    loader = make_train_loader(data["fit"], _cfg(num_workers=2))
    assert loader.persistent_workers and loader.multiprocessing_context.get_start_method() == "fork"

    monkeypatch.setattr(loaders, "worker_context", _CountingFork)
    drawn = []
    batches_of = loaders.EpochSeededBatchSampler.__iter__

    def counting_batches(self):
        drawn.append(1)
        yield from batches_of(self)
    monkeypatch.setattr(loaders.EpochSeededBatchSampler, "__iter__", counting_batches)
    _CountingFork.started = []
    train(_method(), data["fit"], None, _cfg(num_workers=2, epochs=3, select="last"))
    assert _CountingFork.started == ["fork", "fork"]  # 2 workers for 3 epochs (a loader per epoch: 6)
    assert len(drawn) == 3  # one epoch drawn per epoch (none started by the progress bar and dropped)

    _CountingFork.started = []
    compute_embeddings(create_model("small_cnn_xs", embedding_dim=8), data["val"], num_workers=2, progress=False)
    assert _CountingFork.started == ["fork", "fork"]  # the evaluation loader's workers are forked too


def test_persistent_workers_serve_every_epoch_and_stop_at_the_end(data):
    import os

    class WithPid(torch.utils.data.Dataset):
        labels = data["fit"].labels

        def __len__(self):
            return len(data["fit"])

        def __getitem__(self, i):
            return {**data["fit"][i], "pid": os.getpid()}

    loader = make_train_loader(WithPid(), _cfg(num_workers=2))
    pids = [set(batch["pid"].tolist()) for epoch in _epochs(loader, 3) for batch in epoch]
    workers = [w.pid for w in loader._iterator._workers]
    assert set().union(*pids) == set(workers) and os.getpid() not in workers and len(workers) == 2
    loaders.close_loader(loader)
    assert loader._iterator is None


def test_evaluation_with_workers_equals_evaluation_without(data):
    model = create_model("small_cnn_xs", embedding_dim=8)
    seed_everything(0)
    plain = compute_embeddings(model, data["val"], batch_size=64, num_workers=0, progress=False)
    state = torch.get_rng_state()
    with_workers = compute_embeddings(model, data["val"], batch_size=64, num_workers=2, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator: the global one is untouched
    assert np.array_equal(plain[0], with_workers[0]) and np.array_equal(plain[1], with_workers[1])


def test_distributed_slices_with_workers_are_the_single_process_batches(data, monkeypatch):
    """Simulated ranks of 2 (the real torchrun runs are in test_distributed): each rank's
    items are its slice of the single-process global batch, with the same augmentation."""
    cfg = _cfg(num_workers=1, batch_size=20, m_per_class=5)
    seed_everything(7)
    single = make_train_loader(data["fit"], cfg)
    whole = _epochs(single, 1)[0]
    loaders.close_loader(single)
    ranks = []
    for r in range(2):
        monkeypatch.setattr(distributed, "is_distributed", lambda: True)
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        shared = []
        monkeypatch.setattr(distributed, "broadcast_object", lambda obj: shared.append(obj) or obj)
        seed_everything(7)  # numpy's state (MPerClassSampler) agrees across ranks
        if r == 1:  # torch's need not: rank 0's epoch seed is used
            torch.manual_seed(8)
            monkeypatch.setattr(distributed, "broadcast_object", lambda obj: rank0_seed)
        loader = make_train_loader(data["fit"], cfg)
        ranks.append(_epochs(loader, 1)[0])
        loaders.close_loader(loader)
        if r == 0:
            (rank0_seed,) = shared
    monkeypatch.undo()
    assert len(ranks[0]) == len(ranks[1]) == len(whole)
    for g, b0, b1 in zip(whole, *ranks):
        for k in g:
            assert torch.equal(torch.cat([b0[k], b1[k]]), g[k]), k


# --------------------------------------------------------------------------- num_workers = 0: as before

def _previous_loader(dataset, cfg):
    """make_train_loader before loader workers were handled (single process, m_per_class)."""
    sampler = MPerClassSampler(dataset.labels, m=cfg.m_per_class, batch_size=cfg.batch_size,
                               length_before_new_iter=len(dataset))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, num_workers=0)


@pytest.mark.parametrize("sampler", ["m_per_class", "random"])
def test_without_workers_the_loader_and_its_random_streams_are_unchanged(data, sampler):
    cfg = _cfg(num_workers=0, sampler=sampler)
    runs = []
    for build in (make_train_loader, _previous_loader if sampler == "m_per_class" else None):
        if build is None:  # the previous random loader
            def build(dataset, cfg):
                return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=0)
        seed_everything(5)
        epochs = [[{k: v.clone() for k, v in b.items()} for b in build(data["fit"], cfg)] for _ in range(2)]
        runs.append((epochs, capture_rng()))
    loader = make_train_loader(data["fit"], cfg)
    assert not loader.persistent_workers and loader.num_workers == 0
    _same_batches(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1]["torch"], runs[1][1]["torch"])
    assert torch.equal(runs[0][1]["numpy"]["keys"], runs[1][1]["numpy"]["keys"])
    assert runs[0][1]["python"] == runs[1][1]["python"]


# the per-epoch loss of _tiny_run, computed with the trainer as it was before loader workers
# were handled (num_workers 0): the single-process run must keep reproducing it
PINNED_LOSSES = [1.1839786171913147, 1.0963638722896576]


def _tiny_run(data):
    method = _method()
    result = train(method, data["fit"], None, _cfg(num_workers=0, epochs=2, select="last"))
    return [h["loss/task"] for h in result.history]


def test_without_workers_a_tiny_run_reproduces_its_pinned_losses(data):
    assert _tiny_run(data) == pytest.approx(PINNED_LOSSES, rel=1e-6)
