"""The training loop: sums a method's named losses, logs each, selects on validation.

It never asks which method it runs: any ``Distiller`` (or anything with
``training_step`` and ``trainable_parameters``) trains the same way. Nor does it ask
which task it serves: the evaluator is a hook (``evaluator(model, dataset, cfg, desc)
-> metrics dict``, retrieval metrics by default), batches come from a class-balanced
or a plain shuffled sampler, and the kept weights are those of the best validation
epoch or of the last epoch.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from retrieval.engine import distributed
from retrieval.engine.embed import compute_embeddings
from retrieval.engine.mixed_precision import MixedPrecision
from retrieval.engine.train_state import capture_rng, load_train_state, restore_rng, save_train_state, trainable_state


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
    (e.g. detection: images of several sizes, a varying number of boxes) batches with it."""
    collate = getattr(dataset, "collate_fn", None)
    if distributed.is_distributed():  # this rank's slice of every global batch (see engine.distributed)
        return DataLoader(dataset, batch_sampler=distributed.rank_batch_sampler(dataset, cfg),
                          num_workers=cfg.num_workers, collate_fn=collate)
    if cfg.sampler == "random":
        if len(dataset) < cfg.batch_size:
            raise ValueError(f"the training set has {len(dataset)} images, fewer than one batch of {cfg.batch_size}")
        return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                          num_workers=cfg.num_workers, collate_fn=collate)
    if cfg.batch_size % cfg.m_per_class:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of m_per_class {cfg.m_per_class}")
    sampler = MPerClassSampler(dataset.labels, m=cfg.m_per_class, batch_size=cfg.batch_size,
                               length_before_new_iter=len(dataset))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.num_workers, collate_fn=collate)


def evaluate_model(model, dataset, cfg: TrainConfig, desc: str = "eval") -> dict:
    from retrieval.metrics import evaluate

    emb, labels = compute_embeddings(model, dataset, num_workers=cfg.num_workers, device=cfg.device,
                                     progress=cfg.progress, desc=desc)
    return evaluate(emb, labels, ks=cfg.ks)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(method, train_set, val_set, cfg: TrainConfig, name: str = "run", evaluator=None,
          state_path=None, state_tag: str | None = None) -> TrainResult:
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
    another tag is ignored and overwritten."""
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
    for epoch in range(first_epoch, cfg.epochs + 1):
        method.train()
        # a fresh loader each epoch: its batches depend only on the random state at the epoch's start
        # (MPerClassSampler shuffles its own label list in place), which the saved state restores
        loader = make_train_loader(train_set, cfg)
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"{name} epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress or not distributed.is_main())
        for batch in bar:
            batch = {k: _to_device(v, cfg) for k, v in batch.items()}
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
            bar.set_postfix(loss=f"{float(total.detach()):.4f}")
        scheduler.step()
        record = {"epoch": epoch, **{f"loss/{k}": v / max(1, len(loader)) for k, v in sums.items()}}
        if val_set is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            # under torchrun rank 0 evaluates alone (the weights are the same on every rank)
            val = evaluator(method.student, val_set, cfg, desc=f"{name} val") if distributed.is_main() else None
            val = distributed.broadcast_object(val)
            record.update({f"val/{k}": v for k, v in val.items()})
            if cfg.select == "best" and val[cfg.select_metric] > best:
                best, best_epoch = val[cfg.select_metric], epoch
                best_state = copy.deepcopy(trainable_state(method))
        history.append(record)
        extra = ({"ranks_rng": distributed.all_gather_object(capture_rng())}
                 if state_path and distributed.is_distributed() else {})
        if state_path and distributed.is_main():
            save_train_state(state_path, tag=state_tag, method=trainable_state(method),
                             optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                             scaler=precision.state_dict(), rng=capture_rng(), history=history, best=best,
                             best_epoch=best_epoch, best_state=best_state, step=step, epoch=epoch,
                             seconds=time.perf_counter() - start, **extra)
    seconds = time.perf_counter() - start
    if cfg.select == "last":
        best_epoch = cfg.epochs
    else:
        method.load_state_dict(best_state, strict=False)
    best_val = {k[4:]: v for k, v in history[best_epoch - 1].items() if k.startswith("val/")}
    result = TrainResult(best_epoch=best_epoch, best_val=best_val, seconds=seconds, history=history)
    if state_path and distributed.is_main():
        save_train_state(state_path, tag=state_tag, complete=True, method=trainable_state(method),
                         result=asdict(result))
    return result


def _to_device(value, cfg: TrainConfig):
    if not torch.is_tensor(value):
        return value
    value = value.to(cfg.device)
    return value.contiguous(memory_format=torch.channels_last) if cfg.channels_last and value.dim() == 4 else value
