"""The seed's ``OPCUAConnector`` over the nodes' ``OpcuaClient``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.opcua.client import OpcuaClient
from flowengine.nodes.opcua.config import OpcuaConfig

log = logging.getLogger("flowengine.connectors")


class OPCUAConnector(BaseDataConnector):
    """The seed's OPC UA connector: ``read_data`` polls every node in one request (or, with
    ``mode: subscription``, returns what arrived since the last call).

    With several ``server_url``s, ``read_data`` connects to the next server that answers when
    the connection is lost and moves back to the primary once it is back; ``active_server``
    names the one that serves and ``failovers`` counts the switches to a backup.
    """

    label = "OPC UA"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = OpcuaConfig.model_validate(self.config)
        self.client = OpcuaClient(self.settings)

    @property
    def active_server(self) -> str:
        """The server that serves (or served last), with its role when there are several."""
        return self.client.endpoints.label()

    @property
    def failovers(self) -> int:
        """Switches to a backup so far."""
        return self.client.endpoints.failovers

    async def _connect(self) -> None:
        await self.client.connect(subscribe=self.settings.mode == "subscription")

    async def _read(self) -> pd.DataFrame | None:
        subscribe, client = self.settings.mode == "subscription", self.client
        if client.endpoints.several:
            if client.gone and not client.buffer:
                await client.connect(subscribe=subscribe)  # fail over
            else:
                await client.failback(subscribe=subscribe)
        if subscribe:
            frames = await self.client.take(0)
        else:
            frames = await self.client.read()
        if frames is None:
            return None
        if frames.errors is not None:  # non_finite: error; the seed's API has no error port
            log.warning("%d non-finite value(s) left out", len(frames.errors))
        return frames.rows.assign(source=self.name)  # the seed: the connector's name

    async def _disconnect(self) -> None:
        await self.client.close()
