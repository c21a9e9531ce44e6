"""The small object a node gets from the runtime: send, status, logger, counters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from flowengine.status import NodeStats
from flowengine.types import NodeState, Result

Sender = Callable[[Result, str], Awaitable[None]]


class Context:
    """What a node may touch of the runtime; everything else stays the runtime's."""

    def __init__(
        self,
        node_id: str,
        *,
        stats: NodeStats,
        outputs: Mapping[str, Sequence[object]],
        sender: Sender,
        log: logging.LoggerAdapter[logging.Logger],
        flow_dir: Path,
        journaled: bool = False,
    ) -> None:
        self.node_id = node_id
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

    async def send(self, result: Result, port: str = "out") -> None:
        """Send a frame, batch or per-port mapping; waits while downstream queues are full."""
        await self._sender(result, port)

    def error(self, message: str, count: int = 1) -> None:
        """Count ``count`` errors of this node (bad input it sent to ``error``, say): they show
        in the run summary, the node's status and ``flowengine_node_errors_total``."""
        self.stats.errors += count
        self.stats.last_error = message[:500]

    def status(self, text: str, state: NodeState | None = None) -> None:
        """Show a short status text (and optionally a state) on the node."""
        self.stats.set_state(state or self.stats.state, text)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a named counter of this node (exported as a metric)."""
        self.stats.counters[name] = self.stats.counters.get(name, 0) + n
