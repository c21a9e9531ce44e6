"""Per-node status and counters: the one in-process API the CLI, metrics and editor read."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flowengine.types import NodeKind, NodeState

if TYPE_CHECKING:
    from flowengine.inbox import Wire

#: Seconds of counter history that ``rows_per_s`` averages over.
RATE_WINDOW = 5.0
#: Readers polling faster than this share one sample, so the history stays short.
RATE_STEP = 0.25


def _first_sample() -> deque[tuple[float, int]]:
    return deque([(time.monotonic(), 0)], maxlen=64)


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

    def snapshot(self) -> dict[str, object]:
        """A plain, JSON-ready copy."""
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
