"""The MQTT client of the seed's ``MQTTConnector`` and the nodes, on the event loop.

A :class:`~flowengine.nodes.mqtt.link.Link` is one connection; received messages go into a
bounded :class:`~flowengine.nodes.mqtt.handoff.Handoff` that the source takes from, everything
one socket read brought at once. Published QoS 1/2 messages wait in an
:class:`~flowengine.nodes.mqtt.outbox.Outbox` until acknowledged; a batch waits once for all of
its acknowledgements, not per message, or (``settle=False``) only for room in the window, so
that the next batch need not wait a round trip (docs/performance.md says why there is no paho
thread).

The source never reconnects on its own: a lost connection surfaces as an exception, so the
runtime shows ``retrying``, backs off and calls ``start`` again, which reconnects and
subscribes anew (a persistent session keeps QoS 1/2 messages at the broker meanwhile). A
publisher (``reconnect=True``) reconnects in the background and sends again what the broker
had not acknowledged.

With several brokers (``broker_host`` a list, see ``flowengine.failover``) ``connect`` takes
the first that answers; a publisher whose broker is lost moves to the next at once and
publishes there what the lost one had not acknowledged. While a backup serves, a background
task tries the primary every ``failback_interval``; once connected (and subscribed) there, it
becomes the connection, and the backup is closed once what it delivered is confirmed: make
before break, so nothing published on either broker meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable

from flowengine.failover import Endpoints
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.nodes.mqtt.handoff import Handoff, Lost
from flowengine.nodes.mqtt.link import FAILED, Link, Received, endpoints_of, open_link
from flowengine.nodes.mqtt.outbox import Outbox

Message = tuple[str, bytes]

#: Seconds between a publisher's attempts to reconnect to its one broker (doubling up to 10).
RECONNECT_DELAY = 0.5


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
        self.outbox = Outbox()
        self.endpoints = endpoints or endpoints_of(cfg)
        self._brokers = cfg.brokers()
        self._link: Link | None = None
        #: The broker that served last (a reconnection there sends duplicates, not news).
        self._served: int | None = None
        self._subs: list[tuple[str, int]] = []
        #: Held while publishing: a switch back to the primary waits for the acks.
        self._busy = asyncio.Lock()
        self._failback: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._retiring: set[Link] = set()
        self._closed = False

    @property
    def connected(self) -> bool:
        """True while the broker that serves is connected."""
        return self._link is not None and self._link.connected

    async def connect(
        self, subscriptions: Iterable[tuple[str, int]] = (), buffer: int = 10_000
    ) -> None:
        """Connect to the first broker that answers and subscribe; raises ``ConnectionError``
        with the broker's return code (with several brokers, naming each one tried)."""
        self.handoff = Handoff(buffer)
        self._subs = list(subscriptions)
        await self._connect_any(self.endpoints.order())

    async def _connect_any(self, order: list[int]) -> None:
        """Connect to the first of ``order`` that answers; start checking for the primary."""
        skipped: list[str] = []
        for index in order:
            try:
                link = await self._open(index)
            except ConnectionError as exc:
                if not self.endpoints.several:
                    raise
                skipped.append(self._why(index, exc))
                continue
            self._adopt(link)
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
        return await open_link(
            index,
            host,
            port,
            self.cfg,
            self._subs,
            manual_ack=self.manual_ack,
            outbox=self.outbox,
            deliver=self._deliver if self._subs else None,
            lost=self._lost,
        )

    def _adopt(self, link: Link) -> None:
        """``link`` serves from now on; it sends what is still unacknowledged."""
        same = self._served == link.index
        self._link, self._served = link, link.index
        if len(self.outbox):
            link.resend(self.outbox, same)

    def _deliver(self, link: Link, messages: list[Received]) -> None:
        """Messages of one socket read into the hand-off (and, manual mode, ``received``)."""
        handoff = self.handoff
        if handoff is None:
            return
        if link.closing and self.manual_ack and not self.cfg.clean_session:
            return  # unconfirmed, it stays in the session there: it comes when we come back
        if self.manual_ack:  # before the put: the flow never takes a message not listed here
            self.received.extend((link, mid, qos) for _, _, qos, mid in messages)
        now = time.time_ns()

        def pause() -> Callable[[], None]:
            link.pause_reading()
            return link.resume_reading

        handoff.put_many([(t, p, now) for t, p, _, _ in messages], pause)

    def _lost(self, link: Link, reason: str) -> None:
        """A connection ended: tell the source, or (a publisher) reconnect in the background."""
        if link is not self._link or self._closed:
            return
        if self.handoff is not None and self._subs:
            where = f" to {self.endpoints.label(link.index)}" if self.endpoints.several else ""
            self.handoff.put_lost(Lost(f"MQTT connection{where} lost ({reason})"))
        if self.reconnect and not self.endpoints.several and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect(link))

    async def _reconnect(self, lost: Link) -> None:
        """A publisher's one broker is gone: try again, 0.5 s to 10 s apart, until it is back."""
        delay = RECONNECT_DELAY
        try:
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    link = await self._open(lost.index)
                except ConnectionError:
                    delay = min(delay * 2, 10.0)
                    continue
                if self._closed:
                    link.close()
                    return
                self._adopt(link)
                return
        finally:
            self._reconnecting = None

    def ack(self, count: int) -> None:
        """Confirm the first ``count`` received messages not confirmed yet (manual mode);
        QoS 0 ones need nothing. Messages of a lost connection are the broker's to resend."""
        by_link: dict[Link, list[tuple[int, int]]] = {}
        for _ in range(min(count, len(self.received))):
            link, mid, qos = self.received.popleft()
            if qos and link.connected:
                by_link.setdefault(link, []).append((mid, qos))
        for link, pending in by_link.items():
            link.ack(pending)

    async def wait_connected(
        self, timeout: float, on_wait: Callable[[str], None] | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for the reconnection (a client made with
        ``reconnect=True`` reconnects by itself), or with several brokers for the next one
        that answers; True if it had to wait. Raises ``ConnectionError`` when the connection
        is not back in time."""
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
            lost.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._connect_any(self.endpoints.order())
                return
            except ConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"{exc} (for {timeout:g}s)") from None
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def publish_now(
        self, todo: list[Message], qos: int, retain: bool, *, window: int, settle: bool
    ) -> bool:
        """Publish ``todo`` now if that needs no wait of any kind (connected, nothing else
        publishing, socket buffer not full, and QoS 0, or QoS 1/2 without ``settle`` with room
        in the window for all): True; else publish nothing, False (``publish_many`` waits)."""
        link = self._link
        if self._busy.locked() or link is None or not link.writable():
            return False
        if not qos:  # the common QoS 0 case
            link.publish(todo, 0, retain)
            return True
        if settle or len(self.outbox) + len(todo) > max(1, min(window, link.receive_max)):
            return False
        mids = self.outbox.add(todo, qos, retain)
        try:
            link.publish(todo, qos, retain, mids)
        except BaseException:
            self.outbox.forget(mids)
            raise
        return True

    async def publish_many(
        self,
        messages: Iterable[Message],
        qos: int,
        retain: bool,
        timeout: float = 30.0,
        *,
        reconnect_timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
        window: int = 1000,
        settle: bool = True,
    ) -> int:
        """Publish; for QoS > 0 with ``settle`` return only when the broker acknowledged every
        message (of this batch and any earlier one still unacknowledged).

        Everything is written at once (QoS 1/2: at most ``window`` unacknowledged at a time,
        earlier batches' messages included, fewer if an MQTT 5 broker asks for that, more as
        acknowledgements come in), and the acknowledgements are awaited together, not one by
        one. Without ``settle`` it returns once the last message is written: the outbox keeps
        the unacknowledged ones (:meth:`settle` waits for them, a new connection sends them
        again), so the caller is not held for a round trip per batch. While the connection is
        down (a broker restart) wait up to ``reconnect_timeout`` seconds for the reconnection,
        calling ``on_wait`` first, instead of dropping: unacknowledged QoS 1/2 messages are
        sent again after it (at least once), QoS 0 messages not written yet are written then.
        With several brokers the wait is a failover, and what the lost broker had not
        acknowledged is published on the next. ``timeout`` bounds the wait for acks while
        connected. A batch that fails leaves nothing of itself behind to be sent later.
        """
        todo = messages if isinstance(messages, list) else list(messages)
        if self.publish_now(todo, qos, retain, window=window, settle=settle):
            return len(todo)
        async with self._busy:
            if not qos:
                await self._ready(reconnect_timeout, on_wait)
                assert self._link is not None
                self._link.publish(todo, 0, retain)
                await self._link.drain()
                return len(todo)
            mine: list[int] = []
            try:
                start = 0
                while True:  # a sliding window: more as the acknowledgements come in
                    link = await self._ready(reconnect_timeout, on_wait)
                    limit = max(1, min(window, link.receive_max))
                    room = limit - len(self.outbox)
                    if room > 0 and start < len(todo):
                        chunk = todo[start : start + room]
                        mids = self.outbox.add(chunk, qos, retain)
                        mine += mids
                        link.publish(chunk, qos, retain, mids)
                        start += len(chunk)
                    if start >= len(todo) and (not settle or not len(self.outbox)):
                        if not settle:
                            await link.drain()
                        return len(todo)
                    target = 0 if start >= len(todo) else limit // 2
                    await self._acked(target, timeout, reconnect_timeout, on_wait)
            except BaseException:
                self.outbox.forget(mine)  # the batch fails as a whole (error port)
                raise

    async def settle(
        self,
        timeout: float = 30.0,
        *,
        reconnect_timeout: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Wait until the broker has acknowledged everything published (``publish_many``
        without ``settle``); the same timeouts. What is left on failure stays in the outbox."""
        async with self._busy:
            await self._acked(0, timeout, reconnect_timeout, on_wait)

    def republish(self, messages: Iterable[tuple[str, bytes, int, bool]]) -> None:
        """Publish again what a checkpoint recorded as unacknowledged (``Outbox.pending``),
        after a crash: now if connected, else with the next connection's resend."""
        link = self._link
        for topic, payload, qos, retain in messages:
            mids = self.outbox.add([(topic, payload)], qos, retain)
            if link is not None and link.connected:
                link.publish([(topic, payload)], qos, retain, mids)

    async def _ready(self, reconnect_timeout: float, on_wait: Callable[[str], None] | None) -> Link:
        """The connection that serves, waiting for it while it is down."""
        if not self.connected:
            if reconnect_timeout <= 0:
                raise ConnectionError(f"{FAILED}: not connected")
            await self.wait_connected(reconnect_timeout, on_wait)
        assert self._link is not None
        return self._link

    async def _acked(
        self,
        target: int,
        timeout: float,
        reconnect_timeout: float,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        """Wait until at most ``target`` messages are unacknowledged. ``timeout`` without
        an acknowledgement fails; a disconnection pauses that clock (bounded by
        ``reconnect_timeout``): the next connection sends the unacknowledged ones again."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) > target:
            link = self._link
            if link is None or not link.connected:
                if reconnect_timeout <= 0:
                    raise ConnectionError("MQTT connection lost before the broker acknowledged")
                await self.wait_connected(reconnect_timeout, on_wait)
                deadline = time.monotonic() + timeout
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"MQTT publish not acknowledged within {timeout}s")
            before = len(self.outbox)
            enough = self.outbox.at_most(target)
            await asyncio.wait([enough, link.ended], timeout=left, return_when="FIRST_COMPLETED")
            if len(self.outbox) < before:  # progress: the clock starts again
                deadline = time.monotonic() + timeout

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
                if len(self.outbox):  # published on the backup (``settle=False``): let it
                    with contextlib.suppress(Exception):  # acknowledge them there first
                        await self._acked(0, self.cfg.connect_timeout, 0.0, None)
                old = self._link
                self._adopt(primary)
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
        old.close()
        self._retiring.discard(old)

    async def disconnect(self) -> None:
        """Send DISCONNECT and close; background reconnection and failback stop."""
        self._closed = True
        for task in (self._failback, self._reconnecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._failback = self._reconnecting = None
        link, self._link = self._link, None
        if self.handoff is not None:
            self.handoff.close()
        closing = [other for other in [link, *self._retiring] if other is not None]
        self._retiring.clear()
        for other in closing:
            other.close()
        if closing:  # DISCONNECT flushed and the sockets closed (a moment, on a live broker)
            await asyncio.wait([other.ended for other in closing], timeout=1.0)
