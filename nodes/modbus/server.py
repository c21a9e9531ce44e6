"""``flowengine simulate --modbus HOST:PORT``: the simulated line as a Modbus TCP server.

A ``PlantServer`` (see ``flowengine.nodes.analytics.plant``) over pymodbus's own server, unit
id 1. The register map (0-based addresses, every multi-register value ``ABCD``):

==============================  ==========================================================
holding and input ``2*i``       sensor ``i`` as float32 (furnace_temp at 0, roll_force at 2,
                                cooling_water_flow at 4, ...), rewritten every tick
input ``1000 + 4*i``            sensor ``i`` as float64
input ``3000``                  tick counter, uint32
input ``3002``                  the tick's time, uint64 milliseconds since 1970 (UTC)
holding ``500..563``            free setpoints (0 at start) for ``modbus_out`` to write
holding ``600``                 the line's name, string of 8 registers ("flowengine line3")
coil ``0..15``                  free coils (off at start), writable
discrete input ``0``            line running (on); ``1..15`` off
==============================  ==========================================================

Any other address is an illegal data address (exception 2), as on a real device.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from flowengine.extras import require
from flowengine.nodes.modbus.registers import from_bytes

UNIT = 1
SETPOINTS, NAME_AT, FLOAT64_AT, TICK_AT = 500, 600, 1000, 3000
LINE_NAME = "flowengine line3"
#: Sensors whose float32 pairs fit below the setpoints.
MAX_SENSORS = SETPOINTS // 2


def float_registers(values: Sequence[float], dtype: str) -> list[int]:
    """``values`` as big-endian (ABCD) float32 (``>f4``) or float64 (``>f8``) registers."""
    return from_bytes(np.asarray(values, dtype=dtype).tobytes(), "ABCD")


class ModbusPlant:
    """The line's sensors in holding and input registers of unit 1 (map in the module doc)."""

    def __init__(self) -> None:
        self.server: Any = None
        self.count = 0
        self.tick = 0

    def _device(self, count: int) -> Any:
        """The pymodbus device: four separate blocks, zero where the plant has not written."""
        sim = require("pymodbus.simulator", "modbus")
        bits, regs = sim.DataType.BITS, sim.DataType.REGISTERS
        name = from_bytes(LINE_NAME.encode().ljust(16, b"\0"), "ABCD", words=False)
        holding = [
            sim.SimData(0, values=[0] * (2 * count), datatype=regs),
            sim.SimData(SETPOINTS, values=[0] * 64, datatype=regs),
            sim.SimData(NAME_AT, values=name, datatype=regs),
        ]
        inputs = [
            sim.SimData(0, values=[0] * (2 * count), datatype=regs),
            sim.SimData(FLOAT64_AT, values=[0] * (4 * count), datatype=regs),
            sim.SimData(TICK_AT, values=[0] * 6, datatype=regs),
        ]
        coils = [sim.SimData(0, values=[False] * 16, datatype=bits)]
        discrete = [sim.SimData(0, values=[True] + [False] * 15, datatype=bits)]
        return sim.SimDevice(UNIT, simdata=(coils, discrete, holding, inputs))

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        """Listen on ``host:port``; OSError when the port is taken, ValueError for too many
        sensors."""
        server_mod = require("pymodbus.server", "modbus")
        if not 0 < len(sensors) <= MAX_SENSORS:
            raise ValueError(f"the Modbus map holds 1 to {MAX_SENSORS} sensors, not {len(sensors)}")
        self.count = len(sensors)
        server = server_mod.ModbusTcpServer(self._device(self.count), address=(host, port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus: "Could not start listen"
            raise OSError(f"cannot listen on {host}:{port}: {exc}") from None
        self.server = server
        first = ", ".join(f"{n} at {2 * i}" for i, n in enumerate(sensors[:3]))
        return (
            f"serving {self.count} sensors as Modbus TCP at {host}:{port} (unit {UNIT}; float32 "
            f"ABCD in holding and input registers: {first}, ...)"
        )

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        """Write this tick's values (float32 and float64), the tick counter and its time."""
        server = self.server
        if server is None:
            return
        self.tick += 1
        pairs = float_registers(values, ">f4")
        await server.async_setValues(UNIT, 16, 0, pairs)  # 16: holding registers
        await server.async_setValues(UNIT, 4, 0, pairs)  # 4: input registers
        await server.async_setValues(UNIT, 4, FLOAT64_AT, float_registers(values, ">f8"))
        millis = int(stamp.timestamp() * 1000)
        tick = np.array([self.tick % 2**32], dtype=">u4").tobytes()
        when = np.array([millis], dtype=">u8").tobytes()
        await server.async_setValues(UNIT, 4, TICK_AT, from_bytes(tick + when, "ABCD", words=False))

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()
