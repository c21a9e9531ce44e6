"""One paho client to one broker: what :class:`~flowengine.nodes.mqtt.client.MqttClient`
connects, and with several brokers switches between."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowengine.extras import require
from flowengine.failover import Endpoints
from flowengine.nodes.mqtt.config import MqttConnection

#: MQTT 3.1.1 CONNACK return codes by paho's reason name, so messages keep the seed's numbers.
_V3_CODES = {
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}

#: Messages a sink publishes before waiting for their acks (MQTT message ids are 16-bit).
ACK_WINDOW = 500
FAILED = "MQTT connection failed"

log = logging.getLogger("flowengine.nodes.mqtt.client")


@dataclass(eq=False)
class Link:
    """One paho client to one broker; paho hands it to every callback as ``userdata``."""

    index: int
    host: str
    port: int
    connack: asyncio.Future[None]
    client: Any = None
    sub_mid: int = -1
    connected: bool = False
    #: Switched away from: messages it delivers from now on are not taken (see ``retire``).
    closing: bool = False


def endpoints_of(
    cfg: MqttConnection,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
    count: Callable[[str, int], None] | None = None,
    on_connect: Callable[[], None] | None = None,
) -> Endpoints:
    """The brokers of ``cfg`` for failover (a node keeps this across its reconnects)."""
    names = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in cfg.brokers()]
    return Endpoints(names, cfg.failback_interval, log, count, on_connect)


def make_client(cfg: MqttConnection, link: Link, *, reconnect: bool, manual_ack: bool) -> Any:
    """A paho client for ``link`` with our TLS, credentials and queue limits (no callbacks)."""
    mqtt = require("paho.mqtt.client", "mqtt")
    v5 = cfg.protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id or f"flowengine-{uuid.uuid4().hex[:12]}",
        clean_session=None if v5 else cfg.clean_session,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        reconnect_on_failure=reconnect,
        manual_ack=manual_ack,
        userdata=link,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls or cfg.ca_file:
        client.tls_set(
            ca_certs=cfg.ca_file,
            certfile=cfg.certfile,
            keyfile=cfg.keyfile,
            cert_reqs=ssl.CERT_NONE if cfg.insecure and not cfg.ca_file else ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(cfg.insecure)
    client.reconnect_delay_set(0.5, 10)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(ACK_WINDOW)  # paho scans its queue per ack: keep it short
    return client


def connect_args(cfg: MqttConnection) -> dict[str, Any]:
    """CONNECT's MQTT 5 clean start and session expiry (nothing for 3.1.1)."""
    if cfg.protocol != "5":
        return {}
    props = require("paho.mqtt.properties", "mqtt").Properties(
        require("paho.mqtt.packettypes", "mqtt").PacketTypes.CONNECT
    )
    props.SessionExpiryInterval = 0 if cfg.clean_session else cfg.session_expiry
    return {"clean_start": cfg.clean_session, "properties": props}


def refused(rc: Any, protocol: str) -> ConnectionError:
    """A refused CONNACK as the seed says it (3.1.1 return codes by number)."""
    code = _V3_CODES.get(rc.getName(), rc.value) if protocol != "5" else rc.value
    return ConnectionError(f"{FAILED}, return code: {code} ({rc})")


def settle(link: Link, error: Exception | None) -> None:
    """Resolve ``link``'s CONNACK future from paho's thread (the first outcome counts)."""
    fut = link.connack

    def done() -> None:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    fut.get_loop().call_soon_threadsafe(done)


async def stop(link: Link) -> None:
    """Stop ``link``'s paho thread and disconnect it (off the event loop)."""
    link.connected = False
    client = link.client
    client.on_disconnect = None
    await asyncio.to_thread(_stop, client)


def _stop(client: Any) -> None:
    """Stop paho's thread, then send DISCONNECT from here (the other order logs a spurious
    "Client is not connected" error from the exiting loop)."""
    client.loop_stop()
    client.disconnect()
