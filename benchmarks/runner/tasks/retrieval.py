"""The retrieval suite: a cached teacher per (dataset, architecture, seed), then one
student per (method, seed) from the same initial weights, selected on validation and
scored on the test classes with Recall@K, MAP@R and R-Precision."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from benchmarks.runner.preflight import build_methods
from benchmarks.runner.schema import PositiveInt, RoleModel, ScoredConfig, typed
from benchmarks.runner.suite_runner import (  # noqa: F401 (seed_init, student_checkpoint: read through this module)
    cached_teacher,
    method_options,
    seed_init,
    student_checkpoint,
)
from benchmarks.runner.task import Task
from benchmarks.runner.tasks import register_task
from benchmarks.runner.tasks.common import result_row, run_id_of, teacher_identity, train_options
from benchmarks.runner.tasks.pretrain import ensure_pretrained, load_backbone, pretrain_section
from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, train
from retrieval.engine.embed import compute_embeddings
from retrieval.methods import build_method
from retrieval.metric_losses import build_task_loss
from retrieval.metrics import evaluate
from retrieval.metrics.approximate import INDEXES, approximate_recall_at_k
from retrieval.models import create_model
from retrieval.models.embedding_net import POOLINGS

MODEL_KEYS = ("arch", "embedding_dim", "normalize", "pretrained", "weights", "pooling", "output_stride")


def _datasets(cfg: dict) -> dict:
    d = typed(cfg).dataset
    opts = dict(d.options or {})
    return {split: build_dataset(d.name, d.root, split, **opts) for split in ("fit", "val", "test")}


def _model(spec, dataset=None):
    """The embedding network of ``spec``, a role's section (``EmbeddingModel``, or its dict); ``dataset``,
    given by pretraining, does not change it."""
    spec = spec if isinstance(spec, EmbeddingModel) else EmbeddingModel.model_validate(spec)
    extra = {"output_stride": spec.output_stride} if spec.output_stride else {}  # timm's keyword
    return create_model(spec.arch, embedding_dim=spec.embedding_dim, normalize=spec.normalize,
                        pretrained=spec.pretrained, weights=spec.weights, pooling=spec.pooling, **extra)


def _network(cfg: dict, data: dict, role: str):
    """The ``role`` network (teacher or student) before training: from the pretrained backbone
    when the config has a ``pretrain`` section (see ``benchmarks.runner.tasks.pretrain``)."""
    model = _model(getattr(typed(cfg), role))
    if pretrain_section(cfg):
        if "cache_dir" not in data:
            raise ValueError("the config's pretrain section needs the cache folder: build the data with "
                             "prepare(cfg, cache_dir=...)")
        load_backbone(model, ensure_pretrained(cfg, role, data["cache_dir"], _model))
    return model


def _model_name(spec) -> str:
    return f"{spec.arch}-{spec.embedding_dim}"


def evaluate_test(model, dataset, cfg: dict, tcfg: TrainConfig, desc: str) -> dict:
    """Exact Recall@K, MAP@R and R-Precision; plus ``<index>_recall@K`` for each approximate
    index named in the config's ``eval.index`` (ivf, hnsw), from the same embeddings."""
    emb, labels = compute_embeddings(model, dataset, num_workers=tcfg.num_workers, device=tcfg.device,
                                     progress=tcfg.progress, desc=desc)
    out = evaluate(emb, labels, ks=tcfg.ks)
    for index in approximate_indexes(cfg):
        approx = approximate_recall_at_k(emb, labels, ks=tcfg.ks, index=index)
        out.update({f"{index}_{k}": v for k, v in approx.items()})
    return out


def approximate_indexes(cfg: dict) -> list[str]:
    names = typed(cfg).eval.index or []
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in INDEXES]
    if unknown:
        raise ValueError(f"eval.index {unknown}: expected some of {list(INDEXES)} (exact search always runs)")
    return names


def build_student_method(cfg: dict, data: dict, teacher, method_name: str, options: dict | None):
    """The method object of one student run, before training."""
    registered, options = method_options(cfg, method_name, options)
    student = _network(cfg, data, "student")
    return build_method(registered, student=student, teacher=teacher, task_loss=build_task_loss(**cfg["task_loss"]),
                        train_labels=data["fit"].labels, **options)


def prepare(cfg: dict, log=print, cache_dir: Path | None = None) -> dict:
    """Set threads and build the fit/val/test splits of the config's dataset. ``cache_dir``
    (where the pretrained backbones are kept) is needed when the config has a pretrain section."""
    spec = typed(cfg)
    torch.set_num_threads(spec.threads or torch.get_num_threads())
    pretrain_section(cfg)  # a bad section fails before any training
    data = _datasets(cfg)
    if cache_dir is not None:
        data["cache_dir"] = Path(cache_dir)
    log(f"data {spec.dataset.name}: fit {len(data['fit'])} images / {data['fit'].num_classes} classes, "
        f"val {len(data['val'])} / {data['val'].num_classes}, test {len(data['test'])} / {data['test'].num_classes}"
        + (f"; {data['test'].source}" if getattr(data["test"], "source", None) else ""))
    return data


# ---------------------------------------------------------------- the task (benchmarks.runner.task.Task)

PRIMARY = "recall@1"
TORCHRUN = True  # benchmarks.run accepts this suite under torchrun (see docs/distributed.md)


def selection_note(cfg: dict) -> str:
    """How the reported weights of the teacher and the students were chosen, from their train configs."""
    said = []
    for role in ("teacher", "student"):
        t = train_options(cfg, role, progress=False)
        said.append(f"{role}: last of {t.epochs} epochs" if t.select == "last" else
                    f"{role}: the epoch with the best validation {t.select_metric} (every {t.eval_every} of {t.epochs})")
    return "; ".join(said)


class EmbeddingModel(RoleModel):
    """A role's embedding network (``retrieval.models.create_model``)."""
    embedding_dim: PositiveInt = 128
    normalize: bool = True
    pooling: Literal[POOLINGS] = "avg"
    output_stride: Literal[8, 16, 32] | None = None


class RetrievalConfig(ScoredConfig):
    teacher: EmbeddingModel
    student: EmbeddingModel


@register_task
class RetrievalTask(Task):
    """Retrieval: embedding networks trained with a metric loss, scored by Recall@K, MAP@R and R-Precision
    on classes never seen in training (see ``benchmarks.runner.task.Task``)."""

    name, METRICS, SCHEMA, ORDER, TORCHRUN = "retrieval", ("recall@1", "map@r"), RetrievalConfig, 0, TORCHRUN
    VARIANTS = ("hmat-ablation", "retrieval-scratch")  # benchmarks/configs/hmat-ablation.yaml, retrieval_scratch.yaml

    run_id_of = staticmethod(run_id_of)  # benchmarks/runner/tasks/common.py
    teacher_identity = staticmethod(teacher_identity)  # benchmarks/runner/tasks/common.py

    def teacher_name(self, cfg: dict) -> str:
        return _model_name(typed(cfg).teacher)

    build_student_method = staticmethod(build_student_method)

    def fit_student(self, method, data, cfg, progress, name, state_path, state_tag):
        """Trained on ``data["fit"]``, selected on ``data["val"]``."""
        return train(method, data["fit"], data["val"], train_options(cfg, "student", progress), name=name,
                     state_path=state_path, state_tag=state_tag)

    def prepare_data(self, cfg: dict, cache_dir: Path, log=print) -> dict:
        return prepare(cfg, log, cache_dir)

    def setup_names(self, cfg: dict) -> list[str]:
        """Jobs to run before the teachers: the pretrained backbones, one per role."""
        return ["teacher", "student"] if pretrain_section(cfg) else []

    def setup(self, cfg: dict, data: dict, name: str, progress: bool, log=print) -> None:
        ensure_pretrained(cfg, name, data["cache_dir"], _model, progress, log)

    def evaluate_student(self, model, data: dict, cfg: dict, progress: bool, desc: str) -> dict:
        return evaluate_test(model, data["test"], cfg, train_options(cfg, "student", progress), desc=desc)

    def make_row(self, cfg, method, seed, run_id, chash, test, seconds, epoch, commit) -> dict:
        spec = typed(cfg)
        teacher = _model_name(spec.teacher)
        student = teacher if method == "teacher" else _model_name(spec.student)
        return result_row(cfg, method, seed, run_id, chash, test, seconds, commit, teacher, student, best_epoch=epoch)

    def cost_networks(self, cfg: dict, data: dict) -> dict:
        spec = typed(cfg)
        return {"teacher": _model(spec.teacher), "student": _model(spec.student)}

    def table_notes(self, cfg: dict, data: dict, commit: str) -> list[str]:
        spec = typed(cfg)
        return [f"Command: `{cfg.get('_command', 'python -m benchmarks.run --suite retrieval')}`",
                f"Commit: `{commit}`; seeds {list(spec.seeds)}; metrics in % (mean ± std over seeds, test classes; "
                f"{selection_note(cfg)}).",
                f"Teacher {_model_name(spec.teacher)}, student {_model_name(spec.student)}; gap closed = "
                f"(method - none) / (teacher - none) on recall@1."]

    def load_or_train_teacher(self, cfg, data, seed, cache_dir: Path, progress: bool, log=print):
        """Train the teacher for ``seed`` or load it from the cache. Returns (model, record)."""
        tcfg = train_options(cfg, "teacher", progress)

        def network(cached: bool):  # a cached teacher needs no pretrained backbone: its weights are loaded
            return _model(typed(cfg).teacher) if cached else _network(cfg, data, "teacher")

        def fit(model, state):
            method = build_method("none", student=model, task_loss=build_task_loss(**cfg["task_loss"]))
            return train(method, data["fit"], data["val"], tcfg, name=f"teacher s{seed}", state_path=state)

        def complete(record) -> bool:  # a teacher trained by the tuner has no test metrics, or lacks an approx. index
            return record["test"] is not None and all(any(k.startswith(f"{index}_") for k in record["test"])
                                                      for index in approximate_indexes(cfg))

        model, record = cached_teacher(self.teacher_checkpoint(cfg, cache_dir, seed), cfg, seed, network, fit,
                                       (lambda model: evaluate_test(model, data["test"], cfg, tcfg, desc="teacher test"))
                                       if "test" in data else None, PRIMARY, log, complete, self.data_digest(data))
        return model, record, self.teacher_hash(cfg)

    def check_methods(self, cfg: dict, data: dict) -> None:
        spec = typed(cfg)
        build_methods(cfg, data, _model(spec.teacher), lambda: _model(spec.student))

    def run(self, cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True, log=print,
            launcher=None) -> Path:
        """Run the suite described by ``cfg`` (see ``benchmarks.runner.suite_runner.run_suite``)."""
        approximate_indexes(cfg)
        return super().run(cfg, out_dir, cache_dir, commit, progress, log, launcher)

