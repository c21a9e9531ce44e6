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
from flowengine.nodes.mqtt.link import endpoints_of
from flowengine.nodes.mqtt.parse import Parser, log_bad

#: The name the seed's messages have always been logged under.
log = logging.getLogger("flowengine.nodes.mqtt.client")


class MQTTConfig(MqttConnection, MqttParsing):
    """The seed's MQTT dict (broker_host, broker_port, topic, qos, username, password,
    keep_alive) plus every ``mqtt_in`` connection and parsing key."""

    buffer: int = option(1_000_000, ge=1, description="Messages held between read_data calls.")


class MQTTConnector(BaseDataConnector):
    """Subscribes in the background; ``read_data`` returns the messages since the last call.

    With several ``broker_host``s, a lost connection is failed over to the next broker that
    answers (by ``read_data``; the messages received before go out first), and the primary
    serves again once it is back; ``active_server`` names the broker that serves and
    ``failovers`` counts the switches to a backup.
    """

    label = "MQTT"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        super().__init__(config, name)
        self.settings = MQTTConfig.model_validate(self.config)
        self._mqtt: MqttClient | None = None
        self._parser = Parser(self.settings, self.name)
        self._limiter = RateLimiter(5.0)
        self.endpoints = endpoints_of(self.settings, log)
        self._lost = False

    @property
    def active_server(self) -> str:
        """The broker that serves (or served last), with its role when there are several."""
        return self.endpoints.label()

    @property
    def failovers(self) -> int:
        """Switches to a backup so far."""
        return self.endpoints.failovers

    async def _connect(self) -> None:
        cfg = self.settings
        self._mqtt = MqttClient(cfg, endpoints=self.endpoints)
        await self._mqtt.connect([(t, cfg.qos) for t in cfg.filters()], cfg.buffer)
        self._lost = False

    async def _read(self) -> pd.DataFrame | None:
        if self._mqtt is None:  # no broker answered the last failover: try again
            await self._fail_over()
            if self._mqtt is None:
                return None
        handoff = self._mqtt.handoff
        assert handoff is not None
        items = handoff.take()
        if items:
            self._parser.add_many(items)
        if handoff.lost is not None and not self._lost:
            log.error("%s", handoff.lost.reason)
            self._lost = True
        bad = self._parser.take_bad()
        if bad is not None:
            log_bad(self._limiter, log, bad)
        rows = self._parser.take_rows()
        if self._lost:
            await self._fail_over()
        return rows

    async def _fail_over(self) -> None:
        """One broker: not connected until ``connect`` (the seed's way). Several: connect to
        the next that answers now; if none does, the next ``read_data`` tries again."""
        if not self.endpoints.several:
            self._active = False
            return
        await self._disconnect()
        try:
            await self._connect()
        except ConnectionError as exc:
            log.error("%s", exc)
            await self._disconnect()

    async def _disconnect(self) -> None:
        if self._mqtt is not None:
            await self._mqtt.disconnect()
            self._mqtt = None
