"""What one replicate of a benchmark run draws: the unit of every interval the tables report.

A run's ``seeds`` name its replicates. Inside one replicate every method shares everything random
that is not the method itself (the data, the pretrained backbones, the initial weights, the
teacher, the batch order), so two methods are compared paired by replicate
(``benchmarks.report.stats``). What a replicate draws anew decides what the interval of a gain
covers. The config's ``replicates`` key chooses it:

- ``full`` (the default): each replicate draws everything an independent rerun of the benchmark
  would draw, from streams of its seed (``draw(seed, stream)``):

  - the generated data, class set and images (``dataset.options.seed``), where the data are
    generated (``is_generated``); a real dataset stays what it is;
  - the pretraining run: its generated data (``pretrain.dataset.options.seed``), its initial weights
    and batch order (``pretrain.seed``);
  - the initial weights of teacher and students (``init_seed``);
  - the teacher (its own, trained from all of the above);
  - batch order and augmentation (the seed itself, as before).

  The interval of a gain then covers all of it, and says what another lab's rerun of the same
  config should find.
- ``conditional``: the data, the pretraining and (with ``init_seed``) the initial weights are one
  fixed draw, and (with ``teacher_seed``) one teacher serves every seed. A seed redraws only the
  rest. The interval is conditional on that one draw: right for a released fixed teacher, or to
  reproduce a row, but it says nothing about a rerun on another draw. ``init_seed`` and
  ``teacher_seed`` belong to this design only.

``replicate_config(cfg, seed)`` is the config a replicate's jobs train with (``cfg`` itself under
``conditional``); ``design_note(cfg)`` is the sentence every table prints about it.
"""

from __future__ import annotations

import copy

import numpy as np

from benchmarks.runner.config import pretrain_dataset_spec
from retrieval.data import is_generated as retrieval_generated, seed_draws
from retrieval.data.registry import GENERATED_DRAW
from retrieval.detection.data import GENERATED

DESIGNS = ("full", "conditional")
STREAMS = {"data": 1, "pretrain_data": 2, "pretrain": 3, "init": 4}
"""The independent streams a replicate's seed is split into (``numpy.random.SeedSequence`` keys)."""
CONDITIONAL_ONLY = ("init_seed", "teacher_seed")


def design_of(cfg: dict) -> str:
    """The config's replicate design: ``full`` (the default) or ``conditional``."""
    design = cfg.get("replicates") or "full"
    if design not in DESIGNS:
        raise ValueError(f"replicates: {design!r}; expected one of {list(DESIGNS)}")
    return design


def design_problems(cfg: dict) -> list[tuple[str, str]]:
    """(key, message) for each key that the config's design does not allow: ``init_seed`` and
    ``teacher_seed`` fix one draw for every replicate, which ``full`` redraws."""
    if design_of(cfg) != "full":
        return []
    return [(key, f"{key} {cfg[key]} fixes one draw for every replicate, which full replicates draw anew; "
                  f"drop {key}, or set replicates: conditional to keep it")
            for key in CONDITIONAL_ONLY if cfg.get(key) is not None]


def draw(seed: int, stream: str) -> int:
    """The seed of ``stream`` (one of ``STREAMS``) in replicate ``seed``: 31 bits of
    ``SeedSequence([seed, STREAMS[stream]])``, so every stream of every replicate is its own draw."""
    state = np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def is_generated(name: str) -> bool:
    """Whether dataset ``name`` is generated from a ``seed`` option (so that a replicate draws it anew)."""
    return name in GENERATED or retrieval_generated(name)


def data_draw(name: str) -> str:
    """What a replicate's draw of dataset ``name`` (a generated one) changes, for the tables' notes."""
    return seed_draws(name) or GENERATED_DRAW


def replicate_config(cfg: dict, seed: int) -> dict:
    """The config of replicate ``seed``: under ``full``, ``cfg`` with the seeds of the data, the
    pretraining and the initial weights drawn from ``seed`` (see the module's docstring); under
    ``conditional``, ``cfg`` itself. Pure: the same config and seed give the same replicate."""
    if design_of(cfg) != "full":
        return cfg
    problems = design_problems(cfg)
    if problems:
        raise ValueError(problems[0][1])
    out = copy.deepcopy(cfg)
    if is_generated(out["dataset"]["name"]):
        out["dataset"].setdefault("options", {})
        out["dataset"]["options"] = {**(out["dataset"]["options"] or {}), "seed": draw(seed, "data")}
    if out.get("pretrain"):
        section = out["pretrain"]
        if is_generated(pretrain_dataset_spec(cfg)["name"]):
            dataset = dict(section.get("dataset") or {})
            dataset["options"] = {**(dataset.get("options") or {}), "seed": draw(seed, "pretrain_data")}
            section["dataset"] = dataset
        section["seed"] = draw(seed, "pretrain")
    out["init_seed"] = draw(seed, "init")
    return out


def replicate_draws(cfg: dict, seed: int) -> dict:
    """What replicate ``seed`` of ``cfg`` drew, for its run file: ``{design, seed, data_seed,
    pretrain_data_seed, pretrain_seed, init_seed}`` (None where the config fixes or lacks it)."""
    rcfg = replicate_config(cfg, seed)
    pretrain = rcfg.get("pretrain") or {}
    return {"design": design_of(cfg), "seed": int(seed),
            "data_seed": ((rcfg["dataset"].get("options") or {}).get("seed")),
            "pretrain_data_seed": (((pretrain.get("dataset") or {}).get("options") or {}).get("seed")),
            "pretrain_seed": pretrain.get("seed"), "init_seed": rcfg.get("init_seed")}


def design_note(cfg: dict) -> str:
    """The table's sentence on what one replicate (one seed) draws, hence what its intervals cover."""
    generated = is_generated(cfg["dataset"]["name"])
    if design_of(cfg) == "full":
        parts = [data_draw(cfg["dataset"]["name"]) if generated else None,
                 "the pretraining run (its data, initial weights and batch order)" if cfg.get("pretrain") else None,
                 "the initial weights", "the teacher", "the batch order (with augmentation)"]
        fixed = [] if generated else [f"the data ({cfg['dataset']['name']}: one fixed set, so the intervals do not "
                                      f"cover drawing other test images)"]
        if any((cfg.get(role) or {}).get("pretrained") for role in ("teacher", "student")):
            fixed.append("the released pretrained weights")
        said = (f"Replicates: full. Each seed is one replicate that draws anew "
                f"{_join([p for p in parts if p])}; the methods of a replicate share all of it, and the "
                f"intervals cover what varies between replicates")
        return said + (f"; fixed: {_join(fixed)}." if fixed else ".")
    fixed = ["the data" + ("" if not generated else " (one generated draw)")]
    if cfg.get("pretrain"):
        fixed.append("the pretrained backbones")
    fixed.append(f"the initial weights (init_seed {cfg['init_seed']})" if cfg.get("init_seed") is not None
                 else None)
    fixed.append(f"the teacher (seed {cfg['teacher_seed']}'s, for every seed)" if cfg.get("teacher_seed") is not None
                 else None)
    drawn = ["batch order and augmentation"]
    if cfg.get("init_seed") is None:
        drawn.append("the initial weights")
    if cfg.get("teacher_seed") is None:
        drawn.append("the teacher")
    return (f"Replicates: conditional. {_join([f for f in fixed if f]).capitalize()} are one fixed draw; each seed "
            f"draws only {_join(drawn)}. The intervals are conditional on that one draw: they do not say what a "
            f"rerun on another draw would find.")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
