"""A query result in the long format (``timestamp``, ``sensor``, ``value``) read as readings,
row by row, with the rules of ``mqtt_in`` and ``rest_in``: values are numbers (numeric text and
``DECIMAL`` too), a NaN/+-inf/NULL value follows ``non_finite``, a NULL timestamp is the poll
time with quality bad, and a row whose value or timestamp cannot be read goes to the error port
instead of failing the whole poll. Other results pass through as they are.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

from flowengine.types import NonFinite

#: What ``sql_in`` does with a NaN, +/-Infinity or NULL reading (the rule of mqtt_in/rest_in).
LONG = ("timestamp", "sensor", "value")
#: Epoch numbers below this are seconds, above it milliseconds (as in mqtt_in's ``auto``).
EPOCH_MS = 1e11


class Rows(NamedTuple):
    """A result as rows for ``out`` and rows that are no reading (with an ``error`` column)."""

    rows: pd.DataFrame
    errors: pd.DataFrame | None


def is_long(frame: pd.DataFrame) -> bool:
    """True when ``frame`` has the long format's timestamp, sensor and value columns."""
    return all(column in frame.columns for column in LONG)


def readings(frame: pd.DataFrame, policy: NonFinite, now: pd.Timestamp) -> Rows:
    """``frame`` with float values, UTC timestamps and a ``quality`` column (the query's own
    quality column is kept, only made ``bad`` where a rule says so), when it is in the long
    format; ``now`` stamps NULL timestamps."""
    if frame.empty or not is_long(frame):
        return Rows(frame, None)
    errors: dict[int, str] = {}
    values = [_number(v, i, errors) for i, v in enumerate(frame["value"])]
    untimed = frame["timestamp"].isna().tolist()
    stamps = _times(frame["timestamp"], now, errors)
    finite = [math.isfinite(v) for v in values]
    if policy == "error":
        for i, (ok, value) in enumerate(zip(finite, values, strict=True)):
            if not ok:
                errors.setdefault(i, f"value is not finite: {value!r}")
    bad = [u or (not ok and policy == "bad") for u, ok in zip(untimed, finite, strict=True)]
    out = frame.assign(value=values)
    out["timestamp"] = pd.to_datetime(pd.Series(stamps, index=frame.index, dtype=object), utc=True)
    if "quality" in out:
        out["quality"] = out["quality"].where(~pd.Series(bad, index=out.index), "bad")
    else:
        after_value = list(out.columns).index("value") + 1
        out.insert(after_value, "quality", ["bad" if b else "good" for b in bad])
    if not errors:
        return Rows(out, None)
    failed = pd.Series([i in errors for i in range(len(frame))], index=frame.index)
    rejected = frame[failed].assign(error=[errors[i] for i in sorted(errors)])
    return Rows(out[~failed].reset_index(drop=True), rejected.reset_index(drop=True))


def _number(value: Any, row: int, errors: dict[int, str]) -> float:
    """``value`` as a float (NULL is NaN, an integer beyond a float is +/-inf); NaN and an
    entry in ``errors`` when it is no number (text, a boolean)."""
    if value is None:
        return math.nan
    if not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond a float: infinite, so non_finite applies
            return math.inf if value > 0 else -math.inf
        except (TypeError, ValueError):
            pass
    errors.setdefault(row, f"value is not a number: {value!r}")
    return math.nan


def _times(column: pd.Series, now: pd.Timestamp, errors: dict[int, str]) -> list[pd.Timestamp]:
    """Each timestamp in UTC (``now`` for NULL); text as ISO 8601, numbers as epoch s or ms;
    an entry in ``errors`` for one that is no time."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return [now if pd.isna(v) else v for v in column]
    stamps = []
    for row, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            stamps.append(now)
            continue
        try:
            stamps.append(_time(value))
        except (ValueError, TypeError, OverflowError):
            errors.setdefault(row, f"timestamp is not a time: {value!r}")
            stamps.append(now)
    return stamps


def _time(value: Any) -> pd.Timestamp:
    """One timestamp in UTC: naive text and datetimes are UTC; numbers are epoch s or ms."""
    if isinstance(value, bool):
        raise TypeError("a boolean is no time")
    if isinstance(value, int | float):
        return pd.Timestamp(value, unit="ms" if abs(value) >= EPOCH_MS else "s", tz="UTC")
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise ValueError("not a time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
