"""The bounded hand-off of received messages from paho's network thread to asyncio.

The paho thread appends to a deque and wakes the event loop with ``loop.call_soon_threadsafe``
only when the consumer is idle (one wake-up per burst, not one per message). When full, the paho
thread waits, stops reading the socket, and the broker holds the rest (its queue limits then
decide, see docs/connectors-mqtt.md). A bounded ``asyncio.Queue`` could not do that from another
thread: ``put_nowait`` would have to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque


class Lost:
    """Marker the paho thread queues when the connection ends."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


Item = tuple[str, bytes, int] | Lost


class Handoff:
    """Bounded thread-to-asyncio buffer; the module docstring says why not asyncio.Queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._woken = False
        self._closed = False
        self._event = asyncio.Event()

    def put(self, item: Item) -> None:
        """From the paho thread: add, waiting while full (a ``Lost`` marker never waits)."""
        with self._cond:
            while (
                len(self._items) >= self.limit and not self._closed and not isinstance(item, Lost)
            ):
                self._cond.wait(0.5)
            if self._closed:
                return
            self._items.append(item)
            if not self._woken:
                self._woken = True
                self.loop.call_soon_threadsafe(self._event.set)

    @property
    def pending(self) -> int:
        """Items waiting now (read without the lock: a hint, exact enough to decide to send)."""
        return len(self._items)

    def take(self) -> list[Item]:
        """From the event loop: everything buffered now (maybe nothing)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._woken = False
            self._event.clear()
            self._cond.notify_all()
        return items

    async def wait(self, timeout: float | None) -> list[Item]:
        """Wait up to ``timeout`` seconds for items, then take them."""
        if not self._items:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.take()

    def close(self) -> None:
        """Release a waiting paho thread; later puts are dropped (the client is going away)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
