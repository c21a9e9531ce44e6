"""OPC UA values to and from Python: DataValues as long-format rows, and plain values coerced
to a node's VariantType for writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

QUALITIES = ("good", "uncertain", "bad", "bad")


def quality(code: int) -> str:
    """good / uncertain / bad from the StatusCode severity (the top two bits)."""
    return QUALITIES[(code >> 30) & 3]


class Reading:
    """One value with its node, source timestamp and status, as the frame's columns want it."""

    __slots__ = ("code", "node_id", "sensor", "ts", "value")

    def __init__(self, sensor: str, node_id: str, dv: Any) -> None:
        self.sensor, self.node_id = sensor, node_id
        variant = dv.Value
        self.value = variant.Value if variant is not None else None
        self.code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        self.ts = dv.SourceTimestamp or dv.ServerTimestamp or pd.Timestamp.now(tz="UTC")


def frame_of(readings: Sequence[Reading]) -> pd.DataFrame:
    """The long format: timestamp (UTC), sensor, value, quality, status_code, source, node_id."""
    codes = [r.code for r in readings]
    ids = [r.node_id for r in readings]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([r.ts for r in readings], utc=True),
            "sensor": [r.sensor for r in readings],
            "value": [r.value for r in readings],
            "quality": [quality(c) for c in codes],
            "status_code": codes,
            "source": ids,
            "node_id": ids,
        }
    )


def coerce(value: Any, vtype: Any) -> Any:
    """``value`` converted to the Python type of an OPC UA VariantType (for writes)."""
    name = vtype.name
    if name == "Boolean":
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off", ""):
                return False
            raise ValueError(f"cannot write {value!r} to a Boolean node")
        return bool(value)
    if name in ("SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"):
        return round(float(value))
    if name in ("Float", "Double"):
        return float(value)
    if name in ("String", "LocalizedText"):
        return str(value)
    return value
