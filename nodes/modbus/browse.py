"""The Modbus lister of ``flowengine browse modbus://HOST:PORT`` (see ``flowengine.browse``).

Modbus has no directory of what a device holds, so browsing probes: depth 1 asks each unit id
for one holding register (any answer, even an exception, means a device is there); depth 2
walks a window of addresses per register kind and reports the ranges that answer; depth 3
lists each address of those ranges with its value (registers also as the float32 they start).

The URL's query sets what is probed: ``unit=1`` (default), ``unit=1,3`` or ``unit=1-16``;
``start=0`` and ``end=256`` (the address window, at most 4096 wide); ``kinds=holding,input``
(default all four). A range is found with one request where the device answers every
address and with a binary search at its edges; an address that does not answer costs one
request, so a wide window on a sparse device takes a while on a slow link.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flowengine.nodes.modbus.client import DeviceError, ModbusClient
from flowengine.nodes.modbus.config import MAX_BITS, MAX_REGISTERS, parse_url
from flowengine.nodes.modbus.plan import KINDS
from flowengine.nodes.modbus.registers import BIT_KINDS, to_bytes

WINDOW = 4096
#: Exception codes that mean "no device behind the gateway at this unit id".
ABSENT = (10, 11)
#: Exception codes that are about the addresses asked (a too long request is "illegal value").
ADDRESS_ERRORS = (2, 3)


@dataclass(frozen=True)
class Target:
    """The client settings of one browse (``ModbusClient`` needs no register map)."""

    host: str
    port: int
    timeout: float
    retries: int = 0
    pause: float = 0.0

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def units_of(text: str) -> list[int]:
    """``1``, ``1,3`` or ``1-16`` (mixed freely) as unit ids 0..255."""
    units: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        units += range(int(first), int(last or first) + 1)
    if not units or not all(0 <= u <= 255 for u in units):
        raise ValueError(f"unit '{text}' must list unit ids from 0 to 255 (e.g. 1, 1,3 or 1-16)")
    return units


async def browse_device(url: str, depth: int, timeout: float = 4.0) -> list[dict[str, Any]]:
    """Rows with depth, name, address, data_type and value (see the module doc)."""
    host, port = parse_url(url)
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    units = units_of(query.get("unit", "1"))
    start = int(query.get("start", "0"))
    end = min(int(query.get("end", str(start + 256))), start + WINDOW, 65536)
    kinds = [k.strip() for k in query.get("kinds", ",".join(KINDS)).split(",")]
    if unknown := [k for k in kinds if k not in KINDS]:
        raise ValueError(f"kinds: {unknown[0]!r} is none of {', '.join(KINDS)}")
    client = ModbusClient(Target(host, port, timeout))
    try:
        await client.connect()
    except ConnectionError as exc:  # the CLI says "Failed to connect to Modbus device: ..."
        raise ConnectionError(
            str(exc).removeprefix("Failed to connect to Modbus device ")
        ) from None
    rows: list[dict[str, Any]] = []
    try:
        for unit in units:
            status = await _probe(client, unit)
            if status is None:
                continue
            rows.append(_row(1, f"unit {unit}", f"{host}:{port}/{unit}", "device", status, unit))
            if depth < 2:
                continue
            for kind in kinds:
                for first, values in await _ranges(client, unit, kind, start, end):
                    rows += _range_rows(unit, kind, first, values, depth)
    finally:
        await client.close()
    return rows


async def _probe(client: ModbusClient, unit: int) -> str | None:
    """How ``unit`` answers one holding register read; None when nothing is there."""
    try:
        await client.read_block("holding", 0, 1, unit)
    except DeviceError as exc:
        return None if exc.code in ABSENT else f"answers: {exc}"
    except TimeoutError:
        return None
    return "answers"


async def _ok(
    client: ModbusClient, unit: int, kind: str, start: int, count: int
) -> list[Any] | None:
    """The values of one read, or None when the device refuses these addresses (exception
    2 or 3); another exception (no such function, device failure) ends the kind's walk."""
    try:
        return await client.read_block(kind, start, count, unit)
    except DeviceError as exc:
        if exc.code in ADDRESS_ERRORS:
            return None
        raise


async def _ranges(
    client: ModbusClient, unit: int, kind: str, start: int, end: int
) -> list[tuple[int, list[Any]]]:
    """Long because it is one walk: ``(first address, values)`` of every answering range in
    ``start..end-1``: whole requests while they answer, a binary search for where an answering
    range stops, one address at a time where nothing answers."""
    limit = MAX_BITS if kind in BIT_KINDS else MAX_REGISTERS
    found: list[tuple[int, list[Any]]] = []
    addr = start
    try:
        while addr < end:
            count = min(limit, end - addr)
            values = await _ok(client, unit, kind, addr, count)
            if values is None:
                single = await _ok(client, unit, kind, addr, 1)
                if single is None:
                    addr += 1
                    continue
                good, bad, values = 1, count, single  # [addr, addr+good) answers, +bad not
                while bad - good > 1:
                    mid = (good + bad) // 2
                    more = await _ok(client, unit, kind, addr, mid)
                    if more is None:
                        bad = mid
                    else:
                        good, values = mid, more
                count = good
            if found and found[-1][0] + len(found[-1][1]) == addr:
                found[-1] = (found[-1][0], found[-1][1] + values)
            else:
                found.append((addr, values))
            addr += count
    except (TimeoutError, DeviceError):
        pass  # the device does not serve this kind (or stopped answering): what was found
    return found


def _range_rows(
    unit: int, kind: str, first: int, values: list[Any], depth: int
) -> list[dict[str, Any]]:
    """The range's row and, at depth 3, one row per address."""
    bits = kind in BIT_KINDS
    last = first + len(values) - 1
    size = f"{len(values)} {'bits' if bits else 'registers'}"
    span = f"{first}..{last}"
    rows = [_row(2, f"{kind} {span}", f"{unit}/{kind}/{span}", size, None, unit)]
    if depth < 3:
        return rows
    for i, value in enumerate(values):
        row = _row(3, f"{kind} {first + i}", f"{unit}/{kind}/{first + i}", "", value, unit)
        row["data_type"] = "bool" if bits else "uint16"
        row["value"] = bool(value) if bits else int(value)
        if not bits and i + 1 < len(values):
            as_float = struct.unpack(">f", to_bytes(values[i : i + 2], "ABCD"))[0]
            row["float32"] = as_float if math.isfinite(as_float) else None
        rows.append(row)
    return rows


def _row(depth: int, name: str, address: str, kind: str, value: Any, unit: int) -> dict[str, Any]:
    return {
        "depth": depth,
        "name": name,
        "address": address,
        "data_type": kind,
        "value": value,
        "device_id": unit,
    }
