"""The seed's ``MQTTConnector``: subscribes in the background over the nodes' ``MqttClient``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.logs import RateLimiter
from flowengine.node import option
from flowengine.nodes.mqtt.client import MqttClient
from flowengine.nodes.mqtt.config import MqttConnection, MqttParsing
from flowengine.nodes.mqtt.handoff import Lost
from flowengine.nodes.mqtt.parse import Parser, log_bad

#: The name the seed's messages have always been logged under.
log = logging.getLogger("flowengine.nodes.mqtt.client")


class MQTTConfig(MqttConnection, MqttParsing):
    """The seed's MQTT dict (broker_host, broker_port, topic, qos, username, password,
    keep_alive) plus every ``mqtt_in`` connection and parsing key."""

    buffer: int = option(1_000_000, ge=1, description="Messages held between read_data calls.")


class MQTTConnector(BaseDataConnector):
    """Subscribes in the background; ``read_data`` returns the messages since the last call."""

    label = "MQTT"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = MQTTConfig.model_validate(self.config)
        self._mqtt: MqttClient | None = None
        self._parser = Parser(self.settings, self.name)
        self._limiter = RateLimiter(5.0)

    async def _connect(self) -> None:
        cfg = self.settings
        self._mqtt = MqttClient(cfg)
        await self._mqtt.connect([(t, cfg.qos) for t in cfg.filters()], cfg.buffer)

    async def _read(self) -> pd.DataFrame | None:
        assert self._mqtt is not None and self._mqtt.handoff is not None
        for item in self._mqtt.handoff.take():
            if isinstance(item, Lost):
                log.error("%s", item.reason)
                self._active = False
                continue
            self._parser.add(*item)
        bad = self._parser.take_bad()
        if bad is not None:
            log_bad(self._limiter, log, bad)
        return self._parser.take_rows()

    async def _disconnect(self) -> None:
        if self._mqtt is not None:
            await self._mqtt.disconnect()
            self._mqtt = None
