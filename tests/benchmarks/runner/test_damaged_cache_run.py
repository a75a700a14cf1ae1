"""End to end: a cached file cut short or replaced by garbage, of each kind the retrieval run caches
(pretrained backbone, teacher, a student's training state and its weights), gets a rerun that moves it
aside with one line naming it, redoes its work, and gives the rows of a clean run."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks import run
from retrieval.utils.cache_files import DAMAGED, intact
from tiny_retrieval import tiny_retrieval

TINY = tiny_retrieval(run=["at"], seeds=[0], workers=1, threads=1)
METRICS = ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"]


def _argv(folder: Path, cache: Path):
    return ["--suite", "retrieval", "--config", str(folder.parent / "tiny.yaml"), "--out", str(folder / "results"),
            "--cache-dir", str(cache), "--no-progress"]


def _rows(folder: Path) -> pd.DataFrame:
    runs = pd.read_csv(folder / "results" / "retrieval" / "synthetic" / "runs.csv")
    return runs.sort_values(["seed", "method"]).set_index(["seed", "method"])[["run_id", *METRICS]]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage, as a bad copy leaves it\n" * 20)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    assert run.main(_argv(root / "clean", root / "clean" / "cache")) == 0
    cache = root / "clean" / "cache"
    files = {"pretrained": sorted((cache / "pretrained").rglob("*.pt")),
             "teacher": sorted((cache / "teachers").rglob("*.pt")),
             "state": sorted((cache / "students").rglob("*.state.pt")),
             "student": sorted(p for p in (cache / "students").rglob("*.pt") if not p.name.endswith(".state.pt"))}
    assert [len(v) for v in files.values()] == [2, 1, 1, 1], files  # teacher's and student's backbones
    return root, cache, files, _rows(root / "clean")


def _rerun(root: Path, tag: str, cache: Path, capsys) -> tuple[pd.DataFrame, list[str]]:
    capsys.readouterr()
    assert run.main(_argv(root / tag, cache)) == 0
    captured = capsys.readouterr()
    return _rows(root / tag), [line for line in (captured.out + captured.err).splitlines() if "is damaged" in line]


def _check_moved(cache: Path, damaged: list[Path], said: list[str], original: Path) -> None:
    assert len(said) == len(damaged), said
    for path in damaged:
        mine = cache / path.relative_to(original)
        assert [line for line in said if line.startswith(f"cache: {mine} is damaged (")], (mine, said)
        assert len(list(mine.parent.glob(mine.name + DAMAGED + "*"))) == 1  # moved aside, kept
        assert intact(mine)  # made again


def test_a_damaged_pretrained_backbone_is_pretrained_again(clean, tmp_path, capsys):
    root, original, files, rows = clean
    cache = tmp_path / "cache"
    shutil.copytree(original / "pretrained", cache / "pretrained")  # the teacher and student come after it
    damaged = files["pretrained"]
    _truncate(cache / damaged[0].relative_to(original))
    _garbage(cache / damaged[1].relative_to(original))
    new, said = _rerun(root, "pretrained", cache, capsys)
    _check_moved(cache, damaged, said, original)
    pd.testing.assert_frame_equal(new, rows)


def test_a_damaged_teacher_and_student_state_are_trained_again(clean, tmp_path, capsys):
    root, original, files, rows = clean
    cache = tmp_path / "cache"
    shutil.copytree(original, cache)
    _garbage(cache / files["teacher"][0].relative_to(original))
    _truncate(cache / files["state"][0].relative_to(original))
    student = cache / files["student"][0].relative_to(original)
    _truncate(student)  # never read by a run: written anew
    new, said = _rerun(root, "teacher", cache, capsys)
    _check_moved(cache, files["teacher"] + files["state"], said, original)
    assert intact(student)
    pd.testing.assert_frame_equal(new, rows)
