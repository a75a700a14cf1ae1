"""The detection suite: a cached Faster R-CNN + FPN teacher per (dataset, detector, seed),
then one student detector per (method, seed) from the same initial weights, selected on
``val`` and scored on ``test`` with COCO AP@[.5:.95], AP50 and AP75 (pycocotools COCOeval).

Methods are the registry's (``none``, ``at``, ``hmat``, ``mimic``, ...), each wrapped in a
``DetectionDistiller``: the detector's four losses are named terms (``det/...``) beside
the method's. ``at`` and ``hmat`` read the backbone stages, ``mimic`` the FPN levels.

Under ``torchrun`` every process trains each job together and rank 0 alone scores and
writes; rank 0 generates the embedded scenes before the others read them (see
docs/distributed.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmarks.runner.config import deep_merge
from benchmarks.runner.schema import RoleModel, RunConfig, typed
from benchmarks.runner.suite_runner import cached_teacher, method_options, teacher_key
from benchmarks.runner.task import Task
from benchmarks.runner.tasks import register_task
from benchmarks.runner.tasks.classification import build_task_loss, pretrain_classifier
from benchmarks.runner.tasks.common import result_row, student_run_id, train_options
from benchmarks.runner.tasks.pretrain import ensure_pretrained, pretrain_section
from retrieval.detection import create_detector, evaluate_detector
from retrieval.detection.data import build_detection_dataset
from retrieval.detection.distiller import build_detection_method
from retrieval.engine import TrainConfig, distributed, train

PRIMARY = "ap"
TORCHRUN = True  # benchmarks.run accepts this suite under torchrun (see docs/distributed.md)
SPLITS = ("train", "val", "test")


def train_config(cfg: dict, role: str, progress: bool) -> TrainConfig:
    """The ``train`` section merged with the role's own (``teacher``/``student``)."""
    return train_options(cfg, role, progress, select_metric=PRIMARY, ks=False)


def prepare(cfg: dict, cache_dir: Path, log=print) -> dict:
    """Set threads; read (and for the embedded set, first generate) the train/val/test splits."""
    spec = typed(cfg)
    torch.set_num_threads(spec.threads or torch.get_num_threads())
    d = spec.dataset
    data = {s: build_detection_dataset(d.name, d.root, s, cache_dir=cache_dir, **dict(d.options or {}))
            for s in SPLITS}
    if spec.teacher_cache:
        check_one_size(data["train"])  # before any training
    counts = ", ".join(f"{s} {len(data[s])} images / {len(data[s].coco.anns)} boxes" for s in SPLITS)
    log(f"data {d.name} ({data['test'].ann_file.parent}): {counts}, {data['test'].num_classes} classes")
    return data


def _detector(cfg: dict, role: str, num_classes: int):
    run = typed(cfg)
    spec = getattr(run, role)
    options = deep_merge(run.detector or {}, spec.detector or {})
    return create_detector(spec.arch, num_classes, pretrained=spec.pretrained, weights=spec.weights, **options)


def _pretrain(cfg: dict, role: str, cache_dir: Path, progress: bool = False, log=print) -> Path:
    return ensure_pretrained(cfg, role, cache_dir, pretrain_classifier, progress, log, task_loss=build_task_loss)


def _network(cfg: dict, data: dict, role: str):
    """The ``role`` detector before training: its backbone from the pretrained one (FPN and heads
    new) when the config has a ``pretrain`` section (see ``benchmarks.runner.tasks.pretrain``)."""
    model = _detector(cfg, role, data["train"].num_classes)
    if pretrain_section(cfg):
        if "cache_dir" not in data:
            raise ValueError("the config's pretrain section needs the cache folder: build the data with "
                             "prepare(cfg, cache_dir)")
        weights = torch.load(_pretrain(cfg, role, data["cache_dir"]), map_location="cpu", weights_only=True)
        model.detector.backbone.body.load_state_dict(weights)
    return model


def teacher_identity(cfg: dict) -> dict:
    """What decides the teacher detector's weights (its cache file's name, its row's config hash)."""
    return {"dataset": cfg["dataset"], "teacher": cfg["teacher"], "detector": cfg.get("detector", {}),
            "train": cfg.get("train", {}), "init_seed": cfg.get("init_seed"),
            **({"pretrain": cfg["pretrain"]} if cfg.get("pretrain") else {})}


def _cache_key(cfg: dict) -> dict:
    """A run with the teacher cache is another run (its teacher features come from single-image passes)."""
    return {"teacher_cache": True} if cfg.get("teacher_cache") else {}


def _train(method, data: dict, tcfg: TrainConfig, name: str, state_path=None, state_tag=None):
    return train(method, data["train"], data["val"], tcfg, name=name, evaluator=evaluate_detector,
                 state_path=state_path, state_tag=state_tag)


def build_student_method(cfg: dict, data: dict, teacher, method_name: str, options: dict | None):
    """The method object of one student run, before training (named variants as in retrieval)."""
    registered, options = method_options(cfg, method_name, options)
    student = _network(cfg, data, "student")  # teacher_cache: the image sizes were checked by prepare()
    return build_detection_method(registered, student, teacher, cache_teacher=typed(cfg).teacher_cache,
                                  **options)


def check_one_size(dataset) -> None:
    """``teacher_cache`` is exact only when no batch pads an image differently: one image size."""
    sizes = {(img["width"], img["height"]) for img in dataset.coco.imgs.values()}
    if len(sizes) > 1:
        raise ValueError(f"teacher_cache: true needs training images of one size, got {len(sizes)} sizes "
                         f"(e.g. {sorted(sizes)[:3]}); set teacher_cache: false")


def _notes(cfg: dict, data: dict, commit: str, teacher_name: str, student_name: str) -> list[str]:
    t, s = (train_config(cfg, role, False) for role in ("teacher", "student"))
    selection = {"best": f"checkpoint = best {s.select_metric} on val ({len(data['val'])} images)",
                 "last": "last epoch"}[s.select]
    train_ = data["train"]
    spec = typed(cfg)
    return [f"Command: `{cfg.get('_command', 'python -m benchmarks.run --suite detection')}`",
            f"Commit: `{commit}`; seeds {list(spec.seeds)}; COCO box AP (pycocotools COCOeval) in %, mean ± std "
            f"over seeds, on the test split ({len(data['test'])} images); {selection}.",
            f"Data: {spec.dataset.name}, {len(train_)} training images, {train_.num_classes} classes. "
            f"Faster R-CNN + FPN; teacher {teacher_name} ({t.epochs} epochs), student {student_name} "
            f"({s.epochs} epochs); gap closed = (method - none) / (teacher - none) on AP.",
            "Cost columns: the backbone + FPN of each detector (RPN and RoI heads left out: the same for "
            "teacher and student, and their MACs depend on the proposals)."]


# ---------------------------------------------------------------- the task (benchmarks.runner.task.Task)


def _names(cfg: dict) -> tuple[str, str]:
    spec = typed(cfg)
    return f"{spec.teacher.arch}-fpn", f"{spec.student.arch}-fpn"


class DetectorModel(RoleModel):
    """A role's detector (``retrieval.detection.create_detector``)."""
    detector: dict[str, Any] | None = None


class DetectionConfig(RunConfig):
    teacher: DetectorModel
    student: DetectorModel
    detector: dict[str, Any] | None = None
    teacher_cache: bool = False  # the frozen teacher's features of each training image, kept from its first pass


@register_task
class DetectionTask(Task):
    """Detection: Faster R-CNN detectors, scored by COCO AP on the test split (see
    ``benchmarks.runner.task.Task``)."""

    name, METRICS, SCHEMA, ORDER, TORCHRUN = "detection", ("ap", "ap50"), DetectionConfig, 2, TORCHRUN

    teacher_identity = staticmethod(teacher_identity)

    def run_id_of(self, cfg: dict, method_name: str, seed: int) -> tuple[str, str]:
        """(run id, config hash) of a student run; the id names its row, JSON file and checkpoint."""
        return student_run_id(method_name, {**teacher_identity(cfg), **teacher_key(cfg), **_cache_key(cfg),
                                            "student": cfg["student"], "method": method_name,
                                            "method_options": cfg["methods"].get(method_name) or {}}, seed)

    def teacher_name(self, cfg: dict) -> str:
        return f"{typed(cfg).teacher.arch}-fpn"

    build_student_method = staticmethod(build_student_method)

    def fit_student(self, method, data, cfg, progress, name, state_path, state_tag):
        return _train(method, data, train_config(cfg, "student", progress), name, state_path, state_tag)

    def prepare_data(self, cfg: dict, cache_dir: Path, log=print) -> dict:
        pretrain_section(cfg)  # a bad section fails before any training
        with distributed.main_first():  # under torchrun rank 0 writes the embedded scenes, then the others read them
            return {**prepare(cfg, Path(cache_dir), log), "cache_dir": Path(cache_dir)}

    def setup_names(self, cfg: dict) -> list[str]:
        """Jobs to run before the teachers: the pretrained backbones, one per role."""
        return ["teacher", "student"] if pretrain_section(cfg) else []

    def setup(self, cfg: dict, data: dict, name: str, progress: bool, log=print) -> None:
        _pretrain(cfg, name, data["cache_dir"], progress, log)

    def evaluate_student(self, model, data: dict, cfg: dict, progress: bool, desc: str) -> dict:
        return evaluate_detector(model, data["test"], train_config(cfg, "student", progress), desc=desc)

    def make_row(self, cfg, method, seed, run_id, chash, test, seconds, epoch, commit) -> dict:
        teacher, student = _names(cfg)
        return result_row(cfg, method, seed, run_id, chash, test, seconds, commit, teacher,
                          teacher if method == "teacher" else student, best_epoch=epoch)

    def cost_networks(self, cfg: dict, data: dict) -> dict:
        """The backbone + FPN of each detector: what distillation makes cheaper. The RPN and RoI heads are
        left out (the same for teacher and student here, and their MACs depend on the proposals)."""
        num_classes = data["train"].num_classes
        return {role: _detector(cfg, role, num_classes).detector.backbone for role in ("teacher", "student")}

    def table_notes(self, cfg: dict, data: dict, commit: str) -> list[str]:
        return _notes(cfg, data, commit, *_names(cfg))

    def load_or_train_teacher(self, cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=print):
        """Train the teacher detector for ``seed`` or load it from the cache. Returns (model, record, hash)."""
        chash = self.teacher_hash(cfg)
        path = self.teacher_checkpoint(cfg, cache_dir, seed)
        tcfg = train_config(cfg, "teacher", progress)

        model, record = cached_teacher(
            path, cfg, seed, lambda cached: _network(cfg, data, "teacher"),
            lambda model, state: _train(build_detection_method("none", model), data, tcfg, f"teacher s{seed}", state),
            (lambda model: evaluate_detector(model, data["test"], tcfg, desc="teacher test")) if "test" in data else None,
            PRIMARY, log, data=self.data_digest(data))  # the tuner has no test split
        return model, record, chash

