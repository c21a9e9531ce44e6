"""S7 in: poll tags of a Siemens S7 PLC, packed into as few PDU-sized requests as fit."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from flowengine.node import NodeConfig, Source
from flowengine.nodes.s7.client import S7Client
from flowengine.nodes.s7.config import S7Config
from flowengine.types import Result


class S7InConfig(NodeConfig, S7Config):
    """PLC connection (`host`, `port`, `rack`/`slot` or TSAPs) and the tags to poll."""


class S7In(Source[S7InConfig]):
    """Values of S7 tags in the long format, one timestamp (UTC, the read's) per poll.

    Columns: timestamp, sensor, value, quality (good/bad), status (why a value is bad: the
    PLC's reason, e.g. "Object does not exist (0x0a)", or "value is not finite"), source
    (``s7://host:port``) and address. Tags are merged into blocks and packed into requests of
    the negotiated PDU size; a tag whose read fails is bad while the others go on. A lost
    connection raises, so the runtime shows `retrying` and reconnects with backoff.
    """

    icon = "memory"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("snap7", "s7"),)
    client: S7Client | None = None
    _due: float = 0.0

    async def start(self) -> None:
        self.client = S7Client(self.config)
        await self.client.connect()
        self._due = time.monotonic()
        client = self.client
        self.ctx.status(
            f"{len(client.tags)} tags in {len(client.packets)} request(s), PDU {client.pdu}"
        )

    async def read(self) -> Result:
        assert self.client is not None  # the runtime calls start first
        if (delay := self._due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due + self.config.poll_interval, time.monotonic())
        frame = await self.client.read()
        self.ctx.count("requests", len(self.client.packets))
        if bad := int((frame["quality"] == "bad").sum()):
            self.ctx.count("bad_values", bad)
        return frame

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
