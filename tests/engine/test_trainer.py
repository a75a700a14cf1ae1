"""The trainer: sums named losses, selects on validation, stops on a non-finite loss."""

import pytest
import torch

from retrieval.data import build_dataset
from retrieval.engine import NonFiniteLossError, TrainConfig, seed_everything, train
from retrieval.metric_losses import build_task_loss
from retrieval.methods import Distiller, build_method
from retrieval.models import create_model

OPTS = {"classes": 20, "per_class": 10, "size": 16}


@pytest.fixture(scope="module")
def data():
    return {s: build_dataset("synthetic", None, s, **OPTS) for s in ("fit", "val")}


def _cfg(**kw):
    return TrainConfig(epochs=2, batch_size=20, m_per_class=5, progress=False, **kw)


def test_training_lowers_the_loss_and_selects_best_val(data):
    seed_everything(0)
    model = create_model("small_cnn_xs", embedding_dim=8)
    method = build_method("none", student=model, task_loss=build_task_loss("triplet"))
    cfg = TrainConfig(epochs=3, batch_size=20, m_per_class=5, progress=False, lr=3e-3)
    result = train(method, data["fit"], data["val"], cfg, name="t")
    vals = [h["val/recall@1"] for h in result.history]
    assert result.best_epoch == 1 + vals.index(max(vals))
    assert result.best_val["recall@1"] == max(vals)
    assert all("loss/task" in h for h in result.history)


class _Exploding(Distiller):
    needs_teacher = False

    def distill_losses(self, s, t, batch):
        return {"boom": s["embedding"].sum() * float("nan")}


def test_non_finite_loss_names_the_term(data):
    model = create_model("small_cnn_xs", embedding_dim=8)
    method = _Exploding(model, task_loss=build_task_loss("triplet"))
    with pytest.raises(NonFiniteLossError, match="'boom'.*epoch 1, step 1"):
        train(method, data["fit"], data["val"], _cfg(), name="explode")


class _EpochRecorder(Distiller):
    needs_teacher = False

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.epochs = []

    def distill_losses(self, s, t, batch):
        self.epochs.append(batch["epoch"])
        return {}


def test_each_batch_carries_its_1_based_epoch(data):
    method = _EpochRecorder(create_model("small_cnn_xs", embedding_dim=8), task_loss=build_task_loss("triplet"))
    train(method, data["fit"], None, _cfg(select="last"), name="epochs")
    steps = len(method.epochs) // 2
    assert steps > 0 and method.epochs == [1] * steps + [2] * steps


def test_batch_must_hold_whole_classes(data):
    model = create_model("small_cnn_xs", embedding_dim=8)
    method = build_method("none", student=model, task_loss=build_task_loss("triplet"))
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        train(method, data["fit"], data["val"], TrainConfig(batch_size=21, m_per_class=5, progress=False))


def test_unknown_training_option():
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 1, "lr_typo": 0.1})


def test_teacher_is_not_updated(data):
    seed_everything(0)
    teacher = create_model("small_cnn_s", embedding_dim=8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    method = build_method("hmat", student=create_model("small_cnn_xs", embedding_dim=8), teacher=teacher,
                          task_loss=build_task_loss("triplet"))
    train(method, data["fit"], data["val"], _cfg())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
