"""The bounded buffer of received messages between a connection and the flow, both on the
event loop.

A connection adds everything one socket read brought in one call (``put_many``) and wakes
the reader once, not per message. When the buffer is full the connection stops reading the
socket (``pause_reading``) until the reader takes what is there: the broker then holds the
rest (its queue limits decide, see docs/connectors-mqtt.md) instead of this process dropping
it. The buffer may exceed its limit by the messages of that one read.

A lost connection is not a message: it is noted in ``lost`` and wakes the reader, which hands
on what arrived before it first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

#: A received message: (topic, payload, receive time in ns since the epoch).
Item = tuple[str, bytes, int]


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Lost:
    """Why the connection that filled the buffer ended."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Handoff:
    """Bounded buffer of received messages; see the module docstring."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lost: Lost | None = None
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused: list[Callable[[], None]] = []
        self._closed = False
        #: The reader's loop, looked up once (in Python 3.11 each lookup is a getpid call).
        self._loop: asyncio.AbstractEventLoop | None = None

    def put_many(self, items: Iterable[Item], pause: Callable[[], Callable[[], None]]) -> None:
        """Add the messages of one read; when that fills the buffer, ``pause()`` the reading
        (it returns how to resume it)."""
        if self._closed:
            return
        self._items.extend(items)
        self._wake()
        if len(self._items) >= self.limit:
            self._paused.append(pause())

    def put_lost(self, lost: Lost) -> None:
        """The connection ended: the reader sees it once it has taken what came before."""
        self.lost = lost
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def pending(self) -> int:
        """Messages waiting now."""
        return len(self._items)

    def take(self) -> list[Item]:
        """Everything buffered now (maybe nothing); reading resumes if it was paused."""
        items = list(self._items)
        self._items.clear()
        paused, self._paused = self._paused, []
        for resume in paused:
            resume()
        return items

    async def wait(self, timeout: float | None) -> list[Item]:
        """Wait up to ``timeout`` seconds for messages (or the connection's end), then take."""
        if not self._items and self.lost is None and not self._closed:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            if timeout is None:
                await waiter
            elif timeout > 0:  # a timer, cheaper than wait_for: this runs per batch
                timer = loop.call_later(timeout, _settle, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
            self._waiter = None
        return self.take()

    def close(self) -> None:
        """Take nothing more (the client is going away); a paused reading resumes."""
        self._closed = True
        self._wake()
        paused, self._paused = self._paused, []
        for resume in paused:
            resume()
