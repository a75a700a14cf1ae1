"""The config schema: every section of a run config declared with its types, ranges and
defaults (pydantic), checked before any work.

``check_config(cfg, origin)`` validates a resolved run config (the suite's default merged
with the user's file and the command-line flags) and raises ``UserError`` with one line per
problem, each naming the file the key came from and its path (``student.train.epochs``):
unknown keys (with the nearest valid key), wrong types, values out of range, unknown names
(dataset, architecture, loss, method, a role's torchvision ``weights``) and the cross-field rules of a training section
(``batch_size`` a multiple of ``m_per_class``, milestones inside the epochs, ``eval_every`` at
most the epochs). The config itself is not rewritten: the identities that name cached teachers and
runs hash its sections as written, so a default added to the schema changes no hash.

``typed(cfg)`` is what the code reads: the checked config as its task's pydantic model (``RetrievalConfig``,
``ClassificationConfig``, ``DetectionConfig``), with types, and the schema's defaults where the file is silent
(``cfg.teacher.arch``, ``cfg.student.embedding_dim``, ``cfg.eval.ks``). The dict stays beside it for what must
be hashed or written as given (identities, run files).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from benchmarks.runner.config import deep_merge, method_options
from benchmarks.runner.errors import UserError
from benchmarks.runner.replicates import design_problems
from benchmarks.runner.tasks import is_suite, list_suites, schema_of, suite_task
from retrieval.data.registry import dataset_loader, list_datasets
from retrieval.engine.trainer import OPTIMIZERS, SAMPLERS, SCHEDULES, SELECT, TrainConfig
from retrieval.methods.options import options_model
from retrieval.methods.registry import is_method, list_methods, method_class, method_tasks
from retrieval.metric_losses.metric_loss import LOSSES, MINERS
from retrieval.metrics.approximate import INDEXES
from retrieval.models import list_models
from retrieval.models.torchvision_backbones import has_torchvision_weights, known_weights, resolve_weights

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Device = Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?|mps)$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSection(Section):
    """Training options (``retrieval.engine.TrainConfig``); a role's ``train`` is merged over the
    shared one, so every key is optional here and the merged section is checked as a whole."""
    epochs: PositiveInt | None = None
    lr: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None
    milestones: list[PositiveInt] | None = None
    gamma: PositiveFloat | None = None
    schedule: Literal[SCHEDULES] | None = None
    batch_size: PositiveInt | None = None
    m_per_class: PositiveInt | None = None
    eval_every: PositiveInt | None = None
    select_metric: str | None = None
    num_workers: Annotated[int, Field(ge=0)] | None = None
    max_steps: PositiveInt | None = None  # end each epoch after this many steps (the dry run sets it)
    optimizer: Literal[OPTIMIZERS] | None = None
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    sampler: Literal[SAMPLERS] | None = None
    select: Literal[SELECT] | None = None
    amp: bool | None = None
    channels_last: bool | None = None


class DatasetSection(Section):
    name: str
    root: str | None = None
    options: dict[str, Any] | None = None


class PretrainDataset(Section):
    name: str | None = None
    root: str | None = None
    options: dict[str, Any] | None = None


class PretrainSection(Section):
    dataset: PretrainDataset | None = None
    train: TrainSection | None = None
    seed: Annotated[int, Field(ge=0)] | None = None  # initial weights and batch order (full replicates draw it)


class TaskLoss(Section):
    name: str
    miner: str | None = None
    loss_options: dict[str, Any] | None = None
    miner_options: dict[str, Any] | None = None


class EvalSection(Section):
    ks: Annotated[list[PositiveInt], Field(min_length=1)]
    index: list[str] | str | None = None  # names checked against retrieval.metrics.approximate.INDEXES


class CostSection(Section):
    """How the cost columns are measured (``retrieval.cost.columns.suite_cost``)."""
    threads: PositiveInt | None = None
    repeats: PositiveInt = 5
    warmup: Annotated[int, Field(ge=0)] = 2


class RayOptions(Section):
    """Options of the ray launcher (``benchmarks.runner.launch.ray_pool.RayPool``)."""
    address: str | None = None        # an existing cluster (``auto``, ``ray://host:10001``); None: a local instance
    cpus_per_job: PositiveFloat | None = None   # default: the config's threads (1 when unset)
    gpus_per_job: Annotated[float, Field(ge=0)] | None = None  # default: 1 on device cuda, else 0
    num_cpus: PositiveInt | None = None  # CPUs of the local instance (None: the machine's)


class SlurmOptions(Section):
    """Options of the slurm launcher (``benchmarks.runner.launch.slurm_pool.SlurmPool``)."""
    folder: str | None = None         # submitit's job files and logs (default: <cache-dir>/slurm); shared storage
    partition: str | None = None
    time_min: PositiveInt = 240
    cpus_per_task: PositiveInt | None = None    # default: the config's threads (1 when unset)
    gpus_per_node: Annotated[int, Field(ge=0)] | None = None  # default: 1 on device cuda, else 0
    mem_gb: PositiveFloat | None = None
    max_jobs: PositiveInt | None = None  # in the queue at once (default: workers)
    cluster: Literal["slurm", "local", "debug"] | None = None  # submitit's executor (local: processes of this machine)
    additional: dict[str, Any] | None = None  # more #SBATCH options


class LauncherSection(Section):
    """Where the jobs run (``benchmarks.runner.launch``); never part of a run's identity."""
    name: Literal["local", "ray", "slurm"] = "local"
    ray: RayOptions | None = None
    slurm: SlurmOptions | None = None


class TrackingSection(Section):
    """Run tracking (``benchmarks.runner.tracking``); never part of a run's identity."""
    tracker: Literal["tensorboard", "mlflow", "none"] | None = None  # None: tensorboard, when it is installed
    uri: str | None = None  # MLflow's tracking URI (default: the file store <out>/mlruns)


class RoleModel(Section):
    """A role's network (``teacher``, ``student``): what every task's networks share; a task's own model
    section adds its keys."""
    arch: str
    pretrained: bool = False
    weights: str | None = None  # torchvision's name (IMAGENET1K_V1), read with pretrained; checked in name_problems
    train: TrainSection | None = None


class RunConfig(Section):
    """The keys every suite shares; a task's ``SCHEMA`` (in its module, ``benchmarks.runner.tasks.<task>``)
    adds the roles' networks and its own sections (``ScoredConfig`` for the tasks with a task loss and an
    ``eval`` section)."""
    suite: str
    dataset: DatasetSection
    train: TrainSection | None = None
    methods: dict[str, dict[str, Any] | None]
    run: list[str]  # the methods; empty: the teachers alone (what --reproduce of a teacher row runs)
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]  # the replicates
    replicates: Literal["full", "conditional"] | None = None  # what a replicate draws (benchmarks.runner.replicates)
    init_seed: Annotated[int, Field(ge=0)] | None = None  # conditional only: one draw of the initial weights
    teacher_seed: Annotated[int, Field(ge=0)] | None = None  # conditional only: one teacher (of this seed) for every seed
    threads: PositiveInt | None = None
    workers: PositiveInt | None = None
    launcher: LauncherSection | None = None
    device: Device | None = None
    cost: CostSection | None = None
    tracking: TrackingSection | None = None
    pretrain: PretrainSection | None = None


class ScoredConfig(RunConfig):
    """A run config with a task loss and an ``eval`` section (retrieval, classification)."""
    task_loss: TaskLoss
    eval: EvalSection


DETECTION_DATASETS = ("mnist-scenes", "coco")  # retrieval.detection.data.build_detection_dataset
INTERNAL_KEYS = ("_command",)  # set by the runner after the check


# ----------------------------------------------------------------------------- reporting

def _path(loc) -> str:
    return ".".join(str(part) for part in loc)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The declared keys of the section at ``loc`` (the parent of an unknown key)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        sub = _model_in(field.annotation)
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _model_in(annotation) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _nearest(value, valid) -> str:
    """``did you mean 'x'?`` for the closest of ``valid``, else the list of them."""
    close = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(valid)}"


def unknown_key_message(key: str, valid) -> str:
    return f"unknown key; {_nearest(key, valid)}"


def pydantic_problems(exc: ValidationError, model: type[BaseModel], prefix: tuple = ()) -> list[tuple[str, str]]:
    """(key path, message) for each error of a pydantic validation."""
    out = []
    for err in exc.errors():
        loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith(("list[", "tuple["))))
        if err["type"] == "extra_forbidden":
            message = unknown_key_message(str(loc[-1]), _fields_at(model, loc[:-1]))
        else:
            message = err["msg"][0].lower() + err["msg"][1:]
            if err["type"] not in ("missing",):
                message += f" (got {err['input']!r})"
        out.append((_path(prefix + loc), message))
    return out


# ----------------------------------------------------------------------------- semantic checks

def merged_train(cfg: dict, role: str) -> dict:
    return deep_merge(cfg.get("train") or {}, (cfg.get(role) or {}).get("train") or {})


def typed_train(cfg: dict, role: str) -> TrainSection:
    """A role's training section (``teacher``, ``student``, ``pretrain``) merged over the shared one, typed;
    a key neither sets is None (``retrieval.engine.TrainConfig`` holds the defaults)."""
    return TrainSection.model_validate(merged_train(cfg, role))


def train_rules(train: dict, where: str, ks=None, suite: str = "retrieval", validated: bool = True
                ) -> list[tuple[str, str]]:
    """The cross-field rules of one merged training section (``where``: its key path);
    ``validated=False`` for a run without validation (pretraining): no eval_every or metric rule."""
    defaults = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}
    t = {**defaults, **train}
    out = []
    if t["sampler"] == "m_per_class" and t["batch_size"] % t["m_per_class"]:
        out.append((f"{where}.batch_size", f"batch_size {t['batch_size']} is not a multiple of m_per_class "
                                           f"{t['m_per_class']} (the m_per_class sampler draws m images of each class)"))
    bad = [m for m in t["milestones"] or () if not 0 < m < t["epochs"]]
    if bad:
        out.append((f"{where}.milestones", f"milestones {bad} are not inside the {t['epochs']} epochs "
                                           f"(expected 1 to {t['epochs'] - 1})"))
    if validated and t["select"] == "best" and t["eval_every"] > t["epochs"]:  # the last epoch is always scored
        out.append((f"{where}.eval_every", f"eval_every {t['eval_every']} is more than the {t['epochs']} epochs: "
                                           f"select: best would see the last epoch alone"))
    if validated and ks is not None and suite_task(suite) == "retrieval":
        metrics = [f"recall@{k}" for k in ks] + ["map@r", "r_precision"]
        if t["select_metric"] not in metrics:
            out.append((f"{where}.select_metric", f"unknown metric {t['select_metric']!r}; expected one of {metrics}"))
    return out


def _name_check(value, valid, path) -> list[tuple[str, str]]:
    if value in valid:
        return []
    return [(path, f"unknown name {value!r}; {_nearest(value, valid)}")]


def dataset_option_problems(name: str, options: dict, path: str) -> list[tuple[str, str]]:
    """The options of dataset ``name`` against its loader's keywords (types too, where annotated)."""
    loader = dataset_loader(name)
    if loader is None:
        return []
    params = inspect.signature(loader).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items() if n not in ("root", "split", "transform") and p.kind != p.VAR_KEYWORD]
    try:
        hints = typing.get_type_hints(loader)
    except Exception:  # an annotation that does not resolve: check the names only
        hints = {}
    out = []

    for key, value in (options or {}).items():
        if key not in valid:
            if not accepts_any:
                out.append((f"{path}.{key}", unknown_key_message(key, valid) + f" (options of dataset {name!r})"))
            continue
        if key in hints and value is not None:
            try:
                TypeAdapter(hints[key]).validate_python(value)
            except ValidationError as exc:
                out.append((f"{path}.{key}", exc.errors()[0]["msg"].lower() + f" (got {value!r})"))
            except Exception:  # a type pydantic cannot check
                pass
    return out


def method_problems(cfg: dict, only: str | None = None) -> list[tuple[str, str]]:
    """Every ``methods`` entry (a registered method or a named variant of one; only the entry
    ``only`` if given) against the method's options model, and every ``run`` entry known."""
    out = []
    methods = cfg.get("methods") or {}
    for name, options in methods.items():
        if only is not None and name != only:
            continue
        registered = (options or {}).get("method", name)
        if not is_method(registered):
            key = f"methods.{name}.method" if "method" in (options or {}) else f"methods.{name}"
            out += _name_check(registered, list_methods(), key)
            continue
        _, merged = method_options(cfg, name, options)
        model = options_model(method_class(registered))
        try:
            model.model_validate(merged)
        except ValidationError as exc:
            out += [(f"methods.{name}.{p.split('.', 1)[0]}" if p else f"methods.{name}", m)
                    for p, m in pydantic_problems(exc, model)]
    known = set(list_methods()) | {n for n, o in methods.items() if "method" in (o or {})}
    task = suite_task(cfg["suite"]) if is_suite(cfg.get("suite")) else None
    for i, name in enumerate(cfg.get("run") or []):
        problems = _name_check(name, known, "")
        out += [(f"run[{i}]", m) for _, m in problems]
        registered = (methods.get(name) or {}).get("method", name)
        if not problems and task and is_method(registered) and task not in method_tasks(registered):
            out.append((f"run[{i}]", f"method {name!r} does not run on the {cfg['suite']} suite (a {task} task); "
                                     f"it supports {', '.join(method_tasks(registered))}"))
    return out


def weights_problems(arch: str, weights, path: str) -> list[tuple[str, str]]:
    """A role's ``weights`` against torchvision's weights of its architecture
    (``torchvision.models.get_model_weights``); architectures without any reject the key."""
    if weights is None:
        return []
    if not has_torchvision_weights(arch):
        with_weights = [name for name in list_models() if has_torchvision_weights(name)]
        return [(path, f"{arch} has no torchvision weights, so weights {weights!r} cannot apply; drop the key "
                       f"(weights apply to {with_weights})")]
    try:
        resolve_weights(arch, weights)
    except ValueError:
        return [(path, f"unknown weights {weights!r} for {arch}; expected one of {known_weights(arch)} "
                       f"(torchvision.models.get_model_weights({arch!r}))")]
    return []


def name_problems(cfg: dict) -> list[tuple[str, str]]:
    detection = cfg["suite"] == "detection"
    out = _name_check(cfg["dataset"]["name"], DETECTION_DATASETS if detection else list_datasets(), "dataset.name")
    if not out and not detection:
        out += dataset_option_problems(cfg["dataset"]["name"], cfg["dataset"].get("options") or {}, "dataset.options")
    for role in ("teacher", "student"):
        arch_problems = _name_check(cfg[role]["arch"], list_models(), f"{role}.arch")
        out += arch_problems or weights_problems(cfg[role]["arch"], cfg[role].get("weights"), f"{role}.weights")
    task = cfg.get("task_loss")
    if task and cfg["suite"] != "classification":
        out += _name_check(task["name"], LOSSES, "task_loss.name")
        if task.get("miner") is not None:
            out += _name_check(task["miner"], MINERS, "task_loss.miner")
    index = (cfg.get("eval") or {}).get("index") or []
    if index:
        for i, name in enumerate([index] if isinstance(index, str) else index):
            out += _name_check(name, INDEXES, f"eval.index[{i}]")
    return out


def _task_model(cfg: dict) -> tuple[RunConfig | None, list[tuple[str, str]]]:
    """(the config as its task's model, []) or (None, the problems of its suite and structure)."""
    cfg = {k: v for k, v in cfg.items() if k not in INTERNAL_KEYS}
    suite = cfg.get("suite")
    if not is_suite(suite):
        return None, [("suite", f"unknown suite {suite!r}; expected one of {sorted(list_suites())}")]
    schema = schema_of(suite)  # the task's config model (benchmarks.runner.task.Task.SCHEMA)
    try:
        return schema.model_validate(cfg), []
    except ValidationError as exc:
        return None, pydantic_problems(exc, schema)


def config_problems(cfg: dict) -> list[tuple[str, str]]:
    """(key path, message) for every problem of a resolved run config; empty when it is valid."""
    model, problems = _task_model(cfg)
    if model is None:
        return problems  # the names and rules below assume the structure

    cfg = {k: v for k, v in cfg.items() if k not in INTERNAL_KEYS}
    suite = cfg["suite"]
    out = design_problems(cfg) + name_problems(cfg) + method_problems(cfg)
    ks = (cfg.get("eval") or {}).get("ks")
    for role in ("teacher", "student"):
        own = (cfg[role].get("train") or {})
        out += [(path if path.split(".")[-1] in own else "train." + path.split(".")[-1], f"{role}: {message}")
                for path, message in train_rules(merged_train(cfg, role), f"{role}.train", ks, suite)]
    if cfg.get("pretrain"):
        out += train_rules(merged_train(cfg, "pretrain"), "pretrain.train", ks, suite, validated=False)
    return out


def typed(cfg: dict) -> RunConfig:
    """The config ``cfg`` as its task's model (see the module's docstring): validated anew on every call
    (about 20 microseconds), so it always shows the dict as it stands. A config that does not satisfy the
    schema raises ``UserError`` with its problems (``check_config`` reports them, with their sources, before
    any work)."""
    model, problems = _task_model(cfg)
    if model is None:
        raise _user_error(problems)
    return model


def check_config(cfg: dict, origin=None) -> None:
    """Raise ``UserError`` listing every problem of ``cfg``; ``origin(path) -> str`` names where a
    key path came from (a file, a flag) and prefixes each problem."""
    problems = config_problems(cfg)
    if problems:
        raise _user_error(problems, origin)


def _user_error(problems: list[tuple[str, str]], origin=None) -> UserError:
    """One line listing ``problems``, each prefixed by where its key came from (``config`` when unknown)."""
    where = origin or (lambda path: "config")
    return UserError("; ".join(f"{where(path)}: {path}: {message}" for path, message in problems))
