"""``suite_runner.cached_teacher`` (the teachers of every task): a cached teacher loads; one cut
short or of the wrong content is moved aside with one line and trained again, its file then whole."""

import torch
from torch import nn

from benchmarks.runner.suite_runner import cached_teacher
from retrieval.engine.trainer import TrainResult
from retrieval.utils.cache_files import DAMAGED, STALE, intact


def _teacher(path, trained: list, built: list | None = None, complete=None, scored: list | None = None,
             data: str | None = None):
    def network(cached):
        (built if built is not None else []).append(cached)
        return nn.Linear(3, 2)

    def train(model, state_path):
        trained.append(state_path)
        with torch.no_grad():
            model.weight.fill_(0.5)
        return TrainResult(best_epoch=2, best_val={}, seconds=1.0, history=[{"epoch": 1}, {"epoch": 2}])

    def test(model):
        (scored if scored is not None else []).append(float(model.weight[0, 0]))
        return {"acc": 0.75}

    return cached_teacher(path, {}, 0, network, train, test, "acc", log=lambda *a: None, complete=complete, data=data)


def test_a_damaged_teacher_is_trained_again(tmp_path, capsys):
    path = tmp_path / "teachers" / "t-seed0.pt"
    trained = []
    model, record = _teacher(path, trained)
    assert len(trained) == 1 and record["test"] == {"acc": 0.75} and intact(path)
    _, again = _teacher(path, trained)  # cached: loaded, not trained
    assert len(trained) == 1 and again == record
    for damage in (path.read_bytes()[:300], None):
        if damage is None:  # a whole torch file without the teacher's keys
            torch.save({"weights": torch.zeros(1)}, path)
        else:
            path.write_bytes(damage)
        capsys.readouterr()
        model, record = _teacher(path, trained)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"cache: {path} is damaged (") and "its work is redone" in err[0]
        assert torch.all(model.weight == 0.5) and record["test"] == {"acc": 0.75} and intact(path)
    assert len(trained) == 3 and len(list(path.parent.glob(f"t-seed0.pt{DAMAGED}*"))) == 2


def test_a_cached_teacher_is_built_without_training_and_scored_again_when_its_record_is_incomplete(tmp_path):
    path = tmp_path / "t-seed0.pt"
    trained, built, scored = [], [], []
    model, record = _teacher(path, trained, built, scored=scored)
    assert built == [False] and len(trained) == 1 and scored == [0.5] and record["epoch"] == 2
    _, again = _teacher(path, trained, built, complete=lambda r: "acc" in r["test"], scored=scored)
    assert built == [False, True] and len(trained) == 1 and scored == [0.5]  # complete: loaded, not scored
    model, again = _teacher(path, trained, built, complete=lambda r: "top5" in r["test"], scored=scored)
    assert len(trained) == 1 and scored == [0.5, 0.5]  # incomplete: the loaded weights are scored again
    assert torch.load(path, weights_only=True)["record"] == again  # and saved again


def test_a_teacher_cached_on_other_data_is_moved_aside_and_trained_again(tmp_path, capsys):
    path = tmp_path / "t-seed0.pt"
    trained = []
    _teacher(path, trained)  # cached before digests were recorded: no digest in the file
    assert "data" not in torch.load(path, weights_only=True)
    capsys.readouterr()
    _teacher(path, trained, data="aaaa")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(trained) == 2 and len(err) == 1, err
    assert err[0].startswith(f"cache: {path} is stale (trained on other data: no record of its data, this run's aaaa)")
    assert torch.load(path, weights_only=True)["data"] == "aaaa"
    _teacher(path, trained, data="aaaa")  # the same data: loaded
    assert len(trained) == 2 and capsys.readouterr().err == ""
    _teacher(path, trained, data="bbbb")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(trained) == 3 and "trained on other data: data aaaa, this run's bbbb" in err[0]
    assert len(list(tmp_path.glob(f"t-seed0.pt{STALE}*"))) == 2 and intact(path)
    assert len(list(tmp_path.glob(f"t-seed0.pt{DAMAGED}*"))) == 0
