"""Run tracking: every training run's curves and results as TensorBoard event files, and in MLflow on request.

A teacher or student job (``benchmarks.runner.suite_runner``) trains inside ``tracking(job, run_id, ...)``:
the block installs a progress callback (``retrieval.engine.trainer.reporting_progress``) that hands every
event of the training loop to the run's trackers and forwards it to the callback installed before
(``current_progress_callback``: the job's live progress, which only shows some steps), then
``finish(test)`` writes the test metrics. The trackers are built inside the job from its config, so a job
run in another process or on another node (Ray, SLURM) tracks itself. They only read what the loop
computes anyway: tracking changes no number.

What a run writes (``step``: the run's global step, 1-based over all its epochs):

* ``loss/<term>`` each named loss term, ``train/loss`` their sum and ``train/lr`` the learning rate (the
  first parameter group's), at every step;
* ``epoch/loss/<term>`` each term's epoch mean (the history's ``loss/<term>``), ``train/epoch`` and
  ``val/<metric>`` (every validation metric, at each evaluation) at the epoch's last step;
* ``test/<metric>`` the final test metrics, and the run's hyperparameters (``run_params``: the role's
  section, its merged training options, the task loss and, for a student, the method's options, flattened
  to ``student.arch``, ``train.lr``, ``method_options.tau_pos``...) with the test metrics, at the last step.

TensorBoard (``TensorBoardTracker``): event files under ``<out>/<suite>/<dataset>/tensorboard/<run_id>/``,
named by the run id of the run's row (a teacher's, ``teacher-<hash>-s<seed>``, is read from the name of
its cache file before training: ``teacher_run_id``). A resumed run's writer purges (``purge_step``) the
events from the first step it trains again, so the curves show each step once; a run retrained from
scratch (a new commit) purges the old curves. A run that trains nothing in this call (a teacher loaded
from the cache, a finished student state) writes its test metrics and hyperparameters only when its
folder holds no event files yet, and nothing otherwise (they were written when it was trained).

MLflow (``MLflowTracker``, ``--tracker mlflow``, on top of TensorBoard): one MLflow run per training run
in the experiment ``<suite>/<dataset>``, named and tagged (``hmat.run_id``) by the run id; params are
``run_params``, metrics the same names as above with ``@`` written ``_at_`` (MLflow's names allow no
``@``: ``test/recall_at_1``). The store is a local file store ``<out>/mlruns`` (MLflow 3 refuses file
stores unless ``MLFLOW_ALLOW_FILE_STORE`` is true, which is set for it; ``mlflow ui --backend-store-uri
<out>/mlruns`` shows it) unless the config's ``tracking.uri`` (``--tracking-uri``) names another store.
A resumed run continues the latest MLflow run of its run id (the steps of an epoch cut short by the kill
are logged twice: MLflow cannot purge); one trained from scratch, or a new one, gets a new MLflow run;
one that trains nothing logs only when its run id has no MLflow run yet.

The config's ``tracking`` section (``{tracker: tensorboard | mlflow | none, uri: ...}``) chooses; it is no
part of any run's identity (run ids and config hashes are computed from named keys only). Both need the
cluster extra (``pip install -e ".[cluster]"``): a tracker the config names fails at once, before any data
is read (``check_tracking``, called by ``benchmarks.run``); the default one, when tensorboard is missing, is
skipped with one note.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.runner.config import deep_merge, method_options
from benchmarks.runner.errors import UserError
from benchmarks.runner.launch import EXTRA
from benchmarks.runner.schema import typed
from retrieval.engine import distributed
from retrieval.engine.trainer import current_progress_callback, reporting_progress

TRACKERS = ("tensorboard", "mlflow", "none")
DEFAULT = "tensorboard"
PACKAGES = {"tensorboard": ("tensorboard",), "mlflow": ("tensorboard", "mlflow"), "none": ()}
FOLDER = "tensorboard"  # under <out>/<suite>/<dataset>/
MLFLOW_FOLDER = "mlruns"  # under <out>/


def tracking_options(cfg: dict) -> tuple[str, str | None, bool]:
    """(tracker, MLflow tracking URI or None, whether the config names the tracker) of a run config."""
    section = cfg.get("tracking") or {}
    tracker = section.get("tracker")
    return tracker or DEFAULT, section.get("uri"), tracker is not None


def _import(name: str):
    return importlib.import_module(name)


def missing_packages(tracker: str) -> list[str]:
    """The packages ``tracker`` needs that cannot be imported."""
    missing = []
    for name in PACKAGES[tracker]:
        try:
            _import(name)
        except ImportError:
            missing.append(name)
    return missing


def check_tracking(cfg: dict, log=print) -> None:
    """Before any long work: a ``UserError`` (one line naming the extra) when the config names a tracker
    whose packages are missing, or a URI without MLflow; one note when the default tracker's are."""
    tracker, uri, explicit = tracking_options(cfg)
    if tracker not in TRACKERS:
        raise UserError(f"tracking.tracker {tracker!r}: expected one of {list(TRACKERS)}")
    if uri and tracker != "mlflow":
        raise UserError(f"--tracking-uri {uri}: it is the MLflow store of --tracker mlflow; add --tracker mlflow")
    missing = missing_packages(tracker)
    if missing and explicit:
        raise UserError(f"--tracker {tracker} needs {' and '.join(missing)}, which is not installed: "
                        f"install the cluster extra with {EXTRA} (or run with --tracker none)")
    if missing:
        log(f"note: tensorboard is not installed, so this run writes no TensorBoard event files; "
            f"install it with {EXTRA} (--tracker none silences this note)")


# ------------------------------------------------------------------------------------------- what is logged

def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists, tuples and None become text, so that every value is
    a number, a bool or a string (what TensorBoard's hparams and MLflow's params take)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, (bool, int, float, str)):
        return {prefix: tree}
    return {prefix: json.dumps(tree, sort_keys=True, default=str)}


def run_params(cfg: dict, role: str, method: str | None = None, seed: int | None = None) -> dict:
    """The hyperparameters of one run: the ``role``'s section (teacher or student) and its training options
    merged over the shared ones, the task loss and, for a student, its method and the method's options."""
    spec = dict(cfg.get(role) or {})
    train = deep_merge(cfg.get("train") or {}, spec.pop("train", None) or {})
    params = {"suite": cfg.get("suite"), "dataset": (cfg.get("dataset") or {}).get("name"), "role": role,
              "method": method or role, "seed": seed, **flatten(spec, role), **flatten(train, "train")}
    if cfg.get("task_loss"):
        params.update(flatten(cfg["task_loss"], "task_loss"))
    if role == "student" and method is not None:
        registered, options = method_options(cfg, method, (cfg.get("methods") or {}).get(method))
        params["method_registered"] = registered
        params.update(flatten(options, "method_options"))
    return flatten(params)


def step_scalars(event: dict) -> dict:
    """The scalars of a ``step`` event."""
    terms = event.get("terms") or {}
    out = {f"loss/{term}": value for term, value in terms.items()}
    out["train/loss"] = event["loss"]
    if event.get("lr") is not None:
        out["train/lr"] = event["lr"]
    return out


def epoch_scalars(event: dict) -> dict:
    """The scalars of an ``epoch`` event."""
    out = {f"epoch/loss/{term}": value for term, value in (event.get("terms") or {}).items()}
    out["train/epoch"] = event["epoch"]
    out.update({f"val/{metric}": value for metric, value in (event.get("val") or {}).items()})
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def final_scalars(test: dict | None, split: str = "test") -> dict:
    """``{"<split>/<metric>": value}`` of a run's final metrics (``val`` for a tuning run, which never tests)."""
    return {f"{split}/{k}": float(v) for k, v in (test or {}).items() if _number(v)}


# ------------------------------------------------------------------------------------------------ trackers

class TensorBoardTracker:
    """The event files of one run under ``folder`` (``torch.utils.tensorboard.SummaryWriter``), opened at
    the run's first epoch (purging what an earlier attempt wrote from that step on) or at ``finish``."""

    def __init__(self, folder: Path, params: dict):
        self.folder, self.params = Path(folder), params
        self.writer = None
        self.trained = False
        self.last_step = 0

    def _open(self, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder), purge_step=purge_step)

    def event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "epoch_start":
            if self.writer is None:
                self._open(purge_step=int(event.get("global_step", 0)) + 1)
            self.trained = True
        elif kind == "step" and self.writer is not None:
            self.last_step = int(event["global_step"])
            for tag, value in step_scalars(event).items():
                self.writer.add_scalar(tag, value, self.last_step)
        elif kind == "epoch" and self.writer is not None:
            self.last_step = int(event["global_step"])
            for tag, value in epoch_scalars(event).items():
                self.writer.add_scalar(tag, value, self.last_step)
            self.writer.flush()  # a killed run keeps its finished epochs

    def finish(self, test: dict | None, split: str = "test") -> None:
        if self.writer is None:
            if any(self.folder.glob("events.out.tfevents.*")):
                return  # written when it was trained
            self._open(purge_step=None)
        from torch.utils.tensorboard.summary import hparams

        metrics = final_scalars(test, split)
        step = self.last_step
        for summary in hparams(self.params, metrics):
            self.writer.file_writer.add_summary(summary, step)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _mlflow_name(name: str) -> str:
    """A metric or param name MLflow accepts (alphanumerics, ``_ - . : /`` and spaces): ``@`` -> ``_at_``."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("@", "_at_"))


def default_mlflow_uri(dest: Path) -> str:
    """The local file store of a run whose tables go to ``dest`` (``<out>/<suite>/<dataset>``): ``<out>/mlruns``."""
    return (Path(dest).resolve().parents[1] / MLFLOW_FOLDER).as_uri()


class MLflowTracker:
    """One MLflow run per training run (``mlflow.tracking.MlflowClient``), found again by its ``hmat.run_id``
    tag when the training resumes; metrics are sent at the end of each epoch (``log_batch``)."""

    BATCH = 1000  # MLflow's most metrics per log_batch
    PARAMS = 100  # and params

    def __init__(self, uri: str, experiment: str, run_id: str, tags: dict, params: dict):
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses file stores otherwise
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.experiment, self.run_id, self.tags, self.params = experiment, run_id, tags, params
        self.mlflow_run = None
        self.pending: list = []
        self.last_step = 0

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except MlflowException:  # created meanwhile by another job
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    def _latest(self, experiment_id: str):
        runs = self.client.search_runs([experiment_id], f"tags.`hmat.run_id` = '{self.run_id}'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0] if runs else None

    def _start(self, resume: bool) -> None:
        from mlflow.entities import Param, RunTag

        experiment_id = self._experiment_id()
        latest = self._latest(experiment_id) if resume else None
        if latest is not None:
            self.mlflow_run = latest.info.run_id
            self.client.update_run(self.mlflow_run, status="RUNNING")
            return
        run = self.client.create_run(experiment_id, run_name=self.run_id,
                                     tags={"hmat.run_id": self.run_id, **self.tags})
        self.mlflow_run = run.info.run_id
        items = [Param(_mlflow_name(k), str(v)[:6000]) for k, v in self.params.items()]
        for i in range(0, len(items), self.PARAMS):
            self.client.log_batch(self.mlflow_run, params=items[i:i + self.PARAMS])
        self.client.log_batch(self.mlflow_run, tags=[RunTag(k, str(v)) for k, v in self.tags.items()])

    def _add(self, scalars: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending.extend(Metric(_mlflow_name(k), float(v), now, step) for k, v in scalars.items())

    def _send(self) -> None:
        for i in range(0, len(self.pending), self.BATCH):
            self.client.log_batch(self.mlflow_run, metrics=self.pending[i:i + self.BATCH])
        self.pending = []

    def event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "epoch_start" and self.mlflow_run is None:
            self._start(resume=int(event.get("global_step", 0)) > 0)
        elif kind == "step" and self.mlflow_run is not None:
            self._add(step_scalars(event), int(event["global_step"]))
        elif kind == "epoch" and self.mlflow_run is not None:
            self._add(epoch_scalars(event), int(event["global_step"]))
            self._send()
            self.last_step = int(event["global_step"])

    def finish(self, test: dict | None, split: str = "test") -> None:
        if self.mlflow_run is None:
            if self._latest(self._experiment_id()) is not None:
                return  # logged when it was trained
            self._start(resume=False)
        self._add(final_scalars(test, split), self.last_step)
        self._send()
        self.client.set_terminated(self.mlflow_run, status="FINISHED")
        self.mlflow_run = None

    def close(self, failed: bool = False) -> None:
        if self.mlflow_run is not None:
            self._send()
            self.client.set_terminated(self.mlflow_run, status="FAILED" if failed else "FINISHED")
            self.mlflow_run = None


class Tracking:
    """The trackers of one run, as a progress callback: each event goes to every tracker, then to the
    callback installed before (``forward``). ``finish(test)`` writes the test metrics and hyperparameters."""

    def __init__(self, trackers: list, forward=None):
        self.trackers, self.forward = trackers, forward

    def __call__(self, event: dict) -> None:
        for tracker in self.trackers:
            tracker.event(event)
        if self.forward is not None:
            self.forward(event)

    def finish(self, test: dict | None, split: str = "test") -> None:
        """The run's final metrics (``split``: ``test``, or ``val`` for a tuning run) with its hyperparameters."""
        for tracker in self.trackers:
            tracker.finish(test, split)

    def close(self, failed: bool = False) -> None:
        for tracker in self.trackers:
            tracker.close(failed)


def teacher_run_id(suite, cfg: dict, cache_dir: Path, seed: int) -> str:
    """The run id of the teacher of ``seed`` (``teacher-<hash>-s<seed>``, its row's) before it is trained:
    every suite names its cache file ``<network>-<hash>-seed<seed>.pt``, ``hash`` the row's config hash."""
    stem = suite.teacher_checkpoint(cfg, cache_dir, seed).stem
    found = re.search(r"-([0-9a-f]+)-seed(\d+)$", stem)
    return f"teacher-{found.group(1)}-s{found.group(2)}" if found else f"teacher-{stem}"


def make_trackers(job: dict, run_id: str, params: dict) -> list:
    """The trackers the job's config asks for, for the run ``run_id`` of hyperparameters ``params`` (none
    under torchrun's other ranks, or when the default tracker's package is missing: ``check_tracking`` has
    said so)."""
    cfg = job["cfg"]
    tracker, uri, explicit = tracking_options(cfg)
    if tracker == "none" or not distributed.is_main():
        return []
    missing = missing_packages(tracker)
    if missing:
        if explicit:
            raise UserError(f"--tracker {tracker} needs {' and '.join(missing)}, which is not installed on this "
                            f"machine: install the cluster extra with {EXTRA}")
        return []
    dest = Path(job["dest"])
    trackers = [TensorBoardTracker(dest / FOLDER / run_id, params)]
    if tracker == "mlflow":
        spec = typed(cfg)
        tags = {"hmat.suite": spec.suite, "hmat.dataset": spec.dataset.name, "hmat.commit": job.get("commit")}
        trackers.append(MLflowTracker(uri or default_mlflow_uri(dest), f"{spec.suite}/{spec.dataset.name}",
                                      run_id, {k: v for k, v in tags.items() if v is not None}, params))
    return trackers


@contextmanager
def tracking(job: dict, run_id: str, role: str, method: str | None = None, seed: int | None = None):
    """Within the block, the training loop's events also go to the run's trackers (see the module's
    docstring); yields the ``Tracking`` whose ``finish(test)`` writes the test metrics."""
    trackers = make_trackers(job, run_id, run_params(job["cfg"], role, method, seed))
    tracked = Tracking(trackers, current_progress_callback())
    with reporting_progress(tracked if trackers else tracked.forward):
        try:
            yield tracked
        except BaseException:
            tracked.close(failed=True)
            raise
    tracked.close()
