"""A pymodbus TCP server on its own loop in a thread (so flows can run with asyncio.run), and
the byte orders written out independently of the code under test (pymodbus is imported on
use, so the pure tests that share the reference need no server), and running a flow until a
condition holds."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd

from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.peers import until

#: Function codes that write each kind into pymodbus's datastore (and read it back).
WRITE_FC = {"coil": 15, "discrete": 2, "holding": 16, "input": 4}
READ_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
WIDTH |= {"float32": 2, "float64": 4}
CODES = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


def wire_registers(value: Any, dtype: str, order: str) -> list[int]:
    """The registers a device with byte order ``order`` sends for ``value`` (the reference)."""
    data = struct.pack(">" + CODES[dtype], value)  # A B C D ... most significant first
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order in ("CDAB", "DCBA"):
        pairs = pairs[::-1]  # low word first
    if order in ("BADC", "DCBA"):
        pairs = [p[::-1] for p in pairs]  # low byte first within each word
    return [int.from_bytes(p, "big") for p in pairs]


def wire_value(registers: list[int], dtype: str, order: str) -> Any:
    """The inverse of :func:`wire_registers`."""
    pairs = [r.to_bytes(2, "big") for r in registers]
    if order in ("BADC", "DCBA"):
        pairs = [p[::-1] for p in pairs]
    if order in ("CDAB", "DCBA"):
        pairs = pairs[::-1]
    return struct.unpack(">" + CODES[dtype], b"".join(pairs))[0]


def unit(
    device_id: int,
    holding: int = 200,
    extra_holding: tuple[int, int] | None = None,
    action: Any = None,
) -> Any:
    """A device: coils/discrete 0..63, holding 0..holding-1 (plus an extra island), input 0..99.

    Addresses outside these answer "illegal data address" (exception 2).
    """
    from pymodbus.simulator import DataType, SimData, SimDevice

    regs, bits = DataType.REGISTERS, DataType.BITS
    hold = [SimData(0, values=[0] * holding, datatype=regs)]
    if extra_holding:
        start, count = extra_holding
        hold.append(SimData(start, values=[0] * count, datatype=regs))
    return SimDevice(
        device_id,
        simdata=(
            [SimData(0, values=[False] * 64, datatype=bits)],
            [SimData(0, values=[False] * 64, datatype=bits)],
            hold,
            [SimData(0, values=[0] * 100, datatype=regs)],
        ),
        action=action,
    )


class ModbusDevice:
    """Units 1 (holding 0..199 and 300..309) and 2 (holding 0..49) on 127.0.0.1:``port``;
    every request it receives is recorded in ``requests`` as (unit, function, address, count).

    ``slow_input``: input registers from this address on answer only after ``delay`` seconds
    (a device that is slow or stops answering, while the connection stays up).
    """

    def __init__(self, port: int, slow_input: int | None = None, delay: float = 3.0) -> None:
        self.port = port
        self.slow_input = slow_input
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None
        self.requests: list[tuple[int, int, int, int]] = []

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            count = getattr(pdu, "count", 0) or len(getattr(pdu, "registers", []) or [])
            self.requests.append((pdu.dev_id, pdu.function_code, pdu.address, count))
        return pdu

    async def _action(self, fc: int, start: int, address: int, *rest: Any) -> None:
        if fc == 4 and self.slow_input is not None and address >= self.slow_input:
            await asyncio.sleep(self.delay)

    async def _start(self) -> None:
        from pymodbus.server import ModbusTcpServer

        devices = [unit(1, extra_holding=(300, 10), action=self._action), unit(2, holding=50)]
        server = ModbusTcpServer(devices, address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await server.serve_forever(background=True)
        self.server = server

    def start(self) -> ModbusDevice:
        self.call(self._start())
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.shutdown())
            self.server = None

    def set(self, kind: str, address: int, values: list[Any], device_id: int = 1) -> None:
        """Put raw registers (or bits) into the device's memory."""
        self.call(self.server.async_setValues(device_id, WRITE_FC[kind], address, values))

    def get(self, kind: str, address: int, count: int, device_id: int = 1) -> list[Any]:
        """Raw registers (or bits) from the device's memory."""
        return list(
            self.call(self.server.async_getValues(device_id, READ_FC[kind], address, count))
        )

    def close(self) -> None:
        self.stop()

        async def cancel_rest() -> None:  # requests still being answered (a slow device)
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self.loop.is_running():
            self.call(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def frames(runtime: Runtime, node: str = "cap") -> list[pd.DataFrame]:
    return [b.frame for b in runtime.node(node).batches]  # type: ignore[attr-defined]


def values(runtime: Runtime, sensor: str) -> list[Any]:
    got = frames(runtime)
    if not got:
        return []
    frame = pd.concat(got)
    return frame.loc[frame["sensor"] == sensor, "value"].tolist()


def run_until(
    flow: dict[str, Any], done: Callable[[Runtime], bool], *steps: Callable[[Runtime], Any]
) -> Runtime:
    """Run ``flow`` until ``done(runtime)``; each step runs (in a thread) once the previous
    condition held, then waits for the next one given as ``(action, condition)`` pairs."""

    async def main() -> Runtime:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: done(runtime), task)
        for step in steps:
            action, condition = step(runtime)
            await asyncio.to_thread(action)
            await until(lambda c=condition: c(runtime), task)
        runtime.stop()
        await task
        return runtime

    return asyncio.run(main())


def source(port: int, devices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A fast-polling modbus_in node wired to ``cap``."""
    return {
        "type": "modbus_in",
        "url": f"modbus://127.0.0.1:{port}",
        "interval": 0.05,
        "timeout": 1.0,
        "devices": devices,
        "wires": ["cap"],
        **extra,
    }


def first_rows(flow: dict[str, Any], batches: int = 1) -> tuple[pd.DataFrame, Runtime]:
    """The ``batches``-th batch ``cap`` receives (and the runtime, for its stats)."""
    runtime = run_until(flow, lambda r: len(frames(r)) >= batches)
    return frames(runtime)[batches - 1], runtime
