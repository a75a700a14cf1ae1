"""results/README.md made from the result files (benchmarks.report.provenance, benchmarks.results_index)."""

import json
from pathlib import Path

import pytest

from benchmarks import results_index
from benchmarks.report.provenance import ProvenanceError, index_markdown, recorded, result_files
from user_error import user_error

REPO = Path(__file__).resolve().parents[3]


def _tree(root):
    (root / "retrieval" / "d" / "runs").mkdir(parents=True)
    (root / "retrieval" / "d" / "leaderboard.md").write_text("# retrieval: d\n\nCommand: `python -m benchmarks.run "
                                                             "--suite retrieval`  \nCommit: `abc1234`; seeds [0].\n")
    (root / "retrieval" / "d" / "runs.csv").write_text("run_id,method,seed,commit\nnone-h-s0,none,0,abc1234\n"
                                                       "at-h-s0,at,0,def5678\n")
    (root / "retrieval" / "d" / "leaderboard.csv").write_text("method\nnone\n")  # derived: not listed
    (root / "retrieval" / "d" / "runs" / "none-h-s0.json").write_text("{}")  # run details: not listed
    (root / "tuning.csv").write_text("# command: python -m benchmarks.tune --grid g.yaml\n# commit: 1234567\nmethod\n")
    (root / "bench.json").write_text(json.dumps({"command": ["python", "-m", "benchmarks.bench_x"], "commit": "89abcdef0"}))
    (root / "provenance.yaml").write_text("notes:\n- paths: [retrieval/d/**]\n  made: in a fresh clone\n")


def test_each_kind_of_file_says_its_command_and_commit(tmp_path):
    _tree(tmp_path)
    assert recorded(tmp_path / "retrieval" / "d" / "leaderboard.md") == ("python -m benchmarks.run --suite retrieval",
                                                                        "abc1234")
    assert recorded(tmp_path / "retrieval" / "d" / "runs.csv") == (None, "abc1234, def5678")
    assert recorded(tmp_path / "tuning.csv") == ("python -m benchmarks.tune --grid g.yaml", "1234567")
    assert recorded(tmp_path / "bench.json") == ("python -m benchmarks.bench_x", "89abcde")
    assert [p.relative_to(tmp_path).as_posix() for p in result_files(tmp_path)] == [
        "bench.json", "retrieval/d/leaderboard.md", "retrieval/d/runs.csv", "tuning.csv"]


def test_index_lists_files_with_their_notes(tmp_path):
    _tree(tmp_path)
    text = index_markdown(tmp_path, [{"paths": ["retrieval/d/**"], "made": "in a fresh   clone"}])
    assert "| `retrieval/d/runs.csv` |  | `abc1234, def5678` | [1](#note-1) |" in text
    assert "| `tuning.csv` | `python -m benchmarks.tune --grid g.yaml` | `1234567` |  |" in text
    assert "**1.** retrieval/d/**: in a fresh clone" in text


def test_a_file_without_command_or_note_is_refused(tmp_path, capsys):
    _tree(tmp_path)
    (tmp_path / "mystery.txt").write_text("numbers without a source\n")
    with pytest.raises(ProvenanceError, match="mystery.txt"):
        index_markdown(tmp_path, [])
    message = user_error(capsys, results_index.main, ["--results", str(tmp_path)])
    assert "mystery.txt" in message and "add a note" in message
    assert not (tmp_path / "README.md").exists()  # nothing written


def test_check_finds_a_stale_page(tmp_path, capsys):
    _tree(tmp_path)
    assert results_index.main(["--results", str(tmp_path)]) == 0
    assert results_index.main(["--results", str(tmp_path), "--check"]) == 0
    (tmp_path / "tuning.csv").write_text("# command: python -m benchmarks.tune --grid g.yaml\n# commit: 7654321\nm\n")
    assert results_index.main(["--results", str(tmp_path), "--check"]) == 1
    assert "differs" in capsys.readouterr().out


def test_the_committed_results_page_agrees_with_its_files(capsys):
    assert results_index.main(["--results", str(REPO / "results"), "--check"]) == 0, capsys.readouterr().out
