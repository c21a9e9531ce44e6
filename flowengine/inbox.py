"""Bounded buffers, one per input wire, read by the receiving node's single task.

A full buffer makes the sender wait, so a slow sink slows its sources instead of growing memory.
A sender cancelled while waiting still leaves its batch in the buffer: nothing already read is
lost at shutdown (the buffer may then exceed its capacity by that one batch).
"""

from __future__ import annotations

import asyncio
from collections import deque

from flowengine.types import Batch


class Wire:
    """One connection from ``source.port`` to ``dest.dest_port``, with its own bounded buffer."""

    __slots__ = (
        "capacity",
        "closed",
        "dest",
        "dest_port",
        "inbox",
        "items",
        "port",
        "source",
        "waiters",
    )

    def __init__(self, source: str, port: str, dest: str, dest_port: str, capacity: int) -> None:
        self.source = source
        self.port = port
        self.dest = dest
        self.dest_port = dest_port
        self.capacity = capacity
        self.items: deque[Batch] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.inbox: Inbox | None = None

    @property
    def depth(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"<Wire {self.source}.{self.port} -> {self.dest}.{self.dest_port} {self.depth}/{self.capacity}>"


class Inbox:
    """The input side of one node: fair round-robin over its wires, end of stream when all close."""

    def __init__(self) -> None:
        self.wires: list[Wire] = []
        self._getter: asyncio.Future[None] | None = None
        self._next = 0

    def _wake(self) -> None:
        """Resume the reader if it waits (like ``asyncio.Queue``: no event churn per put)."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def attach(self, wire: Wire) -> None:
        wire.inbox = self
        self.wires.append(wire)

    async def put(self, wire: Wire, batch: Batch) -> None:
        """Append to ``wire``'s buffer, waiting while it is full."""
        items = wire.items
        while len(items) >= wire.capacity:
            waiter = asyncio.get_running_loop().create_future()
            wire.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                items.append(batch)
                self._wake()
                raise
        items.append(batch)
        self._wake()

    def put_nowait(self, wire: Wire, batch: Batch) -> None:
        """Append without waiting: when the wire has room, or to finish a cancelled fan-out."""
        wire.items.append(batch)
        self._wake()

    def close(self, wire: Wire) -> None:
        """Mark ``wire`` finished: its sender will send nothing more."""
        wire.closed = True
        self._wake()

    async def get(self) -> Batch | None:
        """The next batch from any wire, or ``None`` once every wire is closed and empty."""
        wires = self.wires
        while True:
            n = len(wires)
            for i in range(n):
                wire = wires[(self._next + i) % n]
                if wire.items:
                    self._next = (self._next + i + 1) % n
                    batch = wire.items.popleft()
                    waiters = wire.waiters
                    while waiters:
                        waiter = waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(None)
                            break
                    return batch
            if all(w.closed for w in wires):
                return None
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter

    @property
    def depth(self) -> int:
        return sum(len(w.items) for w in self.wires)
