"""``flowengine simulate --s7 HOST:PORT``: the simulated line as a Siemens S7 PLC.

python-snap7's own server (pure Python, threads) holds the memory: every sensor is a REAL in
DB1, in the plant's sensor order at DBD0, DBD4, DBD8, ... (``furnace_temp`` at DB1.DBD0,
``roll_force`` at DB1.DBD4, ``cooling_water_flow`` at DB1.DBD8 by default). DB2 (64 bytes), the
markers (M, 256 bytes) and the process images (I and Q, 64 bytes each) start at zero and take
writes, for ``s7_out`` to try. Any rack and slot are accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import socket
import struct
from collections.abc import Sequence
from typing import Any

from flowengine.extras import require

#: Bytes of DB2, the block ``s7_out`` can write to.
SETPOINT_BYTES = 64


@functools.cache
def bit_server() -> Any:
    """python-snap7's ``Server`` with BIT writes applied to their bit alone, as a CPU does.

    snap7 3.3's server writes the data byte of a BIT write over the whole byte, clobbering
    the other seven bits; a real S7 CPU changes only the addressed bit.
    """
    snap7 = require("snap7", "s7")
    bit = snap7.datatypes.S7WordLen.BIT
    base: Any = snap7.server.Server

    class BitServer(base):  # type: ignore[misc, valid-type]
        def _handle_write_area(self, request: dict[str, Any], client: Any) -> bytes:
            spec = (request.get("parameters") or {}).get("address_spec") or {}
            raw = request.get("raw_parameters") or b""
            data = (request.get("data") or {}).get("data") or b""
            key = (spec.get("area"), spec.get("db_number"))
            if spec.get("word_len") == bit and len(raw) >= 14 and data and key in self.area_locks:
                mask = 1 << (raw[13] & 7)  # the low three bits of the bit address
                with self.area_locks[key]:
                    memory, at = self.memory_areas[key], spec.get("start", 0)
                    if at < len(memory):
                        byte = memory[at] | mask if data[0] & 1 else memory[at] & ~mask
                        request["data"] = {**request["data"], "data": bytes([byte])}
            result: bytes = super()._handle_write_area(request, client)
            return result

    return BitServer


class S7Plant:
    """The ``PlantServer`` of the S7 family (see ``flowengine.nodes.analytics.plant``)."""

    def __init__(self) -> None:
        self.server: Any = None
        self.db1 = bytearray()

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        """Serve the sensors as REALs in DB1; the line ``simulate`` prints."""
        snap7 = require("snap7", "s7")
        area = snap7.type.SrvArea
        # the library's server warns about every odd request on stderr; clients see the
        # reason in their replies, so the simulator's console keeps to errors
        logging.getLogger("snap7.server").setLevel(logging.ERROR)
        server = bit_server()(log=False)
        self.db1 = bytearray(4 * len(sensors))
        server.register_area(area.DB, 1, self.db1)
        server.register_area(area.DB, 2, bytearray(SETPOINT_BYTES))
        server.register_area(area.MK, 0, bytearray(256))
        server.register_area(area.PE, 0, bytearray(64))
        server.register_area(area.PA, 0, bytearray(64))
        try:
            address = socket.gethostbyname(host)
            await asyncio.to_thread(server.start_to, address, port)
        except snap7.error.S7Error as exc:
            raise OSError(str(exc)) from None
        self.server = server
        where = ", ".join(f"DB1.DBD{4 * i} {name}" for i, name in enumerate(sensors))
        return f"serving {len(sensors)} sensors as an S7 PLC at {host}:{port} (REALs: {where})"

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        """Write every sensor's value into DB1 at once (under the area's lock)."""
        if self.server is None:
            return
        packed = struct.pack(f">{len(values)}f", *values)
        area = require("snap7", "s7").type.SrvArea.DB
        self.server.lock_area(area, 1)
        try:
            self.db1[: len(packed)] = packed
        finally:
            self.server.unlock_area(area, 1)

    async def stop(self) -> None:
        """Stop serving (closes the clients' connections)."""
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
