"""Resuming a run: a run stopped after any epoch and continued from its state file ends
exactly like an uninterrupted run; a finished run is not trained again; a non-finite
loss keeps the last good state. Also the mixed-precision and channels-last options."""

import pytest
import torch

from retrieval.data import build_dataset
from retrieval.engine import NonFiniteLossError, TrainConfig, seed_everything, train
from retrieval.engine.train_state import load_train_state
from retrieval.metric_losses import build_task_loss
from retrieval.methods import Distiller, build_method
from retrieval.models import create_model

OPTS = {"classes": 20, "per_class": 10, "size": 16}


@pytest.fixture(scope="module")
def data():
    return {s: build_dataset("synthetic", None, s, **OPTS) for s in ("fit", "val")}


def _cfg(**kw):
    base = dict(epochs=4, batch_size=20, m_per_class=5, progress=False, lr=3e-3, schedule="cosine")
    return TrainConfig(**{**base, **kw})


def _method(seed=0, cls=None):
    seed_everything(0)
    model = create_model("small_cnn_xs", embedding_dim=8)
    method = (cls or _plain)(model)
    seed_everything(seed)  # the run's seed: batch order and sampling
    return method


def _plain(model):
    return build_method("none", student=model, task_loss=build_task_loss("multi_similarity", miner="multi_similarity"))


class _Crash(RuntimeError):
    pass


def _crashing_evaluator(after_epoch):
    from retrieval.engine import evaluate_model
    calls = {"n": 0}

    def evaluator(model, dataset, cfg, desc):
        calls["n"] += 1
        if calls["n"] > after_epoch:
            raise _Crash("killed")
        return evaluate_model(model, dataset, cfg, desc)
    return evaluator


def _weights(method):
    return {k: v.clone() for k, v in method.student.state_dict().items()}


@pytest.mark.parametrize("crash_after", [1, 3])
def test_resumed_run_equals_uninterrupted_run(data, tmp_path, crash_after):
    reference = _method()
    expected = train(reference, data["fit"], data["val"], _cfg())

    state = tmp_path / "run.state.pt"
    with pytest.raises(_Crash):  # dies while validating epoch crash_after + 1: that epoch's state is not saved
        train(_method(), data["fit"], data["val"], _cfg(), evaluator=_crashing_evaluator(crash_after),
              state_path=state)
    assert load_train_state(state)["epoch"] == crash_after
    seed_everything(123)  # a fresh process would not have the crashed run's random state
    resumed_method = _method(seed=123)
    resumed = train(resumed_method, data["fit"], data["val"], _cfg(), state_path=state)

    assert resumed.best_epoch == expected.best_epoch
    assert resumed.history == expected.history
    for k, v in _weights(reference).items():
        assert torch.equal(v, _weights(resumed_method)[k]), k


def test_finished_run_is_not_trained_again(data, tmp_path):
    state = tmp_path / "run.state.pt"
    first_method = _method()
    first = train(first_method, data["fit"], data["val"], _cfg(epochs=2), state_path=state)
    assert load_train_state(state)["complete"]

    def never(*a, **k):
        raise AssertionError("a finished run was evaluated again")
    again_method = _method(seed=5)
    again = train(again_method, data["fit"], data["val"], _cfg(epochs=2), evaluator=never, state_path=state)
    assert again == first
    for k, v in _weights(first_method).items():
        assert torch.equal(v, _weights(again_method)[k]), k


def test_a_state_saved_under_another_tag_is_ignored(data, tmp_path):
    state = tmp_path / "run.state.pt"
    train(_method(), data["fit"], data["val"], _cfg(epochs=1), state_path=state, state_tag="abc")
    calls = []

    def counting(model, dataset, cfg, desc):
        from retrieval.engine import evaluate_model
        calls.append(desc)
        return evaluate_model(model, dataset, cfg, desc)
    train(_method(), data["fit"], data["val"], _cfg(epochs=1), evaluator=counting, state_path=state, state_tag="abc")
    assert calls == []
    train(_method(), data["fit"], data["val"], _cfg(epochs=1), evaluator=counting, state_path=state, state_tag="def")
    assert len(calls) == 1 and load_train_state(state)["tag"] == "def"


class _NanAtStep(Distiller):
    """Its ``probe`` term is NaN at training step ``nan_at`` (1-based), zero before."""
    needs_teacher = False

    def __init__(self, *a, nan_at: int, **kw):
        super().__init__(*a, **kw)
        self.nan_at, self.calls = nan_at, 0

    def distill_losses(self, s, t, batch):
        self.calls += 1
        return {"probe": s["embedding"].sum() * (float("nan") if self.calls == self.nan_at else 0.0)}


def test_non_finite_loss_names_method_step_term_and_keeps_the_last_good_state(data, tmp_path):
    state = tmp_path / "run.state.pt"
    steps_per_epoch = len(data["fit"]) // 20
    nan_at = steps_per_epoch + 2  # second step of epoch 2
    method = _method(cls=lambda m: _NanAtStep(m, task_loss=build_task_loss("triplet"), nan_at=nan_at))
    with pytest.raises(NonFiniteLossError, match=rf"hmat s0: loss term 'probe' is nan at epoch 2, step {nan_at}; "
                                                 r"the last good state is kept in"):
        train(method, data["fit"], data["val"], _cfg(), name="hmat s0", state_path=state)
    saved = load_train_state(state)
    assert not saved.get("complete") and saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["method"].values() if v.is_floating_point())


def test_mixed_precision_and_channels_last_train_on_cpu(data):
    method = _method()
    result = train(method, data["fit"], data["val"], _cfg(epochs=1, amp=True, channels_last=True))
    assert result.history[0]["loss/task"] > 0
    assert all(torch.isfinite(p).all() for p in method.student.parameters())
