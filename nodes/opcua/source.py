"""OPC UA in: poll all nodes in one request per cycle, or subscribe to monitored items."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import pandas as pd

from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source
from flowengine.nodes.opcua.client import OpcuaClient
from flowengine.nodes.opcua.config import OpcuaConfig
from flowengine.nodes.opcua.parse import Frames
from flowengine.types import Batch, Result


class OpcuaInConfig(NodeConfig, OpcuaConfig):
    """The seed's OPC UA keys (`server_url`, `nodes`, `username`, `password`,
    `sampling_interval`) plus mode, subscription tuning and security."""


class OpcuaIn(Source[OpcuaInConfig]):
    """Values of OPC UA nodes in the long format, with source timestamps and status.

    Columns: timestamp (source time, server time as fallback), sensor, value, quality
    (good/uncertain/bad), status_code, source and node_id. A lost connection raises, so the
    runtime shows `retrying` and reconnects (and resubscribes) with backoff. A bad value or
    timestamp is judged per reading (see `non_finite`): it never fails the read.

    With several `server_url`s the reconnect goes to the first other server that answers,
    and while a backup serves the primary is tried every `failback_interval` (see
    docs/connectors-opcua.md, Failover); the status names the server that serves.
    """

    icon = "precision_manufacturing"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("asyncua", "opcua"),)
    client: OpcuaClient | None = None
    _due: float = 0.0
    limiter: RateLimiter

    _shown = 0

    async def start(self) -> None:
        self.limiter = RateLimiter(5.0)
        if self.client is None:  # kept across reconnects: which server was lost, values held
            self.client = OpcuaClient(self.config, logger=self.ctx.log, count=self.ctx.count)
        await self.client.connect(subscribe=self.config.mode == "subscription")
        self._due = time.monotonic()
        self.ctx.status(f"{len(self.client.nodes)} nodes, {self.config.mode}")

    async def read(self) -> Result:
        assert self.client is not None  # the runtime calls start first
        cfg = self.config
        endpoints = self.client.endpoints
        if endpoints.several:
            await self.client.failback(subscribe=cfg.mode == "subscription")
            if self._shown != endpoints.connects:
                self._shown = endpoints.connects
                nodes = f"{len(self.client.nodes)} nodes, {cfg.mode}"
                self.ctx.status(f"{nodes}, connected to {endpoints.label()}")
        if cfg.mode == "subscription":  # emitted as soon as values are there
            frames = await self.client.next_values(min(cfg.linger, cfg.batch_interval))
            return None if frames is None else self._result(frames)
        if (delay := self._due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due + cfg.sampling_interval, time.monotonic())
        return self._result(await self.client.read())

    def _result(self, frames: Frames) -> Result:
        """Rows to ``out``; non-finite readings (``non_finite: error``) to ``error``, each
        counted as an error of this node and in the ``non_finite`` counter, logged rate-limited."""
        errors = frames.errors
        if errors is None:
            return frames.rows
        reason = str(errors["error"].iloc[-1])
        self.ctx.error(f"NonFinite: {reason}", len(errors))
        self.ctx.count("non_finite", len(errors))
        sensors = ", ".join(map(str, errors["sensor"].unique()[:5]))
        self.limiter.log(
            self.ctx.log, logging.WARNING, lambda: f"{len(errors)} non-finite value(s): {sensors}"
        )
        result: dict[str, pd.DataFrame | Batch] = {
            "error": Batch(errors, origin=self.ctx.node_id, error="value is not finite")
        }
        if not frames.rows.empty:
            result["out"] = frames.rows
        return result

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
