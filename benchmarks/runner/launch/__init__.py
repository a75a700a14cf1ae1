"""Where a run's jobs execute: processes of this machine, tasks of a Ray cluster, or SLURM jobs.

``make_launcher(options, name=None)`` builds the launcher a config's ``launcher`` section asks for
(``name`` overrides ``options["name"]``; default ``local``). Each launcher gives ``run_jobs``
(``benchmarks.runner.jobs``) a pool, ``launcher.pool(workers, events=None, steps=False, run=None)``:
a context manager with ``submit(Job)`` and ``result() -> (job, value)``, the API of
``benchmarks.runner.launch.job_pool.JobPool``. A job that raises re-raises its own error from ``result()``;
a job whose process or node dies raises ``JobDied`` (one line, the job named). Leaving the block
on an error stops every job still running.

- ``local``: ``JobPool``, long-lived processes of this machine (``workers == 1``: the jobs run in the
  main process, in order);
- ``ray``: every job is a Ray task declaring ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs
  (default: the config's ``threads``, and one GPU on ``device: cuda``; ``benchmarks.runner.launch.ray_pool``),
  on the cluster at ``address`` or on a Ray instance started for the run;
- ``slurm``: every job is a SLURM job submitted through submitit (``benchmarks.runner.launch.slurm_pool``)
  with the section's partition, time, CPUs, GPUs and memory.

Ray and submitit are the optional extra ``cluster``; a launcher that needs one that is missing
stops with a one-line error naming it. Whatever the launcher, the driver (this process) orders the
jobs (teachers before their students), writes ``runs.csv`` and the tables, and skips what the cache
already holds; the cache and results folders must be on storage every node sees.
"""

from __future__ import annotations

import importlib
import socket

from benchmarks.runner.errors import UserError
from benchmarks.runner.launch.job_pool import JobPool
from benchmarks.runner.launch.ray_pool import RayPool
from benchmarks.runner.launch.slurm_pool import SlurmPool

LAUNCHERS = ("local", "ray", "slurm")
EXTRA = 'pip install -e ".[cluster]"'
"""How to install the optional packages (Ray, submitit, Optuna, TensorBoard, MLflow): every message names it."""


def require(module: str, what: str):
    """Import ``module`` (a package of the ``cluster`` extra), or stop with a line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{what} needs the package {module!r}, which is not installed ({exc}); install the "
                        f"extra with: {EXTRA}") from None


class LocalLauncher:
    """Processes of this machine (``JobPool``); one worker runs the jobs in the main process."""

    name = "local"
    in_process = True  # with one worker, run_jobs calls the jobs itself

    def pool(self, workers: int, events=None, steps: bool = False, run=None):
        return JobPool(workers, events=events, steps=steps, run=run)

    def describe(self) -> str:
        return "local processes"


class RayLauncher:
    """Ray tasks (see ``benchmarks.runner.launch.ray_pool.RayPool``)."""

    name = "ray"
    in_process = False

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})
        require("ray", "the ray launcher")
        check_reachable(self.options.get("address"))

    def pool(self, workers: int, events=None, steps: bool = False, run=None):
        return RayPool(workers, events=events, steps=steps, run=run, **self.options)

    def describe(self) -> str:
        where = self.options.get("address") or "a local Ray instance"
        return f"Ray tasks on {where}"


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A Ray address given as ``[ray://]host:port`` answers a TCP connection within ``timeout`` seconds,
    else one line says so (Ray itself would retry for minutes). ``auto`` and None are left to Ray."""
    if not address or address == "auto":
        return

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: expected auto or host:port (ray://host:port for Ray Client)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({exc}); expected the address of a "
                        f"running head node (ray start --head) or auto") from None


class SlurmLauncher:
    """SLURM jobs through submitit (see ``benchmarks.runner.launch.slurm_pool.SlurmPool``)."""

    name = "slurm"
    in_process = False

    def __init__(self, options: dict | None = None, folder=None):
        self.options, self.folder = dict(options or {}), folder
        require("submitit", "the slurm launcher")

    def pool(self, workers: int, events=None, steps: bool = False, run=None):
        options = dict(self.options)
        folder = options.pop("folder", None) or self.folder
        if folder is None:
            raise UserError("the slurm launcher needs launcher.slurm.folder: a folder on storage every node sees, "
                            "for submitit's job files and logs")
        return SlurmPool(workers, folder, events=events, steps=steps, run=run, **options)

    def describe(self) -> str:
        cluster = self.options.get("cluster") or "slurm"
        return f"SLURM jobs (submitit, {cluster} executor)" if cluster != "slurm" else "SLURM jobs (submitit)"


def add_launcher_flags(parser) -> None:
    """``--launcher`` and ``--ray-address``, as every command that runs jobs takes them."""
    parser.add_argument("--launcher", choices=LAUNCHERS,
                        help="where the jobs run: local processes (default: the config's launcher section, else "
                             "local), Ray tasks or SLURM jobs (submitit; options in the config's launcher section); "
                             "ray and slurm need the cluster extra")
    parser.add_argument("--ray-address", help="the Ray cluster of --launcher ray (e.g. auto); default: a local instance")


def launcher_flags(section: dict | None, name: str | None, ray_address: str | None) -> dict:
    """What ``--launcher name`` and ``--ray-address`` put over a config's ``launcher`` section (``{}``: nothing);
    an address for any launcher but ray is refused in one line."""
    if ray_address and (name or (section or {}).get("name")) != "ray":
        raise UserError(f"--ray-address {ray_address}: it is the cluster of --launcher ray; add --launcher ray")
    given = {"name": name} if name else {}
    if ray_address:
        given["ray"] = {"address": ray_address}
    return given


def job_resources(cfg: dict | None) -> tuple[int, int]:
    """(CPUs, GPUs) one job of ``cfg`` uses: its ``threads`` (1 when unset) and one GPU on ``device: cuda``."""
    cfg = cfg or {}
    return int(cfg.get("threads") or 1), int(str(cfg.get("device") or "cpu").startswith("cuda"))


def make_launcher(options: dict | None = None, name: str | None = None, folder=None, cfg: dict | None = None):
    """The launcher of a config's ``launcher`` section (``{name, ray: {...}, slurm: {...}}``), ``name``
    overriding its ``name``. ``folder``: the slurm launcher's default job folder (the run's cache).
    What a job declares, where the section leaves it unset, comes from the run's config ``cfg``
    (``job_resources``: its threads, and a GPU on ``device: cuda``)."""
    options = dict(options or {})
    name = name or options.get("name") or "local"
    if name not in LAUNCHERS:
        raise UserError(f"unknown launcher {name!r}; expected one of {list(LAUNCHERS)}")
    cpus, gpus = job_resources(cfg)
    if name == "ray":
        given = {k: v for k, v in (options.get("ray") or {}).items() if v is not None}
        return RayLauncher({"cpus_per_job": cpus, "gpus_per_job": gpus, **given})
    if name == "slurm":
        given = {k: v for k, v in (options.get("slurm") or {}).items() if v is not None}
        return SlurmLauncher({"cpus_per_task": cpus, "gpus_per_node": gpus, **given}, folder)
    return LocalLauncher()
