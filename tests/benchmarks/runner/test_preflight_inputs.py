"""The last bad inputs of issue 27: an empty ``--methods`` or ``--seeds`` list, and a device this machine does
not have. Each ends in one line (``error: ...``, exit 2) within seconds, before any data is built."""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks import run, tune
from benchmarks.runner import preflight, suite_runner
from benchmarks.runner.errors import UserError
from benchmarks.runner.tune import grid as tuning

SECONDS = 10


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to build a run's data fails the test (the checks come first)."""
    def built(*args, **kwargs):
        raise AssertionError("data were built before the bad input was found")

    monkeypatch.setattr(suite_runner, "suite_data", built)
    monkeypatch.setattr(tuning, "suite_data", built)


def _timed_error(capsys, main, argv) -> str:
    """The one line of a command's user error: exit status 2 (argparse's bad flags exit through SystemExit(2),
    as from the command line), ``error: ...`` on stderr, within SECONDS."""
    capsys.readouterr()
    start = time.perf_counter()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert seconds < SECONDS
    return err


@pytest.mark.parametrize("flag,value", [("--methods", ","), ("--methods", ""), ("--seeds", ","), ("--seeds", " , ")])
def test_an_empty_list_is_a_bad_flag(capsys, tmp_path, no_data, flag, value):
    line = _timed_error(capsys, run.main, [flag, value, "--out", str(tmp_path / "r"), "--cache-dir",
                                            str(tmp_path / "c"), "--no-progress"])
    assert f"argument {flag}: expected a comma-separated list of at least one value" in line
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def test_tune_refuses_an_empty_seed_list(capsys, tmp_path, no_data):
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid: {at: {beta: [1, 3]}}\n")
    line = _timed_error(capsys, tune.main, ["--grid", str(grid), "--seeds", ",", "--out", str(tmp_path / "r"),
                                            "--cache-dir", str(tmp_path / "c")])
    assert "argument --seeds: expected a comma-separated list of at least one value, got ','" in line
    line = _timed_error(capsys, tune.main, ["--grid", str(grid), "--seeds", "0,x", "--out", str(tmp_path / "r")])
    assert "argument --seeds: expected a comma-separated list, got '0,x'" in line


def test_lists_keep_their_values():
    args = run.parse_args(["--methods", "none, at,", "--seeds", "0,2"])
    assert args.methods == ["none", "at"] and args.seeds == [0, 2]


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_found_by_preflight(capsys, tmp_path, no_data, no_gpu, device):
    line = _timed_error(capsys, run.main, ["--device", device, "--out", str(tmp_path / "r"), "--cache-dir",
                                            str(tmp_path / "c"), "--no-progress"])
    assert f"device {device}: this machine has no CUDA GPU" in line and "--device cpu" in line
    assert not (tmp_path / "c").exists()


def test_tune_finds_a_missing_gpu_before_any_data(capsys, tmp_path, no_data, no_gpu):
    grid, config = tmp_path / "grid.yaml", tmp_path / "cfg.yaml"
    grid.write_text("grid: {at: {beta: [1, 3]}}\n")
    config.write_text("device: cuda\n")
    line = _timed_error(capsys, tune.main, ["--grid", str(grid), "--config", str(config), "--folds", "2",
                                            "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    assert "device cuda: this machine has no CUDA GPU" in line


def test_a_gpu_index_beyond_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    preflight.check_device("cuda:1")
    with pytest.raises(UserError, match=r"device cuda:2: this machine has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        preflight.check_device("cuda:2")


def test_mps_and_odd_devices(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="device mps: this machine has no Apple GPU"):
        preflight.check_device("mps")
    with pytest.raises(UserError, match="device 'gpu'"):
        preflight.check_device("gpu")
    with pytest.raises(UserError, match="device meta: expected cpu"):
        preflight.check_device("meta")
    preflight.check_device("cpu")
    preflight.check_device(None)


def test_other_nodes_devices_are_left_to_the_scheduler(no_gpu):
    preflight.check_device("cuda", "ray")
    preflight.check_device("cuda", "slurm")
    with pytest.raises(UserError):
        preflight.check_device("cuda", "local")


def test_a_bad_device_string_is_one_line(capsys, tmp_path, no_data):
    line = _timed_error(capsys, run.main, ["--device", "gpu", "--out", str(tmp_path / "r"), "--cache-dir",
                                            str(tmp_path / "c"), "--no-progress"])
    assert "device" in line
