"""The small object a node gets from the runtime: send, status, logger, counters, clock."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from flowengine.clock import SYSTEM_CLOCK, Clock
from flowengine.status import NodeStats
from flowengine.types import Batch, NodeState, Result

if TYPE_CHECKING:
    from flowengine.inbox import Wire

Sender = Callable[[Result, str], Awaitable[None]]


class Observer(Protocol):
    """Sees what every node sends and every error it reports (a test harness: see
    :mod:`flowengine.harness`); the runtime calls it only when one is set."""

    def sent(self, node_id: str, port: str, batch: Batch, wires: Sequence[Wire]) -> None:
        """``node_id`` sent ``batch`` on ``port`` onto ``wires`` (none: the port is unwired)."""

    def failed(self, node_id: str, message: str) -> None:
        """``node_id`` reported an error (``ctx.error``, a failed batch, start or flush)."""


class Context:
    """What a node may touch of the runtime; everything else stays the runtime's."""

    def __init__(
        self,
        node_id: str,
        *,
        stats: NodeStats,
        outputs: Mapping[str, Sequence[Wire]],
        sender: Sender,
        log: logging.LoggerAdapter[logging.Logger],
        flow_dir: Path,
        journaled: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.node_id = node_id
        #: The time this node lives in: read and sleep through it, never ``time`` or
        #: ``asyncio.sleep`` directly, so that tests can run it on a fake clock.
        self.clock = clock
        #: Set by a test harness (``Runtime.observe``); None in production.
        self.observer: Observer | None = None
        #: A source's sends go to its ingest journal first (the flow checkpoints): a source
        #: whose upstream waits for confirmations may hold them until ``acknowledge``.
        self.journaled = journaled
        self.stats = stats
        self.log = log
        self.flow_dir = flow_dir
        self._sender = sender
        self._outputs = outputs

    def wired(self, port: str) -> bool:
        """True when ``port`` leads somewhere, so a node can skip work nobody receives."""
        return bool(self._outputs.get(port))

    def backlog(self, port: str = "out") -> int:
        """Batches sent on ``port`` that a receiver has not taken yet (the most on any one of
        its wires). A source that sees its receiver still busy can merge what arrives meanwhile
        into its next batch instead of queueing many small ones, each of which would cost the
        receiver its per-batch work again and reach it no sooner."""
        wires = self._outputs.get(port)
        if not wires:
            return 0
        return max(len(wire.items) for wire in wires)

    async def send(self, result: Result, port: str = "out") -> None:
        """Send a frame, batch or per-port mapping; waits while downstream queues are full."""
        await self._sender(result, port)

    def error(self, message: str, count: int = 1) -> None:
        """Count ``count`` errors of this node (bad input it sent to ``error``, say): they show
        in the run summary, the node's status and ``flowengine_node_errors_total``."""
        self.stats.errors += count
        self.stats.last_error = message[:500]
        if self.observer is not None:
            self.observer.failed(self.node_id, message)

    def status(self, text: str, state: NodeState | None = None) -> None:
        """Show a short status text (and optionally a state) on the node."""
        self.stats.set_state(state or self.stats.state, text)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a named counter of this node (exported as a metric)."""
        self.stats.counters[name] = self.stats.counters.get(name, 0) + n
