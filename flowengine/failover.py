"""Several servers for one connection (OPC UA servers, MQTT brokers): which one serves, the
order to try them in, and a log line and counter per switch. In the core so that every
protocol family fails over the same way.

The first server is the primary, the others are backups in order. A connection goes to the first
that answers; when the serving one is lost, the others are tried before it (the primary first);
while a backup serves, the primary is checked every ``failback_interval`` seconds and the
connection moves back once it answers. The object lives as long as its node (not its
connection), so a restart by the runtime still knows which server was lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Endpoints:
    """The configured servers in preference order and the one that serves now."""

    def __init__(
        self,
        names: Sequence[str],
        failback_interval: float,
        log: Logger,
        count: Callable[[str, int], None] | None = None,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        #: How logs and status name each server (passwords masked).
        self.names = list(names)
        self.failback_interval = failback_interval
        self.log = log
        self._count = count
        #: Called after each connection (a node shows the server that serves).
        self.on_connect = on_connect
        #: Index of the server that serves (or served last); None before the first connection.
        self.active: int | None = None
        self.failovers = 0
        self.failbacks = 0
        #: Connections made so far: a node shows its status again when this changes.
        self.connects = 0
        self._checked = time.monotonic()

    @property
    def several(self) -> bool:
        """True when there is somewhere to fail over to."""
        return len(self.names) > 1

    def label(self, index: int | None = None) -> str:
        """``mqtt-b:1883 (backup 1 of 2)``: a server and its role (its name alone when it
        is the only one)."""
        i = (self.active or 0) if index is None else index
        if not self.several:
            return self.names[i]
        role = "primary" if i == 0 else f"backup {i} of {len(self.names)}"
        return f"{self.names[i]} ({role})"

    def order(self) -> list[int]:
        """Indexes to try, in preference order, the one that served last (now lost) last."""
        rest = [i for i in range(len(self.names)) if i != self.active]
        return rest if self.active is None else [*rest, self.active]

    def connected(self, index: int, skipped: Sequence[str] = ()) -> None:
        """Record a connection to server ``index``; a switch is logged and counted.

        ``skipped`` says why the servers tried before it were passed over.
        """
        before, self.active = self.active, index
        self.connects += 1
        self._checked = time.monotonic()
        if self.on_connect is not None:
            self.on_connect()
        if index == (0 if before is None else before):
            return
        if index == 0:
            self.failbacks += 1
            self._add("failbacks")
            self.log.warning(
                "failback: %s serves again, after %s", self.label(0), self.label(before)
            )
            return
        self.failovers += 1
        self._add("failovers")
        gone = f"{self.label(0)} did not answer" if before is None else f"{self.label(before)} lost"
        why = f"; {'; '.join(skipped)}" if skipped else ""
        self.log.warning("failover: %s, %s serves%s", gone, self.label(index), why)

    def failback_due(self) -> bool:
        """True once per ``failback_interval`` while a backup serves: time to try the primary."""
        if not self.several or not self.active or self.failback_interval <= 0:
            return False
        now = time.monotonic()
        if now - self._checked < self.failback_interval:
            return False
        self._checked = now
        return True

    def _add(self, name: str) -> None:
        if self._count is not None:
            self._count(name, 1)
