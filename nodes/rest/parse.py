"""JSON responses to the long format: records found by a dotted path, long or wide records,
ISO 8601 or epoch timestamps; unusable responses become :class:`RestError`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from flowengine.nodes.rest.rows import RowErrors, TimeUnit, numbers, quality, times
from flowengine.types import NonFinite

if TYPE_CHECKING:
    import httpx

#: Characters of a response body or record kept in an error row.
PREVIEW = 500
Shape = Literal["auto", "long", "wide"]


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
    non_finite: NonFinite = "bad"


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


def to_long(payload: Any, mapping: RecordMap, sensor: str = "") -> tuple[pd.DataFrame, RowErrors]:
    """Records (or one record) as a long frame, and the records that are no reading (by index).

    Wide records are melted, one row per numeric field. ``sensor`` names readings whose record
    has no sensor field (the endpoint's name).
    """
    records = dig(payload, mapping.records_path)
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise RestError(f"expected a list of JSON objects, got {type(records).__name__}")
    frame = pd.DataFrame.from_records(records)
    if not records:
        return pd.DataFrame(columns=["timestamp", "sensor", "value", "quality"]), {}
    ts_field, value_field = mapping.timestamp_field, mapping.value_field
    now = pd.Timestamp.now(tz="UTC")
    untimed = pd.Series(False, index=frame.index)
    stamps, errors = pd.Series(now, index=frame.index), RowErrors()
    if ts_field in frame:
        column = frame.pop(ts_field)
        untimed = column.isna()
        stamps, errors = times(column, now, mapping.timestamp_unit)
    if mapping.shape == "long" or (mapping.shape == "auto" and value_field in frame):
        if value_field not in frame:
            raise RestError(f"records have no '{value_field}' field")
        sensors = frame.pop(mapping.sensor_field) if mapping.sensor_field in frame else sensor
        values, bad_values = numbers(frame.pop(value_field))
        out = pd.DataFrame({"timestamp": stamps, "sensor": sensors, "value": values})
        out = pd.concat([out, frame], axis=1)
        errors = {**bad_values, **errors}
    else:
        numeric = frame.select_dtypes("number")
        if numeric.empty:
            raise RestError("records have no numeric fields to read as values")
        wide = numeric.assign(timestamp=stamps, _untimed=untimed, _record=frame.index)
        out = wide.melt(id_vars=["timestamp", "_untimed", "_record"], var_name="sensor")
        out = out.dropna(subset=["value"]).reset_index(drop=True)
        untimed = out.pop("_untimed").astype(bool)
        out.index = pd.Index(out.pop("_record"))
    quality_of, not_finite = quality(
        out["value"].astype(float), untimed.reindex(out.index), mapping.non_finite
    )
    if "quality" in out:  # the API's own quality column: ours can only make it worse
        out["quality"] = out["quality"].where(quality_of == "good", "bad")
    else:
        out.insert(3, "quality", quality_of)
    errors = {**not_finite, **errors}
    return out[~out.index.isin(list(errors))].reset_index(drop=True), errors


def parse_response(
    response: httpx.Response, endpoint: str, base_url: str, mapping: RecordMap
) -> tuple[pd.DataFrame, list[RestError]]:
    """One GET response as a long frame, plus one :class:`RestError` per record that is no
    reading. A whole response that is an HTTP error, not JSON, or JSON without readings raises
    :class:`RestError` with the status and the start of the body; nothing else escapes (a
    2,000-deep nesting is an error of that response, not of the source)."""
    where = f"{endpoint or base_url}: HTTP {response.status_code}"
    body = response.text[:PREVIEW]
    if response.status_code >= 400:
        raise RestError(where, response.status_code, body)
    try:
        payload = response.json()
    except RecursionError:
        raise RestError(f"{where}: JSON nested too deeply", response.status_code, body) from None
    except ValueError:  # not JSON, invalid UTF-8, a 5,000-digit number
        raise RestError(f"{where}: not JSON", response.status_code, body) from None
    sensor = endpoint.strip("/").rsplit("/", 1)[-1]
    try:
        frame, bad = to_long(payload, mapping, sensor)
    except RestError as exc:
        raise RestError(f"{where}: {exc}", response.status_code, body) from None
    except Exception as exc:  # any other failure is this response's, never the source's
        raise RestError(
            f"{where}: {type(exc).__name__}: {exc}", response.status_code, body
        ) from None
    records = dig(payload, mapping.records_path)
    records = [records] if isinstance(records, Mapping) else records
    errors = [
        RestError(f"{where}: record {i}: {reason}", response.status_code, _preview(records[i]))
        for i, reason in sorted(bad.items())
    ]
    return frame, errors


def _preview(record: Any) -> str:
    return json.dumps(record, default=str)[:PREVIEW]


def error_frame(errors: Sequence[RestError]) -> pd.DataFrame:
    """The rows sent to the ``error`` port: status code, message and the start of the body."""
    return pd.DataFrame(
        {
            "status_code": [e.status for e in errors],
            "error": [str(e) for e in errors],
            "body": [e.body for e in errors],
        }
    )
