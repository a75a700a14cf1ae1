"""What a suite is: the parts of a benchmark run that differ between tasks.

The run loop (``benchmarks.runner.suite_runner``), the dry run, the tuner and the launchers only
talk to a suite through this interface. A suite module (``benchmarks.runner.suites.retrieval``,
``classification``, ``detection``) ends with a subclass of ``Suite`` whose methods are its hooks,
and ``benchmarks.runner.suites`` registers it under the config's ``suite`` names
(``get_suite("classification")``). A job process looks a suite up by that name, so a suite is
never pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path


HOOKS = ("prepare_data", "teacher_checkpoint", "teacher_hash", "load_or_train_teacher", "run_id_of", "train_student",
         "evaluate_student", "make_row", "cost_networks", "table_notes", "check_methods", "setup_names", "setup")
"""The methods a suite may take from the functions of its module (``class X(Suite, hooks_from=module)``)."""


class Suite(ABC):
    """A task's hooks. ``PRIMARY`` is the leaderboard's metric; ``TORCHRUN`` whether ``benchmarks.run``
    accepts the suite under torchrun (each job trained by all the processes together).

    ``class RetrievalSuite(Suite, hooks_from=sys.modules[__name__])`` makes each function of that module
    named in ``HOOKS`` a method of the class (unless the class defines it itself); whatever abstract
    method is still missing then makes the class impossible to instantiate."""

    name: str = ""
    PRIMARY: str = ""
    TORCHRUN: bool = False

    def __init_subclass__(cls, hooks_from=None, **kwargs):
        super().__init_subclass__(**kwargs)
        for hook in HOOKS if hooks_from is not None else ():
            if hook not in vars(cls) and callable(vars(hooks_from).get(hook)):
                setattr(cls, hook, staticmethod(vars(hooks_from)[hook]))

    @abstractmethod
    def prepare_data(self, cfg: dict, cache_dir: Path, log=print) -> dict:
        """The run's datasets, ``{split: dataset}`` (``cache_dir`` too, for the setup jobs)."""

    @abstractmethod
    def teacher_checkpoint(self, cfg: dict, cache_dir: Path, seed: int) -> Path:
        """Where the teacher of ``seed`` is cached."""

    @abstractmethod
    def teacher_hash(self, cfg: dict) -> str:
        """The hash of what decides the teacher's weights (its row's config hash; its cache file's name)."""

    @abstractmethod
    def load_or_train_teacher(self, cfg: dict, data: dict, seed: int, cache_dir: Path, progress: bool, log=print):
        """(teacher network, its record, its config hash), from the cache or trained and cached."""

    @abstractmethod
    def run_id_of(self, cfg: dict, method: str, seed: int) -> tuple[str, str]:
        """(run id, config hash) of a student run."""

    @abstractmethod
    def train_student(self, cfg: dict, data: dict, teacher, method: str, options: dict | None, seed: int,
                      progress: bool, checkpoint: Path | None = None, resume_tag: str | None = None):
        """(student network, ``TrainResult``) of one student run."""

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

    @abstractmethod
    def run(self, cfg: dict, out_dir: Path, cache_dir: Path, commit: str, progress: bool = True, log=print,
            launcher=None) -> Path:
        """Run ``cfg``; return the folder of its tables."""

    def check_methods(self, cfg: dict, data: dict) -> None:
        """Build every method of ``cfg["run"]`` on untrained networks, so that an option the schema
        cannot judge fails before any training (``benchmarks.runner.preflight``); nothing by default."""

    def setup_names(self, cfg: dict) -> list[str]:
        """Jobs to run before any teacher (e.g. pretraining the backbones); none by default."""
        return []

    def setup(self, cfg: dict, data: dict, name: str, progress: bool, log=print) -> None:
        """Run the setup job ``name`` (one of ``setup_names``)."""
        raise NotImplementedError(f"suite {self.name!r} has no setup job {name!r}")

