"""The default run's target checks, on hand-made leaderboards (the run itself is the benchmark)."""

import pytest

from benchmarks.bench_default_run import check, report
from fake_board import fake_board

SIZES = {"teacher": [(16, 16), (8, 8), (4, 4), (4, 4)], "student": [(16, 16), (8, 8), (4, 4), (4, 4)]}


def board(halfwidths=(0.3, 0.45), teacher=97.0, none=91.0, macs=(7.2e6, 1.9e6), replicates="full"):
    return fake_board("recall@1", halfwidths, teacher, none, gain=0.2, replicates=replicates, macs=macs)


def test_all_targets_pass():
    numbers, ok = check(board(), SIZES, seconds=800.0)
    assert ok == {"halfwidth": True, "gap": True, "design": True, "stages": True, "macs": True, "time": True}
    assert numbers["max_gain_halfwidth_recall@1"] == 0.45 and numbers["teacher_minus_none_recall@1"] == 6.0
    assert numbers["macs_ratio"] == pytest.approx(1.9 / 7.2, abs=1e-3)
    assert all("PASS" in line for line in report(numbers, ok) if "target" in line)


@pytest.mark.parametrize("change, target", [
    ({"halfwidths": (0.3, 0.51)}, "halfwidth"),
    ({"halfwidths": (0.3, float("nan"))}, "halfwidth"),  # fewer than 2 seeds: no interval is no pass
    ({"teacher": 95.9}, "gap"),
    ({"macs": (7.2e6, 2.3e6)}, "macs"),
    ({"replicates": "conditional"}, "design"),  # intervals over one fixed draw are no pass
])
def test_each_target_fails_alone(change, target):
    _, ok = check(board(**change), SIZES, seconds=800.0)
    assert [k for k, v in ok.items() if not v] == [target]


def test_stage_and_time_targets():
    small = {**SIZES, "student": [(16, 16), (8, 8), (4, 4), (2, 2)]}
    _, ok = check(board(), small, seconds=901.0)
    assert sorted(k for k, v in ok.items() if not v) == ["stages", "time"]
    _, ok = check(board(), SIZES, seconds=None)  # --check-only: no wall time to judge
    assert "time" not in ok
