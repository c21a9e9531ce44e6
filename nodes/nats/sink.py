"""NATS out: publish each batch to a JetStream stream (Arrow IPC or JSON rows), optionally
split into partitions by a key column, and wait for the stream's acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from pydantic import model_validator

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.nats.client import NatsLink, is_lost
from flowengine.nodes.nats.codec import (
    ARROW,
    CONTENT_TYPE,
    JSON,
    MSG_ID,
    Compression,
    Format,
    msg_id,
    pieces,
)
from flowengine.nodes.nats.config import NatsConnection, NatsStream
from flowengine.nodes.nats.partition import split, subject_of
from flowengine.nodes.nats.stream import ensure_stream
from flowengine.types import Batch

#: Seconds between connection attempts while a write waits for the server to come back.
RECONNECT_PAUSE = 0.5


class NatsOutConfig(NodeConfig, NatsConnection, NatsStream):
    format: Format = option(
        "arrow",
        description="`arrow`: Arrow IPC (types kept, compact, fast); `json`: an array of row "
        "objects (timestamps ISO 8601) for consumers that do not read Arrow.",
    )
    compression: Compression = option(
        "auto",
        advanced=True,
        description="Arrow buffer compression: `auto` uses zstd from 64 rows on (4x smaller "
        "for 1,000 rows), none below (it would grow); readers decode either by themselves.",
    )
    partition_by: str | None = option(
        None,
        description="Column whose value picks each row's partition: rows travel on "
        "`<subject>.<partition>`, so all rows of one key reach one consumer.",
        examples=["line"],
    )
    partitions: int | None = option(
        None,
        ge=1,
        le=4096,
        description="Number of partitions (with `partition_by`); recorded in the stream, fixed "
        "once it exists.",
    )
    dedup: bool = option(
        True,
        description="Send a `Nats-Msg-Id` (a digest of the payload): a batch sent again "
        "within `duplicate_window` (a retry, a replay after a crash) is dropped by the server.",
    )
    ack_timeout: float = option(
        10.0, gt=0, advanced=True, description="Seconds to wait for the stream's acknowledgement."
    )
    reconnect_timeout: float = option(
        60.0,
        ge=0,
        description="When the server is gone (a restart), a write waits this many seconds for "
        "it (status `retrying`) before it fails (to `buffer:` or the error port); 0: at once.",
    )

    @model_validator(mode="after")
    def _partitioning(self) -> NatsOutConfig:
        if (self.partition_by is None) != (self.partitions is None):
            raise ValueError("partition_by and partitions go together")
        return self


class NatsOut(Sink[NatsOutConfig]):
    """Publish batches to JetStream with acknowledgements: a batch counts as written only
    when the stream has stored every message of it. The stream is created from the config
    when missing, and checked (never changed) when it exists."""

    icon = "hub"
    requires = (("nats", "nats"),)
    io = True  # replaced by a feeder/capture in `flowengine test`
    link: NatsLink | None = None

    async def start(self) -> None:
        cfg = self.config
        self.link = NatsLink(cfg)
        await self._connect()
        self.ctx.status(f"publishing to {cfg.subject}{'.*' if cfg.partitions else ''}")

    async def _connect(self) -> None:
        cfg, link = self.config, self.link
        assert link is not None
        await link.connect()
        try:
            done = await ensure_stream(link, cfg, cfg.partitions, cfg.partition_by)
        except Exception:
            await link.close()
            raise
        self.ctx.log.info("%s on NATS server %s", done, link.url)

    def messages(self, frame: pd.DataFrame, limit: int) -> list[tuple[str, bytes]]:
        """``(subject, payload)`` of each message of a batch, partition by partition."""
        cfg = self.config
        if cfg.partition_by is None or cfg.partitions is None:
            parts: list[tuple[int | None, pd.DataFrame]] = [(None, frame)]
        else:
            parts = list(split(frame, cfg.partition_by, cfg.partitions))
        return [
            (subject_of(cfg.subject, p), payload)
            for p, part in parts
            for payload in pieces(part, cfg.format, cfg.compression, limit)
        ]

    async def write(self, batch: Batch) -> None:
        if batch.frame.empty:
            return
        clock = self.ctx.clock
        deadline = clock.monotonic() + self.config.reconnect_timeout
        waited = False
        while True:
            try:
                await self._publish(batch.frame)
                break
            except Exception as exc:
                if not is_lost(exc) or clock.monotonic() >= deadline:
                    raise
                if not waited:
                    self.ctx.log.warning("publish failed: %s; waiting for the server", exc)
                waited = True
                self.ctx.status(f"waiting for the NATS server: {exc}", "retrying")
                await clock.sleep(RECONNECT_PAUSE)
        if waited:
            self.ctx.status("reconnected", "ok")

    async def _publish(self, frame: pd.DataFrame) -> None:
        """Publish every message of ``frame`` and wait for all acknowledgements; reconnect
        first when the connection was lost."""
        link = self.link
        assert link is not None  # the runtime calls start first
        if not link.alive:
            await self._connect()
            self.ctx.count("reconnects")
        cfg = self.config
        kind = ARROW if cfg.format == "arrow" else JSON
        sends = []
        for subject, payload in self.messages(frame, link.nc.max_payload):
            headers = {CONTENT_TYPE: kind}
            if cfg.dedup:
                headers[MSG_ID] = msg_id(subject, payload)
            sends.append(
                link.js.publish(
                    subject, payload, timeout=cfg.ack_timeout, stream=cfg.stream, headers=headers
                )
            )
        acks: list[Any] = await link.guard(asyncio.gather(*sends))
        self.ctx.count("published", len(acks))
        if repeats := sum(1 for ack in acks if ack.duplicate):
            self.ctx.count("duplicates_dropped", repeats)

    def is_transient(self, exc: Exception) -> bool:
        """The server is away or slow (retry later); not a batch the stream refuses."""
        return is_lost(exc)

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
