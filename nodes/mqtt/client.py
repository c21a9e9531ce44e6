"""MQTT over paho-mqtt 2.x: one client shared by the seed's ``MQTTConnector`` and the nodes.

paho runs its network loop in its own thread (``loop_start``). Received messages cross into
asyncio through a bounded :class:`~flowengine.nodes.mqtt.handoff.Handoff` (backpressure instead
of dropping).

The source never lets paho reconnect on its own: a lost connection surfaces as an exception, so
the runtime shows ``retrying``, backs off and calls ``start`` again, which reconnects and
subscribes anew (a persistent session keeps QoS 1/2 messages at the broker meanwhile).

With several brokers (``broker_host`` a list, see ``failover.py``) ``connect`` takes the first
that answers; a publisher whose broker is lost moves to the next at once and publishes there
what the lost one had not acknowledged. While a backup serves, a background task tries the
primary every ``failback_interval``; once connected (and subscribed) there, it becomes the
connection, and the backup is closed once what it delivered is confirmed: make before break,
so nothing published on either broker meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from flowengine.extras import require
from flowengine.failover import Endpoints
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.nodes.mqtt.handoff import Handoff, Lost
from flowengine.nodes.mqtt.link import (
    ACK_WINDOW,
    FAILED,
    Link,
    connect_args,
    endpoints_of,
    make_client,
    refused,
    settle,
    stop,
)

Message = tuple[str, str | bytes]


class MqttClient:
    """One connection (to one of the configured brokers): connect (awaiting CONNACK),
    subscribe, publish with acks, disconnect."""

    def __init__(
        self,
        cfg: MqttConnection,
        *,
        reconnect: bool = False,
        manual_ack: bool = False,
        endpoints: Endpoints | None = None,
    ) -> None:
        self.cfg = cfg
        self.reconnect = reconnect
        #: Received QoS 1/2 messages are confirmed only by :meth:`ack`, when the flow has
        #: them safe; until then the broker redelivers them after a crash.
        self.manual_ack = manual_ack
        #: ``(link, mid, qos)`` of received messages, in order, for :meth:`ack` (manual mode).
        self.received: deque[tuple[Link, int, int]] = deque()
        self.handoff: Handoff | None = None
        self.endpoints = endpoints or endpoints_of(cfg)
        self._brokers = cfg.brokers()
        self._link: Link | None = None
        self._subs: list[tuple[str, int]] = []
        #: One message at a time into ``received`` and the hand-off (two links while switching).
        self._taking = threading.Lock()
        #: Held while publishing: a switch back to the primary waits for the acks.
        self._busy = asyncio.Lock()
        self._failback: asyncio.Task[None] | None = None
        self._retiring: set[Link] = set()

    @property
    def connected(self) -> bool:
        """True while the broker that serves is connected."""
        return self._link is not None and self._link.connected

    async def connect(
        self, subscriptions: Iterable[tuple[str, int]] = (), buffer: int = 10_000
    ) -> None:
        """Connect to the first broker that answers and subscribe; raises ``ConnectionError``
        with the broker's return code (with several brokers, naming each one tried)."""
        self.handoff = Handoff(asyncio.get_running_loop(), buffer)
        self._subs = list(subscriptions)
        await self._connect_any(self.endpoints.order())

    async def _connect_any(self, order: list[int]) -> None:
        """Connect to the first of ``order`` that answers; start checking for the primary."""
        skipped: list[str] = []
        for index in order:
            try:
                self._link = await self._open(index)
            except ConnectionError as exc:
                if not self.endpoints.several:
                    raise
                skipped.append(self._why(index, exc))
                continue
            self.endpoints.connected(index, skipped)
            if self._failback is None and self.endpoints.several and self.cfg.failback_interval:
                self._failback = asyncio.create_task(self._failing_back())
            return
        raise ConnectionError(f"{FAILED}: no broker answered: {'; '.join(skipped)}")

    def _why(self, index: int, exc: Exception) -> str:
        """``host:port: reason`` for the error naming every broker tried."""
        name = self.endpoints.names[index]
        reason = str(exc).removeprefix(FAILED).lstrip(":, ")
        host, port = self._brokers[index]
        return reason if reason.startswith(f"{host}:{port}") else f"{name}: {reason}"

    async def _open(self, index: int) -> Link:
        """A connection to broker ``index``, its CONNACK (and SUBACK) in."""
        host, port = self._brokers[index]
        link = Link(index, host, port, asyncio.get_running_loop().create_future())
        cfg = self.cfg
        client = make_client(cfg, link, reconnect=self.reconnect, manual_ack=self.manual_ack)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        if self._subs:
            client.on_message = self._on_message
        link.client, kwargs = client, connect_args(cfg)
        try:  # TCP and TLS handshake block: keep them off the event loop
            await asyncio.to_thread(client.connect, host, port, cfg.keep_alive, **kwargs)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionError(f"{FAILED}: {host}:{port}: {exc}") from exc
        client.loop_start()
        try:
            await asyncio.wait_for(asyncio.shield(link.connack), cfg.connect_timeout)
        except BaseException as exc:
            await stop(link)
            if isinstance(exc, TimeoutError):
                raise ConnectionError(f"{FAILED}: no CONNACK (timeout)") from None
            raise
        return link

    def _on_connect(self, client: Any, link: Link, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            settle(link, refused(rc, self.cfg.protocol))
            return
        link.connected = True
        if not self._subs:
            settle(link, None)
            return
        result, mid = client.subscribe(self._subs)  # connect() returns once the SUBACK is in
        if result:
            settle(link, ConnectionError(f"MQTT subscribe failed, return code: {result}"))
        link.sub_mid = mid

    def _on_subscribe(self, client: Any, link: Link, mid: int, codes: Any, props: Any) -> None:
        if mid != link.sub_mid:
            return
        denied = [
            f"{t} ({c})" for (t, _), c in zip(self._subs, codes, strict=False) if c.is_failure
        ]
        if denied:
            settle(link, ConnectionError(f"MQTT subscription refused: {', '.join(denied)}"))
        else:
            settle(link, None)

    def _on_disconnect(self, client: Any, link: Link, flags: Any, rc: Any, props: Any) -> None:
        link.connected = False
        settle(link, ConnectionError(f"{FAILED}: disconnected ({rc})"))
        if link is self._link and self.handoff is not None and self._subs:
            where = f" to {self.endpoints.label(link.index)}" if self.endpoints.several else ""
            self.handoff.put(Lost(f"MQTT connection{where} lost ({rc})"))

    def _on_message(self, client: Any, link: Link, msg: Any) -> None:
        assert self.handoff is not None
        if link.closing and self.manual_ack and not self.cfg.clean_session:
            return  # unconfirmed, it stays in the session there: it comes when we come back
        with self._taking:
            if self.manual_ack:  # before the put: the flow never takes a message not listed here
                self.received.append((link, msg.mid, msg.qos))
            self.handoff.put((msg.topic, msg.payload, time.time_ns()))

    def ack(self, count: int) -> None:
        """Confirm the first ``count`` received messages not confirmed yet (manual mode);
        QoS 0 ones need nothing. Messages of a lost connection are the broker's to resend."""
        for _ in range(min(count, len(self.received))):
            link, mid, qos = self.received.popleft()
            if qos and link.connected:
                link.client.ack(mid, qos)

    async def wait_connected(
        self, timeout: float, on_wait: Callable[[str], None] | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for paho to reconnect (a client made with
        ``reconnect=True`` does so by itself), or with several brokers for the next one that
        answers; True if it had to wait. Raises ``ConnectionError`` when the connection is
        not back in time."""
        if self.connected:
            return False
        link = self._link
        several = self.endpoints.several and self.handoff is not None  # connected once
        if not self.reconnect or (link is None and not several):
            raise ConnectionError(f"{FAILED}: not connected")
        if several:
            await self._fail_over(link, timeout, on_wait)
            return True
        assert link is not None
        if on_wait is not None:
            on_wait(f"waiting for broker {link.host}:{link.port} (up to {timeout:g}s)")
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"{FAILED}: {link.host}:{link.port} not back within {timeout:g}s"
                )
            await asyncio.sleep(0.05)
        return True

    async def _fail_over(
        self, lost: Link | None, timeout: float, on_wait: Callable[[str], None] | None
    ) -> None:
        """The broker that served is gone (or none answered last time): connect to the first
        that answers (the lost one last), in rounds, for up to ``timeout`` seconds."""
        if on_wait is not None:
            on_wait(f"broker {self.endpoints.label()} lost: failing over (up to {timeout:g}s)")
        self._link = None
        if lost is not None:
            await stop(lost)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._connect_any(self.endpoints.order())
                return
            except ConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"{exc} (for {timeout:g}s)") from None
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    async def publish_many(
        self,
        messages: Iterable[Message],
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
        messages refused while disconnected are published again. With several brokers the
        wait is a failover, and what the lost broker had not acknowledged is published on the
        next. ``timeout`` bounds the wait for acks while connected.
        """
        async with self._busy:
            if not self.connected:
                if reconnect_timeout <= 0:
                    raise ConnectionError(f"{FAILED}: not connected")
                await self.wait_connected(reconnect_timeout, on_wait)
            no_conn = require("paho.mqtt.client", "mqtt").MQTT_ERR_NO_CONN
            sent = 0
            todo = list(messages)
            for start in range(0, len(todo), ACK_WINDOW):  # message ids are 16 bits
                chunk = todo[start : start + ACK_WINDOW]
                while chunk:
                    assert self._link is not None
                    client = self._link.client
                    infos = [client.publish(t, p, qos=qos, retain=retain) for t, p in chunk]
                    if qos:
                        for info in infos:
                            if info.rc == no_conn:  # paho keeps QoS 1/2, resends on reconnect
                                info.rc = 0
                        chunk = await self._acked(chunk, infos, timeout, reconnect_timeout, on_wait)
                        continue
                    chunk = [m for m, i in zip(chunk, infos, strict=True) if i.rc == no_conn]
                    if chunk:  # QoS 0 refused while disconnected: publish again once connected
                        if reconnect_timeout <= 0:
                            raise ConnectionError(f"{FAILED}: disconnected")
                        await self.wait_connected(reconnect_timeout, on_wait)
                sent += len(todo[start : start + ACK_WINDOW])
            return sent

    async def _acked(
        self,
        chunk: list[Message],
        infos: list[Any],
        timeout: float,
        reconnect_timeout: float,
        on_wait: Callable[[str], None] | None,
    ) -> list[Message]:
        """Wait for the acks of ``infos``; a disconnection pauses the ack clock (bounded by
        ``reconnect_timeout``) because paho sends the unacknowledged ones again. Returns the
        messages to publish again: none, or those a failed-over broker never saw."""
        link = self._link
        deadline = time.monotonic() + timeout
        pending = list(zip(chunk, infos, strict=True))
        while pending := [(m, i) for m, i in pending if not i.is_published()]:
            if not self.connected:
                if reconnect_timeout <= 0:
                    raise ConnectionError("MQTT connection lost before the broker acknowledged")
                await self.wait_connected(reconnect_timeout, on_wait)
                if self._link is not link:
                    return [m for m, _ in pending]
                deadline = time.monotonic() + timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"MQTT publish not acknowledged within {timeout}s")
            # acks come in order: block on the last one (off the loop), then look again
            await asyncio.to_thread(pending[-1][1].wait_for_publish, min(0.25, left))
        return []

    async def _failing_back(self) -> None:
        """While a backup serves: try the primary every ``failback_interval``; once it is
        connected (and subscribed), it serves, and the backup is retired."""
        while True:
            await asyncio.sleep(min(1.0, self.endpoints.failback_interval))
            if not self.connected or not self.endpoints.failback_due():
                continue
            try:
                primary = await self._open(0)
            except Exception as exc:  # whatever it is, the backup serves on
                self.endpoints.log.info("primary not back yet: %s", self._why(0, exc))
                continue
            async with self._busy:
                old, self._link = self._link, primary
                self.endpoints.connected(0)
            if old is not None:
                self._retiring.add(old)
                await self._retire(old)

    async def _retire(self, old: Link) -> None:
        """Close a broker switched away from once the messages it delivered are confirmed
        (manual acks, for up to ``connect_timeout`` seconds), so that a persistent session
        there does not send them again. Meanwhile it delivers no more to a persistent
        session's flow: what it sends now stays unconfirmed in that session for next time."""
        old.closing = True
        deadline = time.monotonic() + self.cfg.connect_timeout
        while self.manual_ack and time.monotonic() < deadline:
            if not any(link is old for link, _, _ in self.received):
                break
            await asyncio.sleep(0.05)
        await stop(old)
        self._retiring.discard(old)

    async def disconnect(self) -> None:
        """Disconnect and stop paho's thread (joined off the event loop)."""
        task, self._failback = self._failback, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        link, self._link = self._link, None
        if self.handoff is not None:
            self.handoff.close()
        for other in [link, *self._retiring]:
            if other is not None:
                await stop(other)
        self._retiring.clear()
