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
from flowengine.nodes.opcua.items import (
    NODE_ID,
    check_eurange,
    deadband_filter,
    item_request,
    resolve,
    secure,
)
from flowengine.nodes.opcua.parse import Frames, Reading, frame_of
from flowengine.nodes.opcua.repeats import Recent
from flowengine.types import NonFinite

#: Seconds between two "buffer full" warnings of one client.
DROP_WARN_PERIOD = 10.0

log = logging.getLogger("flowengine.nodes.opcua.client")


class _Link(NamedTuple):
    """One server's connection: the asyncua client, its resolved nodes and subscription."""

    client: Any
    nodes: list[Any]
    names: dict[str, str]
    sub: Any


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
        self.lost: BaseException | None = None
        self._sub: Any = None
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
        """Buffer one subscription value; a full buffer drops (and counts) its oldest. A
        repeat of a value delivered before a switch of servers is dropped."""
        key = (reading.ts, reading.value, reading.code)
        if self.recent is not None and not self.recent.fresh(reading.sensor, key):
            if self._count is not None:
                self._count("repeats_dropped", 1)
            return
        buffer = self.buffer
        if buffer.maxlen is not None and len(buffer) >= buffer.maxlen:
            self.dropped += 1
            if self._count is not None:
                self._count("dropped", 1)
            now = time.monotonic()
            if now - self._warned_at >= DROP_WARN_PERIOD:
                self._log.warning(
                    "subscription buffer full (max_buffer=%d): dropped %d oldest value(s) "
                    "since the last warning, %d in total; downstream is slower than the data",
                    buffer.maxlen,
                    self.dropped - self._warned_dropped,
                    self.dropped,
                )
                self._warned_at, self._warned_dropped = now, self.dropped
        buffer.append(reading)  # a deque with maxlen drops the oldest itself

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
                self.lost = exc

        client.connection_lost_callback = on_lost
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
            sub = await self._subscribe(client, nodes, names, gen) if subscribe else None
        except BaseException:
            self._incoming.clear()  # what its subscription pushed before it failed
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
        old = self.client
        self._use(probe.result())
        self.endpoints.connected(0)
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
    ) -> Any:
        """A subscription with monitored items created ``subscribe_batch`` at a time; its
        values are pushed as connection ``gen``'s."""
        ua = require("asyncua", "opcua").ua
        cfg = self.cfg
        if not isinstance(cfg, OpcuaConfig):
            raise TypeError("subscribing needs an OpcuaConfig")
        mfilter = None
        if cfg.deadband is not None:
            if cfg.deadband.type == "percent":
                await check_eurange(ua, client, nodes, cfg.subscribe_batch)
            mfilter = deadband_filter(ua, cfg.deadband)
        period = cfg.sampling_interval * 1000
        sub = await client.create_subscription(period, _Handler(self, gen, names))
        failed: list[str] = []
        for start in range(0, len(nodes), cfg.subscribe_batch):
            chunk = nodes[start : start + cfg.subscribe_batch]
            requests = [
                item_request(ua, n, start + k + 1, cfg, period, mfilter)
                for k, n in enumerate(chunk)
            ]
            results = await sub.create_monitored_items(requests)
            failed += [
                f"{n.nodeid.to_string()}: {r.name}"
                for n, r in zip(chunk, results, strict=True)
                if isinstance(r, ua.StatusCode)
            ]
        if failed:
            raise ConnectionError(f"cannot monitor {len(failed)} node(s): {', '.join(failed[:5])}")
        return sub

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
        readings = [self.buffer.popleft() for _ in range(len(self.buffer))]
        return frame_of(readings, self.non_finite)

    async def close(self) -> None:
        """Disconnect, bounded: a dead server must not hold the flow. Values not taken yet
        stay in the buffer (a source keeps its client across reconnects)."""
        await self._stop_probe()
        client, self.client, self._sub = self.client, None, None
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


class _Handler:
    """asyncua callbacks: queue each value change; a Bad status change means the link is gone."""

    def __init__(self, owner: OpcuaClient, gen: int, names: dict[str, str]) -> None:
        self.owner = owner
        self.gen = gen
        self.names = names

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        node_id = node.nodeid.to_string()
        name = self.names.get(node_id, node_id)
        reading, owner = Reading(name, node_id, data.monitored_item.Value), self.owner
        if self.gen == owner._gen:
            owner.push(reading)
        elif self.gen > owner._gen:  # the primary, subscribed beside the backup: held
            owner._incoming.append(reading)  # until the switch (older ones: switched away)

    def status_change_notification(self, status: Any) -> None:
        code = status.Status
        if not code.is_good() and self.gen == self.owner._gen:
            self.owner.lost = ConnectionError(f"subscription status {code.name}")
