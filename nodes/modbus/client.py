"""The Modbus TCP client shared by ``modbus_in``, ``modbus_out``, browse and the seed's connector.

pymodbus is imported lazily (``require("pymodbus", "modbus")``). Its own reconnect loop is
switched off (``reconnect_delay=0``): a lost connection raises ``ConnectionError`` from the
next request, so the runtime's backoff owns reconnecting and shows ``retrying``. A device that
refuses one block (an exception response, a timeout) costs that block only: its fields come
back ``bad`` with the exception code and the poll goes on. pymodbus itself drops a connection
after four unanswered requests in a row, which then raises as a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import pandas as pd

from flowengine.extras import require
from flowengine.nodes.modbus.plan import Request
from flowengine.nodes.modbus.registers import BIT_KINDS, decode, scaled
from flowengine.types import NonFinite

log = logging.getLogger("flowengine.nodes.modbus.client")

#: The exception codes of the Modbus application protocol, as its spec names them.
EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
#: Integers above this lose digits as float64 (a 64-bit counter beside float readings).
EXACT = 2**53
COLUMNS = (
    "timestamp",
    "sensor",
    "value",
    "quality",
    "source",
    "device_id",
    "register",
    "address",
    "exception_code",
    "error",
)


def exception_text(code: int) -> str:
    """``illegal data address (exception 2)``."""
    return f"{EXCEPTIONS.get(code, 'unknown exception')} (exception {code})"


class DeviceError(Exception):
    """The device answered with an exception response (the connection is fine)."""

    def __init__(self, code: int, what: str = "") -> None:
        self.code = code  # 0: an answer that is no exception response but still unusable
        super().__init__(what if not code else exception_text(code))


class Frames(NamedTuple):
    """A poll as rows for ``out``, non-finite rows for ``error`` (``non_finite: error``) and
    the labels of the blocks that failed."""

    rows: pd.DataFrame
    errors: pd.DataFrame | None
    failed: list[str]


class Endpoint(Protocol):
    """What the client needs of its settings (``ModbusConnection`` has it all)."""

    @property
    def endpoint(self) -> tuple[str, int]: ...
    @property
    def address(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def pause(self) -> float: ...


class ModbusClient:
    """One TCP connection to a device or gateway."""

    def __init__(self, cfg: Endpoint) -> None:
        self.cfg = cfg
        self.client: Any = None

    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    async def connect(self) -> None:
        """Connect, or raise ``ConnectionError("Failed to connect to Modbus device H:P: why")``."""
        pymodbus_client = require("pymodbus.client", "modbus")
        cfg = self.cfg
        host, port = cfg.endpoint
        await self.close()
        client = pymodbus_client.AsyncModbusTcpClient(
            host, port=port, timeout=cfg.timeout, retries=cfg.retries, reconnect_delay=0
        )
        began = time.monotonic()
        if not await client.connect():
            client.close()
            reason = await self._why(host, port, time.monotonic() - began)
            raise ConnectionError(f"Failed to connect to Modbus device {cfg.address}: {reason}")
        self.client = client
        if cfg.pause:
            await asyncio.sleep(cfg.pause)

    async def _why(self, host: str, port: int, waited: float) -> str:
        """pymodbus says only False: a timeout if it waited that long, else the socket's error."""
        if waited >= self.cfg.timeout * 0.9:
            return "timeout"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.cfg.timeout
            )
        except TimeoutError:
            return "timeout"
        except OSError as exc:  # "Connection refused", "Name or service not known"
            if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
                return os.strerror(exc.errno)
            return exc.strerror or str(exc) or type(exc).__name__
        writer.close()
        return "the connection was closed at once"

    def check(self) -> Any:
        """The pymodbus client, or ConnectionError when the connection is gone."""
        if not self.connected:
            raise ConnectionError(f"connection to Modbus device {self.cfg.address} lost")
        return self.client

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One request; an exception response raises :class:`DeviceError`, a timeout
        ``TimeoutError``, a lost connection ``ConnectionError``."""
        exceptions = require("pymodbus.exceptions", "modbus")
        client = self.check()
        try:
            response = await getattr(client, method)(*args, **kwargs)
        except exceptions.ConnectionException as exc:
            raise ConnectionError(f"connection to Modbus device {self.cfg.address} lost") from exc
        except exceptions.ModbusIOException as exc:
            if not client.connected:  # pymodbus gave up on the connection
                raise ConnectionError(
                    f"connection to Modbus device {self.cfg.address} lost: no response"
                ) from exc
            raise TimeoutError("no response") from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            raise DeviceError(code, "an error response without an exception code")
        return response

    async def read_block(self, kind: str, start: int, count: int, device_id: int) -> list[Any]:
        """``count`` bits or registers from ``start`` of one kind."""
        method = {
            "coil": "read_coils",
            "discrete": "read_discrete_inputs",
            "holding": "read_holding_registers",
            "input": "read_input_registers",
        }[kind]
        response = await self.call(method, start, count=count, device_id=device_id)
        values = response.bits if kind in BIT_KINDS else response.registers
        if len(values) < count:
            raise DeviceError(0, f"short answer: {count} asked, {len(values)} returned")
        return list(values[:count])

    async def poll(self, requests: Sequence[Request], non_finite: NonFinite = "bad") -> Frames:
        """Every request once (``pause`` between two), decoded to rows in request order."""
        rows: list[dict[str, Any]] = []
        failed: list[str] = []
        pause = self.cfg.pause
        for n, req in enumerate(requests):
            if n and pause:
                await asyncio.sleep(pause)
            try:
                values = await self.read_block(req.kind, req.start, req.count, req.device.device_id)
            except DeviceError as exc:
                failed.append(f"{req.label}: {exc}")
                rows += self._rows(req, None, exc.code, str(exc))
            except TimeoutError:
                failed.append(f"{req.label}: timeout")
                rows += self._rows(req, None, 0, "timeout")
            else:
                rows += self._rows(req, values, 0, "")
        return _frames(rows, failed, non_finite)

    def _rows(
        self, req: Request, values: list[Any] | None, code: int, error: str
    ) -> list[dict[str, Any]]:
        """One row per field of ``req``; ``values`` None: the block failed (quality bad)."""
        stamp = pd.Timestamp.now(tz="UTC")
        device = req.device
        source = device.name or f"{self.cfg.address}/{device.device_id}"
        rows = []
        for f in req.fields:
            value: Any = None
            quality, why = "bad", error
            if values is not None:
                quality = "good"
                try:
                    at = f.address - req.start
                    part = values[at : at + f.size]
                    if f.kind in BIT_KINDS:
                        value = bool(part[0])
                    else:
                        assert f.type is not None
                        raw = decode(part, f.type, device.order(f))
                        value = scaled(raw, f.scale, f.offset)
                except (ValueError, OverflowError) as exc:  # never fails the poll
                    value, quality, why = None, "bad", f"cannot decode: {exc}"
            rows.append(
                {
                    "timestamp": stamp,
                    "sensor": f.sensor_name,
                    "value": value,
                    "quality": quality,
                    "source": source,
                    "device_id": device.device_id,
                    "register": f.kind,
                    "address": f.address,
                    "exception_code": code,
                    "error": why,
                }
            )
        return rows

    async def write(
        self, kind: str, address: int, values: Any, device_id: int, single: bool
    ) -> None:
        """Write a coil (``values`` a bool) or registers; ``single``: function 5/6 where one
        coil/register is written (devices without 15/16)."""
        if kind == "coil":
            if single:
                await self.call("write_coil", address, bool(values), device_id=device_id)
            else:
                await self.call("write_coils", address, [bool(values)], device_id=device_id)
        elif single and len(values) == 1:
            await self.call("write_register", address, values[0], device_id=device_id)
        else:
            await self.call("write_registers", address, list(values), device_id=device_id)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _frames(rows: list[dict[str, Any]], failed: list[str], non_finite: NonFinite) -> Frames:
    """The long-format frame; NaN/+-inf floats follow ``non_finite``."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    if any(type(r["value"]) is int and abs(r["value"]) > EXACT for r in rows):
        # beside floats pandas would make them float64 and round them: keep them exact
        frame["value"] = pd.Series([r["value"] for r in rows], index=frame.index, dtype=object)
    odd = [isinstance(r["value"], float) and not math.isfinite(r["value"]) for r in rows]
    if not any(odd) or non_finite == "keep":
        return Frames(frame, None, failed)
    mask = pd.Series(odd, index=frame.index)
    if non_finite == "bad":
        frame.loc[mask, "quality"] = "bad"
        frame.loc[mask, "error"] = "value is not finite"
        return Frames(frame, None, failed)
    errors = frame[mask].assign(error=[f"value is not finite: {v!r}" for v in frame["value"][mask]])
    return Frames(frame[~mask].reset_index(drop=True), errors.reset_index(drop=True), failed)
