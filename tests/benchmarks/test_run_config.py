"""How ``benchmarks.run`` builds a run's config from the suite default, a dataset's packaged
recipe, the ``--config`` file and the flags, and says where each key came from."""

import yaml

from benchmarks import run


def _build(*argv):
    return run.build_config(run.parse_args(list(argv)))


def test_dataset_flag_merges_the_packaged_recipe():
    cfg, _ = _build("--dataset", "cub200", "--data-root", "data/CUB")
    assert cfg["teacher"]["arch"] == "resnet50" and cfg["pretrain"] is None and cfg["dataset"]["root"] == "data/CUB"
    cfg, _ = _build("--dataset", "folder", "--data-root", "mine")
    assert cfg["dataset"] == {"name": "folder", "root": "mine", "options": {"image_size": 64}}
    cfg, _ = _build("--dataset", "mnist")  # no recipe: the default's protocol on mnist
    assert cfg["dataset"]["options"] == {} and cfg["pretrain"] is not None


def test_a_config_dataset_section_applies_only_to_the_dataset_it_names(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"dataset": {"name": "synthetic", "options": {"classes": 20}}}))
    cfg, _ = _build("--dataset", "folder", "--config", str(other))
    assert cfg["dataset"]["name"] == "folder" and cfg["dataset"]["options"] == {"image_size": 64}
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({"dataset": {"name": "folder", "options": {"image_size": 96}}}))
    cfg, _ = _build("--dataset", "folder", "--config", str(same))
    assert cfg["dataset"]["options"]["image_size"] == 96


def test_origin_names_the_file_or_flag_of_a_key(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"student": {"embedding_dim": 32}}))
    cfg, origin = _build("--config", str(mine), "--epochs", "3", "--seeds", "0")
    assert origin("student.embedding_dim") == str(mine)
    assert origin("student.train.epochs") == "--epochs" and origin("seeds") == "--seeds"
    assert origin("teacher.arch") == "benchmarks/configs/retrieval.yaml"
    assert cfg["student"]["train"]["eval_every"] == 3  # --epochs 3 < the default's eval_every 5


def test_methods_all_names_every_method_of_the_suites_task():
    from retrieval.methods import list_methods, method_tasks

    cfg, origin = _build("--methods", "all")
    assert cfg["run"][0] == "none" and {"at", "rkd", "crd", "hmat", "pkt", "darkrank", "reviewkd", "ofd"} <= set(cfg["run"])
    assert not {"kd", "dkd", "dist", "hmat+kd"} & set(cfg["run"])  # logits: classification only
    assert cfg["run"] == [m for m in list_methods() if "retrieval" in method_tasks(m)]
    assert origin("run") == "--methods"
    cfg, _ = _build("--suite", "classification", "--methods", "all")
    assert {"kd", "dkd", "dist", "hmat+kd", "vid", "ofd"} <= set(cfg["run"])
    cfg, _ = _build("--suite", "detection", "--methods", "all")
    assert set(cfg["run"]) == {m for m in list_methods() if "detection" in method_tasks(m)} >= {"none", "mimic"}


def test_methods_all_stands_alone(capsys):
    from user_error import user_error

    err = user_error(capsys, run.main, ["--methods", "all,at"])
    assert "--methods all,at: 'all' stands alone" in err
