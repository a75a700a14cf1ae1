"""Backbones pretrained on a disjoint generated set: the embedded tracks' ImageNet weights.

At full scale every network starts from ImageNet weights, which fixes the starting point
and keeps seed-to-seed spread small. The embedded default has no such weights, so the
config's ``pretrain`` section makes them: each architecture (teacher and student) is
trained once, with the task loss, on the training half of another dataset config (by
default the generator with another seed and more classes: no class, image or generator
draw in common with the benchmark's own splits), and cached like the teachers. Every
teacher and student then starts from that backbone with a new embedding layer.

    pretrain:
      dataset: {options: {seed: 1, classes: 400}}   # the generated set; merged over the config's
                                                     # dataset section when that is synthetic too
      train: {epochs: 20, lr: 0.002}                 # merged over the config's train section
      seed: 7                                        # optional: the run's initial weights and batch order
                                                     # (full replicates draw it per replicate; without it the
                                                     # weights come from init_seed, or 0, and batches from 0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.runner.config import (  # noqa: F401 (the section's helpers, re-exported)
    PRETRAIN_KEYS as KEYS,
    SPLIT_KEYS,
    config_hash,
    deep_merge,
    pretrain_dataset_spec,
    pretrain_section,
)
from benchmarks.runner.results_io import atomic_write_via, file_lock
from benchmarks.runner.schema import typed
from benchmarks.runner.suite_runner import train_state_path
from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, distributed, seed_everything, train
from retrieval.methods import build_method
from retrieval.metric_losses import build_task_loss
from retrieval.utils.cache_files import load_torch

VALIDATION_KEYS = ("eval_every", "select", "select_metric", "progress")  # pretraining has no validation


def _identity(cfg: dict, role: str) -> dict:
    spec = {k: v for k, v in cfg[role].items() if k != "train"}
    train_options = {k: v for k, v in _train_options(cfg).items() if k not in VALIDATION_KEYS}
    seed = pretrain_section(cfg).get("seed")
    return {"network": spec, "dataset": pretrain_dataset_spec(cfg), "train": train_options,
            "task_loss": cfg.get("task_loss"), "init_seed": cfg.get("init_seed"),
            **({"seed": seed} if seed is not None else {})}


def _train_options(cfg: dict) -> dict:
    return deep_merge(cfg.get("train", {}), pretrain_section(cfg).get("train") or {})


def pretrained_path(cfg: dict, role: str, cache_dir: Path) -> Path:
    """Where the pretrained backbone of ``cfg[role]`` is cached (named by what decides its weights)."""
    spec = typed(cfg)
    return (Path(cache_dir) / "pretrained" / spec.dataset.name /
            f"{getattr(spec, role).arch}-{config_hash(_identity(cfg, role))}.pt")


def ensure_pretrained(cfg: dict, role: str, cache_dir: Path, build_model, progress: bool = False,
                      log=print, task_loss=build_task_loss) -> Path:
    """Pretrain the backbone of ``cfg[role]`` unless it is cached; return its file.

    ``build_model(spec, dataset)`` makes the network of a role's typed section ``spec`` trained on the pretraining ``dataset``
    (an embedding network, or a classifier with that set's classes); ``task_loss(**options)``
    builds the config's task loss (the metric losses by default). The run is resumable (its training
    state is saved after each epoch beside the file) and its weights depend only on the
    config: the initial weights and batches come from the section's ``seed`` when it has one, else the
    initial weights from ``init_seed`` (0 when unset) and batches from seed 0. A cached file that does not
    load is moved aside and pretrained again (``retrieval.utils.cache_files``)."""
    path = pretrained_path(cfg, role, cache_dir)
    # a cached file is checked (rank 0 under torchrun): a damaged one is moved aside and pretrained again
    if distributed.broadcast_object(load_torch(path) is not None if distributed.is_main() else None):
        return path
    if distributed.is_distributed():  # the ranks train it together (a lock held by one rank would deadlock)
        return _pretrain(cfg, role, path, build_model, progress, log, task_loss)
    with file_lock(path):  # processes sharing a cache (seeds split over processes) pretrain it once
        return path if path.exists() else _pretrain(cfg, role, path, build_model, progress, log, task_loss)


def _pretrain(cfg: dict, role: str, path: Path, build_model, progress: bool, log, task_loss) -> Path:
    spec = pretrain_dataset_spec(cfg)
    data = build_dataset(spec["name"], spec.get("root"), "train", **dict(spec.get("options") or {}))
    run = typed(cfg)
    seed = pretrain_section(cfg).get("seed")
    seed_everything((run.init_seed or 0) if seed is None else seed)
    model = build_model(getattr(run, role), data)
    seed_everything(0 if seed is None else seed)
    ks = run.eval.ks if getattr(run, "eval", None) is not None else (1,)  # detection has no eval section
    opts = {**_train_options(cfg), "select": "last", "progress": progress, "device": run.device or "cpu",
            "ks": tuple(ks)}
    # a suite without a task_loss section (detection: the detector's own losses) pretrains with the
    # default of ``task_loss`` (cross-entropy for a classifier)
    method = build_method("none", student=model, task_loss=task_loss(**(cfg.get("task_loss") or {})))
    state = train_state_path(path)
    result = train(method, data, None, TrainConfig.from_dict(opts), name=f"pretrain {role}", state_path=state)
    if distributed.is_main():
        weights = model.backbone.state_dict()
        atomic_write_via(path, lambda tmp: torch.save(weights, tmp))
        state.unlink(missing_ok=True)
        log(f"pretrained the {role} backbone {getattr(run, role).arch} on {len(data)} images of {data.num_classes} "
            f"classes in {result.seconds:.0f}s")
    distributed.barrier()
    return path


def load_backbone(model, path: Path):
    """Put the pretrained backbone weights of ``path`` into ``model`` (its embedding layer stays new)."""
    model.backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
