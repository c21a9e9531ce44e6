"""Per-node status and counters: the one in-process API the CLI, metrics and editor read."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

from flowengine.types import NodeKind, NodeState

if TYPE_CHECKING:
    from flowengine.inbox import Wire

#: Seconds of counter history that ``rows_per_s`` averages over.
RATE_WINDOW = 5.0
#: Readers polling faster than this share one sample, so the history stays short.
RATE_STEP = 0.25


#: A node's store on disk: a sink's store-and-forward buffer or a source's ingest journal.
DiskKind: TypeAlias = Literal["buffer", "journal"]
#: A store that has no room left says so in the node's status text ("buffer full: ...",
#: "journal ...: full (...): holding back", "... disk full ...").
_FULL = re.compile(r"\bfull\b")


def _first_sample() -> deque[tuple[float, int]]:
    return deque([(time.monotonic(), 0)], maxlen=64)


def human_bytes(n: float) -> str:
    """``2.1 MB``: sizes as people read them (powers of 1000, like disk tools)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    """``35s``, ``4m10s``, ``2h05m``, ``3d04h``: an age at a glance."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


@dataclass(frozen=True, slots=True)
class OnDisk:
    """What a node holds on disk, read once from its counters so that the live table, the
    status lines, ``/metrics`` and the editor all show the same thing."""

    kind: DiskKind
    batches: int
    rows: int
    bytes: int
    #: Seconds since the oldest batch was stored; None when empty or not known (journals).
    age_s: float | None

    def describe(self) -> str:
        """``1,234 rows buffered (2.1 MB, oldest 35s)``."""
        verb = "buffered" if self.kind == "buffer" else "journaled"
        size = human_bytes(self.bytes)
        oldest = "" if self.age_s is None else f", oldest {human_age(self.age_s)}"
        return f"{self.rows:,} rows {verb} ({size}{oldest})"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for snapshots."""
        return {
            "kind": self.kind,
            "batches": self.batches,
            "rows": self.rows,
            "bytes": self.bytes,
            "age_s": self.age_s,
        }


@dataclass(slots=True)
class NodeStats:
    """Live state of one node. The runtime writes it; readers take :meth:`snapshot`."""

    node_id: str
    type: str
    kind: NodeKind
    state: NodeState = "starting"
    text: str = ""
    batches_in: int = 0
    batches_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    errors: int = 0
    retries: int = 0
    last_error: str = ""
    last_data: float | None = None
    since: float = field(default_factory=time.time)
    counters: dict[str, int] = field(default_factory=dict)
    wires: list[Wire] = field(default_factory=list)
    samples: deque[tuple[float, int]] = field(default_factory=_first_sample, repr=False)

    def set_state(self, state: NodeState, text: str | None = None) -> None:
        """Change state (and text when given), stamping the time of the change."""
        if state != self.state:
            self.state = state
            self.since = time.time()
        if text is not None:
            self.text = text

    def rows_per_s(self) -> float:
        """Rows per second (emitted by a source, received otherwise) over the last few
        seconds, from samples the readers take: no cost on the data path."""
        now = time.monotonic()
        rows = self.rows_out if self.kind == "source" else self.rows_in
        samples = self.samples
        if now - samples[-1][0] >= RATE_STEP:
            samples.append((now, rows))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        return max(0.0, (rows - before) / (now - then)) if now > then else 0.0

    def restart_rate(self) -> None:
        """Start the rate over (the counted rows changed meaning: a new kind of node)."""
        rows = self.rows_out if self.kind == "source" else self.rows_in
        self.samples = deque([(time.monotonic(), rows)], maxlen=64)

    @property
    def data_age(self) -> float | None:
        """Seconds since this node last received or emitted data."""
        return None if self.last_data is None else time.time() - self.last_data

    def on_disk(self) -> OnDisk | None:
        """What this node holds on disk (None: it has no buffer nor journal)."""
        c = self.counters
        kinds: tuple[tuple[Literal["buffer", "journal"], str], ...] = (
            ("buffer", "buffered"),
            ("journal", "journal"),
        )
        for kind, prefix in kinds:
            if f"{prefix}_batches" in c:
                batches, oldest = c[f"{prefix}_batches"], c.get(f"{prefix}_oldest")
                age = max(0.0, time.time() - oldest) if batches and oldest is not None else None
                rows, size = c.get(f"{prefix}_rows", 0), c.get(f"{prefix}_bytes", 0)
                return OnDisk(kind, batches, rows, size, age)
        return None

    @property
    def warning(self) -> str | None:
        """Why a running node needs a look: its buffer or journal is full (the flow is held
        back), or a sink is down with a backlog on disk."""
        return self._warning(self.on_disk())

    def _warning(self, disk: OnDisk | None) -> str | None:
        if disk is None or self.state != "retrying":
            return None
        if self.counters.get("buffer_full") or _FULL.search(self.text):
            return f"{disk.kind} full"
        if disk.kind == "buffer" and disk.rows:
            return "sink unavailable, buffering"
        return None

    def snapshot(self) -> dict[str, object]:
        """A plain, JSON-ready copy."""
        disk = self.on_disk()
        return {
            "id": self.node_id,
            "type": self.type,
            "kind": self.kind,
            "state": self.state,
            "text": self.text,
            "batches_in": self.batches_in,
            "batches_out": self.batches_out,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "errors": self.errors,
            "retries": self.retries,
            "last_error": self.last_error,
            "rows_per_s": self.rows_per_s(),
            "data_age": self.data_age,
            "counters": dict(self.counters),
            "on_disk": None if disk is None else disk.as_dict(),
            "warning": self._warning(disk),
            "queues": [
                {
                    "from": w.source,
                    "port": w.port,
                    "to_port": w.dest_port,
                    "depth": len(w.items),
                    "capacity": w.capacity,
                }
                for w in self.wires
            ],
        }
