"""The OPC UA client shared by ``opcua_in``, ``opcua_out``, the CLI and the seed's connector.

asyncua is imported lazily (``require("asyncua", "opcua")``), so this module imports without the
extra. The client never reconnects by itself: connection loss is detected (asyncua's connection
supervisor, subscription status) and raised from ``check``, so the runtime's backoff owns
reconnecting, shows ``retrying``, and ``connect`` then subscribes again from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flowengine.extras import require
from flowengine.nodes.opcua.config import (
    SUBSCRIBE_BATCH,
    Deadband,
    OpcuaConfig,
    OpcuaConnection,
    Security,
)
from flowengine.nodes.opcua.parse import Frames, Reading, coerce, frame_of
from flowengine.types import NonFinite

#: A node id string (``ns=2;i=1001``, ``ns=2;s=Line3.Temp``, ``i=2258``); anything else is a
#: browse path.
NODE_ID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=", re.IGNORECASE)
#: Seconds between two "buffer full" warnings of one client.
DROP_WARN_PERIOD = 10.0

log = logging.getLogger("flowengine.nodes.opcua.client")


class OpcuaClient:
    """One connection: resolve nodes, poll in one request, or subscribe in batches."""

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

    def push(self, reading: Reading) -> None:
        """Buffer one subscription value; a full buffer drops (and counts) its oldest."""
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

    async def connect(self) -> None:
        """Connect (with security and user), resolve every configured node."""
        asyncua = require("asyncua", "opcua")
        cfg = self.cfg
        client = asyncua.Client(cfg.server_url, timeout=cfg.timeout, watchdog_intervall=cfg.timeout)
        if cfg.username:
            client.set_user(cfg.username)
            client.set_password(cfg.password or "")
        if cfg.security is not None and cfg.security.policy != "None":
            await _secure(client, cfg.security)
        self.lost = None

        async def on_lost(exc: Exception) -> None:
            self.lost = exc

        client.connection_lost_callback = on_lost
        try:
            await asyncio.wait_for(client.connect(), cfg.timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1.0)
            raise
        self.client = client
        items = cfg.nodes.items() if isinstance(cfg.nodes, dict) else ((n, "") for n in cfg.nodes)
        self.nodes, self.names = [], {}
        for ref, name in items:
            node = await resolve(client, ref)
            node_id = node.nodeid.to_string()
            self.nodes.append(node)
            self.names[node_id] = name or (ref if NODE_ID.match(ref) else ref.split("/")[-1])

    def check(self) -> None:
        """Raise when the connection is gone, so the runtime reconnects with backoff."""
        require("asyncua", "opcua")
        from asyncua.client.ua_client import UaClientState

        if self.client is None:
            raise ConnectionError("not connected")
        if self.lost is not None:
            raise ConnectionError(f"connection to {self.cfg.server_url} lost: {self.lost}")
        if self.client.uaclient.state is not UaClientState.CONNECTED:
            raise ConnectionError(f"connection to {self.cfg.server_url} lost")

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
        """A subscription with monitored items created ``subscribe_batch`` at a time."""
        ua = require("asyncua", "opcua").ua
        cfg = self.cfg
        if not isinstance(cfg, OpcuaConfig):
            raise TypeError("subscribing needs an OpcuaConfig")
        mfilter = None
        if cfg.deadband is not None:
            if cfg.deadband.type == "percent":
                await self._check_eurange(ua)
            mfilter = deadband_filter(ua, cfg.deadband)
        period = cfg.sampling_interval * 1000
        self._sub = sub = await self.client.create_subscription(period, _Handler(self))
        failed: list[str] = []
        for start in range(0, len(self.nodes), cfg.subscribe_batch):
            chunk = self.nodes[start : start + cfg.subscribe_batch]
            requests = [
                _item_request(ua, n, start + k + 1, cfg, period, mfilter)
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

    async def _check_eurange(self, ua: Any) -> None:
        """Percent deadband is relative to each node's EURange property: fail clearly without.

        One TranslateBrowsePathsToNodeIds request per ``subscribe_batch`` nodes.
        """
        batch = self.cfg.subscribe_batch if isinstance(self.cfg, OpcuaConfig) else SUBSCRIBE_BATCH
        missing: list[str] = []
        for start in range(0, len(self.nodes), batch):
            chunk = self.nodes[start : start + batch]
            paths = []
            for node in chunk:
                element = ua.RelativePathElement()
                element.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
                element.IsInverse = False  # asyncua's default is True
                element.TargetName = ua.QualifiedName("EURange", 0)
                path = ua.BrowsePath()
                path.StartingNode = node.nodeid
                path.RelativePath = ua.RelativePath()
                path.RelativePath.Elements = [element]
                paths.append(path)
            results = await self.client.uaclient.translate_browsepaths_to_nodeids(paths)
            missing += [
                n.nodeid.to_string()
                for n, r in zip(chunk, results, strict=True)
                if not r.StatusCode.is_good() or not r.Targets
            ]
        if missing:
            raise ValueError(
                f"percent deadband needs an EURange property on each node; missing on "
                f"{len(missing)} node(s): {', '.join(missing[:5])}"
            )

    async def take(self, interval: float) -> Frames | None:
        """Wait ``interval`` seconds, then everything the subscription delivered meanwhile."""
        deadline = time.monotonic() + interval
        while (left := deadline - time.monotonic()) > 0:
            self.check()
            await asyncio.sleep(min(left, 0.1))
        self.check()
        if not self.buffer:
            return None
        readings = [self.buffer.popleft() for _ in range(len(self.buffer))]
        return frame_of(readings, self.non_finite)

    async def close(self) -> None:
        """Disconnect, bounded: a dead server must not hold the flow."""
        client, self.client, self._sub = self.client, None, None
        if client is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(client.disconnect(), 2.0)


def deadband_filter(ua: Any, deadband: Deadband) -> Any:
    """The DataChangeFilter sent with every monitored item (StatusValue trigger)."""
    mfilter = ua.DataChangeFilter()
    mfilter.Trigger = ua.DataChangeTrigger.StatusValue
    kind = ua.DeadbandType.Absolute if deadband.type == "absolute" else ua.DeadbandType.Percent
    mfilter.DeadbandType = int(kind)
    mfilter.DeadbandValue = float(deadband.value)
    return mfilter


def _item_request(
    ua: Any, node: Any, handle: int, cfg: OpcuaConfig, period: float, mfilter: Any
) -> Any:
    """One MonitoredItemCreateRequest with our queue size, discard policy and deadband."""
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = period
    params.QueueSize = cfg.queue_size
    params.DiscardOldest = cfg.discard_oldest
    if mfilter is not None:
        params.Filter = mfilter
    item = ua.ReadValueId()
    item.NodeId = node.nodeid
    item.AttributeId = ua.AttributeIds.Value
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = item
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request


class _Handler:
    """asyncua callbacks: queue each value change; a Bad status change means the link is gone."""

    def __init__(self, owner: OpcuaClient) -> None:
        self.owner = owner

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        node_id = node.nodeid.to_string()
        name = self.owner.names.get(node_id, node_id)
        self.owner.push(Reading(name, node_id, data.monitored_item.Value))

    def status_change_notification(self, status: Any) -> None:
        code = status.Status
        if not code.is_good():
            self.owner.lost = ConnectionError(f"subscription status {code.name}")


async def _secure(client: Any, sec: Security) -> None:
    """Basic256Sha256 with the client certificate; the application URI follows the cert's."""
    asyncua = require("asyncua", "opcua")
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography import x509

    if not sec.certificate or not sec.private_key:
        raise ValueError("security needs 'certificate' and 'private_key' files")
    cert = x509.load_pem_x509_certificate(Path(sec.certificate).read_bytes())
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            client.application_uri = uris[0]
    mode = getattr(asyncua.ua.MessageSecurityMode, sec.mode)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=sec.certificate,
        private_key=sec.private_key,
        server_certificate=sec.server_certificate,
        mode=mode,
    )


async def resolve(client: Any, ref: str) -> Any:
    """A Node from a node id string or a browse path (``Objects/2:Line3/2:Temp``).

    Path segments with an ``N:`` prefix are exact browse names; without one, the child whose
    name matches in any namespace. A path starts at Objects (a leading ``Objects`` is optional).
    """
    if NODE_ID.match(ref):
        return client.get_node(ref)
    parts = [p for p in ref.strip("/").split("/") if p]
    if parts and parts[0] in ("Objects", "0:Objects"):
        parts = parts[1:]
    node = client.nodes.objects
    for part in parts:
        if re.match(r"^\d+:", part):
            node = await node.get_child(part)
            continue
        for child in await node.get_children():
            if (await child.read_browse_name()).Name == part:
                node = child
                break
        else:
            raise KeyError(f"browse path '{ref}': no child '{part}'")
    return node


class OpcuaWriter:
    """Writes values to nodes, reading each node's VariantType once."""

    def __init__(self, client: OpcuaClient) -> None:
        self.client = client
        self.types: dict[str, Any] = {}

    async def write(self, targets: Iterable[tuple[str, Any]]) -> None:
        """Write ``(node, value)`` pairs (node ids, browse paths or configured names)."""
        ua = require("asyncua", "opcua").ua
        by_name = {v: k for k, v in self.client.names.items()}
        nodes, values = [], []
        for ref, value in targets:
            ref = by_name.get(ref, ref)
            node = await resolve(self.client.client, ref)
            key = node.nodeid.to_string()
            if key not in self.types:
                self.types[key] = await node.read_data_type_as_variant_type()
            vtype = self.types[key]
            nodes.append(node)
            values.append(ua.DataValue(ua.Variant(coerce(value, vtype), vtype)))
        if nodes:
            self.client.check()
            ids = [n.nodeid for n in nodes]
            results = await self.client.client.uaclient.write_attributes(
                ids, values, ua.AttributeIds.Value
            )
            for node, result in zip(nodes, results, strict=True):
                if not result.is_good():
                    raise ValueError(f"write to {node.nodeid.to_string()} failed: {result.name}")
