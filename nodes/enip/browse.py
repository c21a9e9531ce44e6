"""The EtherNet/IP lister of ``flowengine browse enip://host[:port][/slot]``.

With a controller that serves its tag list (ControlLogix, CompactLogix): every tag with its type
and current value, structure members below it (down to ``depth``). A device without one
(cpppo's simulator, adapters, drives): its identity (List Identity) and a row saying why no
tags are listed. pycomm3 is imported on use, so ``flowengine --help`` works without the extra.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import click

from flowengine.nodes.enip.client import EnipClient
from flowengine.nodes.enip.config import ENIP_PORT, EnipConnection, TagSpec
from flowengine.nodes.enip.source import rows_of

#: Atomic tags whose values browse reads (in Multiple Service packets).
MAX_VALUES = 500


def connection_of(url: str, timeout: float) -> EnipConnection:
    """The connection an ``enip://host[:port][/slot | /route]`` URL names."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "enip" or not parts.hostname:
        raise ValueError(f"'{url}' is not enip://host[:port][/slot] (e.g. enip://10.0.0.5/0)")
    route = parts.path.strip("/")
    slot = int(route) if route.isdigit() else None
    return EnipConnection(
        host=parts.hostname,
        port=parts.port or ENIP_PORT,
        slot=slot,
        route=route if route and slot is None else None,
        timeout=timeout,
        tag_list="auto",
    )


async def browse_tags(url: str, depth: int, timeout: float = 4.0) -> list[dict[str, Any]]:
    """Tags (with members to ``depth``) or, without a tag list, the device's identity."""
    try:
        cfg = connection_of(url, timeout)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise click.ClickException(str(exc)) from None
    client = EnipClient(cfg, tags=[])
    await client.connect()  # ConnectionError("host:port: reason") for the CLI's message
    try:
        if client.mode == "upload":
            return await _tag_rows(client, depth)
        return await _identity_rows(client)
    finally:
        await client.close()


async def _tag_rows(client: EnipClient, depth: int) -> list[dict[str, Any]]:
    """One row per tag (depth 1) and per structure member below it."""
    tags: dict[str, dict[str, Any]] = client.driver.tags
    atomic = [TagSpec(tag=name) for name, info in tags.items() if info.get("tag_type") == "atomic"][
        :MAX_VALUES
    ]
    values: dict[str, Any] = {}
    if atomic:
        client.tags = atomic
        for spec, result in await client.read():
            rows = rows_of(spec, result)
            values[spec.plc_tag] = rows[0]["value"] if len(rows) == 1 else None
    out: list[dict[str, Any]] = []
    for name, info in sorted(tags.items()):
        dims = [d for d in info.get("dimensions", [])[: info.get("dim", 0)] if d]
        kind = str(info.get("data_type_name")) + "".join(f"[{d}]" for d in dims)
        out.append(_row(1, name, name, kind, values.get(name)))
        if isinstance(info.get("data_type"), dict):
            out += _members(info["data_type"], name, 2, depth)
    return out


def _members(data_type: dict[str, Any], path: str, level: int, depth: int) -> list[dict[str, Any]]:
    """Structure members (without values: read the structure to get them) down to ``depth``."""
    if level > depth:
        return []
    rows = []
    for member in data_type.get("attributes", []):
        info = data_type["internal_tags"][member]
        kind = str(info.get("data_type_name"))
        if info.get("array"):
            kind += f"[{info['array']}]"
        rows.append(_row(level, member, f"{path}.{member}", kind, None))
        if isinstance(info.get("data_type"), dict):
            rows += _members(info["data_type"], f"{path}.{member}", level + 1, depth)
    return rows


async def _identity_rows(client: EnipClient) -> list[dict[str, Any]]:
    """The device's List Identity answer, and why there are no tags."""
    identity: dict[str, Any] = await asyncio.to_thread(client.driver._list_identity) or {}
    address = client.cfg.address
    name = str(identity.get("product_name") or "EtherNet/IP device")
    out = [_row(1, name, address, str(identity.get("product_type") or ""), None)]
    for key in ("vendor", "product_code", "revision", "serial", "state", "ip_address"):
        if identity.get(key) not in (None, ""):
            out.append(_row(2, key, address, "identity", identity[key]))
    note = (
        "the device does not serve the Logix tag list (Get Instance Attribute List failed: "
        f"{client.upload_error.strip(' -')}); read tags by name with enip_in, e.g. "
        "tags: [Line3.Temp, Temps{10}]"
    )
    out.append(_row(2, "tags", address, "not listed", note))
    return out


def _row(depth: int, name: str, address: str, data_type: str, value: Any) -> dict[str, Any]:
    return {
        "depth": depth,
        "name": name,
        "address": address,
        "data_type": data_type,
        "value": value,
    }
