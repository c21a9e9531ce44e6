"""Checkpoint store and coordinator: atomic saves, completion only when every sink passed."""

from __future__ import annotations

import pickle
from pathlib import Path

from flowengine.checkpoint import Checkpoint, CheckpointStore, Coordinator, fingerprint


def test_a_checkpoint_completes_when_every_terminal_acknowledged(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    co = Coordinator(store)
    first = co.begin({"sink_a", "sink_b"})
    second = co.begin({"sink_a", "sink_b"})
    co.record(first, "window", {"open": [1, 2]}, "cfg1")
    co.record(first, "src", None, "cfg0", position=41)
    assert co.acknowledge(first, "sink_a") is None and store.load() is None
    done = co.acknowledge(first, "sink_b")
    assert done is not None and done.id == first and done.positions == {"src": 41}
    store.save(done)  # the runtime saves it off the event loop
    saved = store.load()
    assert saved is not None and saved.state_of("window", "cfg1") == {"open": [1, 2]}
    assert saved.state_of("window", "changed-config") is None  # an edited node starts empty
    assert co.open == 1 and co.acknowledge(second, "sink_a") is None


def test_a_later_checkpoint_covers_older_open_ones(tmp_path: Path) -> None:
    co = Coordinator(CheckpointStore(tmp_path))
    older, newer = co.begin({"s"}), co.begin({"s"})
    assert co.acknowledge(newer, "s") is not None
    assert co.open == 0 and co.acknowledge(older, "s") is None


def test_a_state_is_copied_when_recorded(tmp_path: Path) -> None:
    co = Coordinator(CheckpointStore(tmp_path))
    cid = co.begin({"s"})
    state = {"rows": [1]}
    co.record(cid, "n", state, "c")
    state["rows"].append(2)  # the node goes on after its snapshot
    cp = co.acknowledge(cid, "s")
    assert cp is not None and cp.state_of("n", "c") == {"rows": [1]}


def test_numbering_goes_on_after_a_restart_and_old_states_carry_over(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    co = Coordinator(store)
    cid = co.begin({"s"})
    co.record(cid, "idle", {"x": 1}, "c")
    co.record_position(cid, "src", 9)
    done = co.acknowledge(cid, "s")
    assert done is not None
    store.save(done)
    again = Coordinator(store, store.load())
    cid2 = again.begin({"s"})
    assert cid2 == cid + 1
    cp = again.acknowledge(cid2, "s")
    assert cp is not None and cp.state_of("idle", "c") == {"x": 1}
    assert cp.positions == {"src": 9}  # a source that recorded nothing keeps its position


def test_a_torn_or_foreign_file_is_ignored_and_the_rename_is_atomic(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(Checkpoint(7, 0.0, positions={"src": 3}))
    (tmp_path / "checkpoint.tmp").write_bytes(b"half a checkp")  # a crash mid-write
    loaded = store.load()
    assert loaded is not None and loaded.id == 7  # the previous one stands
    store.path.write_bytes(b"\x80\x05garbage")
    assert store.load() is None
    store.path.write_bytes(pickle.dumps((99, "future format")))
    assert store.load() is None


def test_fingerprint_follows_type_and_settings() -> None:
    assert fingerprint("window", {"size": "10s"}) == fingerprint("window", {"size": "10s"})
    assert fingerprint("window", {"size": "10s"}) != fingerprint("window", {"size": "20s"})
    assert fingerprint("window", {}) != fingerprint("pivot", {})
