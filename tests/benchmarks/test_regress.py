"""The regression gate on small synthetic runs tables: current and baseline paired by seed; a planted
significant drop fails, a drop beyond the tolerance fails, an unchanged copy and noise without a drop pass."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import regress
from tiny_retrieval import tiny_retrieval

METHODS = {"teacher": 0.60, "none": 0.40, "at": 0.45, "hmat": 0.50}
NOISE = [-0.01, 0.0, 0.01]  # seed-to-seed spread: std 0.01 (one point)


def _runs(shift=None, drop_methods=(), config_hash="h1", seeds=(0, 1, 2)):
    """Three seeds per method; ``shift`` moves the values of some methods (recall@1 and map@r): a number
    for every seed, or a list of one per seed."""
    shift = shift or {}
    rows = []
    for method, value in METHODS.items():
        if method in drop_methods:
            continue
        for i, (seed, noise) in enumerate(zip(seeds, NOISE)):
            moved = shift.get(method, 0.0)
            v = value + noise + (moved[i] if isinstance(moved, (list, tuple)) else moved)
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


def _failures(capsys):
    return capsys.readouterr().out.split("regression(s) / missing:")[1]


def test_planted_significant_drop_is_caught(tmp_path, baseline, capsys):
    current = _write(tmp_path / "runs.csv", _runs(shift={"hmat": -0.005}))  # 0.5 points lower on every seed
    assert _gate(baseline, current) == 1  # below the 1-point tolerance, but certain: every seed dropped
    out = capsys.readouterr().out
    failures = out.split("regression(s) / missing:")[1]
    assert "hmat" in failures and "REGRESSION: significant drop" in failures and "recall@1" in failures
    assert "beyond tolerance" not in failures
    assert " at " not in failures and " none " not in failures  # only the planted method is listed
    assert "commit abc1234" in out and "paired, 3 seeds" in out


def test_drop_beyond_tolerance_is_caught(tmp_path, baseline, capsys):
    # a mean drop of 2 points that varies so much over seeds that it is not significant
    current = _write(tmp_path / "runs.csv", _runs(shift={"at": [-0.05, 0.03, -0.04]}))
    assert _gate(baseline, current) == 1
    failures = _failures(capsys)
    assert "at" in failures and "REGRESSION: drop beyond tolerance" in failures and "significant" not in failures
    assert _gate(baseline, current, "--tolerance", "0.03") == 0  # within a 3-point tolerance
    assert _gate(baseline, current, "--floor", "0.03") == 0  # the older name of --tolerance
    capsys.readouterr()
    current = _write(tmp_path / "runs.csv", _runs(shift={"at": -0.02}))
    assert _gate(baseline, current) == 1
    assert "REGRESSION: significant drop and drop beyond tolerance" in _failures(capsys)


def test_unchanged_copy_passes(tmp_path, baseline, capsys):
    assert _gate(baseline, _write(tmp_path / "runs.csv", _runs())) == 0  # d == 0 on every seed: no drop
    out = capsys.readouterr().out
    assert "no regression" in out and "REGRESSION" not in out


def test_noise_without_a_drop_passes(tmp_path, baseline, capsys):
    current = _runs()
    current["recall@1"] += np.tile([0.004, -0.004, 0.0], len(METHODS))  # per-seed noise, mean 0
    current["map@r"] += np.tile([-0.001, 0.0, 0.001], len(METHODS))
    assert _gate(baseline, _write(tmp_path / "runs.csv", current)) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "REGRESSION" not in out


def test_compare_numbers():
    table = regress.compare(_runs(), _runs(shift={"none": [-0.03, -0.02, -0.01]}), ["recall@1"], tolerance=0.01)
    row = table.set_index("method").loc["none"]
    assert row["base_mean"] == pytest.approx(0.40) and row["base_std"] == pytest.approx(0.01)
    assert row["delta"] == pytest.approx(-0.02) and row["delta_sd"] == pytest.approx(0.01)
    assert row["upper"] == pytest.approx(-0.02 + stats.t.ppf(0.95, 2) * 0.01 / np.sqrt(3))  # -0.0031
    assert row["tolerance"] == pytest.approx(0.01) and row["paired_seeds"] == 3
    assert row["status"] == "REGRESSION" and row["reason"] == "significant drop and drop beyond tolerance"
    assert set(table.loc[table["method"] != "none", "status"]) == {"ok"}
    better = regress.compare(_runs(), _runs(shift={"at": 0.05}), ["recall@1"]).set_index("method")
    assert better.loc["at", "status"] == "better"


def test_seeds_that_do_not_match_compare_the_means_against_the_tolerance(tmp_path, baseline, capsys):
    other = _runs(shift={"hmat": -0.005}, seeds=(10, 11, 12))  # a significant-looking drop, but nothing to pair
    table = regress.compare(_runs(), other, ["recall@1"]).set_index("method")
    assert (table["paired_seeds"] == 0).all() and table.loc["hmat", "status"] == "ok"
    assert table.loc["hmat", "pairing"].startswith("unpaired")
    assert _gate(baseline, _write(tmp_path / "other.csv", other)) == 0
    assert "unpaired (the seeds do not match): means against the tolerance only" in capsys.readouterr().out
    assert _gate(baseline, _write(tmp_path / "other.csv", _runs(shift={"hmat": -0.02}, seeds=(10, 11, 12)))) == 1
    assert "REGRESSION: drop beyond tolerance" in _failures(capsys)
    # two of three seeds shared: paired on those
    part = _runs(shift={"hmat": -0.005}, seeds=(0, 1, 7))
    row = regress.compare(_runs(), part, ["recall@1"]).set_index("method").loc["hmat"]
    assert row["paired_seeds"] == 2 and row["status"] == "REGRESSION" and "shared seeds" in row["pairing"]


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


def test_bad_arguments(tmp_path, baseline, capsys):
    with pytest.raises(SystemExit) as stop:
        regress.main(["--current", str(baseline)])  # neither --baseline nor --write-baseline
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    assert _gate(baseline, baseline, "--metrics", "bogus@3") == 2
    assert "not in the baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _gate(baseline, baseline, "--tolerance-std", "2")  # removed, with a message that says what replaced it
    assert regress.main(["--baseline", str(tmp_path / "missing.csv"), "--current", str(baseline)]) == 2
    assert "--baseline" in capsys.readouterr().err


def test_write_baseline_has_a_header_and_reads_back(tmp_path, baseline, capsys):
    out = tmp_path / "new_baseline.csv"
    assert regress.main(["--current", str(baseline), "--write-baseline", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# command: ") and "# commit: " in text
    assert _gate(out, baseline) == 0
    capsys.readouterr()


def test_a_baseline_of_another_machine_is_named(tmp_path, baseline, capsys, monkeypatch):
    """The baseline's header records the CPU; a run on another one says so beside the table (its deltas may be
    the machine's), and a run on the same one says nothing."""
    out = tmp_path / "new_baseline.csv"
    monkeypatch.setattr(regress, "cpu_model", lambda: "CPU A (family 6 model 1; L2 1024K)")
    assert regress.main(["--current", str(baseline), "--write-baseline", str(out)]) == 0
    assert "# machine: CPU A (family 6 model 1; L2 1024K)\n" in out.read_text()
    capsys.readouterr()
    assert _gate(out, baseline) == 0
    assert "note: the baseline was made on" not in capsys.readouterr().out
    monkeypatch.setattr(regress, "cpu_model", lambda: "CPU B (family 6 model 2; L2 2048K)")
    assert _gate(out, baseline) == 0
    assert ("note: the baseline was made on CPU A (family 6 model 1; L2 1024K), this run on CPU B (family 6 model 2; "
            "L2 2048K)") in capsys.readouterr().out


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


def test_rows_of_another_replicate_design_are_not_paired(tmp_path, baseline, capsys):
    """The fixture's baseline has no replicates column (written before it existed: conditional); rows of
    full replicates draw other data, pretraining and teacher under the same seed, so pairing is refused."""
    full = _runs().assign(replicates="full")
    assert _gate(baseline, _write(tmp_path / "runs.csv", full)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the baseline's rows have conditional replicates and the current rows full")
    assert "--write-baseline" in err and len(err.splitlines()) == 1
    both = _write(tmp_path / "base_full.csv", full)
    assert _gate(both, _write(tmp_path / "runs2.csv", full)) == 0  # the same design pairs as before
    capsys.readouterr()
