"""The seed-style ``EtherNetIPConnector`` over the nodes' ``EnipClient``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.enip.client import EnipClient, reason
from flowengine.nodes.enip.config import EnipConfig
from flowengine.nodes.enip.source import frame_of


class EtherNetIPConnector(BaseDataConnector):
    """Logix tags as the seed's connectors read them: ``connect()``, ``read_data()`` (every tag
    once, several per request, as ``enip_in``'s rows), ``disconnect()``,
    ``is_connection_active()``.

        plc = EtherNetIPConnector({"host": "10.0.0.5", "tags": ["Line3.Temp", "Temps{10}"]})
        if plc.connect():
            frame = plc.read_data()
            plc.disconnect()
    """

    label = "EtherNet/IP"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = EnipConfig.model_validate(self.config)
        self.client = EnipClient(self.settings)

    def target(self) -> str:
        """ "Failed to connect to EtherNet/IP device HOST:PORT: reason"."""
        return f"EtherNet/IP device {self.settings.address}"

    def reason(self, exc: BaseException) -> str:
        return reason(exc).removeprefix(f"{self.settings.address}: ")

    async def _connect(self) -> None:
        await self.client.connect()

    async def _read(self) -> pd.DataFrame | None:
        return frame_of(await self.client.read(), self.settings.address)

    async def _disconnect(self) -> None:
        await self.client.close()
