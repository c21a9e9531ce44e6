"""The S7 client shared by ``s7_in``, ``s7_out``, the browser and the seed's connector.

python-snap7 (imported lazily: ``require("snap7", "s7")``) does the ISO-on-TCP connection, the
PDU negotiation and the request encoding (its ``AsyncClient`` on asyncio streams, no threads);
its read optimizer (``snap7.optimizer``) sorts the tags, merges near ones into one block and
packs blocks into PDU-sized requests. Two things are ours: a failed item of a multi-variable
read makes only its own tags bad (the library raises for the whole request), and a lost
connection raises ``ConnectionError`` so the runtime's backoff reconnects; the client never
reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

import pandas as pd

from flowengine.extras import require
from flowengine.nodes.s7.address import Address, decode
from flowengine.nodes.s7.config import S7Config, S7Connection, S7Tag

T = TypeVar("T")
#: A block's reply: its bytes, or why the PLC refused it.
Reply = bytes | str
#: S7 data-item transport sizes whose length counts bits (BIT, BYTE/WORD/DWORD, INTEGER).
BIT_LENGTHS = (0x03, 0x04, 0x05)
#: S7 header (12) + parameter (2) + data item header (4): what a one-block reply adds.
READ_OVERHEAD = 18


def plan_reads(
    tags: Sequence[Address],
    pdu: int,
    *,
    max_gap: int = 16,
    max_items: int = 20,
    apart: frozenset[int] | set[int] = frozenset(),
    only: Sequence[int] | None = None,
) -> list[list[Any]]:
    """Requests (lists of ``snap7.optimizer.ReadBlock``) that read ``tags`` within ``pdu``.

    Tags of one area at most ``max_gap`` bytes apart share a block; tags in ``apart`` get a
    block each (a merged block failed); ``only`` limits the plan to those tag indexes.
    """
    opt = require("snap7.optimizer", "s7")
    chosen = range(len(tags)) if only is None else only
    items = [
        opt.ReadItem(tags[i].area_code, tags[i].db, tags[i].byte, 0, tags[i].size, i)
        for i in chosen
    ]
    together = opt.sort_items([item for item in items if item.index not in apart])
    blocks = opt.merge_items(together, max_gap=max_gap, max_block_size=max(1, pdu - READ_OVERHEAD))
    blocks += [
        opt.ReadBlock(item.area, item.db_number, item.byte_offset, item.byte_length, [item])
        for item in items
        if item.index in apart
    ]
    packets = opt.packetize(blocks, pdu)
    return [
        p.blocks[k : k + max_items] for p in packets for k in range(0, len(p.blocks), max_items)
    ]


def split_reply(raw: bytes, count: int) -> list[Reply]:
    """The ``count`` data items of a read reply, each its bytes or the PLC's reason."""
    describe = require("snap7.s7protocol", "s7").get_return_code_description
    replies: list[Reply] = []
    at = 0
    for i in range(count):
        if at + 4 > len(raw):
            replies.append("reply too short")
            continue
        code, transport, length = raw[at], raw[at + 1], int.from_bytes(raw[at + 2 : at + 4])
        at += 4
        if code != 0xFF:
            replies.append(f"{describe(code)} (0x{code:02x})")
            continue
        size = (length + 7) // 8 if transport in BIT_LENGTHS else length
        replies.append(bytes(raw[at : at + size]))
        at += size + (size % 2 if i < count - 1 else 0)  # a fill byte keeps items even
    return replies


class S7Client:
    """One PLC connection: reads all tags in planned requests, writes one tag at a time."""

    def __init__(self, cfg: S7Connection) -> None:
        self.cfg = cfg
        self.client: Any = None
        self.tags: list[S7Tag] = list(cfg.tags)
        self.addresses = [t.parsed for t in self.tags]
        self.packets: list[list[Any]] = []
        self.apart: set[int] = set()
        self.pdu = 0
        self.max_gap, self.max_items = (
            (cfg.max_gap, cfg.max_items) if isinstance(cfg, S7Config) else (16, 20)
        )
        self.source = f"s7://{cfg.where}"

    # ---- connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect (rack/slot or TSAPs), negotiate the PDU and plan the reads."""
        snap7 = require("snap7", "s7")
        errors = snap7.error
        cfg = self.cfg
        client = snap7.AsyncClient()
        kind, rack, slot = cfg.remote()
        client.connection_type = kind
        if isinstance(cfg.local_tsap, int):
            client.local_tsap = cfg.local_tsap
        client.pdu_length = cfg.pdu_size
        try:
            await asyncio.wait_for(client.connect(cfg.host, rack, slot, cfg.port), cfg.timeout)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1.0)
            if isinstance(exc, TimeoutError | errors.S7TimeoutError):
                raise TimeoutError("timeout") from None
            if isinstance(exc, errors.S7Error | OSError):
                raise ConnectionError(str(exc) or type(exc).__name__) from None
            raise
        client.connection.timeout = cfg.timeout  # per receive, not the library's 5 s
        self.client, self.pdu, self.apart = client, int(client.pdu_length), set()
        self.replan()

    def replan(self) -> None:
        """Plan the reads for the negotiated PDU (again, after a merged block failed)."""
        if self.addresses:
            self.packets = plan_reads(
                self.addresses,
                self.pdu,
                max_gap=self.max_gap,
                max_items=self.max_items,
                apart=self.apart,
            )

    def check(self) -> None:
        """Raise when the connection is gone, so the runtime reconnects with backoff."""
        if self.client is None or not self.client.get_connected():
            raise ConnectionError(f"not connected to S7 PLC {self.cfg.where}")

    async def call(self, coro: Awaitable[T]) -> T:
        """Await one library call within ``timeout``; a transport failure or timeout closes
        the connection and raises ConnectionError (a refused request raises S7ProtocolError)."""
        errors = require("snap7.error", "s7")
        try:
            return await asyncio.wait_for(coro, self.cfg.timeout)
        except errors.S7ProtocolError:
            raise
        except (errors.S7Error, OSError, TimeoutError, EOFError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else str(exc)
            await self.close()
            raise ConnectionError(f"connection to S7 PLC {self.cfg.where} lost: {reason}") from None

    async def close(self) -> None:
        """Disconnect, bounded: a dead PLC must not hold the flow."""
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(client.disconnect(), 2.0)

    # ---- reading -------------------------------------------------------------------------------
    async def read(self) -> pd.DataFrame:
        """Every tag once, in the planned requests: the long format, one timestamp per read."""
        self.check()
        found: dict[int, tuple[Any, str]] = {}
        for packet in self.packets:
            await self._read_packet(packet, found)
        stamp = pd.Timestamp.now(tz="UTC")
        order = range(len(self.tags))
        statuses = [found.get(i, (None, "not read"))[1] for i in order]
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime([stamp] * len(self.tags), utc=True),
                "sensor": [t.name for t in self.tags],
                "value": [found.get(i, (None, ""))[0] for i in order],
                "quality": ["bad" if s else "good" for s in statuses],
                "status": statuses,
                "source": self.source,
                "address": [t.address.strip() for t in self.tags],
            }
        )

    async def _read_packet(self, blocks: list[Any], found: dict[int, tuple[Any, str]]) -> None:
        """One request; a failed merged block is read again tag by tag (and from now on)."""
        again: list[int] = []
        for block, reply in zip(blocks, await self._fetch(blocks), strict=True):
            indexes = [item.index for item in block.items]
            if isinstance(reply, str):
                if len(indexes) > 1:
                    again += indexes
                else:
                    found[indexes[0]] = (None, reply)
                continue
            for item in block.items:
                start = item.byte_offset - block.start_offset
                found[item.index] = self._value(item.index, reply[start : start + item.byte_length])
        if again:
            self.apart.update(again)
            self.replan()
            alone = plan_reads(
                self.addresses, self.pdu, max_items=self.max_items, apart=self.apart, only=again
            )
            for packet in alone:
                await self._read_packet(packet, found)

    async def _fetch(self, blocks: list[Any]) -> list[Reply]:
        """The replies of one multi-variable read (a block too big for one PDU is read alone,
        in the library's chunks)."""
        snap7 = require("snap7", "s7")
        if len(blocks) == 1 and blocks[0].byte_length > self.pdu - READ_OVERHEAD:
            b = blocks[0]
            area = snap7.type.Area(b.area)
            try:
                return [
                    bytes(
                        await self.call(
                            self.client.read_area(area, b.db_number, b.start_offset, b.byte_length)
                        )
                    )
                ]
            except snap7.error.S7ProtocolError as exc:
                return [str(exc)]
        specs = [(b.area, b.db_number, b.start_offset, b.byte_length) for b in blocks]
        request = self.client.protocol.build_multi_read_request(specs)
        try:
            response = await self.exchange(request)
        except snap7.error.S7ProtocolError as exc:
            return [str(exc)] * len(blocks)
        return split_reply(response.get("raw_data", b""), len(blocks))

    async def exchange(self, request: bytes) -> dict[str, Any]:
        """Send one request PDU and return the parsed reply (under the library's lock)."""
        self.check()
        return await self.call(self.client._send_receive(request))

    def _value(self, index: int, data: bytes) -> tuple[Any, str]:
        """(value, "") of one tag from its bytes, or (value or None, why it is bad)."""
        tag = self.tags[index]
        try:
            value = decode(self.addresses[index], data)
        except ValueError as exc:
            return None, str(exc)
        if isinstance(value, float) and not math.isfinite(value):
            return value, "value is not finite"
        return tag.scaled(value), ""

    # ---- writing -------------------------------------------------------------------------------
    async def write(
        self, address: Address, data: bytes, bits: Literal["native", "read_modify_write"]
    ) -> None:
        """Write ``data`` (from ``address.encode``) to ``address``.

        A BOOL is written as one bit (``native``: the S7 BIT transport, which a CPU applies
        to that bit alone) or by reading its byte, setting the bit and writing the byte back.
        A refused write raises S7ProtocolError; a lost connection ConnectionError.
        """
        snap7 = require("snap7", "s7")
        self.check()
        area = snap7.type.Area(address.area_code)
        if address.type != "BOOL":
            await self.call(self.client.write_area(area, address.db, address.byte, bytearray(data)))
            return
        if bits == "native":
            protocol = self.client.protocol
            request = protocol.build_write_request(
                snap7.datatypes.S7Area(address.area_code),
                address.db,
                address.byte * 8 + address.bit,
                snap7.datatypes.S7WordLen.BIT,
                data,
            )
            protocol.check_write_response(await self.exchange(request))
            return
        current = await self.call(self.client.read_area(area, address.db, address.byte, 1))
        mask = 1 << address.bit
        byte = current[0] | mask if data[0] else current[0] & ~mask
        await self.call(self.client.write_area(area, address.db, address.byte, bytearray([byte])))
