"""The S7 lister of ``flowengine browse s7://HOST[:PORT][?rack=0&slot=1]`` (see
``flowengine.browse``): the CPU's identity and state, and the data blocks with their sizes.

S7 (classic, absolute addressing) has no symbol table to browse: what a PLC tells is its CPU
(SZL), its block list and each block's size. A PLC that refuses a part (protection level,
S7-1200/1500 without PUT/GET) gets a row saying so instead of failing the whole listing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from flowengine.extras import require
from flowengine.nodes.s7.client import S7Client
from flowengine.nodes.s7.config import S7Connection

#: Data blocks whose size is asked for, at most (one request each).
MAX_BLOCKS = 200


def connection_of(url: str, timeout: float) -> S7Connection:
    """The connection settings of an ``s7://`` URL; ConnectionError naming what is wrong."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"rack", "slot", "local_tsap", "remote_tsap", "connection_type"}
    try:
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        return S7Connection.model_validate(
            {"host": parts.hostname or "", "port": parts.port or 102, "timeout": timeout, **query}
        )
    except (ValueError, ValidationError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ConnectionError(
            f"'{url}' is not an S7 URL ({reason}); e.g. s7://192.168.0.10:102?rack=0&slot=1"
        ) from None


async def browse_plc(url: str, depth: int, timeout: float = 4.0) -> list[dict[str, Any]]:
    """Rows for the CPU (state, order code, serial number, PDU size below it) and each data
    block (number and size in bytes below a "data blocks" row)."""
    client = S7Client(connection_of(url, timeout))
    await client.connect()
    try:
        rows = await _cpu_rows(client, depth)
        rows += await _block_rows(client, depth)
    finally:
        await client.close()
    return rows


async def _ask(client: S7Client, call: Callable[[], Awaitable[Any]]) -> tuple[Any, str]:
    """(answer, "") or (None, why the PLC refused); a lost connection raises."""
    errors = require("snap7.error", "s7")
    try:
        return await client.call(call()), ""
    except (errors.S7ProtocolError, NotImplementedError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__


async def _cpu_rows(client: S7Client, depth: int) -> list[dict[str, Any]]:
    plc = client.client
    info, why = await _ask(client, plc.get_cpu_info)
    state, _ = await _ask(client, plc.get_cpu_state)
    name = _text(info.ModuleTypeName) if info is not None else "CPU"
    if isinstance(state, str):
        state = state.removeprefix("S7CpuStatus").upper()  # S7CpuStatusRun -> RUN
    row = _row(1, name or "CPU", "CPU", "CPU", state or why or None)
    rows = [row]
    if depth < 2:
        return rows
    order, _ = await _ask(client, plc.get_order_code)
    details = {
        "module name": _text(info.ModuleName) if info is not None else None,
        "station name": _text(info.ASName) if info is not None else None,
        "serial number": _text(info.SerialNumber) if info is not None else None,
        "order code": _text(order.OrderCode) if order is not None else None,
        "pdu size": client.pdu,
    }
    rows += [_row(2, k, "CPU", "", v) for k, v in details.items() if v not in (None, "")]
    return rows


async def _block_rows(client: S7Client, depth: int) -> list[dict[str, Any]]:
    block = require("snap7", "s7").type.Block
    plc = client.client
    numbers, why = await _ask(client, lambda: plc.list_blocks_of_type(block.DB, MAX_BLOCKS))
    if numbers is None:
        return [_row(1, "data blocks", "DB", "", f"not listed: {why}")]
    rows = [_row(1, "data blocks", "DB", "DB", len(numbers))]
    if depth < 2:
        return rows
    for number in numbers:
        info, why = await _ask(client, partial(plc.get_block_info, block.DB, number))
        size = int(info.MC7Size) if info is not None else None
        row = _row(2, f"DB{number}", f"DB{number}", "DB", f"{size} bytes" if size else why)
        rows.append(row | {"size": size})
    return rows


def _row(depth: int, name: str, address: str, data_type: str, value: Any) -> dict[str, Any]:
    return {
        "depth": depth,
        "name": name,
        "address": address,
        "data_type": data_type,
        "value": value,
    }


def _text(raw: Any) -> str:
    """A CPU info field (NUL-padded bytes) as text."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).split(b"\0", 1)[0].decode("latin-1").strip()
    return str(raw).strip()
