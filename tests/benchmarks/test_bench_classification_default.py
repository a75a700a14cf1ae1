"""The classification default's target checks, on hand-made leaderboards (the run itself is the benchmark)."""

import pytest

from benchmarks.bench_classification_default import check, main, report, same_schedule
from benchmarks.runner.config import deep_merge, resolve_config
from fake_board import fake_board


def board(halfwidths=(0.4, 0.9), teacher=96.0, none=92.0, replicates="full"):
    return fake_board("top1", halfwidths, teacher, none, replicates=replicates)


def test_all_targets_pass():
    numbers, ok = check(board(), True, seconds=500.0)
    assert ok == {"halfwidth": True, "gap": True, "design": True, "schedule": True, "time": True}
    assert numbers["max_gain_halfwidth_top1"] == 0.9 and numbers["teacher_minus_none_top1"] == 4.0
    assert all("PASS" in line for line in report(numbers, ok) if "target" in line)


@pytest.mark.parametrize("change, target", [
    ({"halfwidths": (0.4, 1.01)}, "halfwidth"),
    ({"halfwidths": (0.4, float("nan"))}, "halfwidth"),  # one seed: no interval is no pass
    ({"halfwidths": ()}, "halfwidth"),
    ({"teacher": 94.9}, "gap"),
    ({"replicates": "conditional"}, "design"),
])
def test_each_target_fails_alone(change, target):
    _, ok = check(board(**change), True, seconds=500.0)
    assert [k for k, v in ok.items() if not v] == [target]


def test_time_schedule_and_longer_training():
    assert [k for k, v in check(board(), True, seconds=601.0)[1].items() if not v] == ["time"]
    assert [k for k, v in check(board(), False, seconds=None)[1].items() if not v] == ["schedule"]
    numbers, ok = check(board(), True, None, longer=board(teacher=96.5, none=93.6))
    assert numbers["twice_the_epochs"] == {"teacher_minus_none_top1": 2.9, "teacher_change": 0.5, "none_change": 1.6}
    assert not ok["gap_at_twice_the_epochs"] and "at twice the epochs" in report(numbers, ok)[-1]


def test_the_default_trains_both_roles_on_one_schedule_and_a_longer_teacher_does_not():
    cfg = resolve_config("classification")
    assert same_schedule(cfg)
    assert not same_schedule(deep_merge(cfg, {"teacher": {"train": {"epochs": 15}}}))


def test_check_only_reads_the_default_dataset_folder(tmp_path, capsys):
    dest = tmp_path / "classification" / "synthetic-cls"
    dest.mkdir(parents=True)
    board().reset_index().to_csv(dest / "leaderboard.csv", index=False)
    assert main(["--check-only", "--out", str(tmp_path), "--json", str(tmp_path / "b.json")]) == 0
    assert "teacher - none top-1 4.00" in capsys.readouterr().out and (tmp_path / "b.json").is_file()
