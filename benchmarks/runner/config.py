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
