"""JSON responses to the long format: records found by a dotted path, long or wide records,
ISO 8601 or epoch timestamps; unusable responses become :class:`RestError`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    import httpx

Shape = Literal["auto", "long", "wide"]
EpochUnit = Literal["s", "ms", "us", "ns"]
TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
#: ``auto``: the largest magnitude of an epoch column picks its unit (seconds stay below 1e11
#: until the year 5138, so plain epoch seconds are never misread).
AUTO_UNITS: tuple[tuple[float, EpochUnit], ...] = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))


class RestError(Exception):
    """A response the client cannot use; ``status`` is the HTTP status code (0 if none)."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(slots=True)
class RecordMap:
    """Where the long format's columns are found in each JSON record."""

    records_path: str = ""
    sensor_field: str = "sensor"
    value_field: str = "value"
    timestamp_field: str = "timestamp"
    shape: Shape = "auto"
    timestamp_unit: TimeUnit = "auto"


def dig(payload: Any, path: str) -> Any:
    """The value at a dotted path (``data.readings``; list indexes allowed: ``items.0``)."""
    for part in filter(None, path.split(".")):
        if isinstance(payload, Mapping) and part in payload:
            payload = payload[part]
        elif isinstance(payload, list) and part.isdigit() and int(part) < len(payload):
            payload = payload[int(part)]
        else:
            raise RestError(f"no '{part}' in the response at path '{path}'")
    return payload


def to_long(payload: Any, mapping: RecordMap, sensor: str = "") -> pd.DataFrame:
    """Records (or one record) as a long frame; wide records are melted, one row per field.

    ``sensor`` names readings whose record has no sensor field (the endpoint's name).
    """
    records = dig(payload, mapping.records_path)
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise RestError(f"expected a list of JSON objects, got {type(records).__name__}")
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=["timestamp", "sensor", "value"])
    ts_field, value_field = mapping.timestamp_field, mapping.value_field
    now = pd.Timestamp.now(tz="UTC")
    times = (
        _times(frame.pop(ts_field), now, mapping.timestamp_unit)
        if ts_field in frame
        else pd.Series(now, index=frame.index)
    )
    long = mapping.shape == "long" or (mapping.shape == "auto" and value_field in frame)
    if long:
        if value_field not in frame:
            raise RestError(f"records have no '{value_field}' field")
        sensors = frame.pop(mapping.sensor_field) if mapping.sensor_field in frame else sensor
        out = pd.DataFrame({"timestamp": times, "sensor": sensors, "value": frame.pop(value_field)})
        return pd.concat([out, frame], axis=1)
    values = frame.select_dtypes("number")
    if values.empty:
        raise RestError("records have no numeric fields to read as values")
    wide = values.assign(timestamp=times)
    out = wide.melt(id_vars="timestamp", var_name="sensor", value_name="value")
    return out.dropna(subset=["value"]).reset_index(drop=True)


def epoch_unit(values: pd.Series, unit: TimeUnit) -> EpochUnit:
    """The epoch unit of a numeric column: ``unit`` itself, or for ``auto`` by magnitude."""
    if unit != "auto":
        return unit
    largest = values.abs().max()
    for bound, name in AUTO_UNITS:
        if largest >= bound:
            return name
    return "s"


def _times(values: pd.Series, now: pd.Timestamp, unit: TimeUnit = "auto") -> pd.Series:
    """ISO 8601 text or epoch numbers (``unit``) as UTC timestamps; missing ones become ``now``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        times = pd.to_datetime(values, unit=epoch_unit(values, unit), utc=True)
        # nanoseconds, like every other timestamp column; a wrong unit (ms read as s: the year
        # 57971) is out of that range and raises, so the response goes to the error port
        return times.dt.as_unit("ns").fillna(now)
    return pd.to_datetime(values.astype(object).fillna(now), utc=True, format="ISO8601")


def parse_response(
    response: httpx.Response, endpoint: str, base_url: str, mapping: RecordMap
) -> pd.DataFrame:
    """One GET response as a long frame; raises :class:`RestError` with the status and the
    start of the body when it is an HTTP error, not JSON, or JSON without readings."""
    where = f"{endpoint or base_url}: HTTP {response.status_code}"
    body = response.text[:500]
    if response.status_code >= 400:
        raise RestError(where, response.status_code, body)
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RestError(f"{where}: not JSON", response.status_code, body) from None
    sensor = endpoint.strip("/").rsplit("/", 1)[-1]
    try:
        return to_long(payload, mapping, sensor)
    except (RestError, ValueError, TypeError) as exc:
        raise RestError(f"{where}: {exc}", response.status_code, body) from None


def error_frame(errors: Sequence[RestError]) -> pd.DataFrame:
    """The rows sent to the ``error`` port: status code, message and the start of the body."""
    return pd.DataFrame(
        {
            "status_code": [e.status for e in errors],
            "error": [str(e) for e in errors],
            "body": [e.body for e in errors],
        }
    )
