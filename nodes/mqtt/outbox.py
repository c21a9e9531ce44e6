"""QoS 1/2 messages published and not acknowledged yet, tracked in bulk.

The client keeps one outbox across its connections and batches: each PUBACK (or PUBCOMP)
removes its message, and the one waiter, the batch being published, wakes once few enough are
left (room for more in its window, or none), not once per message. A new connection sends what
is left again (see ``Link.resend``). Messages of earlier batches may still be here while the
next batch is published (``mqtt_out``'s ``confirm: window``): the window counts them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

#: MQTT message ids are 16 bits and 0 is not one.
MAX_MID = 65535


@dataclass(slots=True)
class Entry:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    #: QoS 2: the broker sent PUBREC; what is left is our PUBREL and its PUBCOMP.
    released: bool = False


class Outbox:
    """Unacknowledged messages by message id, in publish order."""

    def __init__(self) -> None:
        self.items: dict[int, Entry] = {}
        self._next = 0
        self._waiter: asyncio.Future[None] | None = None
        self._target = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, messages: Sequence[tuple[str, bytes]], qos: int, retain: bool) -> list[int]:
        """Give each message a free message id and keep it until acknowledged."""
        if len(self.items) + len(messages) > MAX_MID:
            raise ValueError(f"more than {MAX_MID} messages unacknowledged")
        items, mids, mid = self.items, [], self._next
        for topic, payload in messages:
            mid = mid % MAX_MID + 1
            while mid in items:
                mid = mid % MAX_MID + 1
            items[mid] = Entry(topic, payload, qos, retain)
            mids.append(mid)
        self._next = mid
        return mids

    def done(self, mid: int) -> None:
        """PUBACK/PUBCOMP: forget ``mid`` (an unknown id is a duplicate ack: ignored)."""
        if self.items.pop(mid, None) is not None and len(self.items) <= self._target:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def released(self, mid: int) -> None:
        """PUBREC: the broker has the QoS 2 message; only the release is left."""
        entry = self.items.get(mid)
        if entry is not None:
            entry.released = True

    def at_most(self, target: int) -> asyncio.Future[None]:
        """A future done once at most ``target`` messages are unacknowledged (one waiter: the
        batch being published)."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._target = target
        if len(self.items) <= target:
            waiter.set_result(None)
        return waiter

    def forget(self, mids: Sequence[int]) -> None:
        """Drop the messages ``mids`` (a batch that failed: it goes to the error port instead,
        none of it is sent later); earlier batches' messages stay."""
        for mid in mids:
            self.items.pop(mid, None)

    def pending(self) -> list[tuple[str, bytes, int, bool]]:
        """What is unacknowledged, in publish order: ``(topic, payload, qos, retain)``."""
        return [(e.topic, e.payload, e.qos, e.retain) for e in self.items.values()]

    def take(self) -> list[tuple[str, bytes]]:
        """Forget everything unacknowledged and return it, in order (to publish it anew on
        another broker, which never saw these message ids)."""
        taken = [(e.topic, e.payload) for e in self.items.values()]
        self.items.clear()
        return taken
