"""Readings a newly connected OPC UA server sends again (its subscription starts with each
node's current value): recognised and dropped after a failover or failback. Which server serves
is :class:`flowengine.failover.Endpoints`' business.
"""

from __future__ import annotations

from collections import deque
from typing import Any

#: Readings per sensor remembered to recognise the same ones from the next server.
RECENT = 8


class Recent:
    """The last readings delivered per sensor, to drop the ones a newly connected server sends
    again: its subscription starts with each node's current value, which the previous server
    may have delivered already, and while both are subscribed (a switch back) they overlap.

    Only exact repeats (same source timestamp, value and status) at the start of each sensor's
    stream from the new server are dropped; the first reading that is new ends that.
    """

    def __init__(self) -> None:
        self.seen: dict[str, deque[tuple[Any, ...]]] = {}
        self.catching_up: set[str] = set()

    def switched(self) -> None:
        """A new server's stream starts: its first readings may repeat delivered ones."""
        self.catching_up = set(self.seen)

    def fresh(self, sensor: str, key: tuple[Any, ...]) -> bool:
        """False for a repeat of a delivered reading (drop it); else remember it."""
        seen = self.seen.get(sensor)
        if seen is None:
            seen = self.seen[sensor] = deque(maxlen=RECENT)
        elif sensor in self.catching_up:
            if _contains(seen, key):
                return False
            self.catching_up.discard(sensor)
        seen.append(key)
        return True


def _contains(seen: deque[tuple[Any, ...]], key: tuple[Any, ...]) -> bool:
    """``key in seen``, for values whose ``==`` is odd (arrays): those never match."""
    try:
        return any(bool(k == key) for k in seen)
    except (TypeError, ValueError):
        return False
