"""MQTT over paho-mqtt 2.x: one client shared by the seed's ``MQTTConnector`` and the nodes.

paho runs its network loop in its own thread (``loop_start``). Received messages cross into
asyncio through a :class:`Handoff`: the paho thread appends to a deque and wakes the event loop
with ``loop.call_soon_threadsafe`` only when the consumer is idle (one wake-up per burst, not one
per message). It is bounded: when full, the paho thread waits, stops reading the socket, and the
broker holds the rest (its queue limits then decide, see docs/connectors-mqtt.md). A bounded
``asyncio.Queue`` could not do that from another thread: ``put_nowait`` would have to drop.

The source never lets paho reconnect on its own: a lost connection surfaces as an exception, so
the runtime shows ``retrying``, backs off and calls ``start`` again, which reconnects and
subscribes anew (a persistent session keeps QoS 1/2 messages at the broker meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

import pandas as pd
from pydantic import field_validator, model_validator

from flowengine.connectors.base import BaseDataConnector
from flowengine.extras import require
from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, option

log = logging.getLogger("flowengine.nodes.mqtt.client")

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


class MqttConnection(NodeConfig):
    """Broker connection settings shared by ``mqtt_in`` and ``mqtt_out`` (seed keys kept)."""

    broker_host: str = option("127.0.0.1", description="Broker host name or address.")
    broker_port: int = option(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    username: str | None = option(None, description="User name, if the broker wants one.")
    password: str | None = option(None, secret=True, description="Password for `username`.")
    keep_alive: int = option(60, ge=0, description="Seconds between pings (broker cuts at 1.5x).")
    client_id: str = option(
        "", description="Client id; required for a persistent session (clean_session: false)."
    )
    clean_session: bool = option(
        True,
        description="False keeps subscriptions and queued QoS 1/2 messages across disconnects.",
    )
    protocol: Literal["3.1.1", "5"] = option("3.1.1", description="MQTT protocol version.")
    session_expiry: int = option(
        86400, ge=0, advanced=True, description="MQTT 5 persistent session lifetime in seconds."
    )
    tls: bool = option(False, description="Use TLS (implied by `ca_file`).")
    ca_file: str | None = option(None, description="CA certificate (PEM) to verify the broker.")
    certfile: str | None = option(None, description="Client certificate (PEM) for mutual TLS.")
    keyfile: str | None = option(None, description="Private key (PEM) of `certfile`.")
    insecure: bool = option(
        False, advanced=True, description="Skip host name checks (test rigs only)."
    )
    connect_timeout: float = option(10.0, gt=0, advanced=True, description="Seconds for CONNACK.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return {"5.0": "5", 5: "5", 311: "3.1.1", "311": "3.1.1"}.get(value, value)

    @model_validator(mode="after")
    def _session_needs_id(self) -> MqttConnection:
        if not self.clean_session and not self.client_id:
            raise ValueError("clean_session: false needs a fixed client_id (the session's name)")
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile given without certfile")
        return self


class MqttParsing(NodeConfig):
    """How payloads become rows of the long format (timestamp, sensor, value, ...)."""

    topic: str | list[str] = option(
        "sensors/#", description="Topic filter(s) to subscribe; `+` and `#` wildcards."
    )
    topics: list[str] = option([], description="More topic filters (added to `topic`).")
    qos: Literal[0, 1, 2] = option(1, description="Subscription QoS.")
    sensor_from: str | int = option(
        "sensor",
        description="A payload field name (the topic when the field is absent), `topic` (whole "
        "topic), or `topic[N]` / an int N (a topic level, -1 = last).",
        examples=["topic[-1]", 2, "id"],
    )
    value_field: str = option("value", description="Payload field holding the reading.")
    timestamp_field: str = option(
        "timestamp", description="Payload field holding the time (receive time when absent)."
    )
    timestamp_format: Literal["auto", "iso", "epoch_s", "epoch_ms"] = option(
        "auto", description="`auto`: strings as ISO 8601, numbers as epoch s or ms by size."
    )

    @field_validator("sensor_from")
    @classmethod
    def _sensor_from(cls, value: str | int) -> str | int:
        if isinstance(value, str) and value.startswith("topic["):
            try:
                int(value[6:].rstrip("]"))
            except ValueError:
                raise ValueError("topic level must look like topic[2] or topic[-1]") from None
        return value

    def filters(self) -> list[str]:
        """Every topic filter, in order, without duplicates."""
        first = [self.topic] if isinstance(self.topic, str) else list(self.topic)
        return list(dict.fromkeys(first + self.topics))


# ---- thread hand-off ---------------------------------------------------------------------------
class Lost:
    """Marker the paho thread queues when the connection ends."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


Item = tuple[str, bytes, int] | Lost


class Handoff:
    """Bounded thread-to-asyncio buffer; see the module docstring for why not asyncio.Queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._woken = False
        self._closed = False
        self._event = asyncio.Event()

    def put(self, item: Item) -> None:
        """From the paho thread: add, waiting while full (a ``Lost`` marker never waits)."""
        with self._cond:
            while (
                len(self._items) >= self.limit and not self._closed and not isinstance(item, Lost)
            ):
                self._cond.wait(0.5)
            if self._closed:
                return
            self._items.append(item)
            if not self._woken:
                self._woken = True
                self.loop.call_soon_threadsafe(self._event.set)

    def take(self) -> list[Item]:
        """From the event loop: everything buffered now (maybe nothing)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._woken = False
            self._event.clear()
            self._cond.notify_all()
        return items

    async def wait(self, timeout: float | None) -> list[Item]:
        """Wait up to ``timeout`` seconds for items, then take them."""
        if not self._items:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.take()

    def close(self) -> None:
        """Release a waiting paho thread; later puts are dropped (the client is going away)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# ---- the client ----------------------------------------------------------------------------------
class MqttClient:
    """One paho client: connect (awaiting CONNACK), subscribe, publish with acks, disconnect."""

    def __init__(self, cfg: MqttConnection, *, reconnect: bool = False) -> None:
        self.cfg = cfg
        self.reconnect = reconnect
        self.handoff: Handoff | None = None
        self._client: Any = None
        self._connack: asyncio.Future[None] | None = None
        self._sub_mid = -1
        self.connected = False

    def _make(self) -> Any:
        mqtt = require("paho.mqtt.client", "mqtt")
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"flowengine-{uuid.uuid4().hex[:12]}",
            clean_session=None if v5 else cfg.clean_session,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            reconnect_on_failure=self.reconnect,
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
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        return client

    async def connect(
        self, subscriptions: Iterable[tuple[str, int]] = (), buffer: int = 10_000
    ) -> None:
        """Connect and subscribe; raises ``ConnectionError`` with the broker's return code."""
        loop = asyncio.get_running_loop()
        self.handoff = Handoff(loop, buffer)
        self._subs = list(subscriptions)
        self._connack = loop.create_future()
        self._client = client = self._make()
        if self._subs:
            client.on_message = self._on_message
        cfg = self.cfg
        kwargs: dict[str, Any] = {}
        if cfg.protocol == "5":
            props = require("paho.mqtt.properties", "mqtt").Properties(
                require("paho.mqtt.packettypes", "mqtt").PacketTypes.CONNECT
            )
            props.SessionExpiryInterval = 0 if cfg.clean_session else cfg.session_expiry
            kwargs = {"clean_start": cfg.clean_session, "properties": props}
        try:  # TCP and TLS handshake block: keep them off the event loop
            await asyncio.to_thread(
                client.connect, cfg.broker_host, cfg.broker_port, cfg.keep_alive, **kwargs
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionError(
                f"MQTT connection failed: {cfg.broker_host}:{cfg.broker_port}: {exc}"
            ) from exc
        client.loop_start()
        try:
            await asyncio.wait_for(asyncio.shield(self._connack), cfg.connect_timeout)
        except TimeoutError:
            raise ConnectionError("MQTT connection failed: no CONNACK (timeout)") from None

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            code = _V3_CODES.get(rc.getName(), rc.value) if self.cfg.protocol != "5" else rc.value
            error = ConnectionError(f"MQTT connection failed, return code: {code} ({rc})")
            self._resolve(error)
            return
        self.connected = True
        if not self._subs:
            self._resolve(None)
            return
        result, mid = client.subscribe(self._subs)  # connect() returns once the SUBACK is in
        if result:
            self._resolve(ConnectionError(f"MQTT subscribe failed, return code: {result}"))
        self._sub_mid = mid

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if mid != self._sub_mid:
            return
        refused = [
            f"{t} ({c})" for (t, _), c in zip(self._subs, codes, strict=False) if c.is_failure
        ]
        if refused:
            self._resolve(ConnectionError(f"MQTT subscription refused: {', '.join(refused)}"))
        else:
            self._resolve(None)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected = False
        self._resolve(ConnectionError(f"MQTT connection failed: disconnected ({rc})"))
        if self.handoff is not None and self._subs:
            self.handoff.put(Lost(f"MQTT connection lost ({rc})"))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        assert self.handoff is not None
        self.handoff.put((msg.topic, msg.payload, time.time_ns()))

    def _resolve(self, error: Exception | None) -> None:
        fut = self._connack
        if fut is None:
            return

        def settle() -> None:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

        fut.get_loop().call_soon_threadsafe(settle)

    async def wait_connected(
        self, timeout: float, on_wait: Callable[[str], None] | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for paho to reconnect (a client made with
        ``reconnect=True`` does so by itself); True if it had to wait. Raises
        ``ConnectionError`` when the connection is not back in time."""
        if self.connected:
            return False
        if self._client is None or not self.reconnect:
            raise ConnectionError("MQTT connection failed: not connected")
        cfg = self.cfg
        if on_wait is not None:
            on_wait(f"waiting for broker {cfg.broker_host}:{cfg.broker_port} (up to {timeout:g}s)")
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"MQTT connection failed: {cfg.broker_host}:{cfg.broker_port} not back "
                    f"within {timeout:g}s"
                )
            await asyncio.sleep(0.05)
        return True

    async def publish_many(
        self,
        messages: Iterable[tuple[str, str]],
        qos: int,
        retain: bool,
        timeout: float = 30.0,
        *,
        reconnect_timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> int:
        """Publish; for QoS > 0 return only when the broker acknowledged every message.

        While the connection is down (a broker restart) wait up to ``reconnect_timeout`` seconds
        for paho to reconnect, calling ``on_wait`` first, instead of dropping: QoS 1/2 messages
        stay in paho's queue and are sent again after the reconnect (at least once), QoS 0
        messages refused while disconnected are published again. ``timeout`` bounds the wait
        for acks while connected.
        """
        if not self.connected:
            if reconnect_timeout <= 0:
                raise ConnectionError("MQTT connection failed: not connected")
            await self.wait_connected(reconnect_timeout, on_wait)
        no_conn = require("paho.mqtt.client", "mqtt").MQTT_ERR_NO_CONN
        sent = 0
        todo = list(messages)
        for start in range(0, len(todo), ACK_WINDOW):  # message ids are 16 bits: keep well below
            chunk = todo[start : start + ACK_WINDOW]
            while chunk:
                infos = [self._client.publish(t, p, qos=qos, retain=retain) for t, p in chunk]
                if qos:
                    for info in infos:
                        if info.rc == no_conn:  # paho keeps QoS 1/2 and resends on reconnect
                            info.rc = 0
                    await self._acked(infos, timeout, reconnect_timeout, on_wait)
                    break
                chunk = [m for m, i in zip(chunk, infos, strict=True) if i.rc == no_conn]
                if chunk:  # QoS 0 refused while disconnected: publish again once connected
                    if reconnect_timeout <= 0:
                        raise ConnectionError("MQTT connection failed: disconnected")
                    await self.wait_connected(reconnect_timeout, on_wait)
            sent += len(todo[start : start + ACK_WINDOW])
        return sent

    async def _acked(
        self,
        infos: list[Any],
        timeout: float,
        reconnect_timeout: float,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        """Wait for the acks of ``infos``; a disconnection pauses the ack clock (bounded by
        ``reconnect_timeout``) because paho sends the unacknowledged ones again."""
        deadline = time.monotonic() + timeout
        pending = infos
        while pending := [i for i in pending if not i.is_published()]:
            if not self.connected:
                if reconnect_timeout <= 0:
                    raise ConnectionError("MQTT connection lost before the broker acknowledged")
                await self.wait_connected(reconnect_timeout, on_wait)
                deadline = time.monotonic() + timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"MQTT publish not acknowledged within {timeout}s")
            # acks come in order: block on the last one (off the loop), then look again
            await asyncio.to_thread(pending[-1].wait_for_publish, min(0.25, left))

    async def disconnect(self) -> None:
        """Disconnect and stop paho's thread (joined off the event loop)."""
        client, self._client = self._client, None
        if self.handoff is not None:
            self.handoff.close()
        if client is None:
            return
        client.on_disconnect = None
        await asyncio.to_thread(_stop, client)
        self.connected = False


def _stop(client: Any) -> None:
    """Stop paho's thread, then send DISCONNECT from here (the other order logs a spurious
    "Client is not connected" error from the exiting loop)."""
    client.loop_stop()
    client.disconnect()


# ---- payload parsing --------------------------------------------------------------------------
class PayloadError(ValueError):
    """A payload that is not JSON, or JSON of a shape without readings."""


class Parser:
    """Turns (topic, payload, received) into long-format rows; unparseable ones are kept aside."""

    def __init__(self, cfg: MqttParsing, source: str) -> None:
        self.cfg = cfg
        self.source = source
        spec = cfg.sensor_from
        self.level: int | None = None
        self.field: str | None = None
        if isinstance(spec, int) or (isinstance(spec, str) and spec.lstrip("-").isdigit()):
            self.level = int(spec)
        elif isinstance(spec, str) and spec.startswith("topic["):
            self.level = int(spec[6:].rstrip("]"))
        elif spec != "topic":
            self.field = spec
        self.rows: list[dict[str, Any]] = []
        self.bad: list[dict[str, Any]] = []

    def _sensor(self, topic: str, obj: dict[str, Any] | None) -> Any:
        if self.field is not None and obj is not None and self.field in obj:
            return obj[self.field]
        if self.level is not None:
            levels = topic.split("/")
            try:
                return levels[self.level]
            except IndexError:
                return topic
        return topic

    def add(self, topic: str, payload: bytes, received: int) -> bool:
        """Parse one message into ``rows`` (or ``bad``); False when it was unparseable."""
        try:
            data = json.loads(payload)
            rows = list(self._readings(topic, data, received))
        except (ValueError, TypeError, OverflowError) as exc:
            text = payload.decode("utf-8", errors="replace")
            self.bad.append(
                {"timestamp": received, "topic": topic, "payload": text, "error": str(exc)}
            )
            return False
        self.rows.extend(rows)
        return True

    def _readings(self, topic: str, data: Any, received: int) -> Iterable[dict[str, Any]]:
        cfg = self.cfg
        if isinstance(data, bool) or data is None:
            raise PayloadError(f"not a reading: {data!r}")
        if isinstance(data, int | float):
            yield self._row(topic, None, data, received)
        elif isinstance(data, dict):
            if cfg.value_field in data:
                yield self._row(topic, data, data[cfg.value_field], received)
            else:  # {"temp": 1, "pressure": 2}: one reading per numeric field
                stamp = data.get(cfg.timestamp_field, received)
                found = False
                for key, val in data.items():
                    numeric = isinstance(val, int | float) and not isinstance(val, bool)
                    if numeric and key != cfg.timestamp_field:
                        found = True
                        yield self._stamped(topic, key, val, stamp, received)
                if not found:
                    raise PayloadError(f"no '{cfg.value_field}' field and no numeric fields")
        elif isinstance(data, list):
            if not data:
                raise PayloadError("empty array")
            for item in data:
                if isinstance(item, dict) and cfg.value_field in item:
                    yield self._row(topic, item, item[cfg.value_field], received)
                elif isinstance(item, int | float) and not isinstance(item, bool):
                    yield self._row(topic, None, item, received)
                else:
                    raise PayloadError(f"array item without '{cfg.value_field}': {item!r}")
        else:
            raise PayloadError(f"not a reading: {data!r}")

    def _row(self, topic: str, obj: dict[str, Any] | None, value: Any, received: int) -> Any:
        stamp = obj.get(self.cfg.timestamp_field, received) if obj else received
        row = self._stamped(topic, self._sensor(topic, obj), value, stamp, received)
        if obj:
            skip = (self.cfg.value_field, self.cfg.timestamp_field, self.field, *row)
            for key, val in obj.items():
                if key not in skip and not isinstance(val, dict | list):
                    row[key] = val
        return row

    def _stamped(self, topic: str, sensor: Any, value: Any, stamp: Any, received: int) -> Any:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise PayloadError(f"value is not a number: {value!r}") from None
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise PayloadError(f"value is not a number: {value!r}")
        return {
            "timestamp": self._time(stamp, received),
            "sensor": sensor,
            "value": float(value),
            "quality": "good",
            "source": self.source,
            "topic": topic,
        }

    def _time(self, stamp: Any, received: int) -> int:
        """Nanoseconds since the epoch (one vectorised conversion per batch, not per row)."""
        fmt = self.cfg.timestamp_format
        if stamp is received:
            return received
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            if fmt == "iso":
                raise PayloadError(f"timestamp is not ISO 8601 text: {stamp!r}")
            ms = fmt == "epoch_ms" or (fmt == "auto" and abs(stamp) > 1e11)
            scale = 1_000_000 if ms else 1_000_000_000
            ns = stamp * scale if isinstance(stamp, int) else round(stamp * scale)
            if abs(ns) < 2**63:
                return ns
            raise PayloadError(f"bad timestamp: {stamp!r}")
        if isinstance(stamp, str) and fmt in ("auto", "iso"):
            try:
                ts = pd.Timestamp(stamp)
            except ValueError:
                raise PayloadError(f"bad timestamp: {stamp!r}") from None
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
            return int(ts.as_unit("ns").value)
        raise PayloadError(f"bad timestamp for format {fmt}: {stamp!r}")

    def take_rows(self, limit: int | None = None) -> pd.DataFrame | None:
        """The first ``limit`` (default all) parsed rows as a frame (``None`` if there are
        none), and forget them."""
        if limit is None or limit >= len(self.rows):
            rows, self.rows = self.rows, []
        else:
            rows, self.rows = self.rows[:limit], self.rows[limit:]
        if not rows:
            return None
        frame = pd.DataFrame(rows)
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="ns", utc=True))

    def take_bad(self) -> pd.DataFrame | None:
        """The unparseable messages as a frame (timestamp, topic, payload, error)."""
        bad, self.bad = self.bad, []
        if not bad:
            return None
        frame = pd.DataFrame(bad)
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="ns", utc=True))


def parse_warning(bad: pd.DataFrame) -> str:
    first = bad.iloc[0]
    return f"Could not parse JSON payload on topic {first['topic']}: {first['error']}"


# ---- the seed's library API ---------------------------------------------------------------------
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
            self._limiter.log(log, logging.WARNING, lambda: parse_warning(bad))
        return self._parser.take_rows()

    async def _disconnect(self) -> None:
        if self._mqtt is not None:
            await self._mqtt.disconnect()
            self._mqtt = None
