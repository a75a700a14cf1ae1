"""Every suite name of a config resolves to a ``Suite`` that implements the whole interface."""

import pytest

from benchmarks.runner.suite import Suite
from benchmarks.runner.suites import SUITES, get_suite


@pytest.mark.parametrize("name", sorted(SUITES))
def test_every_suite_is_a_suite(name):
    suite = get_suite(name)
    assert isinstance(suite, Suite)
    assert not getattr(type(suite), "__abstractmethods__", None)  # nothing left abstract
    assert suite.PRIMARY and suite.name in SUITES
    assert get_suite(name) is suite  # one object per suite: a job process looks it up by name


def test_a_class_missing_a_hook_cannot_be_a_suite():
    class Partial(Suite):
        name, PRIMARY = "partial", "top1"

        def prepare_data(self, cfg, cache_dir, log=print):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_an_unknown_suite_is_named():
    with pytest.raises(ValueError, match="unknown suite 'segmentation'; expected one of"):
        get_suite("segmentation")


def test_hooks_come_from_the_module_unless_the_class_defines_its_own():
    import types

    from benchmarks.runner.suite import HOOKS

    module = types.ModuleType("a_suite")
    for hook in HOOKS:
        setattr(module, hook, lambda *args, hook=hook: hook)

    class FromModule(Suite, hooks_from=module):
        name, PRIMARY = "a_suite", "top1"

        def table_notes(self, cfg, data, commit):
            return ["its own"]

        def run(self, *args, **kwargs):
            return "ran"

    suite = FromModule()
    assert suite.prepare_data({}, None) == "prepare_data" and suite.train_student() == "train_student"
    assert suite.table_notes({}, {}, "c") == ["its own"]
    del module.setup_names  # an optional hook the module lacks keeps the interface's default
    assert type("Lean", (Suite,), {"run": FromModule.run}, hooks_from=module)().setup_names({}) == []


def test_the_registry_agrees_with_the_suites_and_the_methods():
    from benchmarks.runner.schema import SCHEMAS, TASK_SCHEMAS
    from benchmarks.runner.suites import TASKS, list_suites, suite_task, suites_of_task, tuning_metrics
    from retrieval.methods import distiller

    assert TASKS == distiller.TASKS
    assert set(SCHEMAS) == set(list_suites())
    for name in list_suites():
        assert suite_task(name) in TASKS and SCHEMAS[name] is TASK_SCHEMAS[suite_task(name)]
        assert get_suite(name).PRIMARY == tuning_metrics(name)[0]  # the leaderboard's metric leads the tuning table
    assert suites_of_task("retrieval") == ["retrieval", "hmat-ablation", "retrieval-scratch"]
