"""The seed-style ``ModbusConnector`` over the nodes' ``ModbusClient``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.modbus.client import ModbusClient
from flowengine.nodes.modbus.config import ModbusConfig
from flowengine.nodes.modbus.plan import plan_requests

log = logging.getLogger("flowengine.connectors")


class ModbusConnector(BaseDataConnector):
    """The seed's connector API for Modbus TCP: ``read_data`` polls the whole register map
    once (the same packed requests and long-format rows as ``modbus_in``).

        modbus = ModbusConnector({"host": "10.0.3.21", "port": 502, "devices": [
            {"device_id": 1, "fields": [
                {"name": "furnace_temp", "register": "holding", "address": 0,
                 "type": "float32"}]}]})
        if modbus.connect():
            frame = modbus.read_data()
            modbus.disconnect()

    After a lost connection the next ``read_data`` connects again.
    """

    label = "Modbus"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = ModbusConfig.model_validate(self.config)
        self.client = ModbusClient(self.settings)
        self.requests = plan_requests(self.settings)

    def target(self) -> str:
        """ "Failed to connect to Modbus device HOST:PORT: why"."""
        return f"Modbus device {self.settings.address}"

    def reason(self, exc: BaseException) -> str:
        """The client's own "Failed to connect to Modbus device HOST:PORT: " prefix dropped."""
        text = super().reason(exc)
        return text.removeprefix(f"Failed to connect to {self.target()}: ")

    async def _connect(self) -> None:
        await self.client.connect()

    async def _read(self) -> pd.DataFrame | None:
        if not self.client.connected:
            await self.client.connect()
        frames = await self.client.poll(self.requests, self.settings.non_finite)
        for failed in frames.failed:
            log.warning("Modbus block failed: %s", failed)
        if frames.errors is not None:  # non_finite: error; the seed's API has no error port
            log.warning("%d non-finite value(s) left out", len(frames.errors))
        return frames.rows

    async def _disconnect(self) -> None:
        await self.client.close()
