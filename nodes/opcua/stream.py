"""One connection's subscription, fed without per-value work from the library.

asyncua's own subscription path decodes every value into dataclasses and datetimes, turns it
into an event object and an asyncio task before a handler sees it, and keeps ONE publish
request outstanding, so a server that sends at most 1,000 values per response waits for the
client between responses: at 20,000 values a second that was most of the client's CPU, and the
server overwrote values the client had not fetched. A :class:`Feed` owns its subscription
(created with asyncua's request types on the client's connection, but not registered with
asyncua's publish loop), keeps ``publish_requests`` Publish requests in flight so the server
can send the next response while one is handled, reads each response with ``wire.py`` (asyncua
decodes what that does not handle) and hands its values on in one call. Responses are handled
in the order they arrive, so values keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flowengine.extras import require
from flowengine.nodes.opcua.config import OpcuaConfig
from flowengine.nodes.opcua.items import check_eurange, deadband_filter, item_request
from flowengine.nodes.opcua.parse import Reading
from flowengine.nodes.opcua.wire import decode_publish

log = logging.getLogger("flowengine.nodes.opcua.stream")
#: Seconds between keep-alives the subscription asks for while no value changes.
KEEPALIVE = 5.0


class Feed:
    """A subscription on one asyncua client: monitored items with client handles 1..N, and
    the publish requests that fetch their values."""

    def __init__(
        self,
        client: Any,
        names: list[tuple[str, str]],
        deliver: Callable[[list[Reading]], None],
        lost: Callable[[Exception], None],
    ) -> None:
        #: (sensor, node id) per client handle - 1.
        self.names = names
        self.client = client
        self._deliver = deliver
        self._lost = lost
        self.sid: int | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        #: Seconds without any publish response after which the subscription is gone (the
        #: server sends at least a keep-alive every MaxKeepAliveCount publishing intervals).
        self.silence = math.inf
        self.heard = time.monotonic()

    async def subscribe(self, cfg: OpcuaConfig, nodes: list[Any]) -> None:
        """Create the subscription (publishing interval = ``sampling_interval``) and its
        monitored items ``subscribe_batch`` at a time; then start the publish loops."""
        ua = require("asyncua", "opcua").ua
        client, uaclient = self.client, self.client.uaclient
        mfilter = None
        if cfg.deadband is not None:
            if cfg.deadband.type == "percent":
                await check_eurange(ua, client, nodes, cfg.subscribe_batch)
            mfilter = deadband_filter(ua, cfg.deadband)
        period = cfg.sampling_interval * 1000
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = period
        params.RequestedMaxKeepAliveCount = max(1, math.ceil(KEEPALIVE / cfg.sampling_interval))
        params.RequestedLifetimeCount = max(10000, 3 * params.RequestedMaxKeepAliveCount)
        params.MaxNotificationsPerPublish = 10000
        params.PublishingEnabled = True
        request = ua.CreateSubscriptionRequest()
        request.Parameters = params
        response = await self._call(ua.CreateSubscriptionResponse, request)
        result = response.Parameters
        self.sid = result.SubscriptionId
        keepalive = result.RevisedPublishingInterval / 1000 * result.RevisedMaxKeepAliveCount
        self.silence = 2 * keepalive + cfg.timeout
        failed: list[str] = []
        for start in range(0, len(nodes), cfg.subscribe_batch):
            chunk = nodes[start : start + cfg.subscribe_batch]
            create = ua.CreateMonitoredItemsParameters()
            create.SubscriptionId = self.sid
            create.TimestampsToReturn = ua.TimestampsToReturn.Both
            create.ItemsToCreate = [
                item_request(ua, n, start + k + 1, cfg, period, mfilter)
                for k, n in enumerate(chunk)
            ]
            results = await uaclient.create_monitored_items(create)
            failed += [
                f"{n.nodeid.to_string()}: {r.StatusCode.name}"
                for n, r in zip(chunk, results, strict=True)
                if not r.StatusCode.is_good()
            ]
        if failed:
            raise ConnectionError(f"cannot monitor {len(failed)} node(s): {', '.join(failed[:5])}")
        self.heard = time.monotonic()  # silence counts from here, not from creating items
        self.tasks = [asyncio.create_task(self._publish()) for _ in range(cfg.publish_requests)]

    async def _call(self, kind: Any, request: Any) -> Any:
        """Send ``request`` on the client's connection; its response of type ``kind``."""
        binary = require("asyncua", "opcua").ua.ua_binary
        protocol = self.client.uaclient.protocol
        if protocol is None:
            raise ConnectionError("not connected")
        response = binary.struct_from_binary(kind, await protocol.send_request(request))
        response.ResponseHeader.ServiceResult.check()
        return response

    def on_changes(self, changes: list[Any]) -> None:
        """The data changes ``wire.py`` read from one response, handed on in one call."""
        names, count, of = self.names, len(self.names), Reading.of
        readings: list[Reading] = []
        for handle, value, code, source, server in changes:
            k = handle - 1
            if 0 <= k < count:
                sensor, node_id = names[k]
                readings.append(of(sensor, node_id, value, code, source, server))
        if readings:
            self._deliver(readings)

    def on_publish(self, result: Any) -> None:
        """One publish response as asyncua decoded it: its values as readings, handed on in
        one call; a Bad subscription status means the subscription is gone."""
        data = result.NotificationMessage.NotificationData
        if not data:
            return  # a keep-alive
        readings: list[Reading] = []
        names, count = self.names, len(self.names)
        for notification in data:
            items = getattr(notification, "MonitoredItems", None)
            if items is not None:
                for item in items:
                    k = item.ClientHandle - 1
                    if 0 <= k < count:
                        sensor, node_id = names[k]
                        readings.append(Reading(sensor, node_id, item.Value))
                continue
            status = getattr(notification, "Status", None)
            if status is not None and not status.is_good():
                self._lost(ConnectionError(f"subscription status {status.name}"))
        if readings:
            self._deliver(readings)

    async def _publish(self) -> None:
        """Long because it is a publish loop: one Publish request in flight, acknowledging
        what it received with the next. When the server refuses it (too many requests) it
        ends; when the last loop ends (the subscription or connection is gone), the
        connection counts as lost so the runtime reconnects."""
        ua = require("asyncua", "opcua").ua
        acks: list[Any] = []
        reason = "ended"
        try:
            while True:
                protocol = self.client.uaclient.protocol
                if protocol is None:
                    reason = "connection closed"
                    return
                request = ua.PublishRequest()
                request.Parameters.SubscriptionAcknowledgements = acks
                try:
                    data = await protocol.send_request(request, timeout=0)
                    self.heard = time.monotonic()
                except ua.uaerrors.BadTimeout:
                    acks = []
                    continue
                except (TimeoutError, ua.UaError, OSError, ConnectionError) as exc:
                    reason = str(exc) or type(exc).__name__
                    return
                try:
                    sid, seq, notifications = self._handle(bytes(data))
                except Exception as exc:  # a message neither decoder reads
                    log.exception("cannot read a publish response")
                    reason = str(exc) or type(exc).__name__
                    return
                if not sid:
                    reason = "the server has no subscription"
                    return
                acks = []
                if notifications:
                    ack = ua.SubscriptionAcknowledgement()
                    ack.SubscriptionId, ack.SequenceNumber = sid, seq
                    acks = [ack]
        finally:
            self._ended(reason)

    def _handle(self, raw: bytes) -> tuple[int, int, int]:
        """One publish response: its values handed on; (subscription id, sequence number,
        notifications) for the acknowledgement."""
        asyncua = require("asyncua", "opcua")
        from asyncua.common.utils import Buffer

        binary = asyncua.ua.ua_binary
        publish = decode_publish(raw, binary.get_string_encoding())
        if publish is not None:
            self.on_changes(publish.changes)
            return publish.subscription_id, publish.sequence_number, publish.notifications
        # what wire.py does not read: asyncua decodes it
        params = binary.struct_from_binary(asyncua.ua.PublishResponse, Buffer(raw)).Parameters
        message = params.NotificationMessage
        self.on_publish(params)
        return params.SubscriptionId, message.SequenceNumber, len(message.NotificationData or ())

    def _ended(self, reason: str) -> None:
        """A publish loop ended: with none left (and not stopped), nothing fetches values."""
        log.debug("publish loop ended: %s", reason)
        if not self._stopped and self.in_flight <= 1:
            self._lost(ConnectionError(f"subscription has no publish requests left: {reason}"))

    @property
    def silent(self) -> bool:
        """True when the server has sent nothing for longer than its keep-alive promise:
        the subscription is gone (deleted or expired) though the connection is up."""
        return time.monotonic() - self.heard > self.silence

    def stop(self) -> None:
        """Stop the publish loops."""
        self._stopped = True
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()

    @property
    def in_flight(self) -> int:
        """Publish loops still running."""
        return sum(not t.done() for t in self.tasks)


def stop_quietly(feed: Feed | None) -> None:
    """Stop ``feed``'s loops, if there is one."""
    if feed is not None:
        with contextlib.suppress(Exception):
            feed.stop()
