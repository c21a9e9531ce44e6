"""Modbus in: poll a register map (several unit ids behind one gateway) in packed requests."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import pandas as pd

from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source
from flowengine.nodes.modbus.client import Frames, ModbusClient
from flowengine.nodes.modbus.config import ModbusConfig
from flowengine.nodes.modbus.plan import Request, plan_requests
from flowengine.types import Batch, Result


class ModbusInConfig(NodeConfig, ModbusConfig):
    """A Telegraf-style register map: `devices` (unit ids), each with `fields` (`name`,
    `register`, `address`, `type`, `byte_order`, `scale`, `offset`), polled every `interval`."""


class ModbusIn(Source[ModbusInConfig]):
    """Values of Modbus coils and registers in the long format, one row per field and poll.

    Columns: timestamp (UTC, when the block arrived), sensor, value, quality, source (device
    name or host:port/unit), device_id, register, address, exception_code and error. Fields are
    packed into as few requests as the protocol allows (`max_gap`, `max_registers`). A block
    the device refuses gives its fields quality `bad` with the exception code while the other
    blocks go on; a lost connection raises, so the runtime shows `retrying` and reconnects.
    """

    icon = "settings_input_component"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("pymodbus", "modbus"),)
    client: ModbusClient | None = None
    requests: list[Request]
    limiter: RateLimiter
    _due: float = 0.0

    async def start(self) -> None:
        self.limiter = RateLimiter(10.0)
        self.requests = plan_requests(self.config)
        self.client = ModbusClient(self.config)
        await self.client.connect()
        self._due = time.monotonic()
        fields = sum(len(d.fields) for d in self.config.devices)
        self.ctx.status(f"{fields} fields in {len(self.requests)} requests")

    async def read(self) -> Result:
        assert self.client is not None  # the runtime calls start first
        if (delay := self._due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due + self.config.interval, time.monotonic())
        return self._result(await self.client.poll(self.requests, self.config.non_finite))

    def _result(self, frames: Frames) -> Result:
        """Rows to ``out``; refused blocks counted and logged (rate-limited); non-finite
        values (``non_finite: error``) to ``error``."""
        if frames.failed:
            self.ctx.count("bad_blocks", len(frames.failed))
            first, more = frames.failed[0], len(frames.failed) - 1
            extra = f" and {more} more block(s)" if more else ""
            self.limiter.log(self.ctx.log, logging.WARNING, lambda: f"{first}{extra}")
        errors = frames.errors
        if errors is None:
            return frames.rows
        reason = str(errors["error"].iloc[-1])
        self.ctx.error(f"NonFinite: {reason}", len(errors))
        self.ctx.count("non_finite", len(errors))
        result: dict[str, pd.DataFrame | Batch] = {
            "error": Batch(errors, origin=self.ctx.node_id, error="value is not finite")
        }
        if not frames.rows.empty:
            result["out"] = frames.rows
        return result

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
