"""The tuner's sampled search (``--search optuna``): TPE trials of a grid file's space, pruned on their
validation curve, stored in SQLite so that an interrupted search resumes; ``--reproductions N``."""

import sys

import pandas as pd
import pytest
import yaml
from tiny_retrieval import tiny_retrieval
from user_error import user_error

from benchmarks import tune
from benchmarks.runner.errors import UserError
from benchmarks.runner.tune import grid as tuning, search

optuna = pytest.importorskip("optuna")

TINY = tiny_retrieval(teacher={"train": {"epochs": 1}}, student={"train": {"epochs": 2, "eval_every": 1}}, workers=1)
SPACE = {"at": {"beta": {"low": 0.1, "high": 100, "log": True}}}


def _files(tmp_path, grid=None):
    config, grid_file = tmp_path / "tiny.yaml", tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(TINY))
    grid_file.write_text(yaml.safe_dump({"grid": grid or SPACE}))
    return ["--search", "optuna", "--grid", str(grid_file), "--config", str(config), "--out", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "c"), "--no-progress"]


def _table(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "r" / "retrieval" / "synthetic" / "search.csv", comment="#")


def _trained(capsys) -> list[str]:
    """The trials trained since the last call (each prints one line per unit)."""
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[trial ")]


def test_an_interrupted_search_resumes(tmp_path, capsys):
    """2 trials, then the same command asking for 4 (on two workers): the first 2 are kept, exactly 2 run."""
    args = _files(tmp_path)
    assert tune.main(args + ["--trials", "2"]) == 0
    first = _table(tmp_path)
    assert list(first["state"]) == ["complete"] * 2 and len(_trained(capsys)) == 2
    assert first["value"].between(0, 1).all() and first["chosen"].sum() == 1
    assert (first["value"] == first["val_map@r"]).all()  # ranked by the student's select_metric
    assert (tmp_path / "r" / "retrieval" / "synthetic" / "optuna.db").exists()
    assert tune.main(args + ["--trials", "4", "--workers", "2"]) == 0
    again = _table(tmp_path)
    out = capsys.readouterr().out
    assert out.count("complete,") == 2 and "2 trial(s) finished, 2 to run" in out
    assert list(again["number"]) == [0, 1, 2, 3] and (again["state"] == "complete").all()
    pd.testing.assert_frame_equal(again.iloc[:2].drop(columns="chosen"), first.drop(columns="chosen"))
    assert again["opt.beta"].nunique() == 4 and again["opt.beta"].between(0.1, 100).all()
    assert tune.main(args + ["--trials", "4"]) == 0  # nothing left to run
    assert "4 trial(s) finished, 0 to run" in capsys.readouterr().out and len(_table(tmp_path)) == 4
    tracked = sorted((tmp_path / "r" / "retrieval" / "synthetic" / "search" / "tensorboard").iterdir())
    assert len(tracked) == 4 and len({run.name for run in tracked}) == 4  # one run per trial (one seed, 4 betas)


def test_a_trial_left_running_by_a_killed_search_is_run_again(tmp_path, capsys):
    args = _files(tmp_path) + ["--study-name", "s"]
    assert tune.main(args + ["--trials", "1"]) == 0
    url = f"sqlite:///{tmp_path / 'r' / 'retrieval' / 'synthetic' / 'optuna.db'}"
    study = optuna.load_study(study_name="s-at", storage=url)
    left = study.ask(search.distributions(optuna, search.parse_space("grid", "at", SPACE["at"])))  # never told
    capsys.readouterr()
    assert tune.main(args + ["--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 trial(s) left running by an interrupted search, enqueued again" in out
    table = _table(tmp_path).set_index("number")
    assert list(table["state"]) == ["complete", "interrupted", "complete"]
    assert table.loc[2, "retry_of"] == 1 and table.loc[2, "opt.beta"] == pytest.approx(left.params["beta"])
    assert out.count("[trial 2]") == 1 and "[trial 0]" not in out  # only the retried trial trained


def test_a_search_stopped_by_an_error_requeues_what_was_in_flight(tmp_path, monkeypatch, capsys):
    args = _files(tmp_path)

    def killed(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "trial_job", killed)
    assert tune.main(args + ["--trials", "1"]) == 130  # Ctrl-C: one line, exit 128 + SIGINT
    assert "python -m benchmarks.tune: interrupted by SIGINT" in capsys.readouterr().err
    monkeypatch.undo()
    assert tune.main(args + ["--trials", "1"]) == 0
    table = _table(tmp_path)
    assert list(table["state"]) == ["interrupted", "complete"] and table["retry_of"].iloc[1] == 0
    assert table["opt.beta"].nunique() == 1


def test_a_poor_curve_is_pruned_at_its_first_evaluation(tmp_path, capsys):
    """A completed trial that scored 1.0 at every epoch: with one startup trial, the median pruner stops
    the next trial after its first validation (epoch 1 of 2)."""
    args = _files(tmp_path) + ["--study-name", "p", "--pruner-startup", "1"]
    url = search.storage_url(tmp_path / "r" / "retrieval" / "synthetic" / "optuna.db")
    study = optuna.create_study(study_name="p-at", storage=url, direction="maximize")
    dists = search.distributions(optuna, search.parse_space("grid", "at", SPACE["at"]))
    study.add_trial(optuna.trial.create_trial(params={"beta": 1.0}, distributions=dists, value=1.0,
                                              intermediate_values={1: 1.0, 2: 1.0}))
    assert tune.main(args + ["--trials", "2"]) == 0
    assert "[trial 1] at" in capsys.readouterr().out
    row = _table(tmp_path).set_index("number").loc[1]
    assert row["state"] == "pruned" and row["pruned_at_epoch"] == 1 and row["units"] == 0
    assert pd.isna(row["value"]) and 0 <= row["last_report"] < 1
    assert study.trials[1].intermediate_values.keys() == {1}  # training stopped after the first report


def test_pruning_callback_reports_forwards_and_prunes():
    study = optuna.create_study(direction="maximize", pruner=search.make_pruner(optuna, {"name": "median", "startup": 1}))
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=dist, value=0.5,
                                              intermediate_values={1: 0.5, 2: 0.5}))
    seen = []
    good = search.PruningCallback(optuna, study.ask(dist), seen.append)
    for epoch in (1, 2):
        good({"event": "step", "epoch": epoch})
        good({"event": "epoch", "epoch": epoch, "metric": "map@r", "value": 0.6})
    assert good.trial.number == 1 and len(seen) == 4 and good.pruned_at is None
    quiet = search.PruningCallback(optuna, study.ask(dist), watch=False)  # a later unit: not reported
    quiet({"event": "epoch", "epoch": 1, "metric": "map@r", "value": 0.0})
    assert study.trials[2].intermediate_values == {}
    poor = search.PruningCallback(optuna, study.ask(dist))
    poor({"event": "epoch", "epoch": 1, "metric": None, "value": None})  # an epoch without validation
    with pytest.raises(optuna.TrialPruned):
        poor({"event": "epoch", "epoch": 2, "metric": "map@r", "value": 0.1})
    assert poor.pruned_at == 2 and study.trials[3].intermediate_values == {2: 0.1}
    none = search.PruningCallback(optuna, optuna.create_study(pruner=search.make_pruner(optuna, {"name": "none"}))
                                  .ask(dist))
    none({"event": "epoch", "epoch": 1, "metric": "map@r", "value": -1.0})  # NopPruner never prunes


def test_the_tpe_sampler_is_seeded(tmp_path):
    dists = search.distributions(optuna, search.parse_space("grid", "at", {"beta": {"low": 0.1, "high": 100},
                                                                           "k": [1, 2, 3, 4, 5, 6]}))
    pruner = {"name": "median"}

    def draws(path, seed, n=3):
        study = search.open_study(optuna, search.storage_url(path), "s", "id", seed, pruner)
        assert isinstance(study.sampler, optuna.samplers.TPESampler)
        return [study.ask(dists).params for _ in range(n)]

    assert draws(tmp_path / "a.db", 7) == draws(tmp_path / "b.db", 7)
    assert draws(tmp_path / "c.db", 7) != draws(tmp_path / "d.db", 8)
    resumed, fresh = draws(tmp_path / "a.db", 7), draws(tmp_path / "e.db", 7)
    assert not any(p in fresh for p in resumed)  # a reopened study does not redraw its first points
    with pytest.raises(UserError, match="made for another config"):
        search.open_study(optuna, search.storage_url(tmp_path / "a.db"), "s", "other", 7, pruner)


def test_without_optuna_the_search_fails_at_once_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    err = user_error(capsys, tune.main, _files(tmp_path))
    assert "--search optuna needs the package 'optuna'" in err and 'pip install -e ".[cluster]"' in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def test_the_space_of_a_grid_file():
    space = search.parse_space("g.yaml", "m", {
        "w": {"low": 0.01, "high": 10, "log": True}, "n": {"low": 1, "high": 9, "step": 2},
        "f": {"low": 1, "high": 4, "type": "float"}, "s": {"low": 0.0, "high": 1.0, "step": 0.25},
        "c": [1, "two", None], "l": [[1, 2], [3]], "fixed": 3, "opts": {"a": 1}})
    d = search.distributions(optuna, space)
    assert set(d) == {"w", "n", "f", "s", "c", "l"}  # fixed values are not parameters
    assert isinstance(d["w"], optuna.distributions.FloatDistribution) and d["w"].log and d["w"].low == 0.01
    assert isinstance(d["n"], optuna.distributions.IntDistribution) and (d["n"].low, d["n"].high, d["n"].step) == (1, 9, 2)
    assert isinstance(d["f"], optuna.distributions.FloatDistribution) and d["f"].step is None
    assert d["s"].step == 0.25 and d["c"].choices == (1, "two", None) and d["l"].choices == ("[1, 2]", "[3]")
    options = search.decode(space, {"w": 0.5, "n": 3, "f": 2.5, "s": 0.75, "c": "two", "l": "[3]"})
    assert options == {"w": 0.5, "n": 3, "f": 2.5, "s": 0.75, "c": "two", "l": [3], "fixed": 3, "opts": {"a": 1}}
    corners = search.corner_options(space)
    assert {"l": [1, 2]}.items() <= corners[0].items() and any(c["w"] == 10.0 for c in corners)
    assert len(corners) == 1 + 4 + 2 + 1  # the first values, then each range's high end and every other choice
    for bad, said in [({"low": 1, "high": 1}, "must be below"), ({"low": 0.1, "high": 1, "log": True, "step": 0.1},
                      "log and step"), ({"low": 0, "high": 1, "log": True}, "low > 0"),
                      ({"low": 1, "high": 2, "type": "str"}, "expected int or float"),
                      ({"low": 0.5, "high": 2, "type": "int"}, "integer"), ({"low": "a", "high": 2}, "numbers")]:
        with pytest.raises(UserError, match=said):
            search.parse_space("g.yaml", "m", {"x": bad})
    with pytest.raises(UserError, match="empty list"):
        search.parse_space("g.yaml", "m", {"x": []})


def test_the_grid_refuses_a_range_and_bad_flags_fail_before_any_training(tmp_path, capsys):
    args = _files(tmp_path)
    grid = [a for a in args if a != "optuna" and a != "--search"]
    assert "at.beta: a range ({low, high}) is for --search optuna" in user_error(capsys, tune.main, grid)
    assert "--reproductions 1: expected N >= 2" in user_error(capsys, tune.main, args + ["--reproductions", "1"])
    assert "--test-after is for the grid" in user_error(capsys, tune.main, args + ["--test-after"])
    bad = _files(tmp_path, {"at": {"beta": {"low": -1.0, "high": 1.0}}})  # the schema: beta >= 0
    assert "at {'beta': -1.0}" in user_error(capsys, tune.main, bad)
    assert not (tmp_path / "c").exists()


def test_reproductions_rerun_the_choice_over_seeds_with_gain_intervals(tmp_path, monkeypatch, capsys):
    """The choice is written first; only then are the choice, none and the teacher run over seeds 0, 1
    on the test split, into a leaderboard whose gains over none carry paired 95% intervals."""
    seen = []
    evaluate = tuning.suite.evaluate_test
    searched = tmp_path / "r" / "retrieval" / "synthetic" / "search.csv"

    def spy(model, dataset, *a, **k):
        seen.append((dataset.split, searched.exists()))
        return evaluate(model, dataset, *a, **k)

    monkeypatch.setattr(tuning.suite, "evaluate_test", spy)
    args = _files(tmp_path, {"none": {}, **SPACE})
    assert tune.main(args + ["--trials", "2", "--reproductions", "2"]) == 0
    assert seen and all(split == "test" and written for split, written in seen)
    chosen = _table(tmp_path).query("chosen and method == 'at'")["opt.beta"].item()
    out = capsys.readouterr().out
    folder = tmp_path / "r" / "retrieval" / "synthetic" / "reproductions" / "retrieval" / "synthetic"
    assert f"reproductions over seeds 0..1: {folder / 'leaderboard.md'}" in out
    board = pd.read_csv(folder / "leaderboard.csv").set_index("method")
    assert set(board.index) == {"teacher", "none", "at"} and (board["seeds"] == 2).all()
    assert board.loc["at", "gain_ci_low"] <= board.loc["at", "gain_vs_none"] <= board.loc["at", "gain_ci_high"]
    assert board.loc["at", "gain_seeds"] == 2
    runs = pd.read_csv(folder / "runs.csv")
    assert sorted(runs["seed"].unique()) == [0, 1]
    assert "python -m benchmarks.tune" in (folder / "leaderboard.md").read_text()
    import json
    record = json.loads(next((folder / "runs").glob("at-*.json")).read_text())
    assert record["config"]["methods"]["at"]["beta"] == pytest.approx(chosen)



def test_a_diverged_trial_counts_as_finished_and_is_never_chosen(tmp_path, monkeypatch, capsys):
    from benchmarks.runner.tasks import get_suite
    from retrieval.engine.trainer import NonFiniteLossError

    retrieval = get_suite("retrieval")
    real = retrieval.train_student

    def diverging(cfg, data, teacher, method, options, seed, *args, **kwargs):
        if options["beta"] == 50:
            raise NonFiniteLossError("at s0: loss term 'at' is nan at epoch 1, step 2")
        return real(cfg, data, teacher, method, options, seed, *args, **kwargs)

    monkeypatch.setattr(retrieval, "train_student", diverging)  # the suite object the jobs look up
    assert tune.main(_files(tmp_path, {"at": {"beta": [1, 50]}}) + ["--trials", "3"]) == 0
    table = _table(tmp_path)
    assert "diverged (at s0: loss term 'at' is nan" in capsys.readouterr().out
    assert len(table) == 3 and set(table["state"]) == {"complete", "diverged"}
    assert (table["state"] == "diverged").eq(table["opt.beta"] == 50).all()
    assert table.loc[table["chosen"], "opt.beta"].tolist() == [1]
