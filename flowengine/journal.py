"""Batches on local disk, in order, until their consumer confirms them.

One :class:`Journal` is one SQLite database in WAL mode, one row per batch (Arrow IPC). It is
the ingest journal of a source (readings are on disk before they are acknowledged upstream)
and the store-and-forward buffer of a sink (batches wait on disk while the sink is down).

Why SQLite and not a hand-written log: a commit is atomic and a torn tail after ``kill -9`` or
power loss is rolled back by SQLite itself, so recovery needs no code of ours; what we add is
salvage of a file that is damaged anyway (a bad disk, a copy cut short): every row that still
reads is kept, the rest is counted and logged, and the journal starts again, never a crash loop.

``sync: full`` makes every commit durable against power loss; ``normal`` (WAL) survives a crash
of the process but may lose the last commits on power loss, and is several times faster.
A full disk (or ``max_bytes``) raises :class:`JournalFull`: the caller holds back (backpressure)
and shows it; nothing is dropped unless ``when_full: drop_oldest`` says so.
"""

from __future__ import annotations

import json
import logging
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

log = logging.getLogger("flowengine.journal")

Sync = Literal["full", "normal"]
WhenFull = Literal["block", "drop_oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  created REAL NOT NULL,
  rows INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  meta TEXT NOT NULL,
  data BLOB NOT NULL
)
"""
_ARROW, _PICKLE = b"A", b"P"


class JournalFull(Exception):
    """The disk or the configured ``max_bytes`` has no room for the batch; retry later."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored batch: its sequence number, frame and metadata (topic, origin...)."""

    seq: int
    frame: pd.DataFrame
    meta: dict[str, Any]
    created: float


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What a journal holds: batches, rows, bytes, and the age of the oldest batch."""

    batches: int
    rows: int
    bytes: int
    oldest: float | None

    def age(self, now: float | None = None) -> float:
        """Seconds since the oldest batch was stored (0 when empty)."""
        return 0.0 if self.oldest is None else max(0.0, (now or time.time()) - self.oldest)


def encode(frame: pd.DataFrame) -> bytes:
    """A frame as bytes: Arrow IPC, or a pickle for columns Arrow cannot type (mixed objects)."""
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        return _PICKLE + pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return _ARROW + data


def decode(data: bytes) -> pd.DataFrame:
    """The frame :func:`encode` stored."""
    kind, body = data[:1], data[1:]
    if kind == _ARROW:
        import pyarrow as pa

        frame: pd.DataFrame = pa.ipc.open_stream(body).read_all().to_pandas()
        return frame
    if kind == _PICKLE:
        # our own file, written by this process or its predecessor: as trusted as the flow
        obj = pickle.loads(body)
        if isinstance(obj, pd.DataFrame):
            return obj
    raise ValueError(f"unknown batch encoding {kind!r}")


class Journal:
    """An ordered, crash-safe store of batches in one SQLite file (see the module docstring).

    Thread-safe: the runtime calls it from a worker thread so that a commit's fsync never
    blocks the event loop.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sync: Sync = "full",
        max_bytes: int | None = None,
        when_full: WhenFull = "block",
        name: str = "",
    ) -> None:
        self.path = Path(path)
        self.sync = sync
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.name = name or self.path.stem
        #: Batches given up: unreadable on recovery, or dropped by ``drop_oldest``.
        self.lost_batches = 0
        self.lost_rows = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open_or_salvage()
        self._stats = self._count()

    # ---- opening and recovery --------------------------------------------------------------
    def _connect(self, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.sync.upper()}")
        db.execute(_SCHEMA)
        return db

    def _open_or_salvage(self) -> sqlite3.Connection:
        try:
            db = self._connect(self.path)
            if db.execute("PRAGMA quick_check").fetchone()[0] == "ok":
                return db
            db.close()
        except sqlite3.DatabaseError as exc:
            log.error(
                "journal %s: %s: %s; salvaging what is readable", self.path, type(exc).__name__, exc
            )
        return self._salvage()

    def _salvage(self) -> sqlite3.Connection:
        """Move the damaged file aside, copy every readable batch into a fresh one."""
        damaged = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(Path(f"{damaged}{suffix}"))
        db = self._connect(self.path)
        kept = self._copy_readable(damaged, db)
        log.error(
            "journal %s was damaged: %d batches recovered, %d not (the damaged file is kept as %s)",
            self.path,
            kept,
            self.lost_batches,
            damaged.name,
        )
        return db

    def _copy_readable(self, damaged: Path, db: sqlite3.Connection) -> int:
        """Copy batch by batch, each looked up on its own, so that a damaged page costs only
        the batches stored on it; the numbering goes on where the damaged file's ended (a
        checkpoint's position refers to it). One commit for the whole copy."""
        kept = 0
        try:
            old = sqlite3.connect(damaged)
        except sqlite3.DatabaseError:
            self.lost_batches += 1
            return 0
        last = _highest_seq(old)
        db.execute("BEGIN IMMEDIATE")
        for seq in _candidates(old, last):
            try:
                row = old.execute("SELECT * FROM batches WHERE seq = ?", (seq,)).fetchone()
                if row is None:
                    continue  # deleted before the damage
                decode(row[5])
            except Exception:
                self.lost_batches += 1
                continue
            db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", row)
            kept += 1
        db.execute("COMMIT")
        if last == 0:
            self.lost_batches += 1  # nothing says what it held: count the file as one loss
        else:
            self._set_sequence(db, last)
        old.close()
        return kept

    @staticmethod
    def _set_sequence(db: sqlite3.Connection, seq: int) -> None:
        """Make the next batch number ``seq + 1`` (or more), whatever the table holds."""
        found = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        if found is None:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)", (seq,))
        elif found[0] < seq:
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'batches'", (seq,))

    def continue_after(self, seq: int) -> None:
        """Number new batches above ``seq`` (a checkpoint's position in a journal that lost its
        numbering), so that a position never covers batches written after it."""
        with self._lock:
            self._set_sequence(self._db, seq)

    def _count(self) -> JournalStats:
        n, rows, size, oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0), min(created) "
            "FROM batches"
        ).fetchone()
        return JournalStats(n, rows, size, oldest)

    # ---- the API ---------------------------------------------------------------------------
    @property
    def stats(self) -> JournalStats:
        return self._stats

    def append(self, frames: Iterable[tuple[pd.DataFrame, dict[str, Any]]]) -> list[int]:
        """Store batches in one commit, in order; their sequence numbers. Durable on return
        (per ``sync``). Raises :class:`JournalFull` when there is no room (nothing stored)."""
        now = time.time()
        rows = [(now, len(f), data, json.dumps(meta)) for f, meta in frames for data in [encode(f)]]
        new = sum(len(r[2]) for r in rows)
        with self._lock:
            if self.max_bytes is not None and self._stats.bytes + new > self.max_bytes:
                self._make_room(new)
            try:
                seqs = self._insert(rows)
            except sqlite3.OperationalError as exc:
                if "full" in str(exc).lower():
                    raise JournalFull(f"journal {self.path}: disk full") from None
                raise
            s = self._stats
            self._stats = JournalStats(
                s.batches + len(rows),
                s.rows + sum(r[1] for r in rows),
                s.bytes + new,
                now if s.oldest is None else s.oldest,
            )
            return seqs

    def _insert(self, rows: Sequence[tuple[float, int, bytes, str]]) -> list[int]:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            seqs = []
            for created, n, data, meta in rows:
                cur.execute(
                    "INSERT INTO batches (created, rows, bytes, meta, data) VALUES (?, ?, ?, ?, ?)",
                    (created, n, len(data), meta, data),
                )
                seqs.append(int(cur.lastrowid or 0))
            cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite rolls back by itself on a full disk
                cur.execute("ROLLBACK")
            raise
        return seqs

    def _make_room(self, new: int) -> None:
        assert self.max_bytes is not None
        if self.when_full == "block" or new > self.max_bytes:
            raise JournalFull(
                f"journal {self.path}: full ({self._stats.bytes} of {self.max_bytes} bytes)"
            )
        need = self._stats.bytes + new - self.max_bytes
        freed = dropped = rows = last = 0
        for seq, size, n in self._db.execute("SELECT seq, bytes, rows FROM batches ORDER BY seq"):
            if freed >= need:
                break
            freed, dropped, rows, last = freed + size, dropped + 1, rows + n, seq
        self._delete("seq <= ?", last)
        self.lost_batches += dropped
        self.lost_rows += rows
        log.warning(
            "journal %s: full, dropped the %d oldest batches (%d rows)", self.path, dropped, rows
        )

    def read(self, after: int = 0, limit: int = 64) -> list[Entry]:
        """Up to ``limit`` batches with a sequence number above ``after``, oldest first. A batch
        that no longer decodes is counted as lost, logged and deleted, never raised."""
        with self._lock:
            found = self._db.execute(
                "SELECT seq, created, meta, data FROM batches WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            out = []
            for seq, created, meta, data in found:
                try:
                    out.append(Entry(seq, decode(data), json.loads(meta), created))
                except Exception as exc:
                    log.error("journal %s: batch %d unreadable (%s); dropped", self.path, seq, exc)
                    self.lost_batches += 1
                    self._delete("seq = ?", seq)
            return out

    def last_seq(self) -> int:
        """The highest sequence number ever given (0 for a new journal), even if deleted."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name='batches'"
            ).fetchone()
            return int(row[0]) if row else 0

    def delete_through(self, seq: int) -> None:
        """Forget every batch up to and including ``seq``: its consumer has confirmed them."""
        with self._lock:
            self._delete("seq <= ?", seq)

    def _delete(self, where: str, seq: int) -> None:
        gone = self._db.execute(f"DELETE FROM batches WHERE {where} RETURNING rows, bytes", (seq,))
        counts = gone.fetchall()
        if not counts:
            return
        s = self._stats
        oldest = self._db.execute("SELECT created FROM batches ORDER BY seq LIMIT 1").fetchone()
        self._stats = JournalStats(
            s.batches - len(counts),
            s.rows - sum(c[0] for c in counts),
            s.bytes - sum(c[1] for c in counts),
            oldest[0] if oldest else None,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _highest_seq(db: sqlite3.Connection) -> int:
    """The last sequence number a damaged journal gave, from whatever still reads."""
    for query in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'batches'",
        "SELECT max(seq) FROM batches",
    ):
        try:
            row = db.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0]:
            return int(row[0])
    return 0


def _candidates(db: sqlite3.Connection, last: int) -> list[int]:
    """The batch numbers to try: the table's own list when its index still reads (fast), else
    every number up to the highest ever given (a damaged index: slow, but only then)."""
    try:
        return [r[0] for r in db.execute("SELECT seq FROM batches ORDER BY seq")]
    except sqlite3.DatabaseError:
        return list(range(1, last + 1))
