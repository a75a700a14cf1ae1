"""A miniature copy of texlive-fonts-extra's layout, made of links to the installed fonts.

The fonts track reads Debian's ``texlive-fonts-extra``; CI installs it (``.ci/run``). Without it these
tests are skipped with a reason, except where ``HMAT_REQUIRE_FONTS=1`` (CI sets it): there a missing
package fails them, so that no fonts test skips silently in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from retrieval.data import fonts as fontdata

PACKAGES = ["montserrat", "inriafonts", "chivo", "antt", "xcharter", "cochineal", "fira", "nimbus15"]
PER_PACKAGE = 3


def require_package() -> Path:
    """The installed fonts folder, or a skip (a failure under ``HMAT_REQUIRE_FONTS=1``)."""
    root = fontdata.DEFAULT_ROOT
    if not (root / "opentype" / "public" / "fira").is_dir():
        message = f"{fontdata.PACKAGE} is not installed ({fontdata.INSTALL})"
        if os.environ.get("HMAT_REQUIRE_FONTS") == "1":
            pytest.fail(message + "; HMAT_REQUIRE_FONTS=1 asks for it")
        pytest.skip(message)
    return root


def make_root(dest: Path, packages=PACKAGES, per_package: int = PER_PACKAGE) -> Path:
    """``dest`` in the package's layout: the first ``per_package`` fonts with the 62 characters of each of
    ``packages``, linked from the installed package."""
    source = require_package() / "opentype" / "public"
    for package in packages:
        chosen = [p for p in sorted((source / package).glob("*.otf")) if fontdata.has_characters(p)][:per_package]
        (dest / "opentype" / "public" / package).mkdir(parents=True, exist_ok=True)
        for path in chosen:
            (dest / "opentype" / "public" / package / path.name).symlink_to(path)
    return dest


def add_copy(dest: Path, from_package: str, to_package: str) -> str:
    """Copy the first font of ``from_package`` into ``to_package`` (a near-duplicate across packages)."""
    first = sorted((dest / "opentype" / "public" / from_package).glob("*.otf"))[0]
    target = dest / "opentype" / "public" / to_package / ("copy-" + first.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(first.resolve(), target)
    return str(target.relative_to(dest))
