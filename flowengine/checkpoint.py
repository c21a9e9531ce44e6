"""Consistent checkpoints of a running flow: barriers in band, snapshots when aligned.

The design of Flink's asynchronous barrier snapshots (Carbone et al. 2015), on our graph:

1. Every ``interval`` the :class:`Coordinator` opens checkpoint *n* and each source emits a
   :class:`Barrier` on all its wires, after the last batch that belongs to *n*. With an ingest
   journal, the source's *position* is the journal sequence number of that last batch.
2. A node whose inbox has seen barrier *n* on every open input wire (the inbox holds back a
   wire that delivered it until the others have: alignment) snapshots its state and forwards
   the barrier on all its wires. So a snapshot reflects exactly the batches before the barrier.
3. A node with no outgoing wire (a sink) acknowledges *n* once everything before the barrier
   is written. When every such node has, *n* is complete: its states and positions are saved
   atomically (a crash mid-write keeps the previous checkpoint), and only then the sources may
   forget what they hold up to their positions (the journal deletes through them).

After a crash the flow restores every node's state from the last complete checkpoint and the
sources replay their journals after its positions: each reading reaches the sinks at least
once, and stateful results equal an uninterrupted run's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("flowengine.checkpoint")

#: Format of the checkpoint file; a file of another version is ignored (with a warning).
VERSION = 1
#: The entry point group of checkpoint stores, by URL scheme (``nats-kv``).
STORES = "flowengine.checkpoint_stores"


@dataclass(frozen=True, slots=True)
class Barrier:
    """In-band marker on a wire: every batch before it belongs to checkpoint ``id``."""

    id: int


@dataclass(slots=True)
class Checkpoint:
    """A completed checkpoint: node states (pickled) and source positions, by node id.

    ``configs`` holds a fingerprint of each node's type and settings: a state is restored only
    into a node whose fingerprint is the same, so an edited node starts empty, not corrupted.
    """

    id: int
    created: float
    states: dict[str, bytes] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)

    def state_of(self, node_id: str, fingerprint: str) -> Any:
        """The state saved for ``node_id`` if its config is unchanged, else None."""
        data = self.states.get(node_id)
        if data is None or self.configs.get(node_id) != fingerprint:
            return None
        return pickle.loads(data)  # our own file, as trusted as the flow beside it


def fingerprint(node_type: str, config: Any) -> str:
    """A short digest of a node's type and settings (what its state depends on)."""
    text = json.dumps([node_type, config], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StoreUnavailable(Exception):
    """A checkpoint store that cannot be reached now (a store on the network): the flow must
    not start without its state, or its first checkpoint would overwrite the saved one."""


class CheckpointBackend(Protocol):
    """Where the bytes of one flow's (or one partition's) last checkpoint live.

    The default is a file beside the flow; ``flowengine run --checkpoint-store URL`` and the
    workers of ``--worker I/N`` use one on the network (a NATS KV bucket), so that another host
    can take the state over. Calls are synchronous and may block (the runtime calls ``write``
    off the event loop); ``write`` replaces the old checkpoint atomically or not at all.
    """

    #: Where it is, for log lines (no secrets).
    where: str

    def read(self) -> bytes | None:
        """The saved bytes; None when nothing was saved yet. Raises :class:`StoreUnavailable`
        when the store cannot be reached, ``OSError`` when it cannot be read."""

    def write(self, data: bytes) -> None:
        """Replace the saved bytes (all or nothing); raises when that failed."""

    def close(self) -> None:
        """Release connections; the store is not used again."""


class FileBackend:
    """A file written atomically: a temporary file, fsync, rename, fsync of the folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp")
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Nothing to release."""


def open_backend(url: str, key: str) -> CheckpointBackend:
    """The checkpoint store ``url`` names (``nats-kv://host:4222/bucket``), for the checkpoint
    ``key`` (a flow, or a flow's partition). The store types come from the entry point group
    ``flowengine.checkpoint_stores``, by URL scheme, so the core names none of them."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    found = {ep.name: ep for ep in entry_points(group=STORES)}
    if scheme not in found:
        known = ", ".join(f"{name}://" for name in sorted(found)) or "none installed"
        raise ValueError(f"checkpoint store '{url}': unknown scheme (known: {known})")
    factory = found[scheme].load()
    backend: CheckpointBackend = factory(url, key)
    return backend


class CheckpointStore:
    """The last completed checkpoint of one flow: ``folder/checkpoint`` unless another
    ``backend`` keeps it (see :class:`CheckpointBackend`)."""

    def __init__(self, folder: Path, backend: CheckpointBackend | None = None) -> None:
        self.folder = folder
        self.path = folder / "checkpoint"
        self.backend = backend if backend is not None else FileBackend(self.path)

    def load(self) -> Checkpoint | None:
        """The saved checkpoint, or None when there is none or it does not read (logged).
        A store that cannot be reached raises :class:`StoreUnavailable`."""
        where = self.backend.where
        try:
            data = self.backend.read()
        except OSError as exc:
            log.error("checkpoint %s unreadable (%s): starting without it", where, exc)
            return None
        if data is None:
            return None
        try:
            version, checkpoint = pickle.loads(data)
        except Exception as exc:
            log.error("checkpoint %s damaged (%s): starting without it", where, exc)
            return None
        if version != VERSION or not isinstance(checkpoint, Checkpoint):
            log.warning("checkpoint %s is of another version: starting without it", where)
            return None
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the saved checkpoint atomically (a crash mid-write keeps the old one)."""
        self.backend.write(pickle.dumps((VERSION, checkpoint), protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        self.backend.close()


def encode_state(state: Any) -> str | None:
    """A state as text (pickled, base64): how journal entries carry a source's state."""
    if state is None:
        return None
    return base64.b64encode(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def decode_state(text: Any) -> Any:
    """What :func:`encode_state` made, or None (logged) when it does not read."""
    if not isinstance(text, str):
        return None
    try:
        return pickle.loads(base64.b64decode(text))  # our own journal: as trusted as the flow
    except Exception as exc:
        log.error("a journaled source state does not read (%s): ignored", exc)
        return None


@dataclass(slots=True)
class _Pending:
    checkpoint: Checkpoint
    waiting: set[str]


class Coordinator:
    """Opens checkpoints, collects snapshots and acknowledgements, completes them in order."""

    def __init__(self, store: CheckpointStore, last: Checkpoint | None = None) -> None:
        self.store = store
        self.last = last
        self.next_id = (last.id if last else 0) + 1
        self._pending: dict[int, _Pending] = {}
        #: Completed checkpoints and the time the last one took (for status and metrics).
        self.completed = 0
        self.last_duration = 0.0

    def begin(self, terminals: set[str]) -> int:
        """Open a checkpoint that completes when every node in ``terminals`` acknowledged it."""
        cid = self.next_id
        self.next_id += 1
        self._pending[cid] = _Pending(Checkpoint(cid, time.time()), set(terminals))
        return cid

    def abort_all(self) -> None:
        """Forget open checkpoints (a deploy changed the graph under them)."""
        self._pending.clear()

    def record(
        self, cid: int, node_id: str, state: Any, config: str, position: int | None = None
    ) -> None:
        """Keep ``node_id``'s snapshot (pickled now, so later changes do not leak in)."""
        pending = self._pending.get(cid)
        if pending is None:
            return
        cp = pending.checkpoint
        if state is not None:
            cp.states[node_id] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        cp.configs[node_id] = config
        if position is not None:
            cp.positions[node_id] = position

    def record_position(self, cid: int, node_id: str, position: int | None) -> None:
        """A source's position alone: its state stays that of the last checkpoint."""
        pending = self._pending.get(cid)
        if pending is not None and position is not None:
            pending.checkpoint.positions[node_id] = position

    def acknowledge(self, cid: int, node_id: str) -> Checkpoint | None:
        """``node_id`` (a terminal) passed barrier ``cid``; the checkpoint when now complete
        (for the caller to save), else None. Older open ones are dropped: it covers them."""
        pending = self._pending.get(cid)
        if pending is None:
            return None
        pending.waiting.discard(node_id)
        if pending.waiting:
            return None
        for older in [c for c in self._pending if c <= cid]:
            del self._pending[older]
        cp = pending.checkpoint
        if self.last is not None:  # a node that recorded nothing this time keeps its old state
            for other, config in self.last.configs.items():
                if other not in cp.configs:
                    cp.configs[other] = config
                    if other in self.last.states:
                        cp.states[other] = self.last.states[other]
            for other, position in self.last.positions.items():
                cp.positions.setdefault(other, position)
        self.last = cp  # the caller saves it (off the event loop) before journals forget
        self.completed += 1
        self.last_duration = time.time() - cp.created
        return cp

    def forget_terminal(self, node_id: str) -> list[Checkpoint]:
        """A terminal node ended (end of stream): it will acknowledge nothing more."""
        done = []
        for cid in sorted(self._pending):
            cp = self.acknowledge(cid, node_id)
            if cp is not None:
                done.append(cp)
        return done

    @property
    def open(self) -> int:
        return len(self._pending)
