"""The detection default's target checks, on hand-made leaderboards (the run itself is the benchmark)."""

import pytest

from benchmarks.bench_detection_default import check, main, report
from fake_board import fake_board


def board(halfwidths=(1.2, 1.9), teacher=55.0, none=47.0, replicates="full"):
    return fake_board("ap", halfwidths, teacher, none, replicates=replicates)


def test_all_targets_pass():
    numbers, ok = check(board(), seconds=800.0)
    assert ok == {"halfwidth": True, "gap": True, "design": True, "time": True}
    assert numbers["max_gain_halfwidth_ap"] == 1.9 and numbers["teacher_minus_none_ap"] == 8.0
    assert numbers["gain_by_method"] == {"m0": 0.5, "m1": 0.5}
    assert all("PASS" in line for line in report(numbers, ok) if "target" in line)


@pytest.mark.parametrize("change, target", [
    ({"halfwidths": (1.2, 2.01)}, "halfwidth"),
    ({"halfwidths": (1.2, float("nan"))}, "halfwidth"),  # fewer than 2 seeds: no interval is no pass
    ({"halfwidths": ()}, "halfwidth"),                   # no method besides none: nothing measured
    ({"teacher": 51.9}, "gap"),
    ({"replicates": "conditional"}, "design"),
])
def test_each_target_fails_alone(change, target):
    _, ok = check(board(**change), seconds=800.0)
    assert [k for k, v in ok.items() if not v] == [target]


def test_time_target():
    _, ok = check(board(), seconds=901.0)
    assert [k for k, v in ok.items() if not v] == ["time"]
    _, ok = check(board(), seconds=None)  # --check-only: no wall time to judge
    assert "time" not in ok


def test_check_only_reads_the_default_dataset_folder(tmp_path, capsys):
    dest = tmp_path / "detection" / "mnist-scenes"
    dest.mkdir(parents=True)
    board().reset_index().to_csv(dest / "leaderboard.csv", index=False)
    assert main(["--check-only", "--out", str(tmp_path), "--json", str(tmp_path / "b.json")]) == 0
    assert "teacher - none AP 8.00" in capsys.readouterr().out
    assert (tmp_path / "b.json").is_file()
