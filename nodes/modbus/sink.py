"""Modbus out: write coils and holding registers from rows, only to fields marked writable."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pandas as pd

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.modbus.client import DeviceError, ModbusClient
from flowengine.nodes.modbus.config import Device, Field, ModbusConnection
from flowengine.nodes.modbus.registers import encode
from flowengine.types import Batch


class ModbusOutConfig(NodeConfig, ModbusConnection):
    """Connection and register map as for `modbus_in`; rows name a field by its sensor name."""

    sensor_column: str = option("sensor", description="Column with the field's sensor name.")
    value_column: str = option("value", description="Column with the value to write.")
    device_column: str = option(
        "device_id",
        advanced=True,
        description="Column with the unit id, when present: needed only when two devices "
        "have a field of the same sensor name.",
    )
    write_single: bool = option(
        False,
        advanced=True,
        description="Write one coil/register with function 5/6 instead of 15/16 (devices "
        "that lack the multiple-write functions).",
    )


Target = tuple[Device, Field]


class ModbusOut(Sink[ModbusOutConfig]):
    """Writes each row's value to the field its sensor column names, converted to the field's
    type, byte order, scale and offset (`value = raw * scale + offset`, solved for raw).

    A row that cannot be written goes to the `error` port with an `error` column saying why,
    and the other rows are written: a field not marked `writable`, an unknown sensor, a value
    that does not fit the type (70000 into an int16), an exception response of the device. A
    lost connection raises (a `buffer`ed sink keeps the batch); the next write reconnects.
    """

    icon = "settings_input_component"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("pymodbus", "modbus"),)
    client: ModbusClient | None = None
    targets: dict[str, list[Target]]

    async def start(self) -> None:
        self.targets = {}
        for device in self.config.devices:
            for f in device.fields:
                self.targets.setdefault(f.sensor_name, []).append((device, f))
        self.client = ModbusClient(self.config)
        await self.client.connect()

    def _target(self, sensor: str, unit: Any) -> Target:
        """The field a row writes, or ValueError saying why none."""
        found = self.targets.get(sensor, [])
        if unit is not None and not pd.isna(unit):
            found = [t for t in found if t[0].device_id == int(unit)]
        if not found:
            where = "" if unit is None or pd.isna(unit) else f" on device {unit}"
            raise ValueError(f"no field '{sensor}'{where} in the register map")
        if len(found) > 1:
            ids = ", ".join(str(d.device_id) for d, _ in found)
            raise ValueError(
                f"'{sensor}' is on devices {ids}: add a '{self.config.device_column}' column"
            )
        device, f = found[0]
        if not f.writable:
            raise ValueError(f"field '{f.name}' is not writable (set `writable: true` to allow it)")
        return device, f

    async def write(self, batch: Batch) -> None:
        assert self.client is not None  # the runtime calls start first
        frame, cfg = batch.frame, self.config
        for column in (cfg.sensor_column, cfg.value_column):
            if column not in frame:
                raise KeyError(f"no column '{column}' in the batch")
        if not self.client.connected:
            await self.client.connect()  # the device restarted since the last batch
        units = frame[cfg.device_column] if cfg.device_column in frame else [None] * len(frame)
        reasons: list[tuple[str, int] | None] = []
        written = 0
        for sensor, value, unit in zip(
            frame[cfg.sensor_column].astype(str), frame[cfg.value_column], units, strict=True
        ):
            try:
                device, f = self._target(sensor, unit)
                assert f.type is not None
                if pd.api.types.is_scalar(value) and pd.isna(value):
                    raise ValueError(f"{value!r} is missing")  # never the text 'None'/'nan'
                data = encode(value, f.type, device.order(f), f.scale, f.offset, f.length or 1)
                if written and cfg.pause:
                    await asyncio.sleep(cfg.pause)
                await self.client.write(f.kind, f.address, data, device.device_id, cfg.write_single)
            except (ValueError, TypeError, DeviceError) as exc:
                reasons.append((f"{sensor}: {exc}", getattr(exc, "code", 0)))
                continue
            except TimeoutError:  # no answer, connection still up: this row only
                reasons.append((f"{sensor}: timeout", 0))
                continue
            written += 1
            reasons.append(None)
        self.ctx.count("writes", written)
        await self._refused(batch, reasons)

    async def _refused(self, batch: Batch, reasons: list[tuple[str, int] | None]) -> None:
        """The rows that were not written, with why (and the device's exception code, 0 when
        it was refused before sending), to the ``error`` port; counted as errors."""
        mask = pd.Series([r is not None for r in reasons], index=batch.frame.index)
        if not mask.any():
            return
        refused = [r for r in reasons if r is not None]
        errors = batch.frame[mask].assign(
            error=[text for text, _ in refused], exception_code=[code for _, code in refused]
        )
        first = str(errors["error"].iloc[0])
        self.ctx.error(first, len(errors))
        await self.ctx.send(
            Batch(errors.reset_index(drop=True), origin=self.ctx.node_id, error=first), "error"
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
