"""The launchers: a tiny grid gives the rows of the local launcher on a Ray instance started here and
through submitit's local executor (the code that submits to SLURM); a job that raises stops the grid
with its own error; a killed Ray worker stops the run, and the same command resumes; a missing extra
is named in one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from benchmarks import run
from benchmarks.runner.errors import UserError
from benchmarks.runner.jobs import run_jobs
from benchmarks.runner.launch import RayLauncher, SlurmLauncher, make_launcher
from tiny_retrieval import tiny_retrieval

ray = pytest.importorskip("ray")
pytest.importorskip("submitit")

ROOT = Path(__file__).resolve().parents[3]
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]
GRID = tiny_retrieval(pretrain=None, run=["none", "at"], seeds=[0, 1], threads=1)


@pytest.fixture(scope="module")
def ray_instance():
    """A Ray instance of this test process on 127.0.0.1 with 2 CPUs; its workers import what this
    process can (the test modules included)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                           configure_logging=False)
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _grid(tmp_path, tag: str, cfg: dict, *flags: str) -> pd.DataFrame:
    config = tmp_path / f"{tag}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    argv = ["--suite", "retrieval", "--config", str(config), "--out", str(tmp_path / tag / "results"),
            "--cache-dir", str(tmp_path / tag / "cache"), "--no-progress", "--workers", "2", *flags]
    assert run.main(argv) == 0
    runs = pd.read_csv(tmp_path / tag / "results" / "retrieval" / "synthetic" / "runs.csv")
    assert len(runs) == 3 * len(cfg["seeds"])  # a teacher and two students per seed
    return runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[["run_id", *METRICS]]


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    return _grid(tmp_path_factory.mktemp("local"), "local", GRID)


# ---------------------------------------------------------------------------- jobs of run_jobs

def teacher_job(seed):
    return {"seed": seed, "method": "teacher", "pid": os.getpid()}


def student_job(seed, method):
    if method == "boom":
        raise KeyError(f"job {method} of seed {seed} failed")
    return {"seed": seed, "method": method, "pid": os.getpid()}


def test_ray_tasks_give_the_rows_of_the_local_launcher(ray_instance, tmp_path, local_rows):
    pd.testing.assert_frame_equal(_grid(tmp_path, "ray", GRID, "--launcher", "ray", "--ray-address", ray_instance),
                                  local_rows)


def test_submitit_jobs_give_the_rows_of_the_local_launcher(tmp_path, local_rows):
    # one seed (a process per job, each importing torch): its teacher and students, as the local launcher's
    cfg = {**GRID, "seeds": [1], "launcher": {"name": "slurm", "slurm": {"cluster": "local", "time_min": 10,
                                                                          "cpus_per_task": 1}}}
    pd.testing.assert_frame_equal(_grid(tmp_path, "slurm", cfg), local_rows.loc[[1]])
    assert list((tmp_path / "slurm" / "cache" / "slurm").glob("*/*_log.out"))  # submitit's job folders and logs


def test_a_job_that_raises_stops_a_ray_grid_with_its_own_error(ray_instance):
    with pytest.raises(KeyError, match="job boom of seed 0 failed"):
        run_jobs(teacher_job, student_job, [0], ["a", "boom"], workers=2, log=lambda *a: None,
                 launcher=RayLauncher())
    rows = run_jobs(teacher_job, student_job, [0, 1], ["a"], workers=2, log=lambda *a: None, launcher=RayLauncher())
    assert [(r["seed"], r["method"]) for r in rows] == [(0, "teacher"), (0, "a"), (1, "teacher"), (1, "a")]
    assert os.getpid() not in {r["pid"] for r in rows}  # Ray's worker processes ran them


def test_a_job_that_raises_stops_a_submitit_grid_with_its_own_error(tmp_path):
    launcher = SlurmLauncher({"cluster": "local", "time_min": 5, "cpus_per_task": 1}, folder=tmp_path)
    with pytest.raises(KeyError, match="job boom of seed 0 failed"):
        run_jobs(teacher_job, student_job, [0], ["boom"], workers=1, log=lambda *a: None, launcher=launcher)


def _ray_task_workers() -> list[psutil.Process]:
    """The worker processes of this test's Ray instance that run a job now."""
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if proc.cmdline() and proc.cmdline()[0].startswith("ray::_task"):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_a_killed_ray_worker_stops_the_run_and_the_relaunch_resumes(ray_instance, tmp_path):
    epochs = 6
    cfg = tiny_retrieval(pretrain=None, run=["at"], seeds=[0], threads=1, student={"train": {"epochs": epochs}})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "benchmarks.run", "--suite", "retrieval", "--config", str(config), "--out",
            str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--launcher", "ray",
            "--ray-address", ray_instance]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # run outside the checkout: states tagged with no commit
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, victims = time.time() + 180, []
        while not victims and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
            if f"at s0: epoch 2/{epochs}" in log.read_text():  # the student has saved an epoch
                victims = _ray_task_workers()
        assert victims, f"no running student was seen:\n{log.read_text()}"
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == 2, log.read_text()
    finally:
        proc.kill()
    output = log.read_text()
    assert "error: job 'at s0' (suite retrieval, method at, seed 0) died on Ray" in output, output
    assert "rerun the same command to resume" in output

    rerun_log = tmp_path / "rerun.log"
    with open(rerun_log, "w") as out:
        assert subprocess.run(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=180).returncode == 0, rerun_log.read_text()
    resumed = rerun_log.read_text()
    assert f"at s0: epoch {epochs}/{epochs}" in resumed, resumed
    assert f"at s0: epoch 1/{epochs}" not in resumed, resumed  # it went on from its saved epochs
    assert "teacher s0: epoch" not in resumed  # loaded from the cache


def test_a_missing_extra_is_named_before_any_work(monkeypatch, tmp_path):
    import importlib

    real = importlib.import_module

    def no_ray(name, *args):
        if name in ("ray", "submitit"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    for name in ("ray", "slurm"):
        with pytest.raises(UserError, match=r'needs the package .* install the extra with: pip install -e "\.\[cluster\]"'):
            make_launcher({"name": name})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(GRID))
    assert run.main(["--suite", "retrieval", "--config", str(config), "--out", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache"), "--launcher", "ray"]) == 2
    assert not (tmp_path / "cache").exists()  # stopped before any data was prepared


def test_launcher_flags_and_sections_are_checked(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**GRID, "launcher": {"name": "slurm", "slurm": {"time_min": 0}}}))
    base = ["--suite", "retrieval", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert run.main([*base, "--config", str(config)]) == 2
    assert "launcher.slurm.time_min" in capsys.readouterr().err
    assert run.main([*base, "--ray-address", "auto"]) == 2
    assert "add --launcher ray" in capsys.readouterr().err
    assert run.main([*base, "--launcher", "ray", "--dry-run"]) == 2
    assert "a dry run runs its jobs in processes of its own" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown launcher 'k8s'"):
        make_launcher({"name": "k8s"})
    for address, said in (("127.0.0.1:1", "no Ray cluster answers there"), ("nowhere", "expected auto or host:port")):
        with pytest.raises(UserError, match=said):  # at once, not after Ray's minutes of retries
            make_launcher({"name": "ray", "ray": {"address": address}})


def test_a_job_declares_the_threads_and_gpu_of_its_config_unless_the_section_says():
    ray_launcher = make_launcher({"name": "ray"}, cfg={"threads": 4, "device": "cuda"})
    assert (ray_launcher.options["cpus_per_job"], ray_launcher.options["gpus_per_job"]) == (4, 1)
    ray_launcher = make_launcher({"name": "ray", "ray": {"cpus_per_job": 2, "gpus_per_job": None}}, cfg={"threads": 4})
    assert (ray_launcher.options["cpus_per_job"], ray_launcher.options["gpus_per_job"]) == (2, 0)
    slurm = make_launcher({"name": "slurm", "slurm": {"partition": "gpu"}}, cfg={"device": "cpu"})
    assert (slurm.options["cpus_per_task"], slurm.options["gpus_per_node"], slurm.options["partition"]) == (1, 0, "gpu")
    assert make_launcher(None, cfg={"threads": 4}).name == "local"
