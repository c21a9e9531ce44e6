"""Noticing that someone else changed an open flow file, so a save does not silently lose it."""

from __future__ import annotations

import hashlib
from pathlib import Path


class DiskChanged(Exception):
    """The file changed on disk since it was opened or last saved: saving would lose that."""


def _stamp(path: Path) -> tuple[int, int] | None:
    """The file's (mtime_ns, size): cheap to take on every tick, unlike reading the file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _digest(path: Path) -> tuple[tuple[int, int], str] | None:
    """The file's stamp and content hash (the hash decides: an identical rewrite is no change)."""
    stamp = _stamp(path)
    try:
        return (stamp, hashlib.sha256(path.read_bytes()).hexdigest()) if stamp else None
    except OSError:
        return None


class DiskWatch:
    """What the file was when this editor last read or wrote it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._disk = _digest(path)

    def remember(self) -> None:
        """Take the file as it is now as ours (after a save or a reload)."""
        self._disk = _digest(self.path)

    def changed(self) -> bool:
        """True when the file's content changed since it was last remembered."""
        if self._disk is not None and _stamp(self.path) == self._disk[0]:
            return False  # same mtime and size: not worth reading the file again
        now = _digest(self.path)
        if now is None or self._disk is None:
            return now != self._disk
        if now[1] == self._disk[1]:
            self._disk = now  # rewritten with the same content: remember the new stamp
            return False
        return True
