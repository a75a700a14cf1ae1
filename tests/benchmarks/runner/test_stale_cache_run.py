"""End to end: when the images behind a config change (same config, same run ids), a rerun on the old
cache does not reuse the teacher or the student trained on the old images: the teacher is moved aside as
stale with one line, the student's saved state is not resumed, and the rows equal those of a run on the
new images from an empty cache."""

import json
from pathlib import Path

import pandas as pd
import yaml
from tiny_retrieval import tiny_retrieval

from benchmarks import run
from benchmarks.runner.tasks import retrieval as retrieval_task
from retrieval.utils.cache_files import STALE

TINY = tiny_retrieval(run=["at"], seeds=[0], workers=1, threads=1)
METRICS = ["recall@1", "recall@2", "map@r"]


def _run(root: Path, tag: str, cache: Path, capsys) -> tuple[pd.DataFrame, list[str]]:
    capsys.readouterr()
    argv = ["--suite", "retrieval", "--config", str(root / "tiny.yaml"), "--out", str(root / tag), "--cache-dir",
            str(cache), "--no-progress"]
    assert run.main(argv) == 0
    captured = capsys.readouterr()
    rows = pd.read_csv(root / tag / "retrieval" / "synthetic" / "runs.csv")
    rows = rows.sort_values(["seed", "method"]).set_index(["seed", "method"])[["run_id", *METRICS]]
    return rows, [line for line in (captured.out + captured.err).splitlines() if "is stale" in line]


def _teacher_loaded(root: Path, tag: str) -> bool:
    (record,) = (root / tag / "retrieval" / "synthetic" / "runs").glob("teacher-*.json")
    return json.loads(record.read_text())["teacher_loaded_from_cache"]


def _redrawn(monkeypatch) -> None:
    """The same config, other images: one pixel of every training image changed, as a fixed loader would."""
    build = retrieval_task._datasets

    def datasets(cfg):
        data = build(cfg)
        for split in ("fit", "val"):
            data[split].images = data[split].images.clone()
            data[split].images[:, 0, 0, 0] ^= 0x40
        return data

    monkeypatch.setattr(retrieval_task, "_datasets", datasets)


def test_a_cache_made_on_other_images_is_not_reused(tmp_path, capsys, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cache = tmp_path / "cache"
    old, said = _run(tmp_path, "old", cache, capsys)
    assert said == []
    again, said = _run(tmp_path, "again", cache, capsys)  # the same images: all read from the cache
    assert said == []
    pd.testing.assert_frame_equal(again, old)
    assert not _teacher_loaded(tmp_path, "old") and _teacher_loaded(tmp_path, "again")

    _redrawn(monkeypatch)
    fresh, said = _run(tmp_path, "fresh", tmp_path / "empty", capsys)
    assert said == []
    assert (fresh["run_id"] == old["run_id"]).all()  # the config, hence every run id, is the same
    assert not fresh[METRICS].equals(old[METRICS])  # the images are not
    stale, said = _run(tmp_path, "stale", cache, capsys)
    teachers = sorted((cache / "teachers").rglob("*.pt"))
    assert len(teachers) == 1 and len(said) == 1 and said[0].startswith(f"cache: {teachers[0]} is stale ("), said
    assert len(list(teachers[0].parent.glob(teachers[0].name + STALE + "*"))) == 1
    assert not _teacher_loaded(tmp_path, "stale")
    pd.testing.assert_frame_equal(stale, fresh)  # what the new images give, not the cached networks' numbers
