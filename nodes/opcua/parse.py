"""OPC UA values to and from Python: DataValues as long-format rows (a bad value or timestamp
judged per reading), and plain values coerced to a node's VariantType for writes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd

from flowengine.types import NonFinite

QUALITIES = ("good", "uncertain", "bad", "bad")
#: The timestamps pandas can hold at its default nanosecond resolution.
MIN_TIME, MAX_TIME = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def quality(code: int) -> str:
    """good / uncertain / bad from the StatusCode severity (the top two bits)."""
    return QUALITIES[(code >> 30) & 3]


class Reading:
    """One value with its node, timestamp and status, as the frame's columns want it.

    ``untimed`` marks a reading whose timestamp could not be used (see :func:`stamp`).
    """

    __slots__ = ("code", "node_id", "sensor", "ts", "untimed", "value")

    def __init__(self, sensor: str, node_id: str, dv: Any) -> None:
        self.sensor, self.node_id = sensor, node_id
        variant = dv.Value
        self.value = variant.Value if variant is not None else None
        self.code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        self.ts, self.untimed = stamp(dv.SourceTimestamp, dv.ServerTimestamp)


def stamp(*candidates: Any) -> tuple[pd.Timestamp, bool]:
    """The first usable timestamp (source, then server time), else the receive time; and
    whether a timestamp was sent but unusable (then the reading's quality is bad).

    Usable means within pandas' nanosecond range (1677-2262): OPC UA's null DateTime is
    1601-01-01, and a year-9999 stamp from a broken clock would make the column
    unconvertible downstream. Judged per reading, so one such stamp never fails a whole read.
    """
    unusable = False
    for value in candidates:
        if value is None:
            continue
        try:
            ts = pd.Timestamp(value)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            if MIN_TIME <= ts <= MAX_TIME:
                return ts, unusable
        except (ValueError, TypeError, OverflowError):
            pass
        unusable = True
    return pd.Timestamp.now(tz="UTC"), unusable


def not_finite(value: Any) -> bool:
    """True for a NaN or +/-Infinity reading (a float; other types are never non-finite)."""
    return isinstance(value, float) and not math.isfinite(value)


class Frames(NamedTuple):
    """A read as rows for ``out`` and, with ``non_finite: error``, rows for ``error``."""

    rows: pd.DataFrame
    errors: pd.DataFrame | None


def frame_of(readings: Sequence[Reading], non_finite: NonFinite = "bad") -> Frames:
    """The long format: timestamp (UTC), sensor, value, quality, status_code, source, node_id.

    A NaN/+-inf value follows ``non_finite`` (``bad``: quality bad; ``error``: the row goes to
    ``errors`` with an ``error`` column; ``keep``: the server's quality); an unusable timestamp
    makes the quality bad.
    """
    codes = [r.code for r in readings]
    ids = [r.node_id for r in readings]
    odd = [not_finite(r.value) for r in readings]
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([r.ts for r in readings], utc=True),
            "sensor": [r.sensor for r in readings],
            "value": [r.value for r in readings],
            "quality": [
                "bad" if r.untimed or (bad and non_finite == "bad") else quality(c)
                for r, c, bad in zip(readings, codes, odd, strict=True)
            ],
            "status_code": codes,
            "source": ids,
            "node_id": ids,
        }
    )
    if non_finite != "error" or not any(odd):
        return Frames(frame, None)
    mask = pd.Series(odd, index=frame.index)
    errors = frame[mask].assign(error=[f"value is not finite: {v!r}" for v in frame["value"][mask]])
    return Frames(frame[~mask].reset_index(drop=True), errors.reset_index(drop=True))


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
