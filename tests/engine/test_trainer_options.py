"""Trainer options for the classification track: evaluator hook, plain shuffled sampler,
last-epoch selection and SGD; none of them changes the retrieval defaults."""

import numpy as np
import pytest
import torch

from retrieval.data import build_dataset
from retrieval.engine import TrainConfig, evaluate_classifier, make_train_loader, seed_everything, train
from retrieval.engine.trainer import make_optimizer
from retrieval.methods import build_method
from retrieval.models import create_classifier

OPTS = {"per_class": 24, "test_fraction": 0.5}  # digits-cls: 120 training and 120 test images, 8x8


@pytest.fixture(scope="module")
def data():
    return {s: build_dataset("digits-cls", None, s, **OPTS) for s in ("train", "fit", "val", "test")}


def _cfg(**kw):
    base = dict(epochs=2, batch_size=20, optimizer="sgd", lr=0.05, sampler="random", ks=(1, 5),
                select_metric="top1", progress=False)
    return TrainConfig(**{**base, **kw})


def _method(seed=0):
    seed_everything(seed)
    return build_method("none", student=create_classifier("resnet20", 10), task_loss=torch.nn.CrossEntropyLoss())


def test_defaults_are_the_retrieval_ones():
    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.sampler, cfg.select) == ("adam", "m_per_class", "best")


@pytest.mark.parametrize("option, value", [("optimizer", "lbfgs"), ("sampler", "balanced"), ("select", "worst")])
def test_unknown_choices_are_rejected(option, value):
    with pytest.raises(ValueError, match=option):
        TrainConfig.from_dict({option: value})


def test_random_sampler_covers_the_data_once_per_epoch(data):
    torch.manual_seed(0)
    loader = make_train_loader(data["train"], _cfg())
    seen = np.concatenate([b["index"].numpy() for b in loader])
    assert len(seen) == len(data["train"]) // 20 * 20 and len(set(seen)) == len(seen)
    with pytest.raises(ValueError, match="fewer than one batch"):
        make_train_loader(data["train"], _cfg(batch_size=len(data["train"]) + 1))


def test_sgd_optimizer():
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(p, _cfg(momentum=0.8, weight_decay=0.01))
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.8 and opt.defaults["weight_decay"] == 0.01
    assert isinstance(make_optimizer(p, _cfg(optimizer="adam")), torch.optim.Adam)


def test_select_last_keeps_the_last_weights_without_validation(data):
    method = _method()
    before = {k: v.clone() for k, v in method.student.state_dict().items()}
    result = train(method, data["train"], None, _cfg(select="last", lr=0.01), evaluator=evaluate_classifier)
    assert result.best_epoch == 2 and result.best_val == {}
    assert all("loss/task" in h and not any(k.startswith("val/") for k in h) for h in result.history)
    assert any(not torch.equal(v, before[k]) for k, v in method.student.state_dict().items())
    acc = evaluate_classifier(method.student, data["test"], _cfg())
    assert set(acc) == {"top1", "top5"} and 0 <= acc["top1"] <= acc["top5"] <= 1


def test_select_last_with_validation_only_records_it(data):
    calls = []

    def evaluator(model, dataset, cfg, desc):
        calls.append(desc)
        return {"top1": [0.9, 0.1, 0.5][len(calls) - 1]}

    result = train(_method(), data["fit"], data["val"], _cfg(epochs=3, select="last"), evaluator=evaluator)
    assert len(calls) == 3 and result.best_epoch == 3 and result.best_val == {"top1": 0.5}


def test_select_best_uses_the_evaluator_hook(data):
    scores = iter([0.2, 0.7, 0.4])
    method = _method()
    snapshots = []

    def evaluator(model, dataset, cfg, desc):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"top1": next(scores)}

    result = train(method, data["fit"], data["val"], _cfg(epochs=3), evaluator=evaluator)
    assert result.best_epoch == 2 and result.best_val == {"top1": 0.7}
    for k, v in method.student.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k  # the weights of epoch 2 were restored
    with pytest.raises(ValueError, match="validation set"):
        train(_method(), data["fit"], None, _cfg(select="best"))
