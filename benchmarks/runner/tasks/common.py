"""What the three tasks' suites share: the environment a row records, a role's training options, the
result row, and the run id of a student (each task keeps what differs: its data, networks, teacher
identity, evaluation and notes).

The code reads the config through ``typed(cfg)`` (``benchmarks.runner.schema``): the task's pydantic model.
The identities below hash the dict's sections as written, so that a default added to the schema renames no
cached network."""

from __future__ import annotations

import platform
import sys
import time

import torch

from benchmarks.runner.config import config_hash
from benchmarks.runner.results_io import package_versions
from benchmarks.runner.schema import typed, typed_train
from benchmarks.runner.suite_runner import teacher_key
from retrieval.engine.trainer import TrainConfig
from retrieval.numerics import cpu_model, cpu_numerics


def environment(cfg: dict) -> dict:
    """What decides the numbers besides the config and the commit: versions, platform, threads, device."""
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "threads": torch.get_num_threads(), "cpu": cpu_numerics(), "cpu_model": cpu_model(),
            "device": typed(cfg).device or "cpu", "packages": package_versions()}


def train_options(cfg: dict, role: str, progress: bool, select_metric: str | None = None,
                  ks: bool = True) -> TrainConfig:
    """The ``train`` section merged with the role's own (``teacher``/``student``); ``select_metric`` is the
    task's default when the config names none, ``ks`` whether the evaluation's Recall@K ranks are passed."""
    spec = typed(cfg)
    opts = typed_train(cfg, role).model_dump(exclude_unset=True)  # TrainConfig's defaults fill the rest
    if select_metric is not None:
        opts.setdefault("select_metric", select_metric)
    if ks:
        opts["ks"] = tuple(spec.eval.ks)
    opts["progress"] = progress
    opts["device"] = spec.device or "cpu"
    return TrainConfig.from_dict(opts)


def result_row(cfg: dict, method: str, seed: int, run_id: str, chash: str, test: dict, seconds: float, commit: str,
               teacher_name: str, student_name: str, **epoch) -> dict:
    """A row of runs.csv; ``epoch`` holds the task's epoch columns (``best_epoch``, or ``epoch`` and ``select``),
    which sit between the training time and the commit."""
    spec = typed(cfg)
    return {"run_id": run_id, "suite": spec.suite, "dataset": spec.dataset.name, "teacher": teacher_name,
            "student": student_name, "method": method, "seed": seed, **test, "train_seconds": round(seconds, 2),
            **epoch, "commit": commit, "config_hash": chash, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}


def teacher_identity(cfg: dict) -> dict:
    """What decides an embedding teacher's weights (retrieval); the approximate indexes of the evaluation
    are extra metrics, not other weights."""
    evaluation = {k: v for k, v in cfg["eval"].items() if k != "index"}
    return {"dataset": cfg["dataset"], "teacher": cfg["teacher"], "train": cfg.get("train", {}),
            "task_loss": cfg["task_loss"], "eval": evaluation, "init_seed": cfg.get("init_seed"),
            **({"pretrain": cfg["pretrain"]} if cfg.get("pretrain") else {})}


def student_identity(cfg: dict, method: str) -> dict:
    """What decides a student's weights, for retrieval and classification runs: the teacher's identity as
    above, the teacher's own key (its seed design), the student network, the method and its options."""
    return {**teacher_identity(cfg), **teacher_key(cfg), "student": cfg["student"], "method": method,
            "method_options": cfg["methods"].get(method) or {}}


def run_id_of(cfg: dict, method_name: str, seed: int) -> tuple[str, str]:
    """(run id, config hash) of a retrieval or classification student run; the id names its row, JSON file
    and checkpoint."""
    return student_run_id(method_name, student_identity(cfg, method_name), seed)


def student_run_id(method: str, identity: dict, seed: int) -> tuple[str, str]:
    """(run id, config hash) of a student run whose weights ``identity`` decides."""
    chash = config_hash(identity)
    return f"{method}-{chash}-s{seed}", chash
