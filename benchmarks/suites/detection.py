"""The detection suite: a cached Faster R-CNN + FPN teacher per (dataset, detector, seed),
then one student detector per (method, seed) from the same initial weights, selected on
``val`` and scored on ``test`` with COCO AP@[.5:.95], AP50 and AP75 (pycocotools COCOeval).

Methods are the registry's (``none``, ``at``, ``hmat``, ``mimic``, ...), each wrapped in a
``DetectionDistiller``: the detector's four losses are named terms (``det/...``) beside
the method's. ``at`` and ``hmat`` read the backbone stages, ``mimic`` the FPN levels.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.aggregate import leaderboard, to_markdown
from benchmarks.config import config_hash, deep_merge
from benchmarks.results_io import atomic_write_json, atomic_write_text, atomic_write_via, upsert_rows
from benchmarks.suites.retrieval import environment, seed_init, student_checkpoint
from retrieval.detection import create_detector, evaluate_detector
from retrieval.detection.data import build_detection_dataset
from retrieval.detection.distiller import build_detection_method
from retrieval.engine import TrainConfig, seed_everything, train
from retrieval.methods import list_methods

PRIMARY = "ap"
SPLITS = ("train", "val", "test")


def train_config(cfg: dict, role: str, progress: bool) -> TrainConfig:
    """The ``train`` section merged with the role's own (``teacher``/``student``)."""
    opts = deep_merge(cfg.get("train", {}), cfg[role].get("train", {}))
    opts.setdefault("select_metric", PRIMARY)
    opts["progress"] = progress
    opts["device"] = cfg.get("device", "cpu")
    return TrainConfig.from_dict(opts)


def prepare(cfg: dict, cache_dir: Path, log=print) -> dict:
    """Set threads; read (and for the embedded set, first generate) the train/val/test splits."""
    torch.set_num_threads(int(cfg.get("threads") or torch.get_num_threads()))
    d = cfg["dataset"]
    data = {s: build_detection_dataset(d["name"], d.get("root"), s, cache_dir=cache_dir,
                                       **dict(d.get("options") or {})) for s in SPLITS}
    counts = ", ".join(f"{s} {len(data[s])} images / {len(data[s].coco.anns)} boxes" for s in SPLITS)
    log(f"data {d['name']} ({data['test'].ann_file.parent}): {counts}, {data['test'].num_classes} classes")
    return data


def _detector(cfg: dict, role: str, num_classes: int):
    spec = cfg[role]
    options = deep_merge(cfg.get("detector", {}), spec.get("detector", {}))
    return create_detector(spec["arch"], num_classes, pretrained=spec.get("pretrained", False), **options)


def _teacher_identity(cfg: dict) -> dict:
    return {"dataset": cfg["dataset"], "teacher": cfg["teacher"], "detector": cfg.get("detector", {}),
            "train": cfg.get("train", {}), "init_seed": cfg.get("init_seed")}


def run_id_of(cfg: dict, method_name: str, seed: int) -> tuple[str, str]:
    """(run id, config hash) of a student run; the id names its row, JSON file and checkpoint."""
    chash = config_hash({**_teacher_identity(cfg), "student": cfg["student"], "method": method_name,
                         "method_options": cfg["methods"].get(method_name) or {}})
    return f"{method_name}-{chash}-s{seed}", chash


def teacher_checkpoint(cfg: dict, cache_dir: Path, seed: int) -> Path:
    """Where the teacher of ``seed`` is cached (named by the hash of what decides its weights)."""
    chash = config_hash(_teacher_identity(cfg))
    return cache_dir / "teachers" / cfg["dataset"]["name"] / f"{cfg['teacher']['arch']}-fpn-{chash}-seed{seed}.pt"


def _train(method, data: dict, tcfg: TrainConfig, name: str):
    return train(method, data["train"], data["val"], tcfg, name=name, evaluator=evaluate_detector)


def load_or_train_teacher(cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=print):
    """Train the teacher detector for ``seed`` or load it from the cache. Returns (model, record, hash)."""
    chash = config_hash(_teacher_identity(cfg))
    path = teacher_checkpoint(cfg, cache_dir, seed)
    seed_init(cfg, seed)
    model = _detector(cfg, "teacher", data["train"].num_classes)
    seed_everything(seed)
    tcfg = train_config(cfg, "teacher", progress)
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        log(f"teacher seed {seed}: loaded from cache {path}")
        return model, blob["record"], chash
    result = _train(build_detection_method("none", model), data, tcfg, f"teacher s{seed}")
    test = evaluate_detector(model, data["test"], tcfg, desc="teacher test")
    record = {"test": test, "seconds": result.seconds, "epoch": result.best_epoch, "history": result.history}
    atomic_write_via(path, lambda tmp: torch.save({"state_dict": model.state_dict(), "record": record}, tmp))
    log(f"teacher seed {seed}: test AP {100 * test['ap']:.2f} (epoch {result.best_epoch}, "
        f"trained in {result.seconds:.0f}s)")
    return model, record, chash


def build_student_method(cfg: dict, data: dict, teacher, method_name: str, options: dict | None):
    """The method object of one student run, before training (named variants as in retrieval)."""
    options = dict(options or {})
    registered = options.pop("method", method_name)
    if registered != method_name:
        options = deep_merge(cfg["methods"].get(registered) or {}, options)
    student = _detector(cfg, "student", data["train"].num_classes)
    return build_detection_method(registered, student, teacher, **options)


def train_student(cfg: dict, data: dict, teacher, method_name: str, options: dict | None, seed: int,
                  progress: bool, checkpoint: Path | None = None):
    """Train one student detector with ``method_name``; returns (student, TrainResult)."""
    seed_init(cfg, seed)  # same student initial weights for every method
    method = build_student_method(cfg, data, teacher, method_name, options)
    seed_everything(seed)  # the run's seed: batch order
    result = _train(method, data, train_config(cfg, "student", progress), f"{method_name} s{seed}")
    if checkpoint is not None:
        state = {k: v for k, v in method.state_dict().items() if not k.startswith("kd.teacher.")}
        atomic_write_via(checkpoint, lambda tmp: torch.save(state, tmp))
    return method.student, result


def _row(cfg, method, seed, run_id, chash, test, seconds, epoch, commit, teacher_name, student_name):
    return {"run_id": run_id, "suite": cfg["suite"], "dataset": cfg["dataset"]["name"], "teacher": teacher_name,
            "student": student_name, "method": method, "seed": seed, **test, "train_seconds": round(seconds, 2),
            "best_epoch": epoch, "commit": commit, "config_hash": chash,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _notes(cfg: dict, data: dict, commit: str, teacher_name: str, student_name: str) -> list[str]:
    t, s = (train_config(cfg, role, False) for role in ("teacher", "student"))
    selection = {"best": f"checkpoint = best {s.select_metric} on val ({len(data['val'])} images)",
                 "last": "last epoch"}[s.select]
    train_ = data["train"]
    return [f"Command: `{cfg.get('_command', 'python -m benchmarks.run --suite detection')}`",
            f"Commit: `{commit}`; seeds {list(cfg['seeds'])}; COCO box AP (pycocotools COCOeval) in %, mean ± std "
            f"over seeds, on the test split ({len(data['test'])} images); {selection}.",
            f"Data: {cfg['dataset']['name']}, {len(train_)} training images, {train_.num_classes} classes. "
            f"Faster R-CNN + FPN; teacher {teacher_name} ({t.epochs} epochs), student {student_name} "
            f"({s.epochs} epochs); gap closed = (method - none) / (teacher - none) on AP."]


def run(cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True, log=print) -> Path:
    """Run the suite described by ``cfg``; return the folder holding its tables."""
    methods = list(cfg["run"])
    known = set(list_methods()) | {name for name, opts in cfg["methods"].items() if "method" in (opts or {})}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {sorted(known)}")
    data = prepare(cfg, Path(cache_dir), log)
    dest = out_dir / cfg["suite"] / cfg["dataset"]["name"]
    teacher_name, student_name = (f"{cfg[role]['arch']}-fpn" for role in ("teacher", "student"))
    hashes, rows = set(), []
    env = environment(cfg)
    for seed in cfg["seeds"]:
        cached = teacher_checkpoint(cfg, cache_dir, seed).exists()
        teacher, record, thash = load_or_train_teacher(cfg, data, seed, cache_dir, progress, log)
        hashes.add(thash)
        row = _row(cfg, "teacher", seed, f"teacher-{thash}-s{seed}", thash, record["test"], record["seconds"],
                   record["epoch"], commit, teacher_name, teacher_name)
        rows.append(row)
        atomic_write_json(dest / "runs" / f"{row['run_id']}.json",
                          {"row": row, "config": cfg, "environment": env, "history": record.get("history", []),
                           "teacher_loaded_from_cache": cached})
        for method_name in methods:
            run_id, chash = run_id_of(cfg, method_name, seed)
            hashes.add(chash)
            student, result = train_student(cfg, data, teacher, method_name, cfg["methods"].get(method_name),
                                            seed, progress, checkpoint=student_checkpoint(cfg, cache_dir, run_id))
            test = evaluate_detector(student, data["test"], train_config(cfg, "student", progress),
                                     desc=f"{method_name} test")
            log(f"{method_name:>8} seed {seed}: test AP {100 * test['ap']:.2f}, AP50 {100 * test['ap50']:.2f} "
                f"(epoch {result.best_epoch}, {result.seconds:.0f}s)")
            row = _row(cfg, method_name, seed, run_id, chash, test, result.seconds, result.best_epoch, commit,
                       teacher_name, student_name)
            rows.append(row)
            atomic_write_json(dest / "runs" / f"{run_id}.json",
                              {"row": row, "config": cfg, "environment": env, "history": result.history})
            upsert_rows(dest / "runs.csv", [row])
    table = upsert_rows(dest / "runs.csv", [r for r in rows if r["method"] == "teacher"])
    board = leaderboard(table[table["config_hash"].isin(hashes)], primary=PRIMARY)
    atomic_write_text(dest / "leaderboard.csv", board.to_csv(index=False, float_format="%.4f"))
    notes = _notes(cfg, data, commit, teacher_name, student_name)
    atomic_write_text(dest / "leaderboard.md", to_markdown(board, f"{cfg['suite']}: {cfg['dataset']['name']}", notes))
    return dest
