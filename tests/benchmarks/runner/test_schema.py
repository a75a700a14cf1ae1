"""The config schema: every packaged config passes; each class of bad key or value is named
with its file and key path, and the nearest valid key is suggested."""

from importlib import resources

import pytest

from benchmarks.runner.config import deep_merge, default_config, key_origin, resolve_config
from benchmarks.runner.errors import UserError
from benchmarks.runner.schema import check_config, config_problems
from retrieval.methods.options import options_model
from retrieval.methods.registry import list_methods, method_class

CONFIGS = resources.files("benchmarks") / "configs"
RUN_CONFIGS = {"cub200": "retrieval", "cars196": "retrieval", "sop": "retrieval", "quick_retrieval": "retrieval",
               "retrieval_scratch": "retrieval", "cifar100": "classification", "detection_coco": "detection"}


@pytest.mark.parametrize("suite", ["retrieval", "hmat-ablation", "classification", "detection"])
def test_every_default_config_is_valid(suite):
    assert config_problems(default_config(suite)) == []


@pytest.mark.parametrize("name", sorted(RUN_CONFIGS))
def test_every_packaged_recipe_is_valid(name):
    assert config_problems(resolve_config(RUN_CONFIGS[name], str(CONFIGS / f"{name}.yaml"))) == []


def _problems(**changes):
    return dict(config_problems(deep_merge(default_config("retrieval"), changes)))


def test_unknown_key_suggests_the_nearest():
    cfg = default_config("retrieval")
    cfg["studnet"] = cfg.pop("student")
    problems = dict(config_problems(cfg))
    assert problems["studnet"] == "unknown key; did you mean 'student'?"
    assert "did you mean 'epochs'" in _problems(teacher={"train": {"epoch": 3}})["teacher.train.epoch"]
    assert "did you mean 'test_per_class'" in _problems(dataset={"options": {"test_per_clas": 3}})[
        "dataset.options.test_per_clas"]
    assert "did you mean 'beta_act'" in _problems(methods={"hmat": {"beta_akt": 3}})["methods.hmat.beta_akt"]


def test_wrong_types_and_ranges():
    assert "greater than or equal to 1" in _problems(student={"train": {"epochs": -1}})["student.train.epochs"]
    assert "valid number" in _problems(train={"lr": "fast"})["train.lr"]
    assert "greater than 0" in _problems(methods={"hmat": {"tau_ch": 0}})["methods.hmat.tau_ch"]
    assert "greater than or equal to 0" in _problems(methods={"at": {"beta": -3}})["methods.at.beta"]
    assert "less than or equal to 4" in _problems(methods={"at": {"stages": [2, 5]}})["methods.at.stages"]
    assert "'step' or 'cosine'" in _problems(train={"schedule": "linear"})["train.schedule"]
    assert "8, 16 or 32" in _problems(student={"output_stride": 4})["student.output_stride"]


def test_unknown_names():
    assert "did you mean 'small_cnn_s'" in _problems(teacher={"arch": "small_cnn_q"})["teacher.arch"]
    assert "did you mean 'hmat'" in _problems(run=["none", "hmta"])["run[1]"]
    assert "unknown name 'folderz'" in _problems(dataset={"name": "folderz"})["dataset.name"]
    assert "unknown name" in _problems(task_loss={"name": "arcface"})["task_loss.name"]


def test_cross_field_rules():
    problems = _problems(train={"batch_size": 99})
    assert "not a multiple of m_per_class 5" in problems["train.batch_size"]
    assert "not inside the 6 epochs" in _problems(student={"train": {"milestones": [4, 6]}})["student.train.milestones"]
    assert "more than the 6 epochs" in _problems(teacher={"train": {"eval_every": 12,
                                                                      "select": "best"}})["teacher.train.eval_every"]
    # select: last scores the last epoch whatever eval_every says: a larger one means the last epoch alone
    assert "student.train.eval_every" not in _problems(student={"train": {"eval_every": 12, "select": "last"}})
    assert "unknown metric" in _problems(train={"select_metric": "recall@3"})["train.select_metric"]
    # the retrieval task's variants check it too (the suite is asked for its task, not matched by name)
    ablation = deep_merge(default_config("hmat-ablation"), {"train": {"select_metric": "recall@3"}})
    assert "unknown metric" in dict(config_problems(ablation))["train.select_metric"]
    assert "train.select_metric" not in dict(config_problems(default_config("hmat-ablation")))
    # a random sampler does not need batch_size % m_per_class == 0
    assert _problems(train={"batch_size": 99, "sampler": "random"}) == {}


def test_the_error_names_the_file_of_each_key(tmp_path):
    user = {"student": {"train": {"eval_every": 7, "select": "best"}}}
    origin = lambda path: key_origin(path, [("my.yaml", user)], "benchmarks/configs/retrieval.yaml")  # noqa: E731
    with pytest.raises(UserError) as err:
        check_config(deep_merge(default_config("retrieval"), deep_merge(user, {"train": {"batch_size": 98}})), origin)
    message = str(err.value)
    assert "my.yaml: student.train.eval_every: student: eval_every 7 is more than the 6 epochs" in message
    assert "benchmarks/configs/retrieval.yaml: train.batch_size" in message  # not the user's key
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(list_methods()))
def test_each_method_declares_its_options_with_the_code_defaults(name):
    import inspect

    model = options_model(method_class(name))
    params = inspect.signature(method_class(name).__init__).parameters
    for key, field in model.model_fields.items():
        if key in params:
            assert field.default == params[key].default
    assert model.model_validate({}).model_dump().keys() == model.model_fields.keys()


# ----------------------------------------------------------------------------- the typed config the code reads

@pytest.mark.parametrize("suite", ["retrieval", "hmat-ablation", "classification", "detection"])
def test_the_typed_config_reads_what_the_dict_says(suite):
    from benchmarks.runner.schema import typed
    from benchmarks.runner.tasks import schema_of

    cfg = default_config(suite)
    spec = typed(cfg)
    assert isinstance(spec, schema_of(suite))
    assert spec.suite == cfg["suite"] and spec.dataset.name == cfg["dataset"]["name"]
    assert spec.seeds == cfg["seeds"] and spec.run == cfg["run"]
    for role in ("teacher", "student"):
        assert getattr(spec, role).arch == cfg[role]["arch"]
    # it reads the dict as it stands: a changed key shows at the next call, and the dict keeps what was written
    cfg["student"]["arch"] = "small_cnn_s"
    assert typed(cfg).student.arch == "small_cnn_s"
    cfg["_command"] = "python -m benchmarks.run"  # the runner's own key is not a config key
    assert typed(cfg).suite == cfg["suite"]


def test_the_typed_config_fills_the_schema_defaults_without_touching_the_hashed_dict():
    from benchmarks.runner.config import config_hash
    from benchmarks.runner.schema import typed

    cfg = default_config("retrieval")
    del cfg["student"]["normalize"]  # the schema's default applies where the file is silent
    before = config_hash(cfg)
    assert typed(cfg).student.normalize is True and typed(cfg).student.pooling == "avg"
    assert "normalize" not in cfg["student"] and config_hash(cfg) == before


def test_a_merged_training_section_is_typed_and_the_role_wins():
    from benchmarks.runner.schema import typed_train

    cfg = deep_merge(default_config("retrieval"), {"train": {"batch_size": 60, "lr": 1},
                                                   "student": {"train": {"lr": 0.5}}})
    student = typed_train(cfg, "student")
    assert student.batch_size == 60 and student.lr == 0.5 and isinstance(typed_train(cfg, "teacher").lr, float)
    assert typed_train(cfg, "teacher").lr == cfg["teacher"]["train"]["lr"]


def test_a_config_the_schema_refuses_is_one_line_naming_the_key():
    from benchmarks.runner.schema import typed

    cfg = default_config("retrieval")
    cfg["student"]["embedding_dim"] = 0
    with pytest.raises(UserError) as err:
        typed(cfg)
    assert "student.embedding_dim" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="unknown suite"):
        typed({**cfg, "suite": "nope"})
