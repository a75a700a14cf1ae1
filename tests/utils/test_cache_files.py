"""A cached file that is cut short, garbage, or whose bytes changed is found when read, moved aside (renamed,
never deleted) with one line naming it, and the caller gets None, as for a file that is not there."""

from __future__ import annotations

import os
import struct
import zipfile

import pytest
import torch

from retrieval.engine.train_state import FORMAT, load_train_state, save_train_state
from retrieval.utils import cache_files
from retrieval.utils.atomic import atomic_write_via
from retrieval.utils.cache_files import DAMAGED, has_keys, intact, load_checked, load_torch, move_aside


def _save(path, obj) -> bytes:
    atomic_write_via(path, lambda tmp: torch.save(obj, tmp))
    return path.read_bytes()


def _aside(path) -> list:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + DAMAGED))


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "teachers" / "t.pt"
    blob = {"state_dict": {"w": torch.arange(1000, dtype=torch.float32)}, "record": {"seconds": 1.0}}
    return path, _save(path, blob)


def _one_line(capsys, path) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"cache: {path} is damaged (") and "moved it aside to t.pt.damaged-" in err[0]
    assert err[0].endswith("; its work is redone")
    return err[0]


def test_a_good_file_loads_and_an_absent_one_is_none(weights, capsys, tmp_path):
    path, _ = weights
    blob = load_torch(path, has_keys("state_dict", "record"))
    assert torch.equal(blob["state_dict"]["w"], torch.arange(1000, dtype=torch.float32))
    assert load_torch(tmp_path / "none.pt") is None
    assert capsys.readouterr().err == "" and intact(path) and not intact(tmp_path / "none.pt")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped byte", "wrong content"])
def test_a_damaged_file_is_moved_aside_with_one_line(weights, capsys, damage):
    path, good = weights
    if damage == "truncated":  # as a killed copy or a full disk leaves it
        bad = good[: len(good) // 2]
    elif damage == "garbage":
        bad = b"not a checkpoint\n" * 50
    elif damage == "empty":
        bad = b""
    elif damage == "flipped byte":  # torch.load alone reads this without complaint: the zip's CRC-32 finds it
        bad = bytearray(good)
        bad[bad.find(struct.pack("<f", 500.0))] ^= 0xFF
        bad = bytes(bad)
    else:  # a valid torch file, not a teacher's
        bad = _save(path, {"weights": torch.zeros(2)})
    path.write_bytes(bad)
    assert load_torch(path, has_keys("state_dict", "record")) is None
    line = _one_line(capsys, path)
    assert not path.exists()
    [aside] = _aside(path)
    assert aside.read_bytes() == bad and aside.name in line  # kept, not deleted
    assert not intact(aside) or damage == "wrong content"
    assert load_torch(path) is None and capsys.readouterr().err == ""  # gone: the caller redoes the work


def test_torch_load_alone_misses_a_flipped_byte(weights):
    path, good = weights
    bad = bytearray(good)
    bad[bad.find(struct.pack("<f", 500.0))] ^= 0xFF
    path.write_bytes(bytes(bad))
    assert torch.load(path, weights_only=True)["state_dict"]["w"][500].item() != 500.0  # silently wrong
    assert not intact(path)
    with pytest.raises(zipfile.BadZipFile, match="CRC-32"):
        cache_files.check_archive(path)


def test_a_second_damaged_copy_gets_its_own_name(weights, capsys):
    path, good = weights
    for _ in range(2):
        path.write_bytes(good[:100])
        assert load_torch(path) is None
    assert len(_aside(path)) == 2 and not path.exists()


def test_a_file_remade_meanwhile_is_not_moved(weights, tmp_path):
    """Two processes find one damaged file: the one whose rename comes second must not move the file the
    first has written since."""
    path, good = weights
    stale = os.stat(path)
    os.replace(path, tmp_path / "elsewhere")
    _save(path, {"state_dict": {}, "record": {}})  # a new file (another inode)
    assert move_aside(path, "test", was=stale) is None and path.exists()
    assert move_aside(tmp_path / "gone.pt", "test") is None


def test_any_reader(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text("{cut")
    import json

    assert load_checked(path, lambda p: json.loads(p.read_text())) is None
    assert "a.json is damaged (JSONDecodeError" in capsys.readouterr().err


def test_a_damaged_training_state_starts_the_run_afresh(tmp_path, capsys):
    path = tmp_path / "s.state.pt"
    save_train_state(path, epoch=3, step=30)
    assert load_train_state(path)["epoch"] == 3
    path.write_bytes(path.read_bytes()[:-40])
    assert load_train_state(path) is None
    assert f"cache: {path} is damaged" in capsys.readouterr().err and len(_aside(path)) == 1
    atomic_write_via(path, lambda tmp: torch.save({"format": FORMAT + 1}, tmp))
    with pytest.raises(ValueError, match="training state format"):  # another version is no damage: it stays
        load_train_state(path)
    assert path.exists()
