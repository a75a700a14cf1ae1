"""bench_launchers: its table from a real run of the grid (local launcher), and its input checks."""

from benchmarks import bench_launchers


def test_the_local_grid_is_measured_and_tabled(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_launchers.GRID, "seeds", [0])  # the benchmark's grid, one seed
    monkeypatch.setitem(bench_launchers.GRID, "run", ["none"])
    out = tmp_path / "bench.md"
    assert bench_launchers.main(["--launchers", "local", "--out", str(out)]) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| local |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) > 0 and cells[2].endswith("GiB") and 0 < float(cells[2].split()[0]) < 24
    assert int(cells[3]) >= 2  # the command and at least one pool process were sampled


def test_bad_input_is_one_line(capsys, tmp_path):
    assert bench_launchers.main(["--launchers", "local,k8s", "--out", str(tmp_path / "x.md")]) == 2
    assert "expected some of local, ray, slurm" in capsys.readouterr().err
    assert bench_launchers.main(["--interval", "0", "--out", str(tmp_path / "x.md")]) == 2
    assert not (tmp_path / "x.md").exists()
