"""The README a newcomer reads: its length and order, every command it names, the configs it points to,
and every relative link of the documentation."""

import re
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.runner.schema import check_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SECTIONS = ["Install", "Quick start", "How to read a leaderboard", "Headline results", "Adding your own KD method",
            "Your own images", "Full-scale recipes on a cluster", "Documentation"]


def test_readme_is_short_and_in_order():
    assert len(README.splitlines()) <= 300
    assert re.findall(r"^## (.+)$", README, re.M) == SECTIONS


@pytest.mark.parametrize("module", sorted(set(re.findall(r"python -m (benchmarks\.\w+)", README))))
def test_every_command_of_the_readme_answers_help(module, capsys):
    main = __import__(module, fromlist=["main"]).main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("dataset,config", [("folder", "benchmarks/configs/folder_photos.yaml"),
                                            ("cub200", "benchmarks/configs/cluster.yaml")])
def test_the_configs_the_readme_names_are_valid(dataset, config, monkeypatch):
    monkeypatch.chdir(REPO)
    assert config in README
    args = run.parse_args(["--dataset", dataset, "--config", config, "--data-root", "DIR"])
    cfg, origin = run.build_config(args)
    check_config(cfg, origin)  # raises on any problem
    assert cfg["dataset"]["name"] == dataset


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}
    return headings | set(re.findall(r'<a id="([^"]+)">', text))  # and explicit anchors


DOCS = [REPO / "README.md", REPO / "datasets" / "README.md", REPO / "results" / "README.md",
        *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_into_the_repository(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or anchor and path.suffix == ".md" and anchor not in anchors(path):
            missing.append(target)
    assert not missing, f"{doc.relative_to(REPO)} links to files that do not exist: {missing}"
