"""Record fields to readings, row by row where a column is mixed: one bad record goes to the
error port instead of failing the whole response.

A column converts in one vectorised step when it can (the usual case); only a column that
fails that (ISO text mixed with epoch numbers, a value that is not a number) is converted one
row at a time, and the rows that still fail are reported by their record index.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd

from flowengine.types import NonFinite

EpochUnit = Literal["s", "ms", "us", "ns"]
TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
#: ``auto``: the largest magnitude of an epoch column picks its unit (seconds stay below 1e11
#: until the year 5138, so plain epoch seconds are never misread).
AUTO_UNITS: tuple[tuple[float, EpochUnit], ...] = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))
#: Record index -> why that record is not a reading.
RowErrors = dict[int, str]


def epoch_unit(largest: float, unit: TimeUnit) -> EpochUnit:
    """The epoch unit of numbers up to ``largest``: ``unit`` itself, or for ``auto`` by size."""
    if unit != "auto":
        return unit
    for bound, name in AUTO_UNITS:
        if largest >= bound:
            return name
    return "s"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(values: pd.Series, now: pd.Timestamp, unit: TimeUnit) -> pd.Series:
    """The vectorised conversion: ISO 8601 text or epoch numbers; missing ones are ``now``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        times = pd.to_datetime(values, unit=epoch_unit(values.abs().max(), unit), utc=True)
        # nanoseconds, like every other timestamp column; a wrong unit (ms read as s: the year
        # 57971) is out of that range and raises, so the record goes to the error port
        return times.dt.as_unit("ns").fillna(now)
    texts = values.astype(object)
    if not texts.map(lambda v: isinstance(v, str) or _missing(v)).all():
        raise ValueError("ISO 8601 text mixed with other values")  # row by row, then
    return pd.to_datetime(texts.fillna(now), utc=True, format="ISO8601")


def _one_time(value: Any, unit: TimeUnit, now: pd.Timestamp) -> pd.Timestamp:
    """One value, converted exactly as a whole column of its kind would be."""
    if not (_is_number(value) or isinstance(value, str)):
        raise ValueError("not ISO 8601 text or an epoch number")
    return pd.Timestamp(_whole(pd.Series([value]), now, unit).iloc[0])


def times(values: pd.Series, now: pd.Timestamp, unit: TimeUnit) -> tuple[pd.Series, RowErrors]:
    """UTC timestamps of a column (missing ones ``now``), and the rows that are no time."""
    try:
        return _whole(values, now, unit), {}
    except (ValueError, TypeError, OverflowError):
        pass
    out: list[pd.Timestamp] = []
    errors: RowErrors = {}
    for index, value in values.items():
        stamp = now
        if not _missing(value):
            try:
                stamp = _one_time(value, unit, now)
            except (ValueError, TypeError, OverflowError) as exc:
                errors[int(str(index))] = f"bad timestamp {value!r}: {exc}"
        out.append(stamp)
    return pd.Series(pd.to_datetime(out, utc=True), index=values.index), errors


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _one_number(value: Any) -> float:
    if _missing(value):
        return math.nan
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # beyond a float: infinite, so the non_finite policy applies
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float | str) and not isinstance(value, bool):
        return float(value)
    raise ValueError("not a number")


def numbers(values: pd.Series) -> tuple[pd.Series, RowErrors]:
    """A value column as floats (numeric text too, as in ``mqtt_in``), and the rows that are no
    number; a missing value is NaN (a non-finite reading)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float), {}
    out: list[float] = []
    errors: RowErrors = {}
    for index, value in values.items():
        try:
            out.append(_one_number(value))
        except (ValueError, TypeError):
            errors[int(str(index))] = f"value is not a number: {value!r}"
            out.append(math.nan)
    return pd.Series(out, index=values.index, dtype=float), errors


def quality(
    values: pd.Series, untimed: pd.Series, policy: NonFinite
) -> tuple[pd.Series, RowErrors]:
    """``good``/``bad`` per row: NaN or +/-inf values are bad (``policy`` ``bad``), errors
    (``error``) or good (``keep``); a record with a null timestamp (``untimed``) is bad."""
    finite = pd.Series(values.map(math.isfinite).astype(bool), index=values.index)
    errors: RowErrors = {}
    if policy == "error":
        errors = {int(str(i)): f"value is not finite: {v!r}" for i, v in values[~finite].items()}
    trusted = (finite | (policy == "keep")) & ~untimed
    return trusted.map({True: "good", False: "bad"}), errors
