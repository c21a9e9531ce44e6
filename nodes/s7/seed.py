"""The seed-style ``S7Connector`` over the nodes' ``S7Client``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.s7.client import S7Client
from flowengine.nodes.s7.config import S7Config


class S7Connector(BaseDataConnector):
    """A Siemens S7 PLC the seed's way: ``S7Connector({"host": ..., "rack": 0, "slot": 1,
    "tags": [{"address": "DB1.DBD0", "sensor": "furnace_temp"}]})``; ``read_data`` reads every
    tag once (the same rows as ``s7_in``)."""

    label = "S7"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = S7Config.model_validate(self.config)
        self.client = S7Client(self.settings)

    def target(self) -> str:
        """ "Failed to connect to S7 PLC HOST:PORT: reason"."""
        return f"S7 PLC {self.settings.where}"

    async def _connect(self) -> None:
        await self.client.connect()

    async def _read(self) -> pd.DataFrame | None:
        return await self.client.read()

    async def _disconnect(self) -> None:
        await self.client.close()
