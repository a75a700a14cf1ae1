"""Every suite name of a config resolves to a ``Task`` that implements the whole interface, and the
registry finds the tasks in their modules alone."""

import pytest

from benchmarks.runner.config import deep_merge, default_config
from benchmarks.runner.task import Task
from benchmarks.runner.tasks import get_suite, list_suites, list_tasks


@pytest.mark.parametrize("name", ["retrieval", "hmat-ablation", "retrieval-scratch", "classification", "detection"])
def test_every_suite_is_a_task(name):
    suite = get_suite(name)
    assert isinstance(suite, Task)
    assert not getattr(type(suite), "__abstractmethods__", None)  # nothing left abstract
    assert suite.PRIMARY and suite.name in list_tasks() and name in suite.suites
    assert get_suite(name) is suite  # one object per task: a job process looks it up by name


def test_a_class_missing_a_hook_cannot_be_a_suite():
    class Partial(Task):
        name, PRIMARY = "partial", "top1"

        def prepare_data(self, cfg, cache_dir, log=print):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_an_unknown_suite_is_named():
    with pytest.raises(ValueError, match="unknown suite 'segmentation'; expected one of"):
        get_suite("segmentation")


def test_a_subclass_of_a_task_overrides_one_method_and_keeps_the_rest():
    """A variant of a task is a subclass that overrides one method (mdistiller's style); its metrics, if
    it declares its own, give it its own primary metric."""
    retrieval = type(get_suite("retrieval"))

    class Notes(retrieval):
        METRICS = ("map@r", "recall@1")

        def table_notes(self, cfg, data, commit):
            return ["its own"]

    task = Notes()
    assert task.table_notes({}, {}, "c") == ["its own"] and task.PRIMARY == "map@r"
    assert type(task).prepare_data is retrieval.prepare_data and get_suite("retrieval").PRIMARY == "recall@1"
    cfg = deep_merge(default_config("retrieval"), {"teacher": {"arch": "small_cnn_s", "embedding_dim": 96}})
    assert task.teacher_name(cfg) == "small_cnn_s-96"


def test_the_registry_agrees_with_the_tasks_and_the_methods():
    from pydantic import BaseModel

    from benchmarks.runner.schema import RunConfig
    from benchmarks.runner.tasks import schema_of, suite_task, suites_of_task, tuning_metrics
    from retrieval.methods import distiller

    assert list_tasks() == ["retrieval", "classification", "detection"]  # listing order: Task.ORDER
    assert set(list_tasks()) == set(distiller.TASKS)  # a method declares the tasks it runs on
    assert list_suites() == ["retrieval", "hmat-ablation", "retrieval-scratch", "classification", "detection"]
    for name in list_suites():
        task = get_suite(name)
        assert suite_task(name) == task.name and issubclass(schema_of(name), RunConfig)
        assert issubclass(schema_of(name), BaseModel) and schema_of(name) is task.SCHEMA
        assert task.PRIMARY == tuning_metrics(name)[0]  # the leaderboard's metric leads the tuning table
    assert suites_of_task("retrieval") == ["retrieval", "hmat-ablation", "retrieval-scratch"]
    assert suites_of_task("detection") == ["detection"]


def test_a_task_is_one_module_of_the_package(tmp_path, monkeypatch):
    """Adding a task is a module whose class is decorated with ``@register_task``: the registry lists it, its
    variants and its schema, with nothing registered anywhere else."""
    import sys

    import benchmarks.runner.tasks as tasks

    module = tmp_path / "segmentation_task_for_test.py"
    module.write_text(
        "from benchmarks.runner.schema import RunConfig\n"
        "from benchmarks.runner.tasks import register_task\n"
        "import benchmarks.runner.tasks.retrieval as r\n\n"
        "class Config(RunConfig):\n    pass\n\n"
        "@register_task\n"
        "class Segmentation(r.RetrievalTask):\n"
        "    name, METRICS, SCHEMA, ORDER, VARIANTS = 'segmentation', ('miou',), Config, 9, ('segmentation-long',)\n")
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(tmp_path)])  # as if the file were in the package
    monkeypatch.setattr(tasks, "_REGISTERED", dict(tasks._REGISTERED))
    tasks._tasks.cache_clear(), tasks._suites.cache_clear()
    try:
        assert list_tasks()[-1] == "segmentation" and get_suite("segmentation-long").PRIMARY == "miou"
        assert tasks.schema_of("segmentation").__name__ == "Config"
        assert tasks.suite_task("segmentation-long") == "segmentation"
    finally:
        monkeypatch.undo()
        tasks._tasks.cache_clear(), tasks._suites.cache_clear()
        sys.modules.pop(f"{tasks.__name__}.segmentation_task_for_test", None)
    assert "segmentation" not in list_tasks()


def test_two_tasks_may_not_share_a_suite_name(monkeypatch):
    import benchmarks.runner.tasks as tasks

    retrieval = tasks.get_task("retrieval")
    monkeypatch.setattr(type(tasks.get_task("detection")), "VARIANTS", ("hmat-ablation",))
    tasks._suites.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="'hmat-ablation' is declared by the tasks 'retrieval' and 'detection'"):
            tasks.list_suites()
    finally:
        monkeypatch.undo()
        tasks._suites.cache_clear()
    assert get_suite("hmat-ablation") is retrieval


def test_two_classes_may_not_declare_one_task(monkeypatch):
    import benchmarks.runner.tasks as tasks

    monkeypatch.setattr(tasks, "_REGISTERED", dict(tasks._REGISTERED))
    retrieval = type(get_suite("retrieval"))
    with pytest.raises(RuntimeError, match="the task 'retrieval' is declared twice: by "
                                           "benchmarks.runner.tasks.retrieval.RetrievalTask and .*Other"):
        tasks.register_task(type("Other", (retrieval,), {}))
    tasks.register_task(retrieval)  # the same class again (its module imported again): no error
    tasks._tasks.cache_clear(), tasks._suites.cache_clear()
