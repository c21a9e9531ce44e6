"""Values between frames and database rows: timestamps in UTC in each engine's convention,
missing values as NULL, and query results back as frames with tz-aware times."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd


def to_db_time(value: datetime, dialect: str) -> datetime:
    """UTC; naive for databases whose DateTime has no zone (SQLite, MySQL)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
        if dialect != "postgresql":
            value = value.replace(tzinfo=None)
    return value


def columns_of(frame: pd.DataFrame, dialect: str) -> dict[str, list[Any]]:
    """Each column as a list of plain Python values (None for missing), timestamps in UTC.

    For SQLite, times are text in SQLAlchemy's DateTime format (what its DateTime reads back).
    """
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
            series.dtype
        ):
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_convert("UTC")
                if dialect != "postgresql":
                    series = series.dt.tz_localize(None)
            if dialect == "sqlite":
                values = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
            else:
                values = list(series.dt.to_pydatetime())
        else:
            values = series.tolist()
        if series.hasnans:
            values = [None if m else v for v, m in zip(values, series.isna(), strict=True)]
        columns[str(name)] = values
    return columns


def records(frame: pd.DataFrame, dialect: str) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values (for SQLAlchemy's executemany)."""
    columns = columns_of(frame, "postgresql" if dialect == "sqlite" else dialect)
    if dialect == "sqlite":  # SQLAlchemy's DateTime formats naive datetimes itself
        for name, values in columns.items():
            columns[name] = [
                v.astimezone(UTC).replace(tzinfo=None)
                if isinstance(v, datetime) and v.tzinfo
                else v
                for v in values
            ]
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


_SQLITE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


def result_frame(rows: Sequence[Any], keys: Sequence[str], dialect: str) -> pd.DataFrame:
    """Query rows as a frame; datetime columns become tz-aware UTC (naive ones are UTC).

    SQLite has no time type: text in SQLAlchemy's DateTime format is read back as a time.
    """
    frame = pd.DataFrame.from_records(list(rows), columns=list(keys))
    for name in frame.columns:
        column = frame[name]
        first = column.dropna().iloc[0] if column.notna().any() else None
        if isinstance(first, datetime) or (
            dialect == "sqlite"
            and isinstance(first, str)
            and _SQLITE_TIME.match(first)
            and column.dropna()
            .map(lambda v: isinstance(v, str) and bool(_SQLITE_TIME.match(v)))
            .all()
        ):
            frame[name] = pd.to_datetime(column, utc=True, format="ISO8601")
        elif pd.api.types.is_datetime64_dtype(column.dtype):
            frame[name] = column.dt.tz_localize("UTC")
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            frame[name] = column.dt.tz_convert("UTC")
    return frame
