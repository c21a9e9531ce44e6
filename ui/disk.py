"""Noticing that someone else changed an open flow file, so a save does not silently lose it;
and what the user can do about it without losing either version (a copy of theirs, a diff)."""

from __future__ import annotations

import difflib
import hashlib
import time
from pathlib import Path

#: A file modified this close to when it was read may have been rewritten after the read within
#: the same timestamp tick (file times are coarse): its stamp alone is not trusted (racy git).
RACY_NS = 2_000_000_000


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
        self.remember()

    def remember(self) -> None:
        """Take the file as it is now as ours (after a save or a reload)."""
        self._taken = time.time_ns()
        self._disk = _digest(self.path)

    def _trusted(self) -> bool:
        """The remembered stamp is old enough that a same-size rewrite would change it."""
        return self._disk is not None and self._disk[0][0] < self._taken - RACY_NS

    def changed(self) -> bool:
        """True when the file's content changed since it was last remembered."""
        if self._disk is not None and _stamp(self.path) == self._disk[0] and self._trusted():
            return False  # same mtime and size: not worth reading the file again
        now = _digest(self.path)
        if now is None or self._disk is None:
            return now != self._disk
        if now[1] == self._disk[1]:  # the same content: remember it anew (its stamp ages)
            self._taken, self._disk = time.time_ns(), now
            return False
        return True


def content_hash(path: Path) -> str | None:
    """The file's content hash now (None when it cannot be read): "overwrite that version"
    holds for that content only, a later change is asked about again."""
    found = _digest(path)
    return found[1] if found else None


def copy_path(path: Path, tag: str = "mine") -> Path:
    """A free name next to ``path`` for a copy: ``line3-mine.yaml``, ``line3-mine-2.yaml``..."""
    candidate, n = path.with_name(f"{path.stem}-{tag}{path.suffix}"), 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}-{tag}-{n}{path.suffix}"), n + 1
    return candidate


def write_copy(path: Path, text: str, tag: str = "mine") -> Path:
    """Write ``text`` to a new file next to ``path`` (never over an existing one); its path."""
    while True:
        target = copy_path(path, tag)
        try:
            with target.open("x", encoding="utf-8") as out:
                out.write(text)
        except FileExistsError:  # taken between the look and the write: the next name
            continue
        return target


def disk_diff(path: Path, mine: str, limit: int = 400) -> str:
    """What differs between the file on disk (theirs) and ``mine``, as a unified diff."""
    try:
        theirs = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"(cannot read {path.name}: {exc})"
    lines = list(
        difflib.unified_diff(
            theirs.splitlines(),
            mine.splitlines(),
            f"{path.name} (on disk)",
            f"{path.name} (mine)",
            lineterm="",
        )
    )
    more = f"\n... {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more
