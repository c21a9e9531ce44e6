"""One MQTT connection to one broker, driven by the event loop (no thread, no hand-off per
message): what :class:`~flowengine.nodes.mqtt.client.MqttClient` connects, and with several
brokers switches between.

Each chunk the socket delivers is split into packets at once (:func:`wire.split`); received
QoS 1/2 messages are confirmed in one write per chunk (unless the flow confirms them itself,
``manual_ack``), acknowledgements of what we published settle the :class:`Outbox` in bulk.
TLS is the event loop's (``ssl=`` on the connection), MQTT 5 and 3.1.1 both, keep-alive pings
from a small task per connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from flowengine.failover import Endpoints
from flowengine.nodes.mqtt import wire
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.nodes.mqtt.outbox import Outbox

FAILED = "MQTT connection failed"
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _own_socket(sock: Any) -> socket.socket | None:
    """A socket object of our own on a duplicate of the transport's descriptor, for
    ``setsockopt`` per read: uvloop's stand-in socket builds a new socket object (and asks the
    kernel what it is) on every call, two system calls more each time."""
    if sock is None:
        return None
    try:
        return socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return None


#: A received message as the connection hands it on: (topic, payload, qos, message id).
Received = tuple[str, bytes, int, int]

log = logging.getLogger("flowengine.nodes.mqtt.client")


class Link(asyncio.Protocol):
    """One connection: CONNECT/SUBSCRIBE handshakes, received messages to ``deliver``,
    acknowledgements of published ones to the ``outbox``, ``lost`` once it ends."""

    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        cfg: MqttConnection,
        *,
        manual_ack: bool = False,
        outbox: Outbox | None = None,
        deliver: Callable[[Link, list[Received]], None] | None = None,
        lost: Callable[[Link, str], None] | None = None,
    ) -> None:
        self.index, self.host, self.port = index, host, port
        self.cfg = cfg
        self.v5 = cfg.protocol == "5"
        self.manual_ack = manual_ack
        self.outbox = outbox
        self.deliver = deliver
        self.lost = lost
        self.keep_alive = cfg.keep_alive
        #: How many QoS 1/2 messages the broker takes unacknowledged (MQTT 5 CONNACK).
        self.receive_max = 65535
        self.connected = False
        #: Switched away from: messages it delivers from now on are not taken (see ``retire``).
        self.closing = False
        self.error = "connection closed"
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[bool] = loop.create_future()
        self.connack.add_done_callback(_retrieved)
        #: Done once the connection has ended (for whoever waits on it, e.g. for acks).
        self.ended: asyncio.Future[None] = loop.create_future()
        self._suback: asyncio.Future[bytes] | None = None
        self._sub_mid = 0
        self._buf = b""
        #: Received QoS 2 message ids whose PUBREL has not come yet (each delivered once).
        self._rel: set[int] = set()
        self._writable: asyncio.Future[None] | None = None
        self._last_in = self._last_out = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None
        self._sock: Any = None

    # ---- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's does not derive from asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)
        self._sock = _own_socket(transport.get_extra_info("socket")) if QUICKACK else None

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        try:
            packets, used = wire.split(buf, self.v5)
            self._buf = buf[used:]
            self._last_in = time.monotonic()
            if packets:
                self._handle(packets)
            if self.outbox is not None and len(self.outbox):
                self._quickack()
        except (wire.MalformedPacket, IndexError, UnicodeDecodeError) as exc:
            self.fail(f"malformed packet from the broker: {exc or type(exc).__name__}")

    def _quickack(self) -> None:
        """Acknowledge at once what comes in (Linux: TCP_QUICKACK, not permanent, so set
        again while acknowledgements are awaited). Mosquitto keeps Nagle's algorithm on
        (``set_tcp_nodelay false``): it holds the next PUBACKs until its first one is
        acknowledged, which a delayed ACK here makes take 40 ms, per batch."""
        sock = self._sock
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                self._sock = None  # not TCP (or not Linux): never again
                sock.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        if self._sock is not None:
            self._sock.close()  # our duplicate of the descriptor (see _own_socket)
            self._sock = None
        if exc is not None and self.error == "connection closed":
            self.error = str(exc) or type(exc).__name__
        error = ConnectionError(f"{FAILED}: {self.error}")
        for fut in (self.connack, self._suback):
            if fut is not None and not fut.done():
                fut.set_exception(error)
        self._wake_writer()
        if not self.ended.done():
            self.ended.set_result(None)
        if self._pinger is not None:
            self._pinger.cancel()
        if self.lost is not None:
            self.lost(self, self.error)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # ---- reading ---------------------------------------------------------------------------
    def _handle(self, packets: list[wire.Packet]) -> None:
        """Long because it is the receive hot path: PUBLISH first, the rest by type."""
        received: list[Received] = []
        out = bytearray()
        auto = not self.manual_ack
        for first, topic, mid, body in packets:
            kind = first >> 4
            if kind == wire.PUBLISH:
                qos = (first >> 1) & 3
                if qos == 2:
                    if auto:
                        out += wire.ack(wire.PUBREC, mid)
                    if mid in self._rel:
                        continue  # sent again before its PUBREL: delivered already
                    self._rel.add(mid)
                elif qos and auto:
                    out += wire.ack(wire.PUBACK, mid)
                received.append((topic, body, qos, mid))
            elif kind == wire.PUBACK or kind == wire.PUBCOMP:
                if self.outbox is not None:
                    self.outbox.done(wire.mid_of(body))
            elif kind == wire.PUBREC:
                out += self._pubrec(body)
            elif kind == wire.PUBREL:
                mid = wire.mid_of(body)
                self._rel.discard(mid)
                out += wire.ack(wire.PUBCOMP, mid)
            elif kind == wire.CONNACK:
                self._connack(body)
            elif kind == wire.SUBACK:
                suback = self._suback
                if suback is not None and not suback.done() and wire.mid_of(body) == self._sub_mid:
                    suback.set_result(body)
            elif kind == wire.DISCONNECT:
                code = body[0] if body else 0
                self.fail(f"the broker disconnected: {wire.reason(code, self.v5)} ({code})")
        if out:
            self.write(out)
        if received and self.deliver is not None:
            self.deliver(self, received)

    def _pubrec(self, body: bytes) -> bytes:
        """PUBREC of a QoS 2 message we published: release it (or, refused, forget it)."""
        mid = wire.mid_of(body)
        if self.v5 and len(body) > 2 and body[2] >= 0x80:
            if self.outbox is not None:
                self.outbox.done(mid)
            return b""
        if self.outbox is not None:
            self.outbox.released(mid)
        return wire.ack(wire.PUBREL, mid)

    def _connack(self, body: bytes) -> None:
        if len(body) < 2:
            raise wire.MalformedPacket("short CONNACK")
        code = body[1]
        why = ""
        if self.v5 and len(body) > 2:
            props, _ = wire.properties(body, 2)
            self.receive_max = int(props.get(0x21, 65535))  # type: ignore[arg-type]
            self.keep_alive = int(props.get(0x13, self.keep_alive))  # type: ignore[arg-type]
            text = props.get(0x1F)
            why = f": {text.decode(errors='replace')}" if isinstance(text, bytes) else ""
        if self.connack.done():
            return
        if code:
            message = f"{FAILED}, return code: {code} ({wire.reason(code, self.v5)}){why}"
            self.connack.set_exception(ConnectionError(message))
            return
        self.connected = True
        if self.keep_alive:
            self._pinger = asyncio.get_running_loop().create_task(self._ping())
        self.connack.set_result(bool(body[0] & 0x01))

    # ---- writing ---------------------------------------------------------------------------
    def write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self._last_out = time.monotonic()

    def writable(self) -> bool:
        """Connected, and the socket's send buffer is below its high-water mark."""
        waiting = self._writable is not None and not self._writable.done()
        return self.connected and not waiting

    async def drain(self) -> None:
        """Wait while the socket's send buffer is above its high-water mark."""
        while self._writable is not None and not self._writable.done() and self.connected:
            await self._writable

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def publish(
        self,
        messages: Sequence[tuple[str, bytes]],
        qos: int,
        retain: bool,
        mids: Sequence[int] | None = None,
        dup: bool = False,
    ) -> None:
        """Write PUBLISH packets for ``messages`` (one write for all of them)."""
        self.write(wire.publishes(messages, qos, retain, mids, self.v5, dup))
        if qos:
            self._quickack()

    def resend(self, outbox: Outbox, same_broker: bool) -> None:
        """What ``outbox`` holds, again on this (new) connection: PUBLISH (flagged a duplicate
        on the same broker) or, for QoS 2 messages that broker already received, PUBREL.
        Another broker never saw these message ids: to it they are new messages."""
        out = bytearray()
        for mid, entry in outbox.items.items():
            if entry.released and same_broker:
                out += wire.ack(wire.PUBREL, mid)
            else:
                entry.released = False
                out += wire.publishes(
                    [(entry.topic, entry.payload)],
                    entry.qos,
                    entry.retain,
                    [mid],
                    self.v5,
                    same_broker,
                )
        if out:
            self.write(out)

    def ack(self, pending: Iterable[tuple[int, int]]) -> None:
        """Confirm received ``(message id, qos)`` pairs (manual mode): PUBACK, or PUBREC."""
        out = bytearray()
        for mid, qos in pending:
            if qos:
                out += wire.ack(wire.PUBACK if qos == 1 else wire.PUBREC, mid)
        if out:
            self.write(out)

    async def subscribe(self, filters: list[tuple[str, int]], timeout: float) -> None:
        """SUBSCRIBE and wait for the SUBACK; raises if the broker refused a filter."""
        self._sub_mid = 1
        self._suback = asyncio.get_running_loop().create_future()
        self._suback.add_done_callback(_retrieved)
        self.write(wire.subscribe(self._sub_mid, filters, self.v5))
        body = await asyncio.wait_for(self._suback, timeout)
        pos = 2
        if self.v5:
            _, pos = wire.properties(body, 2)
        codes = body[pos:]
        denied = [f"{t} ({c})" for (t, _), c in zip(filters, codes, strict=False) if c >= 0x80]
        if denied:
            raise ConnectionError(f"MQTT subscription refused: {', '.join(denied)}")

    async def _ping(self) -> None:
        """PINGREQ when nothing was sent for half the keep-alive; a broker silent for 1.5
        times it is gone (a cable pulled does not close the socket)."""
        period = self.keep_alive
        while self.connected:
            await asyncio.sleep(period / 2)
            now = time.monotonic()
            if now - self._last_in > period * 1.5:
                self.fail(f"no answer from the broker for {period * 1.5:g}s (keep alive)")
                return
            if now - self._last_out >= period / 2:
                self.write(wire.PING)

    # ---- ending ----------------------------------------------------------------------------
    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def fail(self, error: str) -> None:
        """End the connection for ``error`` (``lost`` is called with it)."""
        self.error = error
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """DISCONNECT (a clean end: the broker drops no will, keeps a persistent session)."""
        self.lost = None
        self.connected = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(wire.BYE)
            self.transport.close()


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """Mark a handshake future's exception seen: the connection may end after its waiter
    gave up (a timeout), and asyncio would log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


async def open_link(
    index: int,
    host: str,
    port: int,
    cfg: MqttConnection,
    subscriptions: list[tuple[str, int]],
    **handlers: Any,
) -> Link:
    """A connection to ``host:port`` with its CONNACK (and SUBACK) in; ``ConnectionError``
    naming the broker, or the broker's return code, when it cannot be had."""
    loop = asyncio.get_running_loop()
    link = Link(index, host, port, cfg, **handlers)
    try:
        ctx = cfg.ssl_context()
        await asyncio.wait_for(
            loop.create_connection(
                lambda: link, host, port, ssl=ctx, server_hostname=host if ctx else None
            ),
            cfg.connect_timeout,
        )
    except TimeoutError:
        raise ConnectionError(f"{FAILED}: {host}:{port}: timed out") from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConnectionError(f"{FAILED}: {host}:{port}: {exc}") from exc
    try:
        link.write(
            wire.connect(
                cfg.client_id or f"flowengine-{uuid.uuid4().hex[:12]}",
                cfg.keep_alive,
                cfg.clean_session,
                link.v5,
                cfg.username,
                cfg.password,
                cfg.session_expiry,
            )
        )
        await asyncio.wait_for(link.connack, cfg.connect_timeout)
        if subscriptions:
            await link.subscribe(subscriptions, cfg.connect_timeout)
    except BaseException as exc:
        link.lost = None
        link.fail("connect abandoned")
        if isinstance(exc, TimeoutError):
            raise ConnectionError(f"{FAILED}: no CONNACK (timeout)") from None
        raise
    return link


def endpoints_of(
    cfg: MqttConnection,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
    count: Callable[[str, int], None] | None = None,
    on_connect: Callable[[], None] | None = None,
) -> Endpoints:
    """The brokers of ``cfg`` for failover (a node keeps this across its reconnects)."""
    names = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in cfg.brokers()]
    return Endpoints(names, cfg.failback_interval, log, count, on_connect)
