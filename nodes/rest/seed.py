"""The seed's ``RESTConnector`` over the nodes' ``RestPoller``."""

from __future__ import annotations

import logging

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.rest.client import RestPoller, RestSettings
from flowengine.nodes.rest.parse import RecordMap

#: The name the seed's messages have always been logged under.
log = logging.getLogger("flowengine.nodes.rest.client")


class RESTConnector(BaseDataConnector):
    """The seed's REST connector: ``base_url``, ``endpoints``, ``headers``, ``timeout``."""

    label = "REST"
    poller: RestPoller | None = None

    def _poller(self) -> RestPoller:
        cfg = self.config
        settings = RestSettings(
            headers=dict(cfg.get("headers") or {}),
            timeout=float(cfg.get("timeout", 10.0)),
            token=cfg.get("token"),
            username=cfg.get("username"),
            password=cfg.get("password"),
            retries=int(cfg.get("retries", 3)),
        )
        mapping = RecordMap(
            records_path=cfg.get("records_path", ""),
            sensor_field=cfg.get("sensor_field", "sensor"),
            value_field=cfg.get("value_field", "value"),
            timestamp_field=cfg.get("timestamp_field", "timestamp"),
            timestamp_unit=cfg.get("timestamp_unit", "auto"),
        )
        return RestPoller(cfg["base_url"], cfg.get("endpoints") or [""], settings, mapping)

    async def _connect(self) -> None:
        self.poller = self._poller()
        await self.poller.open()

    async def _read(self) -> pd.DataFrame | None:
        assert self.poller is not None  # BaseDataConnector reads only once connected
        frame, errors = await self.poller.poll()
        for error in errors:  # the seed's two messages: the server failed, or its payload did
            if error.status:
                log.error("Failed to read from REST server: %s", error)
            else:
                log.warning("Could not parse REST response: %s", error)
        return frame

    async def _disconnect(self) -> None:
        if self.poller is not None:
            await self.poller.close()
