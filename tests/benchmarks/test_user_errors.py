"""Every command reports bad input the same way: ``error: <message>`` on one line of stderr,
exit status 2, no traceback, within seconds, and nothing written under the results folder.
``--debug`` shows the traceback instead."""

import subprocess
import sys
import time

import pytest
import yaml
from PIL import Image

from tiny_retrieval import tiny_retrieval

SECONDS = 60  # a generous bound on a loaded 2-core machine: the checks take seconds, training minutes


def _command(tmp_path, module, *argv):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    return proc, time.perf_counter() - start


def _assert_user_error(tmp_path, module, *argv, expect: str):
    proc, seconds = _command(tmp_path, module, *argv)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert expect in lines[0], lines[0]
    assert seconds < SECONDS
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.csv"))
    return lines[0]


def _yaml(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _folder(root, classes: int, per_class: int, corrupt: bool = False):
    for c in range(classes):
        (root / f"class{c:02d}").mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (12, 12), (20 * c % 256, 10 * i, 90)).save(root / f"class{c:02d}" / f"{i}.png")
    if corrupt:
        (root / "class00" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def _run_args(tmp_path, *extra):
    return ["--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]


BAD_CONFIGS = [
    ({"studnet": {"arch": "small_cnn_xs"}}, "studnet: unknown key; did you mean 'student'?"),
    ({"train": {"lr": "fast"}}, "train.lr: input should be a valid number"),
    ({"student": {"train": {"epochs": 0}}}, "student.train.epochs: input should be greater than or equal to 1"),
    ({"methods": {"hmat": {"beta_akt": 2}}}, "methods.hmat.beta_akt: unknown key; did you mean 'beta_act'?"),
    ({"run": ["none", "bogus"]}, "run[1]: unknown name 'bogus'"),
    ({"train": {"batch_size": 23}}, "not a multiple of m_per_class"),
]


@pytest.mark.parametrize("bad,expect", BAD_CONFIGS, ids=[e.split(":")[0] for _, e in BAD_CONFIGS])
def test_bad_config(tmp_path, bad, expect):
    config = _yaml(tmp_path, "bad.yaml", bad)
    line = _assert_user_error(tmp_path, "benchmarks.run", "--config", config, *_run_args(tmp_path), expect=expect)
    assert "bad.yaml" in line  # the file the key came from
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("suite,methods,expect", [
    ("detection", "none,rkd", "run[1]: method 'rkd' does not run on the detection suite (a detection task); "
                              "it supports retrieval, classification"),
    ("retrieval", "kd", "run[0]: method 'kd' does not run on the retrieval suite (a retrieval task); "
                        "it supports classification"),
])
def test_a_method_on_a_task_it_does_not_support(tmp_path, suite, methods, expect):
    _assert_user_error(tmp_path, "benchmarks.run", "--suite", suite, "--methods", methods, *_run_args(tmp_path),
                       expect=expect)
    assert not (tmp_path / "cache").exists()


def test_bad_flags(tmp_path):
    _assert_user_error(tmp_path, "benchmarks.run", "--epochs", "-1", expect="--epochs: expected a whole number")
    _assert_user_error(tmp_path, "benchmarks.run", "--config", "missing.yaml", expect="config file not found")
    _assert_user_error(tmp_path, "benchmarks.run", "--suite", "segmentation", expect="unknown suite")


def test_unwritable_results_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    _assert_user_error(tmp_path, "benchmarks.run", "--out", str(tmp_path / "afile" / "results"),
                       expect="is a file, not a folder")


def test_missing_and_corrupt_data_and_too_few_classes(tmp_path):
    tiny = _yaml(tmp_path, "tiny.yaml", tiny_retrieval(pretrain=None, run=["none"], seeds=[0]))
    _assert_user_error(tmp_path, "benchmarks.run", "--dataset", "folder", "--data-root", str(tmp_path / "nowhere"),
                       "--config", tiny, *_run_args(tmp_path), expect="does not exist")
    _folder(tmp_path / "corrupt", classes=8, per_class=4, corrupt=True)
    _assert_user_error(tmp_path, "benchmarks.run", "--dataset", "folder", "--data-root", str(tmp_path / "corrupt"),
                       "--config", tiny, *_run_args(tmp_path), expect="broken.jpg")
    _folder(tmp_path / "one", classes=1, per_class=4)
    _assert_user_error(tmp_path, "benchmarks.run", "--dataset", "folder", "--data-root", str(tmp_path / "one"),
                       "--config", tiny, *_run_args(tmp_path), expect="class")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pt"))


def test_other_commands(tmp_path):
    _assert_user_error(tmp_path, "benchmarks.regress", "--baseline", "missing.csv", expect="--baseline missing.csv")
    _assert_user_error(tmp_path, "benchmarks.tune", "--grid", "missing.yaml", expect="config file not found")
    grid = _yaml(tmp_path, "grid.yaml", {"grid": {"at": {"betta": [1, 2]}}})
    _assert_user_error(tmp_path, "benchmarks.tune", "--grid", grid, expect="did you mean 'beta'")
    _assert_user_error(tmp_path, "benchmarks.export", "--run", "at-0000000000-s0", "--out", "results",
                       expect="no saved run")
    _assert_user_error(tmp_path, "benchmarks.leaderboard", "--results", "results", expect="no results to merge")
    _assert_user_error(tmp_path, "benchmarks.visualize", "--cache-dir", "cache", expect="no cached network")
    _assert_user_error(tmp_path, "benchmarks.run", "--reproduce", "at-0000000000-s0", "--out", "results",
                       expect="no saved run")


def test_debug_shows_the_traceback(tmp_path):
    config = _yaml(tmp_path, "bad.yaml", {"studnet": {}})
    proc, _ = _command(tmp_path, "benchmarks.run", "--config", config, "--debug", *_run_args(tmp_path))
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "UserError" in proc.stderr
