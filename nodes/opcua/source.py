"""OPC UA in: poll all nodes in one request per cycle, or subscribe to monitored items."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import pandas as pd
from flowengine.nodes.opcua.client import OpcuaClient
from flowengine.nodes.opcua.config import OpcuaConfig

from flowengine.node import NodeConfig, Source


class OpcuaInConfig(NodeConfig, OpcuaConfig):
    """The seed's OPC UA keys (`server_url`, `nodes`, `username`, `password`,
    `sampling_interval`) plus mode, subscription tuning and security."""


class OpcuaIn(Source[OpcuaInConfig]):
    """Values of OPC UA nodes in the long format, with source timestamps and status.

    Columns: timestamp (source time, server time as fallback), sensor, value, quality
    (good/uncertain/bad), status_code, source and node_id. A lost connection raises, so the
    runtime shows `retrying` and reconnects (and resubscribes) with backoff.
    """

    requires: ClassVar[tuple[tuple[str, str], ...]] = (("asyncua", "opcua"),)
    client: OpcuaClient | None = None
    _due: float = 0.0

    async def start(self) -> None:
        self.client = OpcuaClient(self.config, logger=self.ctx.log, count=self.ctx.count)
        await self.client.connect()
        if self.config.mode == "subscription":
            await self.client.subscribe()
        self._due = time.monotonic()
        self.ctx.status(f"{len(self.client.nodes)} nodes, {self.config.mode}")

    async def read(self) -> pd.DataFrame | None:
        assert self.client is not None  # the runtime calls start first
        cfg = self.config
        if cfg.mode == "subscription":
            return await self.client.take(cfg.batch_interval)
        if (delay := self._due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due + cfg.sampling_interval, time.monotonic())
        return await self.client.read()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
