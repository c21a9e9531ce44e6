"""MQTT over paho-mqtt 2.x: one client shared by the seed's ``MQTTConnector`` and the nodes.

paho runs its network loop in its own thread (``loop_start``). Received messages cross into
asyncio through a bounded :class:`~flowengine.nodes.mqtt.handoff.Handoff` (backpressure instead
of dropping).

The source never lets paho reconnect on its own: a lost connection surfaces as an exception, so
the runtime shows ``retrying``, backs off and calls ``start`` again, which reconnects and
subscribes anew (a persistent session keeps QoS 1/2 messages at the broker meanwhile).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from flowengine.extras import require
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.nodes.mqtt.handoff import Handoff, Lost

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


class MqttClient:
    """One paho client: connect (awaiting CONNACK), subscribe, publish with acks, disconnect."""

    def __init__(
        self, cfg: MqttConnection, *, reconnect: bool = False, manual_ack: bool = False
    ) -> None:
        self.cfg = cfg
        self.reconnect = reconnect
        #: Received QoS 1/2 messages are confirmed only by :meth:`ack`, when the flow has
        #: them safe; until then the broker redelivers them after a crash.
        self.manual_ack = manual_ack
        #: ``(mid, qos)`` of received messages, in order, for :meth:`ack` (manual mode).
        self.received: deque[tuple[int, int]] = deque()
        self.handoff: Handoff | None = None
        self._client: Any = None
        self._connack: asyncio.Future[None] | None = None
        self._sub_mid = -1
        self._subs: list[tuple[str, int]] = []
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
            manual_ack=self.manual_ack,
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
        if self.manual_ack:  # before the put: the flow never takes a message not listed here
            self.received.append((msg.mid, msg.qos))
        self.handoff.put((msg.topic, msg.payload, time.time_ns()))

    def ack(self, count: int) -> None:
        """Confirm the first ``count`` received messages not confirmed yet (manual mode);
        QoS 0 ones need nothing. Messages of a lost connection are the broker's to resend."""
        client = self._client
        for _ in range(min(count, len(self.received))):
            mid, qos = self.received.popleft()
            if qos and client is not None and self.connected:
                client.ack(mid, qos)

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
