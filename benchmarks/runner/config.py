"""Config files: small YAML files deep-merged over a suite's default."""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml

from benchmarks.runner.errors import UserError


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in (dicts recursively, other values replaced)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def method_options(cfg: dict, method_name: str, options: dict | None) -> tuple[str, dict]:
    """(registered method, options) of a run: a named variant (``{method: hmat, terms: ...}``)
    inherits the configured options of the method it names."""
    options = dict(options or {})
    registered = options.pop("method", method_name)
    if registered != method_name:
        options = deep_merge(cfg["methods"].get(registered) or {}, options)
    return registered, options


def load_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}; expected a YAML file (see benchmarks/configs/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def default_config(suite: str) -> dict:
    """The packaged default config of ``suite`` (``benchmarks/configs/<suite>.yaml``),
    merged over the packaged config its ``base`` key names, if any."""
    ref = resources.files("benchmarks") / "configs" / f"{suite}.yaml"
    if not ref.is_file():
        raise UserError(f"no default config for suite {suite!r}")
    cfg = yaml.safe_load(ref.read_text())
    base = cfg.pop("base", None)
    return merge_config(default_config(base), cfg) if base else cfg


def resolve_config(suite: str, config_file=None) -> dict:
    """Default of the suite, then the user's file (which may name another ``base`` config)."""
    cfg = default_config(suite)
    if config_file:
        user = load_yaml(config_file)
        cfg = merge_config(cfg, user)
    return cfg


def merge_config(base: dict, user: dict) -> dict:
    """``user`` deep-merged over ``base``, except that a ``dataset`` section naming another dataset
    replaces the base's: options belong to the dataset they were written for (the embedded
    generator's ``test_per_class`` means nothing to CUB-200's loader)."""
    merged = deep_merge(base, user)
    dataset = (user or {}).get("dataset")
    if isinstance(dataset, dict) and dataset.get("name") not in (None, (base.get("dataset") or {}).get("name")):
        merged["dataset"] = deep_merge({"root": None, "options": {}}, dataset)
    return merged


def config_hash(cfg: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def key_origin(path: str, sources: list[tuple[str, dict]], default: str):
    """Where the key ``path`` (``student.train.epochs``, ``run[2]``) of a merged config came from:
    the last of ``sources`` (name, the dict it contributed) that holds it, else ``default``."""
    parts = [p.split("[", 1)[0] for p in path.split(".") if p]
    for name, data in reversed(sources):
        node, found = data, True
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                found = False
                break
        if found and parts:
            return name
    return default


# ------------------------------------------------------------ the pretrain section (benchmarks.runner.tasks.pretrain)

PRETRAIN_KEYS = ("dataset", "train", "seed")


def pretrain_section(cfg: dict) -> dict | None:
    """The config's ``pretrain`` section, checked; None when the networks start from scratch."""
    section = cfg.get("pretrain")
    if not section:
        return None
    unknown = set(section) - set(PRETRAIN_KEYS)
    if unknown:
        raise ValueError(f"pretrain: unknown key(s) {sorted(unknown)}; expected some of {list(PRETRAIN_KEYS)}")
    for role in ("teacher", "student"):
        if cfg[role].get("pretrained"):
            raise ValueError(f"{role}: pretrained weights and a pretrain section exclude each other; "
                             f"drop {role}.pretrained or the pretrain section")
    return section


def pretrain_dataset_spec(cfg: dict) -> dict:
    """The pretraining data: ``pretrain.dataset`` (its name defaults to the generated set,
    ``synthetic``). When that is the config's own dataset, the section is merged over the
    config's dataset section (the same generator with other options: seed, classes); when
    it is another one (say the run was given ``--dataset mnist``), it stands alone."""
    section = deep_merge({"name": "synthetic"}, pretrain_section(cfg).get("dataset") or {})
    if section["name"] == cfg["dataset"]["name"]:
        spec = deep_merge(cfg["dataset"], section)
        for key in SPLIT_KEYS:  # pretraining reads the whole train half: the val classes do not matter
            spec.get("options", {}).pop(key, None)
        return spec
    return deep_merge({"root": None, "options": {}}, section)


SPLIT_KEYS = ("val_fold", "val_fraction")
"""Dataset options that only move classes between ``fit`` and ``val`` (the tuner's cross-validation folds)."""
