"""Cached files that cannot poison a run: checked when read, moved aside when damaged, then remade.

Every file the runner caches (pretrained backbones, teachers, student weights and training states, the
generated detection scenes, the tuner's kept students) is written atomically
(``retrieval.utils.atomic.atomic_write_via``), so a crash while writing leaves the old file or none. A
file can still be damaged afterwards: a copy or sync killed halfway, a full disk on another tool's
side, a disk error, an edit. Each is therefore checked when read, against what was recorded when it
was written where the format records it:

- ``torch.save`` archives (``load_torch``): a zip file whose every record carries the CRC-32 torch
  computed when writing it (checked with ``zipfile.ZipFile.testzip``; torch's own reader does not
  check them), then ``torch.load(weights_only=True)`` and the caller's check of the content;
- anything else (``load_checked(path, read)``): the caller's reader, e.g. PNG chunk CRCs through PIL's
  ``verify`` or a parsed and validated json.

A file that fails is renamed to ``<name>.damaged-<UTC time>`` beside itself (kept for inspection and
never read again, not deleted), one line on stderr names it and says why, and the caller gets None:
it redoes the work, as when the file was absent. ``intact(path)`` is the same check without moving
anything (for a caller that only asks whether a file will load).
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path

import torch
from tqdm import tqdm

DAMAGED = ".damaged-"
"""The infix of a damaged file's new name: ``teacher.pt`` -> ``teacher.pt.damaged-20260101T120000Z``."""


def say(message: str) -> None:
    """Print ``message`` on stderr, above any progress bar of this process (``tqdm.write``)."""
    try:
        tqdm.write(message, file=sys.stderr)
    except Exception:  # noqa: BLE001 (a message must never stop the run)
        print(message, file=sys.stderr, flush=True)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


REDONE = "its work is redone"


STALE = ".stale-"
"""The infix of a cached network's new name when it was trained on other data than the run's
(``retrieval.data.fingerprint``): ``teacher.pt`` -> ``teacher.pt.stale-20260101T120000Z``."""


def move_aside(path, reason: str, log=say, was: os.stat_result | None = None, then: str = REDONE,
               state: str = "damaged") -> Path | None:
    """Rename the damaged ``path`` to ``<name>.damaged-<UTC time>`` and say so in one line (ending with
    ``then``: what happens next); return the new path, or None when it is gone or is no longer the file
    ``was`` (another process moved or remade it). ``state`` "stale": a whole file that no longer applies
    (``<name>.stale-<UTC time>``, "is stale")."""
    path = Path(path)
    try:
        now = path.stat()
    except FileNotFoundError:
        return None
    if was is not None and (now.st_ino, now.st_dev) != (was.st_ino, was.st_dev):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    infix = f".{state}-"
    target = path.with_name(f"{path.name}{infix}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{infix}{stamp}-{n}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    log(f"cache: {path} is {state} ({reason}); moved it aside to {target.name}" + (f"; {then}" if then else ""))
    return target


def load_checked(path, read, log=say, then: str = REDONE):
    """``read(path)``, or None when ``path`` does not exist or ``read`` raises (the file is then moved aside,
    see the module docstring). ``read`` raises on any damage it finds."""
    path = Path(path)
    try:
        was = path.stat()
    except FileNotFoundError:
        return None
    try:
        return read(path)
    except FileNotFoundError:  # moved or removed meanwhile (another process found it damaged first)
        return None
    except Exception as exc:  # noqa: BLE001 (any failure to read a cache file means: remake it)
        move_aside(path, _reason(exc), log, was, then)
        return None


def check_archive(path) -> None:
    """Raise unless ``path`` is a zip archive whose every record matches its recorded CRC-32."""
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"record {bad} does not match its CRC-32")


def read_torch(path, check=None):
    """A ``torch.save`` file's content after ``check_archive``, loaded with ``weights_only=True``;
    ``check(obj)`` (optional) raises if the content is not what the caller expects."""
    check_archive(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if check is not None:
        check(obj)
    return obj


def load_torch(path, check=None, log=say, then: str = REDONE):
    """The content of the cached ``torch.save`` file ``path``, or None when it is absent or damaged (then
    moved aside; see the module docstring). ``check(obj)`` raises on content the caller cannot use."""
    return load_checked(path, lambda p: read_torch(p, check), log, then)


def intact(path) -> bool:
    """Whether the ``torch.save`` file ``path`` exists and its records match their CRC-32 (nothing moved)."""
    try:
        check_archive(path)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False
    return True


def has_keys(*keys):
    """A ``check`` for ``load_torch``: the content is a dict holding ``keys``."""
    def check(obj):
        if not isinstance(obj, dict):
            raise TypeError(f"expected a dict, found a {type(obj).__name__}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise KeyError(f"missing {missing}")

    return check
