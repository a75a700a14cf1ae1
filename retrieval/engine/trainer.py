"""The training loop: sums a method's named losses, logs each, selects on validation.

It never asks which method it runs: any ``Distiller`` (or anything with
``training_step`` and ``trainable_parameters``) trains the same way. Nor does it ask
which task it serves: the evaluator is a hook (``evaluator(model, dataset, cfg, desc)
-> metrics dict``, retrieval metrics by default), batches come from a class-balanced
or a plain shuffled sampler, and the kept weights are those of the best validation
epoch or of the last epoch.

Progress goes to a callback when one is given (``train(..., progress_callback=fn)``) or
installed around the call (``with reporting_progress(fn): ...``, which is how
``benchmarks.runner.progress`` follows the runs of a job): ``fn(event)`` receives plain dicts
(see ``train``). The callback only reads values the loop computes anyway, so it changes
no number; under torchrun only rank 0 calls it. ``TrainConfig.progress`` is the loop's
own tqdm bar, independent of any callback.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from tqdm.auto import tqdm

from retrieval.engine import distributed, loaders
from retrieval.engine.embed import compute_embeddings
from retrieval.engine.mixed_precision import MixedPrecision
from retrieval.engine.train_state import capture_rng, load_train_state, restore_rng, save_train_state, trainable_state
from retrieval.metrics import evaluate

OPTIMIZERS = ("adam", "sgd")
SAMPLERS = ("m_per_class", "random")
SELECT = ("best", "last")
SCHEDULES = ("step", "cosine")


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-5
    milestones: tuple = ()
    gamma: float = 0.1
    schedule: str = "step"           # step: x gamma at each milestone | cosine: cosine decay to 0 over the epochs
    batch_size: int = 128
    m_per_class: int = 5
    eval_every: int = 1
    select_metric: str = "recall@1"
    ks: tuple = (1, 2, 4, 8)
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True
    optimizer: str = "adam"          # adam | sgd
    momentum: float = 0.9            # sgd only
    sampler: str = "m_per_class"     # m_per_class (m images of each class per batch) | random (shuffled)
    select: str = "best"             # best: epoch with the best select_metric on val | last: the last epoch
    amp: bool = False                # mixed precision: float16 + loss scaling on CUDA, bfloat16 on CPU
    channels_last: bool = False      # NHWC memory layout for models and image batches (faster convolutions on GPU)
    max_steps: int | None = None     # end each epoch after this many steps (dry runs); None: the whole epoch

    def __post_init__(self):
        for option, allowed in (("optimizer", OPTIMIZERS), ("sampler", SAMPLERS), ("select", SELECT),
                                ("schedule", SCHEDULES)):
            if getattr(self, option) not in allowed:
                raise ValueError(f"unknown {option} {getattr(self, option)!r}; expected one of {list(allowed)}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training option(s) {sorted(unknown)}; expected some of "
                             f"{sorted(cls.__dataclass_fields__)}")
        return cls(**d)


@dataclass
class TrainResult:
    """``best_epoch`` is the epoch whose weights were kept (the last one with ``select="last"``);
    ``best_val`` its validation metrics (empty without a validation set)."""

    best_epoch: int
    best_val: dict
    seconds: float
    history: list = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the message names the method, step and term."""


def make_train_loader(dataset, cfg: TrainConfig) -> DataLoader:
    """Batches of ``batch_size``: with ``sampler="m_per_class"``, ``m_per_class`` images of each
    class (MPerClassSampler); with ``sampler="random"``, a reshuffled pass over the dataset.
    Incomplete last batches are dropped either way. A dataset with a ``collate_fn`` attribute
    (e.g. detection: images of several sizes, a varying number of boxes) batches with it.

    With ``num_workers > 0`` the loader is meant to be built once and iterated every epoch:
    persistent workers started with ``loaders.worker_context()`` (fork on Linux), each epoch's
    batches drawn afresh at its start, and every item seeded from an epoch seed and its
    position (see ``retrieval.engine.loaders``), so the batches and augmentations do not depend
    on the number of workers and a resumed run draws what an uninterrupted one does. With
    ``num_workers == 0`` it is the plain loader, built afresh each epoch."""
    collate = getattr(dataset, "collate_fn", None)
    if cfg.num_workers > 0:
        return _worker_train_loader(dataset, cfg, collate)
    # the batch sampler a DataLoader builds itself from batch_size/shuffle/sampler/drop_last: the same draws
    return DataLoader(dataset, batch_sampler=epoch_batches(dataset, cfg), collate_fn=collate)


def epoch_batches(dataset, cfg: TrainConfig):
    """One epoch's batch sampler: under torchrun this rank's slice of every global batch (see
    ``engine.distributed``); else a shuffled pass (``sampler="random"``) or MPerClassSampler's
    ``m_per_class`` images of each class, incomplete last batches dropped."""
    if distributed.is_distributed():
        return distributed.rank_batch_sampler(dataset, cfg)
    if cfg.sampler == "random":
        if len(dataset) < cfg.batch_size:
            raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch of {cfg.batch_size}")
        return BatchSampler(RandomSampler(dataset), cfg.batch_size, drop_last=True)
    if cfg.batch_size % cfg.m_per_class:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of m_per_class {cfg.m_per_class}")
    sampler = MPerClassSampler(dataset.labels, m=cfg.m_per_class, batch_size=cfg.batch_size,
                               length_before_new_iter=len(dataset))
    return BatchSampler(sampler, cfg.batch_size, drop_last=True)


def _worker_train_loader(dataset, cfg: TrainConfig, collate) -> DataLoader:
    """The persistent, epoch-seeded loader of ``make_train_loader`` for ``num_workers > 0``
    (``epoch_batches`` builds each epoch's batches afresh)."""
    if distributed.is_distributed():  # this rank's slice of every global batch, at its place in the global batch
        offset = distributed.rank() * (cfg.batch_size // distributed.world_size())
        share_seed = distributed.broadcast_object  # rank 0's epoch seed on every rank
    else:
        offset, share_seed = 0, None
    batches = loaders.EpochSeededBatchSampler(lambda: epoch_batches(dataset, cfg), stride=cfg.batch_size,
                                              offset=offset, share_seed=share_seed)
    return DataLoader(loaders.SeededItems(dataset), batch_sampler=batches, num_workers=cfg.num_workers,
                      collate_fn=collate, persistent_workers=True, multiprocessing_context=loaders.worker_context(),
                      generator=loaders.loader_generator())


def evaluate_model(model, dataset, cfg: TrainConfig, desc: str = "eval") -> dict:
    emb, labels = compute_embeddings(model, dataset, num_workers=cfg.num_workers, device=cfg.device,
                                     progress=cfg.progress, desc=desc)
    return evaluate(emb, labels, ks=cfg.ks)


_PROGRESS_CALLBACK: contextvars.ContextVar = contextvars.ContextVar("progress_callback", default=None)


@contextlib.contextmanager
def reporting_progress(callback):
    """Within the block, every ``train`` call given no ``progress_callback`` of its own sends its
    events to ``callback`` (None: to none)."""
    token = _PROGRESS_CALLBACK.set(callback)
    try:
        yield callback
    finally:
        _PROGRESS_CALLBACK.reset(token)


def current_progress_callback():
    """The callback installed by the innermost ``reporting_progress`` (None: none), so that a caller
    can install one that wraps it (e.g. a run tracker that sees every event and forwards them)."""
    return _PROGRESS_CALLBACK.get()


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(method, train_set, val_set, cfg: TrainConfig, name: str = "run", evaluator=None,
          state_path=None, state_tag: str | None = None, progress_callback=None) -> TrainResult:
    """Train ``method`` on ``train_set``. With ``cfg.select == "best"`` the student (and its
    trainable extras) ends with the weights of the epoch with the best ``select_metric`` on
    ``val_set``; with ``"last"`` it keeps the last epoch's weights, and ``val_set`` (optional)
    only fills the history. ``evaluator(model, dataset, cfg, desc) -> dict`` scores a model
    (default: ``evaluate_model``, the retrieval metrics).

    ``state_path``: where the training state is saved after every epoch (see
    ``retrieval.engine.train_state``). If the file exists when ``train`` starts, the run
    continues from it, ending with what an uninterrupted run would have given (same
    config and code; on CPU, bit for bit). A finished run's file is kept, marked
    ``complete``, so calling ``train`` again returns its result without training.
    ``state_tag`` (e.g. the code's commit) is saved with the state; a file saved under
    another tag is ignored and overwritten.

    ``progress_callback(event)`` (default: the one installed by ``reporting_progress``, if any)
    is called on rank 0 with dicts carrying ``event`` and ``run`` (``name``): ``epoch_start``
    (``epoch``, ``epochs``, ``steps``: batches in the epoch, ``global_step``: steps done before it),
    ``step`` (``epoch``, ``epochs``, ``step``: 1-based within the epoch, ``steps``, ``loss``: the
    batch's total loss, ``global_step``: 1-based over the whole run, ``terms``: ``{term: value}`` as
    logged, ``lr``: the first parameter group's), ``eval`` (``epoch``, ``epochs``, ``split``: "val")
    before each validation, ``epoch`` (``epoch``, ``epochs``, ``loss``: the epoch's mean total loss,
    ``metric`` and ``value``: the selection metric on val, or None, ``global_step``, ``terms``: the
    epoch's mean of each term, ``val``: every validation metric of the epoch, or None) after each
    epoch, and ``end`` (``seconds``) when training is done. A resumed run sends the events of the
    epochs it trains, from the first one not saved; a finished one (``complete``) sends none."""
    report = progress_callback or _PROGRESS_CALLBACK.get()
    if not distributed.is_main():
        report = None
    evaluator = evaluator or evaluate_model
    if cfg.select == "best" and val_set is None:
        raise ValueError("select='best' needs a validation set; use select='last' to train without one")
    method.to(cfg.device)
    if cfg.channels_last:
        method.to(memory_format=torch.channels_last)
    params = method.trainable_parameters()
    optimizer = make_optimizer(params, cfg)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.schedule == "cosine"
                 else torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma))
    precision = MixedPrecision(cfg.amp, cfg.device)
    history, best, best_state, best_epoch, step, first_epoch, elapsed = [], -math.inf, None, 0, 0, 1, 0.0
    saved = load_train_state(state_path) if state_path else None
    if saved is not None and saved.get("tag") != state_tag:
        saved = None
    if saved is not None:
        method.load_state_dict(saved["method"], strict=False)
        if saved.get("complete"):
            return TrainResult(**saved["result"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        precision.load_state_dict(saved["scaler"])
        ranks_rng = saved.get("ranks_rng")  # per-rank generators of a run under torchrun
        restore_rng(ranks_rng[distributed.rank()] if ranks_rng and len(ranks_rng) == distributed.world_size()
                    else saved["rng"])
        history, best, best_epoch, best_state = saved["history"], saved["best"], saved["best_epoch"], saved["best_state"]
        step, first_epoch, elapsed = saved["step"], saved["epoch"] + 1, saved["seconds"]
    start = time.perf_counter() - elapsed
    training_step = distributed.wrap_for_training(method, cfg.device)  # method.training_step in one process
    # with workers, one loader for the whole call (persistent workers; each epoch's batches and item seeds
    # are drawn at its start from the random state the saved state restores: see engine.loaders)
    worker_loader = make_train_loader(train_set, cfg) if cfg.num_workers > 0 and first_epoch <= cfg.epochs else None
    try:  # the loader's workers end with the call, also when it stops early (a non-finite loss, a pruned trial)
        for epoch in range(first_epoch, cfg.epochs + 1):
            method.train()
            # without workers, a fresh loader each epoch: its batches depend only on the random state at the
            # epoch's start (MPerClassSampler shuffles its own label list in place), which the saved state restores
            loader = worker_loader if worker_loader is not None else make_train_loader(train_set, cfg)
            sums: dict[str, float] = {}
            bar = tqdm(loader if worker_loader is None else loaders.Lazy(loader),
                       desc=f"{name} epoch {epoch}/{cfg.epochs}", leave=False,
                       disable=not cfg.progress or not distributed.is_main())
            steps = len(loader) if cfg.max_steps is None else min(len(loader), cfg.max_steps)
            if report:
                report({"event": "epoch_start", "run": name, "epoch": epoch, "epochs": cfg.epochs, "steps": steps,
                        "epoch_steps": len(loader), "global_step": step})  # steps: this epoch's (max_steps); epoch_steps:
                # a whole epoch's; global_step: the steps done before this epoch (a resumed run's earlier ones too)
            for batch_index, batch in enumerate(bar if cfg.max_steps is None else itertools.islice(bar, steps), 1):
                batch = {k: _to_device(v, cfg) for k, v in batch.items()}
                batch["epoch"] = epoch  # 1-based, for methods whose terms ramp up (dkd's warm-up)
                with precision.autocast():
                    _, losses = training_step(batch)
                step += 1
                logged = losses
                if distributed.is_distributed():  # the mean over ranks: every rank logs and checks the same values
                    mean = distributed.average(torch.stack([v.detach().float() for v in losses.values()]))
                    logged = dict(zip(losses, mean))
                for term, value in logged.items():
                    if not torch.isfinite(value).all():
                        kept = f"the last good state is kept in {state_path}" if state_path else "no state file was kept"
                        raise NonFiniteLossError(f"{name}: loss term {term!r} is {value.item()} at epoch {epoch}, "
                                                 f"step {step}; {kept}")
                total = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                precision.backward_and_step(total, optimizer)
                for term, value in logged.items():
                    sums[term] = sums.get(term, 0.0) + float(value.detach())
                batch_loss = float(total.detach())
                bar.set_postfix(loss=f"{batch_loss:.4f}")
                if report:
                    report({"event": "step", "run": name, "epoch": epoch, "epochs": cfg.epochs, "step": batch_index,
                            "steps": steps, "loss": batch_loss, "global_step": step,
                            "terms": {term: float(value.detach()) for term, value in logged.items()},
                            "lr": optimizer.param_groups[0]["lr"]})
            scheduler.step()
            record = {"epoch": epoch, **{f"loss/{k}": v / max(1, steps) for k, v in sums.items()}}
            if val_set is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                if report:
                    report({"event": "eval", "run": name, "epoch": epoch, "epochs": cfg.epochs, "split": "val"})
                # under torchrun rank 0 evaluates alone (the weights are the same on every rank)
                val = evaluator(method.student, val_set, cfg, desc=f"{name} val") if distributed.is_main() else None
                val = distributed.broadcast_object(val)
                record.update({f"val/{k}": v for k, v in val.items()})
                if cfg.select == "best" and val[cfg.select_metric] > best:
                    best, best_epoch = val[cfg.select_metric], epoch
                    best_state = copy.deepcopy(trainable_state(method))
            history.append(record)
            if report:
                val_value = record.get(f"val/{cfg.select_metric}")
                report({"event": "epoch", "run": name, "epoch": epoch, "epochs": cfg.epochs,
                        "loss": sum(v for k, v in record.items() if k.startswith("loss/")),
                        "metric": cfg.select_metric if val_value is not None else None, "value": val_value,
                        "global_step": step, "terms": {k[5:]: v for k, v in record.items() if k.startswith("loss/")},
                        "val": {k[4:]: v for k, v in record.items() if k.startswith("val/")} or None})
            extra = ({"ranks_rng": distributed.all_gather_object(capture_rng())}
                     if state_path and distributed.is_distributed() else {})
            if state_path and distributed.is_main():
                save_train_state(state_path, tag=state_tag, method=trainable_state(method),
                                 optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                 scaler=precision.state_dict(), rng=capture_rng(), history=history, best=best,
                                 best_epoch=best_epoch, best_state=best_state, step=step, epoch=epoch,
                                 seconds=time.perf_counter() - start, **extra)
    finally:
        if worker_loader is not None:
            loaders.close_loader(worker_loader)
    seconds = time.perf_counter() - start
    if cfg.select == "last":
        best_epoch = cfg.epochs
    else:
        method.load_state_dict(best_state, strict=False)
    best_val = {k[4:]: v for k, v in history[best_epoch - 1].items() if k.startswith("val/")}
    result = TrainResult(best_epoch=best_epoch, best_val=best_val, seconds=seconds, history=history)
    if report:
        report({"event": "end", "run": name, "seconds": seconds})
    if state_path and distributed.is_main():
        save_train_state(state_path, tag=state_tag, complete=True, method=trainable_state(method),
                         result=asdict(result))
    return result


def _to_device(value, cfg: TrainConfig):
    if not torch.is_tensor(value):
        return value
    value = value.to(cfg.device)
    return value.contiguous(memory_format=torch.channels_last) if cfg.channels_last and value.dim() == 4 else value
