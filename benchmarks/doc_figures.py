"""Regenerate the figures of the documentation from the committed results:
``python -m benchmarks.doc_figures [--check] [FILE ...]``.

Every ``<!-- figure: KIND ARGS -->...<!-- /figure -->`` block of README.md, docs/*.md and results/README.md
(or of the files named) is made again from the committed result files (``benchmarks.report.figures``
lists the kinds). Without ``--check`` the files are rewritten in place (atomically); with it nothing is
written and the exit status is 1 when a committed figure differs from what its source gives now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.report.figures import FigureError, refresh, stale
from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors
from benchmarks.runner.results_io import atomic_write_text


def documents(root: Path) -> list[Path]:
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "results" / "README.md"]
            if p.is_file()]


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.doc_figures", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="markdown files (default: README.md, docs/*.md, results/README.md)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a figure differs from its source")
    p.add_argument("--root", default=".", help="the repository the result folders are relative to (default: .)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    root = Path(args.root)
    files = [Path(f) for f in args.files] or documents(root)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}; expected markdown files with figure blocks")
    status = 0
    try:
        for path in files:
            if args.check:
                for spec in stale(path, root):
                    print(f"{path}: figure '{spec}' differs from its source; run python -m benchmarks.doc_figures")
                    status = 1
            else:
                text = path.read_text()
                new = refresh(text, root, path.parent)
                if new != text:
                    atomic_write_text(path, new)
                    print(f"rewrote the figures of {path}")
    except FigureError as exc:
        raise UserError(f"{path}: {exc}") from None
    return status


if __name__ == "__main__":
    sys.exit(main())
