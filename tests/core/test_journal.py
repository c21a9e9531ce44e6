"""The journal: batches kept in order on disk through kill -9, damage and a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from flowengine.journal import Journal, JournalFull, decode, encode


def frame(start: int, n: int = 100) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="ms", tz="UTC")
            + pd.Timedelta(milliseconds=start),
            "sensor": "s1",
            "value": [float(i) for i in range(start, start + n)],
            "seq": range(start, start + n),
        }
    )


def test_batches_come_back_in_order_and_equal_until_deleted(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    seqs = j.append([(frame(0), {"topic": "a"}), (frame(100), {"topic": "b"})])
    seqs += j.append([(frame(200), {})])
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert j.stats.batches == 3 and j.stats.rows == 300 and j.stats.bytes > 0
    got = j.read(after=0, limit=10)
    assert [e.meta for e in got] == [{"topic": "a"}, {"topic": "b"}, {}]
    pd.testing.assert_frame_equal(got[1].frame, frame(100), check_dtype=False)
    assert got[0].frame["timestamp"].dt.tz is not None
    j.delete_through(seqs[1])
    assert [e.seq for e in j.read()] == [seqs[2]] and j.stats.rows == 100
    j.close()
    again = Journal(tmp_path / "j.db")  # what is left survives a reopen, numbering goes on
    assert [e.seq for e in again.read()] == [seqs[2]] and again.stats.batches == 1
    assert again.append([(frame(300), {})])[0] > seqs[2] and again.last_seq() > seqs[2]


def test_a_column_arrow_cannot_type_still_round_trips() -> None:
    mixed = pd.DataFrame({"value": [1.5, "text", None, {"a": 1}]}, dtype=object)
    back = decode(encode(mixed))
    assert back["value"].tolist() == [1.5, "text", None, {"a": 1}]


WRITER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from flowengine.journal import Journal
    j = Journal(sys.argv[1], sync="full")
    i = 0
    while True:
        seqs = j.append([(pd.DataFrame({"seq": range(i * 50, i * 50 + 50)}), {"i": i})])
        print(seqs[0], flush=True)
        i += 1
    """
)


def test_kill_9_mid_write_keeps_every_committed_batch(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = [int(proc.stdout.readline()) for _ in range(200)]
    os.kill(proc.pid, signal.SIGKILL)  # while it writes the next ones
    proc.wait(timeout=30)
    committed += [int(line) for line in proc.stdout.read().split()]
    j = Journal(path)
    stored = {e.seq: e for e in j.read(limit=100_000)}
    assert set(committed) <= set(stored)  # every acknowledged commit is there
    assert sorted(stored) == list(range(1, len(stored) + 1))  # and nothing torn in between
    for e in stored.values():
        assert e.frame["seq"].tolist() == list(range(e.meta["i"] * 50, e.meta["i"] * 50 + 50))
    assert j.lost_batches == 0 and j.append([(frame(0), {})])


def test_a_damaged_file_is_salvaged_not_a_crash_loop(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    for i in range(40):
        j.append([(frame(i * 100), {"i": i})])
    j._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xff" * 8192  # a bad sector in the middle
    path.write_bytes(bytes(data))
    again = Journal(path)  # must not raise
    kept = again.read(limit=1000)
    assert 0 < len(kept) < 40 and again.lost_batches > 0
    assert all(len(e.frame) == 100 for e in kept)
    assert list(tmp_path.glob("j.db.damaged-*"))  # the damaged file is kept for a look
    assert again.append([(frame(0), {})])  # and the journal goes on
    garbage = tmp_path / "g.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert Journal(garbage).read() == []


def test_a_full_disk_refuses_the_batch_and_keeps_the_rest(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    first = j.append([(frame(0, 500), {})])
    pages = j._db.execute("PRAGMA page_count").fetchone()[0]
    j._db.execute(f"PRAGMA max_page_count={pages + 2}")  # SQLite's own "database or disk is full"
    with pytest.raises(JournalFull, match="disk full"):
        for i in range(1, 50):
            j.append([(frame(i * 500, 500), {})])
    before = j.stats
    with pytest.raises(JournalFull):
        j.append([(frame(0, 5000), {})])
    assert j.stats == before and j.read()[0].seq == first[0]
    j.delete_through(j.last_seq())
    assert j.append([(frame(0, 500), {})])  # room again once the consumer confirmed


def test_max_bytes_blocks_or_drops_the_oldest(tmp_path: Path) -> None:
    size = len(encode(frame(0)))
    blocking = Journal(tmp_path / "b.db", max_bytes=size * 3)
    blocking.append([(frame(i * 100), {}) for i in range(3)])
    with pytest.raises(JournalFull, match="full"):
        blocking.append([(frame(300), {})])
    assert blocking.stats.batches == 3
    dropping = Journal(tmp_path / "d.db", max_bytes=size * 3, when_full="drop_oldest")
    for i in range(5):
        dropping.append([(frame(i * 100), {"i": i})])
    assert [e.meta["i"] for e in dropping.read()] == [2, 3, 4]
    assert dropping.lost_batches == 2 and dropping.lost_rows == 200


def test_numbering_never_goes_back_after_a_salvage_or_a_lost_count(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    for i in range(5):
        j.append([(frame(i), {})])
    j.delete_through(5)  # all confirmed: the table is empty, only the numbering remembers
    j._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    data = bytearray(path.read_bytes())
    data[100:200] = b"\xff" * 100  # the header is damaged: SQLite refuses the file
    path.write_bytes(bytes(data))
    again = Journal(path)
    assert again.append([(frame(0), {})])[0] > 5 or again.lost_batches > 0
    fresh = Journal(tmp_path / "k.db")
    fresh.continue_after(41)  # a checkpoint said 41: new batches must come after it
    assert fresh.append([(frame(0), {})]) == [42]
