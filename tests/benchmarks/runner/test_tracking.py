"""Run tracking (benchmarks.runner.tracking): the TensorBoard event files of every teacher and student run
hold each loss term and the learning rate per step, the validation metrics per evaluation and the test
metrics with the run's hyperparameters; --tracker mlflow logs the same to an MLflow file store; tracking
changes no number; a resumed run shows each step once; a missing extra is one line before any work."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from tiny_retrieval import tiny_retrieval

from benchmarks import run
from benchmarks.runner import tracking as tr
from benchmarks.runner.config import deep_merge, resolve_config

# the student evaluates after each of its 2 epochs, the teacher once (eval_every 2); no pretraining
TINY = tiny_retrieval(seeds=[0], run=["none", "at"], cost={"repeats": 1, "warmup": 0},
                      student={"train": {"eval_every": 1}})
TINY["pretrain"] = None  # over the default config's section
SUBDIR = Path("retrieval") / "synthetic"


def _config(**changes) -> dict:
    return deep_merge(resolve_config("retrieval", None), deep_merge(TINY, changes))


def _run_suite(cfg: dict, out: Path, cache: Path) -> Path:
    from benchmarks.runner.tasks import get_task

    get_task("retrieval").run(cfg, out, cache, "test", progress=False, log=lambda *a, **k: None)
    return out / SUBDIR


def _scalars(folder: Path) -> dict:
    """{tag: [(step, value), ...]} of the event files in ``folder``, read back by TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _hparams(folder: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tiny suite run (teacher, none, at) with --tracker mlflow (one worker: the jobs run in this process,
    under the reporter's progress callback as in a pool process; with workers the code is the same)."""
    root = tmp_path_factory.mktemp("tracked")
    dest = _run_suite(_config(workers=1, tracking={"tracker": "mlflow"}), root / "out", root / "cache")
    return root, dest


def _rows(dest: Path) -> pd.DataFrame:
    return pd.read_csv(dest / "runs.csv").set_index("run_id").sort_index()


def _history(dest: Path, run_id: str) -> list:
    return json.loads((dest / "runs" / f"{run_id}.json").read_text())["history"]


def test_every_run_writes_each_term_per_step_lr_val_per_evaluation_and_test(tracked):
    _, dest = tracked
    rows = _rows(dest)
    assert sorted(p.name for p in (dest / "tensorboard").iterdir()) == sorted(rows.index)  # the rows' run ids
    for run_id, row in rows.iterrows():
        scalars, history = _scalars(dest / "tensorboard" / run_id), _history(dest, run_id)
        terms = sorted(k[5:] for k in history[0] if k.startswith("loss/"))
        assert len(terms) == (2 if row["method"] == "at" else 1), terms  # at: task + at
        steps = [s for s, _ in scalars["loss/task"]]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2 * len(history)  # each step once
        per_epoch = len(steps) // len(history)
        for term in terms:
            values = [v for _, v in scalars[f"loss/{term}"]]
            assert len(values) == len(steps)
            for e, record in enumerate(history):  # the epoch mean of the logged steps is the history's
                assert sum(values[e * per_epoch:(e + 1) * per_epoch]) / per_epoch == pytest.approx(
                    record[f"loss/{term}"], rel=1e-5)
                assert scalars[f"epoch/loss/{term}"][e] == ((e + 1) * per_epoch, pytest.approx(
                    record[f"loss/{term}"], rel=1e-6))
        totals = [v for _, v in scalars["train/loss"]]
        assert totals == pytest.approx([sum(scalars[f"loss/{t}"][i][1] for t in terms) for i in range(len(steps))],
                                       rel=1e-5)
        lr = 1e-3 if run_id.startswith("teacher") else 3e-3  # the default's teacher and student rates
        assert [s for s, _ in scalars["train/lr"]] == steps and scalars["train/lr"][0][1] == pytest.approx(lr)
        evaluated = [(e + 1) * per_epoch for e, record in enumerate(history) if "val/recall@1" in record]
        assert len(evaluated) == (1 if run_id.startswith("teacher") else 2)
        for metric in ("recall@1", "map@r", "r_precision"):
            assert [s for s, _ in scalars[f"val/{metric}"]] == evaluated
            assert [v for _, v in scalars[f"val/{metric}"]] == pytest.approx(
                [r[f"val/{metric}"] for r in history if f"val/{metric}" in r], rel=1e-6)
            assert scalars[f"test/{metric}"] == [(len(steps), pytest.approx(row[metric], rel=1e-6))]


def test_the_hparams_are_the_runs_config_with_its_test_metrics(tracked):
    _, dest = tracked
    rows = _rows(dest)
    student = _hparams(dest / "tensorboard" / rows.index[rows["method"] == "at"][0])
    assert student["role"] == "student" and student["method"] == "at" and student["seed"] == 0
    assert student["student.arch"] == "small_cnn_xs" and student["student.embedding_dim"] == 8
    assert student["train.epochs"] == 2 and student["train.batch_size"] == 20  # the role's over the shared ones
    assert student["task_loss.name"] == TINY.get("task_loss", resolve_config("retrieval", None)["task_loss"])["name"]
    assert any(k.startswith("method_options.") for k in student), student  # at's configured options
    teacher = _hparams(dest / "tensorboard" / rows.index[rows["method"] == "teacher"][0])
    assert teacher["role"] == "teacher" and teacher["teacher.arch"] == "small_cnn_s"
    assert not any(k.startswith("student.") or k.startswith("method_options.") for k in teacher)


def test_mlflow_logs_one_run_per_training_run_to_a_local_file_store(tracked):
    import os

    from mlflow.tracking import MlflowClient

    root, dest = tracked
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    assert (root / "out" / "mlruns").is_dir()  # <out>/mlruns
    client = MlflowClient(tracking_uri=(root / "out" / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("retrieval/synthetic").experiment_id])
    rows = _rows(dest)
    assert sorted(r.info.run_name for r in runs) == sorted(rows.index)
    for found in runs:
        run_id = found.info.run_name
        assert found.info.status == "FINISHED" and found.data.tags["hmat.run_id"] == run_id
        assert found.data.params["seed"] == "0" and found.data.params["dataset"] == "synthetic"
        assert found.data.metrics["test/recall_at_1"] == pytest.approx(rows.loc[run_id, "recall@1"])
        assert found.data.metrics["test/map_at_r"] == pytest.approx(rows.loc[run_id, "map@r"])
        steps = _scalars(dest / "tensorboard" / run_id)["loss/task"]
        logged = client.get_metric_history(found.info.run_id, "loss/task")
        assert sorted(m.step for m in logged) == [s for s, _ in steps]
        assert sorted(m.value for m in logged) == pytest.approx(sorted(v for _, v in steps), rel=1e-6)
        history = _history(dest, run_id)
        assert len(client.get_metric_history(found.info.run_id, "val/recall_at_1")) == sum(
            "val/recall@1" in r for r in history)
    student = next(r for r in runs if r.info.run_name.startswith("at-"))
    assert student.data.params["student.arch"] == "small_cnn_xs" and "loss/at" in student.data.metrics


def test_tracking_changes_no_number(tracked, tmp_path):
    _, dest = tracked
    plain = _run_suite(_config(workers=1, tracking={"tracker": "none"}), tmp_path / "out", tmp_path / "cache")
    a, b = _rows(dest), _rows(plain)
    assert list(a.index) == list(b.index)  # the tracking section changes no run id
    same = [c for c in a.columns if c not in ("train_seconds", "timestamp", "latency_ms_b1", "throughput_b64")]
    pd.testing.assert_frame_equal(a[same], b[same])
    for run_id in a.index:
        assert _history(dest, run_id) == _history(plain, run_id)
    assert not (plain / "tensorboard").exists() and not (tmp_path / "out" / "mlruns").exists()


def test_a_run_that_trains_nothing_writes_its_test_metrics_once(tracked, tmp_path):
    root, dest = tracked
    before = {p: p.stat().st_size for p in (dest / "tensorboard").rglob("*")}
    _run_suite(_config(workers=1), root / "out", root / "cache")  # cached teacher, finished student states
    assert {p: p.stat().st_size for p in (dest / "tensorboard").rglob("*")} == before  # nothing written again
    fresh = _run_suite(_config(workers=1), tmp_path / "out", root / "cache")  # the same runs, a new folder
    rows = _rows(fresh)
    for run_id, row in rows.iterrows():
        scalars = _scalars(fresh / "tensorboard" / run_id)
        assert sorted(scalars) == sorted(f"test/{m}" for m in ("recall@1", "recall@2", "recall@4", "recall@8",
                                                                "map@r", "r_precision")), scalars
        assert scalars["test/recall@1"] == [(0, pytest.approx(row["recall@1"], rel=1e-6))]
        assert _hparams(fresh / "tensorboard" / run_id)["seed"] == 0


# ---------------------------------------------------------------------------------------- a resumed run

class _Data(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i + 1)])}


class _Method(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.student = torch.nn.Linear(1, 1)

    def trainable_parameters(self):
        return list(self.student.parameters())

    def training_step(self, batch):
        out = self.student(batch["x"])
        return None, {"task": (out ** 2).mean(), "reg": 0.1 * out.abs().mean()}


class _Killed(Exception):
    pass


def _tracked_train(dest: Path, state, kill_at=None):
    from retrieval.engine import TrainConfig, train
    from retrieval.engine.trainer import reporting_progress

    def killer(event):
        if kill_at and event["event"] == "step" and (event["epoch"], event["step"]) == kill_at:
            raise _Killed()

    cfg = {"suite": "retrieval", "dataset": {"name": "toy"}, "student": {"arch": "linear"}, "methods": {}}
    torch.manual_seed(0)
    method = _Method()
    with reporting_progress(killer), tr.tracking({"cfg": cfg, "dest": dest}, "toy-s0", "student", "none", 0) as t:
        result = train(method, _Data(), None, TrainConfig(epochs=3, batch_size=2, sampler="random", select="last",
                                                          progress=False, lr=0.1), name="toy", state_path=state)
        t.finish({"recall@1": 0.5})
    return result


def test_a_resumed_run_shows_each_step_once_with_the_uninterrupted_values(tmp_path):
    reference = _tracked_train(tmp_path / "a", tmp_path / "a.state.pt")
    with pytest.raises(_Killed):
        _tracked_train(tmp_path / "b", tmp_path / "b.state.pt", kill_at=(2, 3))  # epoch 1 saved, 2 steps of 2 logged
    resumed = _tracked_train(tmp_path / "b", tmp_path / "b.state.pt")
    assert resumed.history == reference.history
    a, b = _scalars(tmp_path / "a" / "tensorboard" / "toy-s0"), _scalars(tmp_path / "b" / "tensorboard" / "toy-s0")
    assert sorted(a) == sorted(b) and {"loss/task", "loss/reg", "train/lr", "test/recall@1"} <= set(a)
    for tag in a:
        assert b[tag] == a[tag], tag  # each step once (the killed epoch's steps purged), the same values
    assert [s for s, _ in b["loss/task"]] == list(range(1, 13))


def test_the_callback_installed_around_the_job_sees_every_event_it_did(tmp_path):
    from retrieval.engine import TrainConfig, train
    from retrieval.engine.trainer import current_progress_callback, reporting_progress

    seen = []
    cfg = {"suite": "retrieval", "dataset": {"name": "toy"}, "student": {"arch": "linear"}, "methods": {}}
    with reporting_progress(seen.append):
        with tr.tracking({"cfg": cfg, "dest": tmp_path}, "toy-s0", "student", "none", 0) as t:
            assert current_progress_callback() is t and t.forward == seen.append
            train(_Method(), _Data(), None, TrainConfig(epochs=1, batch_size=2, sampler="random", select="last",
                                                        progress=False), name="toy")
        assert current_progress_callback() == seen.append
    assert [e["event"] for e in seen] == ["epoch_start"] + ["step"] * 4 + ["epoch", "end"]
    assert all(set(e["terms"]) == {"task", "reg"} and e["lr"] == 1e-3 for e in seen if e["event"] == "step")


# ---------------------------------------------------------------------------------------- the config and CLI

def test_the_tracking_section_is_no_part_of_any_run_id():
    from benchmarks.runner.tasks import get_suite

    for name in ("retrieval", "classification", "detection"):
        suite = get_suite(name)
        cfg = resolve_config(name, None)
        tracked = {**cfg, "tracking": {"tracker": "mlflow", "uri": "file:elsewhere"}}
        method = cfg["run"][0]
        assert suite.run_id_of(tracked, method, 0) == suite.run_id_of(cfg, method, 0)
        assert suite.teacher_checkpoint(tracked, Path("c"), 0) == suite.teacher_checkpoint(cfg, Path("c"), 0)
        assert tr.teacher_run_id(suite, cfg, Path("c"), 0).startswith("teacher-")


def test_the_flags_fill_the_tracking_section_and_the_schema_checks_it(tmp_path):
    from benchmarks.runner.errors import UserError
    from benchmarks.runner.schema import check_config

    cfg, origin = run.build_config(run.parse_args(["--tracker", "mlflow", "--tracking-uri", "http://host:5000"]))
    assert cfg["tracking"] == {"tracker": "mlflow", "uri": "http://host:5000"}
    assert origin("tracking.tracker") == "--tracker"
    check_config(cfg, origin)
    cfg, _ = run.build_config(run.parse_args([]))
    assert "tracking" not in cfg
    with pytest.raises(UserError, match="tracking.tracker"):
        check_config({**cfg, "tracking": {"tracker": "wandb"}}, origin)


def _cli(tmp_path, *flags):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return run.main(["--suite", "retrieval", "--config", str(path), "--out", str(tmp_path / "results"),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--methods", "none", "--workers", "1",
                     *flags])  # one worker: the jobs run in this process, where the tests hide packages


@pytest.mark.parametrize("tracker, missing", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_an_asked_for_tracker_without_its_extra_is_one_line_before_any_work(tmp_path, monkeypatch, capsys,
                                                                            tracker, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails, as when the package is not installed
    assert _cli(tmp_path, "--tracker", tracker) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and 'pip install -e ".[cluster]"' in err and missing in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()  # nothing read or written


def test_a_tracking_uri_without_mlflow_is_a_user_error(tmp_path, capsys):
    assert _cli(tmp_path, "--tracking-uri", "file:x") == 2
    assert "--tracker mlflow" in capsys.readouterr().err


def test_without_tensorboard_the_default_run_goes_on_and_says_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert _cli(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("no TensorBoard event files") == 1 and 'pip install -e ".[cluster]"' in out
    assert (tmp_path / "results" / SUBDIR / "runs.csv").exists()
    assert not (tmp_path / "results" / SUBDIR / "tensorboard").exists()
