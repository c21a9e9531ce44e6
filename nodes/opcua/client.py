"""The OPC UA client shared by ``opcua_in``, ``opcua_out``, the CLI and the seed's connector.

asyncua is imported lazily (``require("asyncua", "opcua")``), so this module imports without the
extra. The client never reconnects by itself: connection loss is detected (asyncua's connection
supervisor, subscription status) and raised from ``check``, so the runtime's backoff owns
reconnecting, shows ``retrying``, and ``connect`` then subscribes again from scratch.

With several servers (``server_url`` a list, see ``failover.py``) ``connect`` takes the first
that answers, and ``failback`` moves back to the primary: it connects and subscribes there
beside the backup, then switches and closes the backup, so no change is missed; readings the
primary repeats from the backup are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from flowengine.extras import require
from flowengine.failover import Endpoints
from flowengine.masking import mask_url_password
from flowengine.nodes.opcua.config import OpcuaConfig, OpcuaConnection
from flowengine.nodes.opcua.items import NODE_ID, resolve, secure
from flowengine.nodes.opcua.parse import Frames, Reading, frame_of, overflowed
from flowengine.nodes.opcua.repeats import Recent
from flowengine.nodes.opcua.stream import Feed, stop_quietly
from flowengine.types import NonFinite

#: Seconds between two "buffer full" (or "server queue overflow") warnings of one client.
DROP_WARN_PERIOD = 10.0
#: Seconds between connection checks while waiting for subscription values.
CHECK_PERIOD = 0.25

log = logging.getLogger("flowengine.nodes.opcua.client")


class _Link(NamedTuple):
    """One server's connection: the asyncua client, its resolved nodes and subscription."""

    client: Any
    nodes: list[Any]
    names: dict[str, str]
    sub: Feed | None


class OpcuaClient:
    """One connection (to one of the configured servers): resolve nodes, poll in one request,
    or subscribe in batches."""

    def __init__(
        self,
        cfg: OpcuaConnection,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.client: Any = None
        self.nodes: list[Any] = []
        self.names: dict[str, str] = {}  # node id string -> sensor name
        #: Subscription values not yet taken; bounded by ``max_buffer`` (oldest dropped).
        self.buffer: deque[Reading] = deque(maxlen=getattr(cfg, "max_buffer", None))
        self.dropped = 0
        #: Readings the server marked with the Overflow bit (it discarded older values).
        self.overflows = 0
        self.lost: BaseException | None = None
        self._sub: Feed | None = None
        self._arrived = asyncio.Event()  # set when values arrive or the connection is lost
        self._warned_overflows = 0
        self._overflow_warned_at = -DROP_WARN_PERIOD
        self._log = logger or log
        self._count = count
        self._warned_at = -DROP_WARN_PERIOD
        self._warned_dropped = 0
        self.endpoints = Endpoints(
            [mask_url_password(u) for u in cfg.servers()], cfg.failback_interval, self._log, count
        )
        #: Which connection's subscription callbacks count; older ones are switched away from.
        self._gen = 0
        #: Values of the primary's subscription made beside the backup, until the switch.
        self._incoming: deque[Reading] = deque(maxlen=self.buffer.maxlen)
        self._probe: asyncio.Task[_Link] | None = None
        self.recent = Recent() if self.endpoints.several else None

    def push(self, reading: Reading) -> None:
        """Buffer one subscription value (see :meth:`accept`)."""
        self.accept([reading])

    def accept(self, readings: list[Reading]) -> None:
        """Buffer subscription values (one publish response); a full buffer drops (and
        counts) its oldest. Values the server marked with the Overflow bit are counted and
        warned about. A repeat of a value delivered before a switch of servers is dropped."""
        if self.recent is not None:
            fresh = self.recent.fresh
            kept = [r for r in readings if (key := r.key) is None or fresh(r.sensor, key)]
            if len(kept) < len(readings) and self._count is not None:
                self._count("repeats_dropped", len(readings) - len(kept))
            readings = kept
        marked = sum(1 for r in readings if overflowed(r.code))
        if marked:
            self._overflowed(marked)
        buffer = self.buffer
        if buffer.maxlen is not None and (over := len(buffer) + len(readings) - buffer.maxlen) > 0:
            self._drop(over)
        buffer.extend(readings)  # a deque with maxlen drops the oldest itself
        if readings:
            self._arrived.set()

    def _drop(self, n: int) -> None:
        """Count ``n`` values dropped from a full buffer; warn at most every 10 s."""
        self.dropped += n
        if self._count is not None:
            self._count("dropped", n)
        now = time.monotonic()
        if now - self._warned_at >= DROP_WARN_PERIOD:
            self._log.warning(
                "subscription buffer full (max_buffer=%d): dropped %d oldest value(s) "
                "since the last warning, %d in total; downstream is slower than the data",
                self.buffer.maxlen,
                self.dropped - self._warned_dropped,
                self.dropped,
            )
            self._warned_at, self._warned_dropped = now, self.dropped

    def _overflowed(self, n: int) -> None:
        """Count ``n`` values that follow values the server discarded; warn at most every
        10 s: the server sampled faster than this client fetched, and values were lost."""
        self.overflows += n
        if self._count is not None:
            self._count("overflow", n)
        now = time.monotonic()
        if now - self._overflow_warned_at >= DROP_WARN_PERIOD:
            self._log.warning(
                "server queue overflow (item_queue_size=%s): %d value(s) follow values the "
                "server discarded before this client fetched them (%d since the last warning, "
                "%d in total); raise item_queue_size or publish_requests, or split the nodes "
                "over more connections",
                getattr(self.cfg, "queue_size", "?"),
                n,
                self.overflows - self._warned_overflows,
                self.overflows,
            )
            self._overflow_warned_at, self._warned_overflows = now, self.overflows

    async def connect(self, subscribe: bool = False) -> None:
        """Connect to the first server that answers (with security and user), resolve every
        configured node, and subscribe when asked. With one server its error is raised as is;
        with several, one naming each server tried."""
        await self.close()
        urls, names = self.cfg.servers(), self.endpoints.names
        skipped: list[str] = []
        for index in self.endpoints.order():
            try:
                self._use(await self._ready(urls[index], self._gen + 1, subscribe))
            except Exception as exc:
                if not self.endpoints.several:
                    raise
                skipped.append(f"{names[index]}: {_reason(exc)}")
                continue
            self.endpoints.connected(index, skipped)
            return
        raise ConnectionError(f"no OPC UA server answered: {'; '.join(skipped)}")

    async def _ready(self, url: str, gen: int, subscribe: bool) -> _Link:
        """A connection to ``url`` with every node resolved (and subscribed, for ``gen``)."""
        asyncua = require("asyncua", "opcua")
        cfg = self.cfg
        client = asyncua.Client(url, timeout=cfg.timeout, watchdog_intervall=cfg.timeout)
        if cfg.username:
            client.set_user(cfg.username)
            client.set_password(cfg.password or "")
        if cfg.security is not None and cfg.security.policy != "None":
            await secure(client, cfg.security)

        async def on_lost(exc: Exception) -> None:
            if client is self.client:  # not a server switched away from
                self._lose(exc)

        client.connection_lost_callback = on_lost
        sub: Feed | None = None
        try:
            await asyncio.wait_for(client.connect(), cfg.timeout)
            items = (
                cfg.nodes.items() if isinstance(cfg.nodes, dict) else ((n, "") for n in cfg.nodes)
            )
            nodes, names = [], {}
            for ref, name in items:
                node = await resolve(client, ref)
                node_id = node.nodeid.to_string()
                nodes.append(node)
                names[node_id] = name or (ref if NODE_ID.match(ref) else ref.split("/")[-1])
            if subscribe:
                sub = await self._subscribe(client, nodes, names, gen)
        except BaseException:
            self._incoming.clear()  # what its subscription pushed before it failed
            stop_quietly(sub)
            await _disconnect(client, 1.0)
            raise
        return _Link(client, nodes, names, sub)

    def _use(self, link: _Link) -> None:
        """Make ``link`` the connection; values its subscription held go to the buffer."""
        self._gen += 1
        self.client, self.nodes, self.names, self._sub = link
        self.lost = None
        if self.recent is not None:
            self.recent.switched()
        incoming, self._incoming = self._incoming, deque(maxlen=self._incoming.maxlen)
        for reading in incoming:
            self.push(reading)

    async def failback(self, subscribe: bool = False) -> bool:
        """While a backup serves: every ``failback_interval`` connect to the primary beside it
        (in the background); once that is ready (subscribed), switch to it and close the
        backup. True when it switched. A primary still down costs nothing here."""
        probe = self._probe
        if probe is None:
            if self.endpoints.failback_due():
                url = self.cfg.servers()[0]
                self._probe = asyncio.create_task(self._ready(url, self._gen + 1, subscribe))
            return False
        if not probe.done():
            return False
        self._probe = None
        if probe.cancelled() or (exc := probe.exception()) is not None:
            self._log.info("primary %s not back yet: %s", self.endpoints.label(0), _reason(exc))
            return False
        old, old_sub = self.client, self._sub
        self._use(probe.result())
        self.endpoints.connected(0)
        stop_quietly(old_sub)
        await _disconnect(old, 2.0)
        return True

    async def _stop_probe(self) -> None:
        """Cancel a connection to the primary under way (closing it if it was made)."""
        probe, self._probe = self._probe, None
        if probe is None:
            return
        probe.cancel()
        with contextlib.suppress(BaseException):
            await probe
        if not probe.cancelled() and probe.exception() is None:
            stop_quietly(probe.result().sub)
            await _disconnect(probe.result().client, 1.0)

    def check(self) -> None:
        """Raise when the connection is gone, so the runtime reconnects with backoff."""
        require("asyncua", "opcua")
        from asyncua.client.ua_client import UaClientState

        if self.client is None:
            raise ConnectionError("not connected")
        url = mask_url_password(self.cfg.servers()[self.endpoints.active or 0])
        if self.lost is not None:
            raise ConnectionError(f"connection to {url} lost: {self.lost}")
        if self.client.uaclient.state is not UaClientState.CONNECTED:
            raise ConnectionError(f"connection to {url} lost")
        if self._sub is not None and self._sub.silent:
            raise ConnectionError(f"subscription on {url} gone: no publish response in time")

    @property
    def gone(self) -> bool:
        """True when the connection is lost (``check`` would raise)."""
        try:
            self.check()
        except ConnectionError:
            return True
        return False

    @property
    def non_finite(self) -> NonFinite:
        """What a NaN/+-inf value becomes (``bad`` for a sink's connection, which reads none)."""
        return self.cfg.non_finite if isinstance(self.cfg, OpcuaConfig) else "bad"

    async def read(self) -> Frames:
        """Current values of all nodes in ONE Read request."""
        self.check()
        dvs = await self.client.read_attributes(self.nodes)
        ids = [n.nodeid.to_string() for n in self.nodes]
        readings = [Reading(self.names[i], i, dv) for i, dv in zip(ids, dvs, strict=True)]
        return frame_of(readings, self.non_finite)

    async def subscribe(self) -> None:
        """Subscribe the connected server's nodes (``connect(subscribe=True)`` does this)."""
        self._sub = await self._subscribe(self.client, self.nodes, self.names, self._gen)

    async def _subscribe(
        self, client: Any, nodes: list[Any], names: dict[str, str], gen: int
    ) -> Feed:
        """A subscription of ``nodes`` whose values are delivered as connection ``gen``'s."""
        cfg = self.cfg
        if not isinstance(cfg, OpcuaConfig):
            raise TypeError("subscribing needs an OpcuaConfig")
        ids = [n.nodeid.to_string() for n in nodes]
        pairs = [(names.get(i, i), i) for i in ids]

        def deliver(readings: list[Reading]) -> None:
            if gen == self._gen:
                self.accept(readings)
            elif gen > self._gen:  # the primary, subscribed beside the backup: held
                self._incoming.extend(readings)  # until the switch (older ones: dropped)

        def lost(exc: Exception) -> None:
            if gen == self._gen:
                self._lose(exc)

        feed = Feed(client, pairs, deliver, lost)
        try:
            await feed.subscribe(cfg, nodes)
        except BaseException:
            feed.stop()
            raise
        return feed

    def _lose(self, exc: BaseException) -> None:
        """The connection (or its subscription) is gone: ``check`` raises from now on."""
        self.lost = exc
        self._arrived.set()

    async def next_values(
        self, linger: float = 0.0, wait: float = CHECK_PERIOD * 2
    ) -> Frames | None:
        """The subscription's values as soon as some are buffered: after at most ``linger``
        more seconds, everything buffered. None when nothing arrived within ``wait`` seconds
        (the caller does its periodic work and asks again).

        When the connection is lost, what it delivered before goes out first; the next call
        raises."""
        deadline = time.monotonic() + wait
        while not self.buffer:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, CHECK_PERIOD))
        if linger > 0:
            until = time.monotonic() + linger
            while (left := until - time.monotonic()) > 0 and not self.gone:
                await asyncio.sleep(min(left, CHECK_PERIOD))
        return self._drain()

    def _drain(self) -> Frames:
        """Everything buffered, as frames; the buffer is empty after."""
        readings = list(self.buffer)
        self.buffer.clear()
        return frame_of(readings, self.non_finite)

    async def take(self, interval: float) -> Frames | None:
        """Wait ``interval`` seconds, then everything the subscription delivered meanwhile.

        When the connection is lost, what it delivered before goes out first; the next call
        raises."""
        deadline = time.monotonic() + interval
        while (left := deadline - time.monotonic()) > 0:
            if self.buffer and self.gone:
                break
            self.check()
            await asyncio.sleep(min(left, 0.1))
        if not self.buffer:
            self.check()
            return None
        return self._drain()

    async def close(self) -> None:
        """Disconnect, bounded: a dead server must not hold the flow. Values not taken yet
        stay in the buffer (a source keeps its client across reconnects)."""
        await self._stop_probe()
        client, self.client, sub, self._sub = self.client, None, self._sub, None
        stop_quietly(sub)
        await _disconnect(client, 2.0)


async def _disconnect(client: Any, timeout: float) -> None:
    """Disconnect ``client`` (if any), errors and all bounded by ``timeout``."""
    if client is not None:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(client.disconnect(), timeout)


def _reason(exc: BaseException | None) -> str:
    """An exception as the logs say it: its text, its type when it has none, or timeout."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc is None:
        return "cancelled"
    return str(exc) or type(exc).__name__
