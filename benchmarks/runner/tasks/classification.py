"""The classification suite: a cached teacher classifier per (dataset, architecture, seed),
then one student per (method, seed) from the same initial weights, scored on the test
split with top-1 and top-5 accuracy.

The methods are the registry's (``none``, ``kd``, ``at``, ``rkd``, ``crd``, ``hmat``,
``hmat+kd``, ...), built exactly as in the retrieval track; here the task loss is
cross-entropy on the logits and the models are ``ClassifierNet``s. Reported accuracy
is that of the last epoch (``select: last``, RepDistiller's reporting; the model trains
on the whole ``train`` split) or of the best validation epoch (``select: best``; it
trains on ``fit`` and is selected on ``val``). The tables say which.

Under ``torchrun`` every process trains each job together and rank 0 alone scores and
writes (see docs/distributed.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from benchmarks.runner.preflight import build_methods
from benchmarks.runner.replicates import design_of
from benchmarks.runner.schema import RoleModel, ScoredConfig, typed
from benchmarks.runner.suite_runner import cached_teacher, method_options
from benchmarks.runner.task import Task
from benchmarks.runner.tasks import register_task
from benchmarks.runner.tasks.common import result_row, run_id_of, teacher_identity, train_options
from benchmarks.runner.tasks.pretrain import ensure_pretrained, load_backbone, pretrain_section
from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, evaluate_classifier, train
from retrieval.methods import build_method
from retrieval.models import create_classifier

PRIMARY = "top1"
TORCHRUN = True  # benchmarks.run accepts this suite under torchrun (see docs/distributed.md)
TASK_LOSSES = {"cross_entropy": nn.CrossEntropyLoss}


def build_task_loss(name: str = "cross_entropy", **options) -> nn.Module:
    if name not in TASK_LOSSES:
        raise ValueError(f"unknown classification task loss {name!r}; expected one of {sorted(TASK_LOSSES)}")
    return TASK_LOSSES[name](**options)


def train_config(cfg: dict, role: str, progress: bool) -> TrainConfig:
    """The ``train`` section merged with the role's own (``teacher``/``student``)."""
    return train_options(cfg, role, progress, select_metric=PRIMARY)


def splits_for(tcfg: TrainConfig) -> tuple[str, str | None]:
    """(training split, validation split): ``train`` and none for ``select: last``, else ``fit``/``val``."""
    return ("train", None) if tcfg.select == "last" else ("fit", "val")


def prepare(cfg: dict, progress: bool = True, log=print, cache_dir: Path | None = None) -> dict:
    """Set threads; build the splits the teacher and student need (always ``test``). ``cache_dir``
    (where the pretrained backbones are kept) is needed when the config has a pretrain section."""
    spec = typed(cfg)
    torch.set_num_threads(spec.threads or torch.get_num_threads())
    pretrain_section(cfg)  # a bad section fails before any training
    d = spec.dataset
    names = {"test"}
    for role in ("teacher", "student"):
        names.update(s for s in splits_for(train_config(cfg, role, progress)) if s)
    data = {s: build_dataset(d.name, d.root, s, **dict(d.options or {})) for s in sorted(names)}
    test = data["test"]
    source = getattr(test, "source", d.name)
    log(f"data {d.name}: {source}")
    log("  " + ", ".join(f"{s} {len(data[s])} images" for s in sorted(data)) + f", {num_classes(data)} classes")
    if d.root and getattr(test, "embedded", False):
        log(f"  note: --data-root is not read by the embedded set {d.name}; for CIFAR pass --dataset cifar100 "
            f"(or cifar10), or --config benchmarks/configs/cifar100.yaml")
    if cache_dir is not None:
        data["cache_dir"] = Path(cache_dir)
    return data


def num_classes(data: dict) -> int:
    splits = [d for d in data.values() if hasattr(d, "labels")]  # not the cache folder
    names = getattr(splits[0], "class_names", None)
    return len(names) if names else int(max(int(d.labels.max()) for d in splits)) + 1


def _classifier(spec, classes: int):
    """The classifier of a role's section (any ``RoleModel``, or its dict: a detector's backbone is pretrained
    as one)."""
    spec = spec if isinstance(spec, RoleModel) else RoleModel.model_validate(spec)
    return create_classifier(spec.arch, classes, pretrained=spec.pretrained, weights=spec.weights)


def pretrain_classifier(spec: RoleModel, dataset):
    """The classifier pretrained on ``dataset`` (its own classes; only the backbone is kept)."""
    return _classifier(spec, dataset.num_classes)


def _network(cfg: dict, data: dict, role: str):
    """The ``role`` classifier before training: from the pretrained backbone, with a new
    classifier, when the config has a ``pretrain`` section (see ``benchmarks.runner.tasks.pretrain``)."""
    model = _classifier(getattr(typed(cfg), role), num_classes(data))
    if pretrain_section(cfg):
        if "cache_dir" not in data:
            raise ValueError("the config's pretrain section needs the cache folder: build the data with "
                             "prepare(cfg, cache_dir=...)")
        load_backbone(model, ensure_pretrained(cfg, role, data["cache_dir"], pretrain_classifier,
                                               task_loss=build_task_loss))
    return model


def _train(method, data: dict, tcfg: TrainConfig, name: str, state_path=None, state_tag=None):
    fit, val = splits_for(tcfg)
    return train(method, data[fit], data[val] if val else None, tcfg, name=name, evaluator=evaluate_classifier,
                 state_path=state_path, state_tag=state_tag)


def build_student_method(cfg: dict, data: dict, teacher, method_name: str, options: dict | None):
    """The method object of one student run, before training (named variants as in retrieval)."""
    registered, options = method_options(cfg, method_name, options)
    fit, _ = splits_for(train_config(cfg, "student", False))
    student = _network(cfg, data, "student")
    return build_method(registered, student=student, teacher=teacher, task_loss=build_task_loss(**cfg["task_loss"]),
                        train_labels=data[fit].labels, **options)


def accuracy_note(cfg: dict) -> str:
    """The table's statement of which epoch's accuracy it holds, and for how many epochs each role trained."""
    fraction = (typed(cfg).dataset.options or {}).get("val_fraction", 0.1)
    what = {"last": "the **last epoch** (RepDistiller's reporting, no checkpoint selection; trained on the whole "
                    "train split)",
            "best": f"the **best epoch** on the validation split ({100 * fraction:.0f}% of the training images, "
                    f"held out; trained on the rest)"}
    student, teacher = (train_config(cfg, role, False) for role in ("student", "teacher"))
    if student.select == teacher.select:
        which = f"{what[student.select]}: students {student.epochs} epochs, teacher {teacher.epochs}"
    else:
        which = (f"students: {what[student.select]}, {student.epochs} epochs; teacher: {what[teacher.select]}, "
                 f"{teacher.epochs} epochs")
    return f"Accuracy in % (mean ± std over seeds) on the test split, of {which}."


# ---------------------------------------------------------------- the task (benchmarks.runner.task.Task)


def data_source(cfg: dict, data: dict) -> str:
    """What the test split is, as its loader says; under full replicates a generated set's seed is
    that of the first replicate only, so the note says each replicate draws its own."""
    source = getattr(data["test"], "source", typed(cfg).dataset.name)
    if design_of(cfg) == "full":
        source = re.sub(r"generator seed \d+", "generator seed drawn per replicate", source)
    return source


class ClassificationConfig(ScoredConfig):
    teacher: RoleModel  # a classifier (retrieval.models.create_classifier)
    student: RoleModel


@register_task
class ClassificationTask(Task):
    """Classification: classifiers trained with cross-entropy, scored by top-1 and top-5 accuracy on the
    test split (see ``benchmarks.runner.task.Task``)."""

    name, METRICS, SCHEMA, ORDER, TORCHRUN = "classification", ("top1", "top5"), ClassificationConfig, 1, TORCHRUN

    run_id_of = staticmethod(run_id_of)  # benchmarks/runner/tasks/common.py
    teacher_identity = staticmethod(teacher_identity)  # benchmarks/runner/tasks/common.py

    def teacher_name(self, cfg: dict) -> str:
        return typed(cfg).teacher.arch

    build_student_method = staticmethod(build_student_method)

    def fit_student(self, method, data, cfg, progress, name, state_path, state_tag):
        return _train(method, data, train_config(cfg, "student", progress), name, state_path, state_tag)

    def prepare_data(self, cfg: dict, cache_dir: Path, log=print) -> dict:
        return prepare(cfg, False, log, cache_dir)

    def setup_names(self, cfg: dict) -> list[str]:
        """Jobs to run before the teachers: the pretrained backbones, one per role."""
        return ["teacher", "student"] if pretrain_section(cfg) else []

    def setup(self, cfg: dict, data: dict, name: str, progress: bool, log=print) -> None:
        ensure_pretrained(cfg, name, data["cache_dir"], pretrain_classifier, progress, log, task_loss=build_task_loss)

    def evaluate_student(self, model, data: dict, cfg: dict, progress: bool, desc: str) -> dict:
        return evaluate_classifier(model, data["test"], train_config(cfg, "student", progress), desc=desc)

    def make_row(self, cfg, method, seed, run_id, chash, test, seconds, epoch, commit) -> dict:
        role = "teacher" if method == "teacher" else "student"
        select = train_config(cfg, role, False).select
        spec = typed(cfg)
        return result_row(cfg, method, seed, run_id, chash, test, seconds, commit, spec.teacher.arch,
                          getattr(spec, role).arch, epoch=epoch, select=select)

    def cost_networks(self, cfg: dict, data: dict) -> dict:
        spec, classes = typed(cfg), num_classes(data)
        return {"teacher": _classifier(spec.teacher, classes), "student": _classifier(spec.student, classes)}

    def table_notes(self, cfg: dict, data: dict, commit: str) -> list[str]:
        spec = typed(cfg)
        return [f"Command: `{cfg.get('_command', 'python -m benchmarks.run --suite classification')}`",
                f"Commit: `{commit}`; seeds {list(spec.seeds)}.",
                f"Data: {data_source(cfg, data)}.",
                accuracy_note(cfg),
                f"Teacher {spec.teacher.arch}, student {spec.student.arch}; gap closed = "
                f"(method - none) / (teacher - none) on top-1."]

    def load_or_train_teacher(self, cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=print):
        """Train the teacher classifier for ``seed`` or load it from the cache. Returns (model, record, hash)."""
        chash = self.teacher_hash(cfg)
        path = self.teacher_checkpoint(cfg, cache_dir, seed)
        tcfg = train_config(cfg, "teacher", progress)

        def fit(model, state):
            method = build_method("none", student=model, task_loss=build_task_loss(**cfg["task_loss"]))
            return _train(method, data, tcfg, f"teacher s{seed}", state)

        model, record = cached_teacher(path, cfg, seed, lambda cached: _network(cfg, data, "teacher"), fit,
                                       (lambda model: evaluate_classifier(model, data["test"], tcfg, desc="teacher test"))
                                       if "test" in data else None, PRIMARY, log,  # the tuner has no test split
                                       data=self.data_digest(data))
        return model, record, chash

    def check_methods(self, cfg: dict, data: dict) -> None:
        classes = num_classes(data)
        fit, _ = splits_for(train_config(cfg, "student", False))
        spec = typed(cfg)
        build_methods(cfg, data, _classifier(spec.teacher, classes), lambda: _classifier(spec.student, classes), fit,
                      build_task_loss)

