"""What a task is: everything the harness knows of retrieval, classification or detection.

A task is one module of ``benchmarks.runner.tasks`` (``retrieval.py``, ``classification.py``,
``detection.py``) whose ``Task`` subclass is decorated with ``@register_task``; the registry finds it
there, with nothing to add anywhere else. The class declares the task's name, its metrics (the first
is the primary one: the leaderboard's and the tuner's), the pydantic model of its config, the suite
names that run it with configs of their own (``VARIANTS``: the HMAT ablation and the from-scratch
protocol are configs of the retrieval task, not code), and its methods: data, networks, teacher,
student, evaluation, the result row and the table's notes. The run loop (``benchmarks.runner.suite_runner``), the dry run, the tuner, the
search and the launchers talk to a task only through this interface. A job process looks a task up by
its suite name (``get_suite``), so a task is never pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from benchmarks.runner.config import config_hash
from benchmarks.runner.schema import typed
from benchmarks.runner.suite_runner import run_suite, train_seeded_student
from benchmarks.runner.tasks.common import environment
from retrieval.data.fingerprint import data_digest


class Task(ABC):
    """A task's declarations and methods.

    ``name``: the task, and the suite name of its default (``benchmarks/configs/<name>.yaml``).
    ``METRICS``: the validation metrics its tuning tables hold; ``PRIMARY`` (the first, unless set):
    the leaderboard's metric. ``SCHEMA``: the pydantic model its configs must satisfy
    (``benchmarks.runner.schema.RunConfig`` and the task's own sections). ``VARIANTS``: other suite names
    that run this task with their own default config and tables of their own. ``ORDER``: where the task
    is listed. ``TORCHRUN``: whether ``benchmarks.run`` accepts it under torchrun (each job trained by all
    the processes together).

    A task's class implements every abstract method below (a class that misses one cannot be
    instantiated); its module keeps the helpers they call (building the data and the networks).
    """

    name: str = ""
    METRICS: tuple[str, ...] = ()
    PRIMARY: str = ""
    SCHEMA: type | None = None
    VARIANTS: tuple[str, ...] = ()
    ORDER: int = 100
    TORCHRUN: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if vars(cls).get("METRICS") and "PRIMARY" not in vars(cls):
            cls.PRIMARY = cls.METRICS[0]  # a subclass that declares its own metrics gets their first

    @property
    def suites(self) -> tuple[str, ...]:
        """The suite names that run this task: its own, then its variants."""
        return (self.name, *self.VARIANTS)

    def run(self, cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True, log=print,
            launcher=None) -> Path:
        """Run ``cfg``; return the folder of its tables (``benchmarks.runner.suite_runner.run_suite``)."""
        return run_suite(self, cfg, out_dir, cache_dir, commit, progress, log, environment(cfg), launcher)

    @abstractmethod
    def prepare_data(self, cfg: dict, cache_dir: Path, log=print) -> dict:
        """The run's datasets, ``{split: dataset}`` (``cache_dir`` too, for the setup jobs)."""

    @abstractmethod
    def teacher_identity(self, cfg: dict) -> dict:
        """What decides the teacher's weights (hashed into its row's config hash and its cache file's name)."""

    @abstractmethod
    def teacher_name(self, cfg: dict) -> str:
        """The teacher network's name in its cache file's name."""

    def teacher_hash(self, cfg: dict) -> str:
        """The hash of what decides the teacher's weights (its row's config hash; its cache file's name)."""
        return config_hash(self.teacher_identity(cfg))

    def data_digest(self, data: dict) -> str:
        """The digest of the splits a network trains and selects on (``retrieval.data.fingerprint``), recorded
        with every cached teacher and student state: one cached on other data under the same config is
        trained again."""
        return data_digest(data)

    def teacher_checkpoint(self, cfg: dict, cache_dir: Path, seed: int) -> Path:
        """Where the teacher of ``seed`` is cached, named by ``teacher_hash``."""
        name = f"{self.teacher_name(cfg)}-{self.teacher_hash(cfg)}-seed{seed}.pt"
        return Path(cache_dir) / "teachers" / typed(cfg).dataset.name / name

    @abstractmethod
    def load_or_train_teacher(self, cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=print):
        """(teacher network, its record, its config hash), from the cache or trained and cached."""

    @abstractmethod
    def run_id_of(self, cfg: dict, method: str, seed: int) -> tuple[str, str]:
        """(run id, config hash) of a student run."""

    def train_student(self, cfg: dict, data: dict, teacher, method: str, options: dict | None, seed: int,
                      progress: bool, checkpoint: Path | None = None, resume_tag: str | None = None):
        """(student network, ``TrainResult``) of one student run, the same way for every task: the method
        built by ``build_student_method`` from the run's initial weights, then trained by ``fit_student``
        under the run's seed (``benchmarks.runner.suite_runner.train_seeded_student``). With a
        ``checkpoint``, the training state is saved beside it after every epoch, and a run saved under the
        same ``resume_tag`` continues from it, or is not retrained if it had finished."""
        return train_seeded_student(
            cfg, seed, lambda: self.build_student_method(cfg, data, teacher, method, options),
            lambda built, state, tag: self.fit_student(built, data, cfg, progress, f"{method} s{seed}", state, tag),
            checkpoint, resume_tag)

    @abstractmethod
    def build_student_method(self, cfg: dict, data: dict, teacher, method: str, options: dict | None):
        """The method object of one student run (its student network and losses), before training."""

    @abstractmethod
    def fit_student(self, method, data: dict, cfg: dict, progress: bool, name: str, state_path: Path | None,
                    state_tag: str | None):
        """Train ``method`` on the task's training split, selected as its config says; a ``TrainResult``."""

    @abstractmethod
    def evaluate_student(self, model, data: dict, cfg: dict, progress: bool, desc: str) -> dict:
        """The test metrics of a trained network."""

    @abstractmethod
    def make_row(self, cfg: dict, method: str, seed: int, run_id: str, config_hash: str, test: dict,
                 seconds: float, epoch: int, commit: str) -> dict:
        """The result row of a run."""

    @abstractmethod
    def cost_networks(self, cfg: dict, data: dict) -> dict | None:
        """``{"teacher": net, "student": net}`` whose cost the table reports, or None."""

    @abstractmethod
    def table_notes(self, cfg: dict, data: dict, commit: str) -> list[str]:
        """The markdown lines under the suite's leaderboard."""

    def check_methods(self, cfg: dict, data: dict) -> None:
        """Build every method of ``cfg["run"]`` on untrained networks, so that an option the schema
        cannot judge fails before any training (``benchmarks.runner.preflight``); nothing by default."""

    def setup_names(self, cfg: dict) -> list[str]:
        """Jobs to run before any teacher (e.g. pretraining the backbones); none by default."""
        return []

    def setup(self, cfg: dict, data: dict, name: str, progress: bool, log=print) -> None:
        """Run the setup job ``name`` (one of ``setup_names``)."""
        raise NotImplementedError(f"task {self.name!r} has no setup job {name!r}")

