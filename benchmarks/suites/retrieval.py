"""The retrieval suite: a cached teacher per (dataset, architecture, seed), then one
student per (method, seed) from the same initial weights, selected on validation and
scored on the test classes with Recall@K, MAP@R and R-Precision."""

from __future__ import annotations

import platform
import sys
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.aggregate import leaderboard, to_markdown
from benchmarks.pareto import write_pareto
from benchmarks.config import config_hash, deep_merge
from benchmarks.jobs import run_jobs
from benchmarks.results_io import (atomic_write_json, atomic_write_text, atomic_write_via, package_versions, read_runs,
                                   upsert_rows)
from retrieval.cost import row_record, suite_cost
from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, distributed, seed_everything, train
from retrieval.engine.embed import compute_embeddings
from retrieval.losses import build_task_loss
from retrieval.methods import build_method, list_methods
from retrieval.models import create_model

MODEL_KEYS = ("arch", "embedding_dim", "normalize", "pretrained", "pooling")


def _datasets(cfg: dict) -> dict:
    d = cfg["dataset"]
    opts = dict(d.get("options") or {})
    return {split: build_dataset(d["name"], d.get("root"), split, **opts) for split in ("fit", "val", "test")}


def _model(spec: dict):
    return create_model(spec["arch"], embedding_dim=spec["embedding_dim"], normalize=spec["normalize"],
                        pretrained=spec.get("pretrained", False), pooling=spec.get("pooling", "avg"))


def _train_config(cfg: dict, role: str, progress: bool) -> TrainConfig:
    opts = deep_merge(cfg.get("train", {}), cfg[role].get("train", {}))
    opts["ks"] = tuple(cfg["eval"]["ks"])
    opts["progress"] = progress
    opts["device"] = cfg.get("device", "cpu")
    return TrainConfig.from_dict(opts)


def _teacher_identity(cfg: dict) -> dict:
    evaluation = {k: v for k, v in cfg["eval"].items() if k != "index"}  # extra metrics, not other weights
    return {"dataset": cfg["dataset"], "teacher": cfg["teacher"], "train": cfg.get("train", {}),
            "task_loss": cfg["task_loss"], "eval": evaluation, "init_seed": cfg.get("init_seed")}


def _run_identity(cfg: dict, method: str) -> dict:
    return {**_teacher_identity(cfg), "student": cfg["student"], "method": method,
            "method_options": cfg["methods"].get(method) or {}}


def _row(cfg, method, seed, run_id, chash, test, seconds, best_epoch, commit, teacher_name, student_name):
    return {"run_id": run_id, "suite": cfg["suite"], "dataset": cfg["dataset"]["name"], "teacher": teacher_name,
            "student": student_name, "method": method, "seed": seed, **test, "train_seconds": round(seconds, 2),
            "best_epoch": best_epoch, "commit": commit, "config_hash": chash,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}


def seed_init(cfg: dict, seed: int) -> None:
    """Seed the initial weights: ``init_seed`` when the config fixes them, else the run's seed."""
    init_seed = cfg.get("init_seed")
    seed_everything(seed if init_seed is None else init_seed)


def _model_name(spec: dict) -> str:
    return f"{spec['arch']}-{spec['embedding_dim']}"


def teacher_checkpoint(cfg: dict, cache_dir: Path, seed: int) -> Path:
    """Where the teacher of ``seed`` is cached (named by the hash of what decides its weights)."""
    chash = config_hash(_teacher_identity(cfg))
    return cache_dir / "teachers" / cfg["dataset"]["name"] / f"{_model_name(cfg['teacher'])}-{chash}-seed{seed}.pt"


def load_or_train_teacher(cfg, data, seed, cache_dir: Path, progress: bool, log=print):
    """Train the teacher for ``seed`` or load it from the cache. Returns (model, record)."""
    chash = config_hash(_teacher_identity(cfg))
    path = teacher_checkpoint(cfg, cache_dir, seed)
    seed_init(cfg, seed)
    model = _model(cfg["teacher"])
    seed_everything(seed)
    tcfg = _train_config(cfg, "teacher", progress)
    if distributed.broadcast_object(path.exists()):  # under torchrun every rank takes rank 0's branch
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        log(f"teacher seed {seed}: loaded from cache {path}")
        record = blob["record"]
        missing = record["test"] is None or any(not any(k.startswith(f"{index}_") for k in record["test"])
                                                for index in approximate_indexes(cfg))
        if missing and "test" in data and distributed.is_main():  # trained by the tuner (no test split)
            record["test"] = evaluate_test(model, data["test"], cfg, tcfg, desc="teacher test")  # or no approx. index
            _save_teacher(path, model, record)
        distributed.barrier()
        return model, record, chash
    task_loss = build_task_loss(**cfg["task_loss"])
    method = build_method("none", student=model, task_loss=task_loss)
    state = train_state_path(path)
    result = train(method, data["fit"], data["val"], tcfg, name=f"teacher s{seed}", state_path=state)
    record = {"test": None, "seconds": result.seconds, "best_epoch": result.best_epoch, "history": result.history}
    if distributed.is_main():  # under torchrun rank 0 scores and writes; the others wait for the file
        record["test"] = evaluate_test(model, data["test"], cfg, tcfg, desc="teacher test") if "test" in data else None
        _save_teacher(path, model, record)
        state.unlink(missing_ok=True)  # the cached teacher is the finished run
        log(f"teacher seed {seed}: trained in {result.seconds:.0f}s, "
            f"validation recall@1 {100 * result.best_val['recall@1']:.2f}")
    distributed.barrier()
    return model, record, chash


def _save_teacher(path: Path, model, record: dict) -> None:
    atomic_write_via(path, lambda tmp: torch.save({"state_dict": model.state_dict(), "record": record}, tmp))


def run_id_of(cfg: dict, method_name: str, seed: int) -> tuple[str, str]:
    """(run id, config hash) of a student run; the id names its row, JSON file and checkpoint."""
    chash = config_hash(_run_identity(cfg, method_name))
    return f"{method_name}-{chash}-s{seed}", chash


def student_checkpoint(cfg: dict, cache_dir: Path, run_id: str) -> Path:
    """Where a student run's selected weights (student + connectors/heads) are kept."""
    return cache_dir / "students" / cfg["suite"] / cfg["dataset"]["name"] / f"{run_id}.pt"


def train_state_path(checkpoint: Path) -> Path:
    """The per-epoch training state kept beside a checkpoint, from which a killed run resumes."""
    return checkpoint.with_name(checkpoint.stem + ".state.pt")


def evaluate_test(model, dataset, cfg: dict, tcfg: TrainConfig, desc: str) -> dict:
    """Exact Recall@K, MAP@R and R-Precision; plus ``<index>_recall@K`` for each approximate
    index named in ``cfg["eval"]["index"]`` (ivf, hnsw), from the same embeddings."""
    from retrieval.metrics import evaluate
    from retrieval.metrics.approximate import approximate_recall_at_k

    emb, labels = compute_embeddings(model, dataset, num_workers=tcfg.num_workers, device=tcfg.device,
                                     progress=tcfg.progress, desc=desc)
    out = evaluate(emb, labels, ks=tcfg.ks)
    for index in approximate_indexes(cfg):
        approx = approximate_recall_at_k(emb, labels, ks=tcfg.ks, index=index)
        out.update({f"{index}_{k}": v for k, v in approx.items()})
    return out


def approximate_indexes(cfg: dict) -> list[str]:
    from retrieval.metrics.approximate import INDEXES

    names = cfg["eval"].get("index") or []
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in INDEXES]
    if unknown:
        raise ValueError(f"eval.index {unknown}: expected some of {list(INDEXES)} (exact search always runs)")
    return names


def build_student_method(cfg: dict, data: dict, teacher, method_name: str, options: dict | None):
    """The method object of one student run, before training."""
    options = dict(options or {})
    registered = options.pop("method", method_name)  # a named variant, e.g. {method: hmat, terms: ...}
    if registered != method_name:  # a variant inherits the configured options of its method
        options = deep_merge(cfg["methods"].get(registered) or {}, options)
    student = _model(cfg["student"])
    return build_method(registered, student=student, teacher=teacher, task_loss=build_task_loss(**cfg["task_loss"]),
                        train_labels=data["fit"].labels, **options)


def train_student(cfg: dict, data: dict, teacher, method_name: str, options: dict | None, seed: int,
                  progress: bool, checkpoint: Path | None = None, resume_tag: str | None = None):
    """Train one student with ``method_name`` and ``options``; selected on ``data["val"]``.
    With a ``checkpoint``, the training state is saved beside it after every epoch and a run
    saved under the same ``resume_tag`` (the commit) continues from it, or is not retrained
    if it had finished."""
    seed_init(cfg, seed)  # same initial weights for every method
    method = build_student_method(cfg, data, teacher, method_name, options)
    seed_everything(seed)  # the run's seed: batch order, augmentation, sampling
    state = train_state_path(checkpoint) if checkpoint is not None else None
    result = train(method, data["fit"], data["val"], _train_config(cfg, "student", progress),
                   name=f"{method_name} s{seed}", state_path=state, state_tag=resume_tag)
    if checkpoint is not None and distributed.is_main():
        state = {k: v for k, v in method.state_dict().items() if not k.startswith("teacher.")}
        atomic_write_via(checkpoint, lambda tmp: torch.save(state, tmp))
    return method.student, result


def prepare(cfg: dict, log=print) -> dict:
    """Set threads and build the fit/val/test splits of the config's dataset."""
    torch.set_num_threads(int(cfg.get("threads") or torch.get_num_threads()))
    data = _datasets(cfg)
    log(f"data {cfg['dataset']['name']}: fit {len(data['fit'])} images / {data['fit'].num_classes} classes, "
        f"val {len(data['val'])} / {data['val'].num_classes}, test {len(data['test'])} / {data['test'].num_classes}")
    return data


def environment(cfg: dict) -> dict:
    """What decides the numbers besides the config and the commit: versions, platform, threads, device."""
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "threads": torch.get_num_threads(), "device": cfg.get("device", "cpu"), "packages": package_versions()}


_PREPARED: dict = {}


def prepared_data(cfg: dict, log=print) -> dict:
    """``prepare(cfg)`` once per process and dataset config (each pool worker builds its own)."""
    key = config_hash({"dataset": cfg["dataset"], "threads": cfg.get("threads")})
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(cfg, log)
    return _PREPARED[key]


def teacher_job(job: dict, seed: int) -> dict:
    """Train (or load) the teacher of ``seed``; return its row and the rest of its run JSON."""
    cfg, log = job["cfg"], job.get("log", print)
    data = prepared_data(cfg, log)
    cached = teacher_checkpoint(cfg, job["cache_dir"], seed).exists()
    teacher, record, thash = load_or_train_teacher(cfg, data, seed, job["cache_dir"], job["progress"], log)
    if not distributed.is_main():  # under torchrun only rank 0 scores and writes
        return None
    name = _model_name(cfg["teacher"])
    row = _row(cfg, "teacher", seed, f"teacher-{thash}-s{seed}", thash, record["test"], record["seconds"],
               record["best_epoch"], job["commit"], name, name)
    # the teacher row is reproducible like a student row (its history comes from the cache record
    # when the teacher was loaded rather than trained by this run)
    return {"row": row, "record": {"config": cfg, "environment": job["env"], "history": record.get("history", []),
                                   "teacher_loaded_from_cache": cached}}


def student_job(job: dict, seed: int, method_name: str) -> dict:
    """Train one student against the cached teacher of ``seed`` (resuming a killed run); return its row
    (also upserted into runs.csv at once, without cost columns) and the rest of its run JSON."""
    cfg, log = job["cfg"], job.get("log", print)
    data = prepared_data(cfg, log)
    teacher, _, _ = load_or_train_teacher(cfg, data, seed, job["cache_dir"], job["progress"], lambda *a: None)
    run_id, chash = run_id_of(cfg, method_name, seed)
    student, result = train_student(cfg, data, teacher, method_name, cfg["methods"].get(method_name), seed,
                                    job["progress"], checkpoint=student_checkpoint(cfg, job["cache_dir"], run_id),
                                    resume_tag=job["commit"])
    if not distributed.is_main():  # under torchrun only rank 0 scores and writes
        return None
    test = evaluate_test(student, data["test"], cfg, _train_config(cfg, "student", job["progress"]),
                         desc=f"{method_name} test")
    log(f"{method_name:>8} seed {seed}: test recall@1 {100 * test['recall@1']:.2f} "
        f"(best val epoch {result.best_epoch}, {result.seconds:.0f}s)")
    row = _row(cfg, method_name, seed, run_id, chash, test, result.seconds, result.best_epoch, job["commit"],
               _model_name(cfg["teacher"]), _model_name(cfg["student"]))
    upsert_rows(job["dest"] / "runs.csv", [row])
    return {"row": row, "record": {"config": cfg, "environment": job["env"], "history": result.history}}


def write_runs(cfg: dict, data: dict, dest: Path, results: list[dict]) -> list[dict]:
    """Add the cost columns to every row and write runs/<run_id>.json and runs.csv; return the rows.

    Cost is measured here, once per network, after every job has finished, so that no training
    shares the CPU with the timing (untrained weights: the counts, file size and speed of a
    network do not depend on its values)."""
    cost = {role: suite_cost(_model(cfg[role]), data["test"], cfg) for role in ("teacher", "student")}
    rows = []
    for result in results:
        row = {**result["row"], **cost["teacher" if result["row"]["method"] == "teacher" else "student"]}
        atomic_write_json(dest / "runs" / f"{row['run_id']}.json", {**row_record(row), **result["record"]})
        rows.append(row)
    upsert_rows(dest / "runs.csv", rows)
    return rows


def run(cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True, log=print) -> Path:
    """Run the suite described by ``cfg``; return the folder holding its tables.

    ``cfg["workers"]`` (default 1) jobs run at once, each in its own process (see
    ``benchmarks.jobs``); progress bars are shown only with one worker."""
    methods = list(cfg["run"])
    known = set(list_methods()) | {name for name, opts in cfg["methods"].items() if "method" in (opts or {})}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {sorted(known)}")
    approximate_indexes(cfg)
    workers = int(cfg.get("workers") or 1)
    if distributed.is_distributed():  # each job is trained by all the torchrun processes together
        if not distributed.is_main():
            log, progress = (lambda *a, **k: None), False
        if workers != 1:
            log(f"torchrun: {distributed.world_size()} processes train each job together; workers {workers} -> 1")
        workers = 1
    data = prepared_data(cfg, log)
    dest = out_dir / cfg["suite"] / cfg["dataset"]["name"]
    teacher_name, student_name = _model_name(cfg["teacher"]), _model_name(cfg["student"])
    job = {"cfg": cfg, "dest": dest, "cache_dir": cache_dir, "commit": commit, "env": environment(cfg),
           "progress": progress and workers == 1}
    if workers == 1:
        job["log"] = log  # jobs in this process log where the caller asked; pool workers print
    results = run_jobs(partial(teacher_job, job), partial(student_job, job), cfg["seeds"], methods, workers, log)
    if not distributed.is_main():  # rank 0 writes the run files and tables
        return dest
    rows = write_runs(cfg, data, dest, results)
    hashes = {r["config_hash"] for r in rows}
    table = read_runs(dest / "runs.csv")
    current = table[table["config_hash"].isin(hashes)]
    board = leaderboard(current)
    atomic_write_text(dest / "leaderboard.csv", board.to_csv(index=False, float_format="%.4f"))
    notes = [f"Command: `{cfg.get('_command', 'python -m benchmarks.run --suite retrieval')}`",
             f"Commit: `{commit}`; seeds {list(cfg['seeds'])}; metrics in % (mean ± std over seeds, test classes; "
             f"checkpoint selected on the validation classes).",
             f"Teacher {teacher_name}, student {student_name}; gap closed = (method - none) / (teacher - none) "
             f"on recall@1."]
    atomic_write_text(dest / "leaderboard.md", to_markdown(board, f"{cfg['suite']}: {cfg['dataset']['name']}", notes))
    write_pareto(dest)
    return dest
