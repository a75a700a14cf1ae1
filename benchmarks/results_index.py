"""Write results/README.md from the committed result files and results/provenance.yaml:
``python -m benchmarks.results_index [--check] [--results results]``.

Each file's command and commit are read from the file itself (``benchmarks.report.provenance``); the
notes add what a file cannot say. ``--check`` writes nothing and exits 1 when the committed page
differs from what the files give now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.report.provenance import ProvenanceError, index_markdown, load_notes
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_text


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.results_index", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="the committed results folder (default: results)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if README.md differs from its sources")
    add_debug_flag(p)
    args = p.parse_args(argv)
    results = Path(args.results)
    notes_path = results / "provenance.yaml"
    if not notes_path.is_file():
        raise UserError(f"--results {results}: no provenance.yaml there; expected the committed results folder")
    try:
        text = index_markdown(results, load_notes(notes_path))
    except ProvenanceError as exc:
        raise UserError(str(exc)) from None
    target = results / "README.md"
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} differs from what its files and provenance.yaml give; run python -m benchmarks.results_index")
            return 1
        print(f"{target} agrees with its sources")
        return 0
    atomic_write_text(target, text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
