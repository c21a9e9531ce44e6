"""EtherNet/IP out: write setpoints from long-format rows to the tags marked writable."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import field_validator

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.enip.client import EnipClient
from flowengine.nodes.enip.config import EnipConnection, TagSpec
from flowengine.types import Batch

#: The range of each Logix integer type.
INT_RANGES = {
    "SINT": (-(2**7), 2**7 - 1),
    "INT": (-(2**15), 2**15 - 1),
    "DINT": (-(2**31), 2**31 - 1),
    "LINT": (-(2**63), 2**63 - 1),
    "USINT": (0, 2**8 - 1),
    "UINT": (0, 2**16 - 1),
    "UDINT": (0, 2**32 - 1),
    "ULINT": (0, 2**64 - 1),
}
#: The largest finite value of each floating point type.
REAL_MAX = {"REAL": 3.4028234663852886e38, "LREAL": 1.7976931348623157e308}
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class EnipOutConfig(NodeConfig, EnipConnection):
    """Connection keys as for `enip_in`; `tags` lists what may be written (`writable: true`)."""

    tags: list[TagSpec] = option(
        description="Tags rows may write: `{tag, sensor, scale, offset, writable: true}`; a row's "
        "sensor names one (`Temps{10}` covers `Temps[0]`..`Temps[9]`). The value written is "
        "(value - offset) / scale, the inverse of `enip_in`.",
        examples=[[{"tag": "Line3.Setpoint", "sensor": "setpoint", "writable": True}]],
    )
    sensor_column: str = option("sensor", description="Column naming the sensor (or the tag).")
    value_column: str = option("value", description="Column with the value to write.")

    @field_validator("tags")
    @classmethod
    def _some_writable(cls, value: list[TagSpec]) -> list[TagSpec]:
        if not any(spec.writable for spec in value):
            raise ValueError("mark at least one tag `writable: true`")
        return value


def _plain(value: Any) -> Any:
    """A Python scalar of a numpy/pandas one."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def coerce(value: Any, data_type: str, tag: str) -> Any:
    """``value`` as the Python value pycomm3 encodes for ``data_type``; ValueError (naming the
    tag, the type and why) for a value the tag cannot hold: 2.5 to a DINT, 300 to a SINT,
    NaN to a REAL, "abc" to anything."""
    value = _plain(value)
    if data_type != "BOOL" and data_type not in INT_RANGES and data_type not in REAL_MAX:
        raise ValueError(f"{tag}: writing {data_type} tags is not supported (atomic types only)")
    if value is None:
        raise ValueError(f"{tag} ({data_type}): no value")
    if data_type == "BOOL":
        if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
            return bool(value)
        text = str(value).strip().lower()
        if text in TRUE + FALSE:
            return text in TRUE
        raise ValueError(f"{tag} (BOOL): {value!r} is not true/false/1/0")
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise ValueError(f"{tag} ({data_type}): {value!r} is not a number") from None
    if data_type in INT_RANGES:
        low, high = INT_RANGES[data_type]
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(f"{tag} ({data_type}): {value!r} is not a whole number")
        if not low <= number <= high:
            raise ValueError(f"{tag} ({data_type}): {value!r} is out of range {low}..{high}")
        return int(number)
    number = float(number)
    if not math.isfinite(number) or abs(number) > REAL_MAX[data_type]:
        raise ValueError(f"{tag} ({data_type}): {value!r} is not a finite {data_type}")
    return number


def targets(specs: list[TagSpec]) -> dict[str, tuple[str, TagSpec]]:
    """Sensor (and tag) name -> (element tag, its spec) for every writable tag."""
    out: dict[str, tuple[str, TagSpec]] = {}
    for spec in specs:
        if not spec.writable:
            continue
        if spec.count is None:
            out[spec.name] = out[spec.plc_tag] = (spec.plc_tag, spec)
            continue
        for sensor, element in spec.elements():
            out[sensor] = out[element] = (element, spec)
    return out


class EnipOut(Sink[EnipOutConfig]):
    """Writes each row's value to the writable tag its sensor names, all rows of a batch in
    Multiple Service packets.

    Values are checked against the tag's type before anything is written: 3.0 to a DINT writes
    3, 2.5 to a DINT, 300 to a SINT, NaN to a REAL or a sensor that is not writable fails the
    whole batch (to the error port) with the reason. A lost connection raises; the next batch
    connects again.
    """

    icon = "lan"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("pycomm3", "enip"),)
    client: EnipClient | None = None
    types: dict[str, str]
    by_sensor: dict[str, tuple[str, TagSpec]]

    async def start(self) -> None:
        self.types = {}
        self.by_sensor = targets(self.config.tags)
        self.client = EnipClient(self.config, tags=[])
        await self.client.connect()

    async def write(self, batch: Batch) -> None:
        assert self.client is not None  # the runtime calls start first
        frame, cfg = batch.frame, self.config
        for column in (cfg.sensor_column, cfg.value_column):
            if column not in frame:
                raise KeyError(f"no column '{column}' in the batch")
        if self.client.driver is None:  # the last write lost the connection
            await self.client.connect()
        pairs = []
        for sensor, value in zip(frame[cfg.sensor_column], frame[cfg.value_column], strict=True):
            if str(sensor) not in self.by_sensor:
                raise KeyError(f"'{sensor}' is not a writable tag of this node")
            tag, spec = self.by_sensor[str(sensor)]
            if tag not in self.types:
                self.types[tag] = await self.client.data_type(tag)
            raw = _plain(value)
            scaled = (spec.scale, spec.offset) != (1.0, 0.0)
            if scaled and isinstance(raw, int | float) and not isinstance(raw, bool):
                raw = (raw - spec.offset) / spec.scale
            pairs.append((tag, coerce(raw, self.types[tag], tag)))
        await self.client.write(pairs)
        self.ctx.count("writes", len(pairs))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
