"""OPC UA values to and from Python: DataValues as long-format rows (a bad value or timestamp
judged per reading), and plain values coerced to a node's VariantType for writes."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from flowengine.types import NonFinite

QUALITIES = ("good", "uncertain", "bad", "bad")
_QUALITY = np.array(QUALITIES, dtype=object)
#: The timestamps pandas can hold at its default nanosecond resolution.
MIN_TIME, MAX_TIME = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
#: OPC UA DateTime on the wire: 100 ns ticks since 1601-01-01 UTC (see ``wire.py``).
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
TICKS_TO_1970 = 116_444_736_000_000_000
_MIN_US, _MAX_US = MIN_TIME.value // 1000, MAX_TIME.value // 1000


def from_ticks(ticks: int) -> dt.datetime:
    """A wire DateTime as a datetime (microseconds, as asyncua decodes it)."""
    return FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)


def to_ticks(value: Any) -> Any:
    """A datetime as wire ticks (to compare with readings decoded by ``wire.py``)."""
    if not isinstance(value, dt.datetime):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return (aware - FILETIME_EPOCH) // dt.timedelta(microseconds=1) * 10


def quality(code: int) -> str:
    """good / uncertain / bad from the StatusCode severity (the top two bits)."""
    return QUALITIES[(code >> 30) & 3]


class Reading:
    """One value with its node, raw timestamps and status, as the frame's columns want it.

    Timestamps stay as decoded: datetimes from asyncua, wire ticks (int) from ``wire.py``;
    :func:`frame_of` converts a whole batch at once (per-reading conversion was most of the
    client's cost at 20,000 values/s).
    """

    __slots__ = ("code", "node_id", "sensor", "server", "source", "value")

    def __init__(self, sensor: str, node_id: str, dv: Any) -> None:
        self.sensor, self.node_id = sensor, node_id
        variant = dv.Value
        self.value = variant.Value if variant is not None else None
        status = dv.StatusCode
        self.code: int = int(status.value) if status is not None else 0
        self.source, self.server = dv.SourceTimestamp, dv.ServerTimestamp

    @classmethod
    def of(
        cls, sensor: str, node_id: str, value: Any, code: int, source: Any, server: Any
    ) -> Reading:
        """A reading from decoded fields (no DataValue)."""
        reading = cls.__new__(cls)
        reading.sensor, reading.node_id, reading.value, reading.code = sensor, node_id, value, code
        reading.source, reading.server = source, server
        return reading

    @property
    def key(self) -> tuple[Any, ...] | None:
        """What makes a reading the same one again (from another server: its source time,
        value and status); None when it has no timestamp to tell two equal values apart."""
        ts = self.source if self.source is not None else self.server
        return None if ts is None else (to_ticks(ts), self.value, self.code)


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
            ts = pd.Timestamp(from_ticks(value) if isinstance(value, int) else value)
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


def stamps(readings: Sequence[Reading]) -> tuple[pd.DatetimeIndex, list[bool] | None]:
    """The readings' timestamps (UTC) and which were sent but unusable (None: all usable).

    One vectorised conversion when every source timestamp is usable (the usual case); else
    :func:`stamp` per reading."""
    sources = [r.source for r in readings]
    if sources and sources[0] is not None:
        try:
            if isinstance(sources[0], int):  # wire ticks (all of them, or np.array raises)
                us = (np.array(sources, dtype=np.int64) - TICKS_TO_1970) // 10
                if us.min() >= _MIN_US and us.max() <= _MAX_US:
                    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC"), None
            elif all(isinstance(s, dt.datetime) for s in sources):  # from asyncua
                index = pd.DatetimeIndex(sources)
                index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
                if not index.hasnans and index.min() >= MIN_TIME and index.max() <= MAX_TIME:
                    return index, None
        except (ValueError, TypeError, OverflowError):
            pass  # a null, out-of-range or mixed timestamp: judged per reading below
    judged = [stamp(r.source, r.server) for r in readings]
    return pd.to_datetime([ts for ts, _ in judged], utc=True), [bad for _, bad in judged]


#: Status code info bits: InfoType DataValue (0x400) with the Overflow bit (0x80), which a
#: server sets on a value when it discarded an older one of the item's queue.
OVERFLOW_BITS = 0x480


def overflowed(code: int) -> bool:
    """True when the server lost a value of this item before this one (its queue overflowed)."""
    return code & OVERFLOW_BITS == OVERFLOW_BITS


def frame_of(readings: Sequence[Reading], non_finite: NonFinite = "bad") -> Frames:
    """The long format: timestamp (UTC), sensor, value, quality, status_code, source, node_id.

    A NaN/+-inf value follows ``non_finite`` (``bad``: quality bad; ``error``: the row goes to
    ``errors`` with an ``error`` column; ``keep``: the server's quality); an unusable timestamp
    makes the quality bad.
    """
    codes = np.fromiter((r.code for r in readings), dtype=np.int64, count=len(readings))
    ids = [r.node_id for r in readings]
    values = [r.value for r in readings]
    odd = [not_finite(v) for v in values]
    times, untimed = stamps(readings)
    qualities = _QUALITY[(codes >> 30) & 3]
    bad = np.zeros(len(readings), dtype=bool) if untimed is None else np.array(untimed, bool)
    if non_finite == "bad":
        bad |= np.array(odd, dtype=bool)
    qualities[bad] = "bad"
    frame = pd.DataFrame(
        {
            "timestamp": times,
            "sensor": [r.sensor for r in readings],
            "value": values,
            "quality": qualities,
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
