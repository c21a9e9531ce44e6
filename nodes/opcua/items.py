"""What one OPC UA connection is made of: the secure channel, node references resolved to
nodes, and the monitored-item requests of a subscription (the client composes them)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from flowengine.extras import require
from flowengine.nodes.opcua.config import Deadband, OpcuaConfig, Security

#: A node id string (``ns=2;i=1001``, ``ns=2;s=Line3.Temp``, ``i=2258``); anything else is a
#: browse path.
NODE_ID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=", re.IGNORECASE)


async def secure(client: Any, sec: Security) -> None:
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


def deadband_filter(ua: Any, deadband: Deadband) -> Any:
    """The DataChangeFilter sent with every monitored item (StatusValue trigger)."""
    mfilter = ua.DataChangeFilter()
    mfilter.Trigger = ua.DataChangeTrigger.StatusValue
    kind = ua.DeadbandType.Absolute if deadband.type == "absolute" else ua.DeadbandType.Percent
    mfilter.DeadbandType = int(kind)
    mfilter.DeadbandValue = float(deadband.value)
    return mfilter


def item_request(
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


async def check_eurange(ua: Any, client: Any, nodes: list[Any], batch: int) -> None:
    """Percent deadband is relative to each node's EURange property: fail clearly without.

    One TranslateBrowsePathsToNodeIds request per ``batch`` nodes.
    """
    missing: list[str] = []
    for start in range(0, len(nodes), batch):
        chunk = nodes[start : start + batch]
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
        results = await client.uaclient.translate_browsepaths_to_nodeids(paths)
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
