"""The regression gate on small synthetic runs tables: a planted drop fails, noise passes."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import regress
from tiny_retrieval import tiny_retrieval

METHODS = {"teacher": 0.60, "none": 0.40, "at": 0.45, "hmat": 0.50}
NOISE = [-0.01, 0.0, 0.01]  # seed-to-seed spread: std 0.01 (one point)


def _runs(shift=None, drop_methods=(), config_hash="h1"):
    """Three seeds per method; ``shift`` moves the values of some methods (recall@1 and map@r)."""
    shift = shift or {}
    rows = []
    for method, value in METHODS.items():
        if method in drop_methods:
            continue
        for seed, noise in enumerate(NOISE):
            v = value + noise + shift.get(method, 0.0)
            rows.append({"run_id": f"{method}-{config_hash}-s{seed}", "suite": "retrieval", "dataset": "synthetic",
                         "teacher": "T", "student": "T" if method == "teacher" else "S", "method": method,
                         "seed": seed, "recall@1": v, "recall@2": v + 0.1, "map@r": v / 4,
                         "config_hash": config_hash, "timestamp": "2026-01-01T00:00:00"})
    return pd.DataFrame(rows)


def _write(path, table, header=""):
    path.write_text(header + table.to_csv(index=False))
    return path


@pytest.fixture()
def baseline(tmp_path):
    return _write(tmp_path / "baseline.csv", _runs(), "# command: python -m benchmarks.run --suite retrieval\n"
                                                      "# commit: abc1234\n")


def _gate(baseline, current, *extra):
    return regress.main(["--baseline", str(baseline), "--current", str(current), *extra])


def test_planted_regression_is_caught(tmp_path, baseline, capsys):
    current = _write(tmp_path / "runs.csv", _runs(shift={"hmat": -0.05}))  # hmat 5 points worse
    assert _gate(baseline, current) == 1
    out = capsys.readouterr().out
    failures = out.split("regression(s) / missing:")[1]
    assert "hmat" in failures and "REGRESSION" in failures and "recall@1" in failures
    assert " at " not in failures and " none " not in failures  # only the planted method is listed
    assert "commit abc1234" in out


def test_noise_level_change_passes(tmp_path, baseline, capsys):
    rng = np.random.default_rng(0)
    current = _runs()
    current["recall@1"] += rng.normal(0, 0.004, len(current))  # well within 2 std (2 points)
    current["map@r"] += rng.normal(0, 0.001, len(current))
    assert _gate(baseline, _write(tmp_path / "runs.csv", current)) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "REGRESSION" not in out


def test_tolerance_is_max_of_std_and_floor(tmp_path, baseline, capsys):
    current = _write(tmp_path / "runs.csv", _runs(shift={"at": -0.015}))  # 1.5 points: < 2 std, > 1 std
    assert _gate(baseline, current) == 0
    assert _gate(baseline, current, "--tolerance-std", "1") == 1
    assert _gate(baseline, current, "--tolerance-std", "1", "--floor", "0.02") == 0
    capsys.readouterr()


def test_compare_numbers():
    table = regress.compare(_runs(), _runs(shift={"none": -0.03}), ["recall@1"], tolerance_std=2, floor=0.01)
    row = table.set_index("method").loc["none"]
    assert row["base_mean"] == pytest.approx(0.40) and row["base_std"] == pytest.approx(0.01)
    assert row["delta"] == pytest.approx(-0.03) and row["tolerance"] == pytest.approx(0.02)
    assert row["status"] == "REGRESSION"
    assert set(table.loc[table["method"] != "none", "status"]) == {"ok"}
    better = regress.compare(_runs(), _runs(shift={"at": 0.05}), ["recall@1"]).set_index("method")
    assert better.loc["at", "status"] == "better"


def test_missing_method_is_flagged(tmp_path, baseline, capsys):
    current = _write(tmp_path / "runs.csv", _runs(drop_methods=("at",)))
    assert _gate(baseline, current) == 1
    failures = capsys.readouterr().out.split("regression(s) / missing:")[1]
    assert "MISSING" in failures and " at " in failures


def test_new_method_is_listed_but_passes():
    base = _runs(drop_methods=("hmat",))
    table = regress.compare(base, _runs(), ["recall@1"])
    assert table.set_index("method").loc["hmat", "status"] == "new"


def test_current_with_several_configs_uses_the_baseline_one():
    old = _runs(shift={"hmat": -0.2}, config_hash="h0")  # an older config in the same runs.csv
    current = pd.concat([old, _runs()], ignore_index=True)
    table = regress.compare(_runs(), current, ["recall@1"])
    assert set(table["status"]) == {"ok"} and (table["cur_seeds"] == 3).all()


def test_bad_arguments(tmp_path, baseline):
    with pytest.raises(SystemExit):
        regress.main(["--current", str(baseline)])  # neither --baseline nor --write-baseline
    with pytest.raises(SystemExit, match="not in the baseline"):
        _gate(baseline, baseline, "--metrics", "bogus@3")


def test_write_baseline_has_a_header_and_reads_back(tmp_path, baseline, capsys):
    out = tmp_path / "new_baseline.csv"
    assert regress.main(["--current", str(baseline), "--write-baseline", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# command: ") and "# commit: " in text
    assert _gate(out, baseline) == 0
    capsys.readouterr()


def test_fresh_run_in_parallel_processes_then_gate(tmp_path, capsys):
    """Without --current the gate runs a config itself, seeds split over two processes that
    append to one runs.csv; the baseline it writes then passes the gate against those rows."""
    import yaml

    tiny = tiny_retrieval(teacher={"train": {"epochs": 1}}, student={"train": {"epochs": 1}}, run=["none"],
                          seeds=[0, 1])
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny))
    base, out = tmp_path / "baseline.csv", tmp_path / "out"
    assert regress.main(["--config", str(config), "--out", str(out), "--write-baseline", str(base)]) == 0
    rows = regress.read_runs(base)
    assert sorted(zip(rows["method"], rows["seed"])) == [("none", 0), ("none", 1), ("teacher", 0), ("teacher", 1)]
    assert regress.read_header(base)["command"].startswith("python -m benchmarks.run --suite retrieval --config")
    assert _gate(base, out / "retrieval" / "synthetic" / "runs.csv") == 0
    capsys.readouterr()
