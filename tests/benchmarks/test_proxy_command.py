"""python -m benchmarks.proxy: two result folders in, a report of the gains on both and their
correlation out; bad input refused in one line before any work."""

import subprocess
import sys

import pandas as pd
import pytest
from user_error import user_error

from benchmarks import proxy

COLUMNS = ["run_id", "suite", "dataset", "teacher", "student", "method", "seed", "recall@1", "recall@2", "recall@4",
           "recall@8", "map@r", "r_precision", "train_seconds", "best_epoch", "commit", "config_hash", "timestamp",
           "params", "macs", "weights_bytes", "latency_ms_b1", "throughput_b64", "cost_threads", "replicates"]
"""The columns of a retrieval runs.csv (results/zoo/retrieval/synthetic/runs.csv)."""

PROXY = {"at": [1.0, 2.0, 1.5], "rkd": [0.5, 0.0, 1.0], "hmat": [3.0, 2.5, 3.5], "mimic": [-4.0, -5.0, -4.5]}
REAL = {"at": [0.8, 1.1, 1.4], "rkd": [-0.3, 0.1, 0.2], "hmat": [2.0, 2.2, 2.9], "mimic": [-2.0, -1.0, -1.5],
        "crd": [0.1, 0.2, 0.3]}


def _rows(dataset: str, gains: dict, seeds=(0, 1, 2), config: str = "c") -> list[dict]:
    rows = []
    for seed in seeds:
        none = 0.60 + 0.01 * seed
        scores = {"teacher": 0.95, "none": none, **{m: none + g[seed] / 100 for m, g in gains.items()}}
        for method, value in scores.items():
            chash = f"{method[:3]}{dataset[:3]}{config}"
            row = dict.fromkeys(COLUMNS, 0.0)
            row.update({"run_id": f"{method}-{chash}-s{seed}", "suite": "retrieval", "dataset": dataset,
                        "teacher": "small_cnn_s-128", "student": "small_cnn_s-128" if method == "teacher"
                        else "small_cnn_xs-64", "method": method, "seed": seed, "recall@1": value, "map@r": value / 2,
                        "commit": "abc1234", "config_hash": chash, "timestamp": f"2026-01-0{seed + 1}T00:00:00",
                        "replicates": "full"})
            rows.append(row)
    return rows


def _folder(root, name: str, rows: list[dict], board: bool = True):
    folder = root / name
    folder.mkdir(parents=True)
    runs = pd.DataFrame(rows, columns=COLUMNS)
    runs.to_csv(folder / "runs.csv", index=False)
    if board:  # the leaderboard of the latest run names its configs (benchmarks.leaderboard.current_rows)
        runs[runs["config_hash"].str.endswith("c")][["method", "config_hash"]].drop_duplicates().to_csv(
            folder / "leaderboard.csv", index=False)
    return str(folder)


def _two(tmp_path, proxy_gains=PROXY, real_gains=REAL, **kw):
    return (_folder(tmp_path, "synthetic", _rows("synthetic", proxy_gains, **kw)),
            _folder(tmp_path, "fonts", _rows("fonts", real_gains, **kw)))


def test_the_report_of_two_runs(tmp_path, capsys):
    # an older config of at on the proxy, with a huge loss: not in its leaderboard.csv, so its rows do not count
    old = _rows("synthetic", {"at": [-50.0, -50.0, -50.0]}, config="o")
    a = _folder(tmp_path, "synthetic", _rows("synthetic", PROXY) + [r for r in old if r["method"] == "at"])
    b = _folder(tmp_path, "fonts", _rows("fonts", REAL))
    out = tmp_path / "report" / "retrieval.md"
    assert proxy.main(["--proxy", a, "--real", b, "--draws", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert text in printed and text.startswith("# Proxy check (recall@1): synthetic -> fonts")
    table = pd.read_csv(out.with_suffix(".csv")).set_index("method")
    assert list(table.index) == ["hmat", "at", "rkd", "mimic"]  # common methods (crd is on fonts only), by gain on A
    assert table.loc["at", "gain_a"] == pytest.approx(1.5, abs=1e-4)  # the old config's -50 is left out
    assert table.loc["mimic", "status"] == "holds" and table.loc["rkd", "status"] == "tie on both"
    assert table.loc["hmat", "gain_b"] == pytest.approx(7.1 / 3, abs=1e-4)
    # the mean gains are in the same order on both: Spearman 1
    assert "Spearman +1.00 [" in text and "| hmat | +3.00 [" in text
    assert "--proxy" in text and "Commit: `" in text
    assert "wrote" in printed and "Spearman +1.00" in printed.splitlines()[-1]


def test_the_default_report_path(tmp_path, capsys, monkeypatch):
    a, b = _two(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert proxy.main(["--proxy", a, "--real", b, "--draws", "100"]) == 0
    assert (tmp_path / "results" / "proxy" / "retrieval_synthetic_fonts.md").exists()
    assert (tmp_path / "results" / "proxy" / "retrieval_synthetic_fonts.csv").exists()


def _bad(tmp_path, capsys, argv, expect: str):
    err = user_error(capsys, proxy.main, argv)
    assert expect in err, err
    assert not list(tmp_path.rglob("*.md")) and not (tmp_path / "out.csv").exists()
    return err


def test_a_folder_without_runs_csv(tmp_path, capsys):
    a, _ = _two(tmp_path)
    _bad(tmp_path, capsys, ["--proxy", a, "--real", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
         expect=f"--real {tmp_path / 'nowhere'}: no runs.csv there; expected a result folder")


def test_a_metric_not_in_the_columns(tmp_path, capsys):
    a, b = _two(tmp_path)
    _bad(tmp_path, capsys, ["--proxy", a, "--real", b, "--metric", "recall@3", "--out", str(tmp_path / "out")],
         expect="no values of the metric 'recall@3'; expected one of recall@1, recall@2, recall@4, recall@8, map@r")


def test_fewer_than_three_common_methods(tmp_path, capsys):
    a, b = _two(tmp_path, real_gains={"at": [1, 2, 3], "rkd": [0, 1, 0], "crd": [1, 1, 2]})
    _bad(tmp_path, capsys, ["--proxy", a, "--real", b, "--out", str(tmp_path / "out")],
         expect="2 method(s) other than teacher and none in both folders (at, rkd; --proxy has at, rkd, hmat, mimic, "
                "--real has at, rkd, crd); expected at least 3")


def test_fewer_than_two_replicates(tmp_path, capsys):
    a = _folder(tmp_path, "synthetic", _rows("synthetic", PROXY))
    b = _folder(tmp_path, "fonts", _rows("fonts", REAL, seeds=(0,)))
    _bad(tmp_path, capsys, ["--proxy", a, "--real", b, "--out", str(tmp_path / "out")],
         expect=f"--real {b}: 1 replicate (seed) of `none`; expected at least 2")


def test_no_none_rows(tmp_path, capsys):
    a = _folder(tmp_path, "synthetic", [r for r in _rows("synthetic", PROXY) if r["method"] != "none"])
    b = _folder(tmp_path, "fonts", _rows("fonts", REAL))
    _bad(tmp_path, capsys, ["--proxy", a, "--real", b, "--out", str(tmp_path / "out")],
         expect=f"--proxy {a}: no `none` rows with recall@1")


def test_other_bad_input(tmp_path, capsys):
    a, b = _two(tmp_path)
    _bad(tmp_path, capsys, ["--proxy", a, "--real", a], expect="--proxy and --real are the same folder")
    (tmp_path / "afile").write_text("x")
    _bad(tmp_path, capsys, ["--proxy", a, "--real", b, "--out", str(tmp_path / "afile" / "report.md")],
         expect="is a file, not a folder")



@pytest.mark.parametrize("argv,expect", [
    (["--draws", "10"], "argument --draws: expected at least 100 bootstrap draws, got 10"),
    (["--draws", "many"], "argument --draws: expected a whole number, got 'many'"),
    ([], "the following arguments are required: --proxy, --real"),
])
def test_bad_flags(capsys, argv, expect):
    with pytest.raises(SystemExit) as exit_:  # argparse's errors: one line, exit status 2 (errors.ArgumentParser)
        proxy.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err and err.startswith("error: python -m benchmarks.proxy: ")
    assert expect in err, err


def test_the_command_line(tmp_path):
    """``python -m benchmarks.proxy`` itself: a user error is one line on stderr, exit status 2."""
    a, _ = _two(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.proxy", "--proxy", a, "--real", "missing"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --real missing: no runs.csv there; expected a result folder of a suite run " \
                                  "(<results>/<suite>/<dataset>/runs.csv)"
