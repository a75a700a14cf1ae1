"""Atomic file writes: readers see the old file or the new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)  # read once: mkstemp files are 0600, written files get the usual mode
os.umask(_UMASK)


def atomic_write_via(path, write) -> None:
    """Atomically create ``path`` with ``write(tmp_path)`` (e.g. ``fig.savefig``, ``torch.save``):
    the writer fills a uniquely named temp file in the same folder, which is synced and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, blob: bytes) -> None:
    atomic_write_via(path, lambda tmp: Path(tmp).write_bytes(blob))


def atomic_write_text(path, text: str) -> None:
    atomic_write_via(path, lambda tmp: Path(tmp).write_text(text))
