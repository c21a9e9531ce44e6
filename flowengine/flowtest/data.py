"""Frames in and out of test files: inline rows, CSV / JSONL / Parquet files, golden snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flowengine.flowtest.spec import resolve_instant

#: The data file kinds, by suffix.
READERS = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
TIMESTAMP = "timestamp"


class DataError(ValueError):
    """A data file that cannot be read (missing, unknown kind, not parseable)."""


def rows_frame(rows: list[dict[str, Any]], start: pd.Timestamp) -> pd.DataFrame:
    """Inline rows as a frame; a ``timestamp`` column becomes UTC (``+10s`` counts from
    ``start``, the case's fake start time)."""
    frame = pd.DataFrame(rows)
    return with_times(frame, start)


def with_times(frame: pd.DataFrame, start: pd.Timestamp, column: str = TIMESTAMP) -> pd.DataFrame:
    """``column`` (when present and not already a time) as tz-aware UTC times."""
    if column not in frame or isinstance(frame[column].dtype, pd.DatetimeTZDtype):
        return frame
    values = frame[column]
    if values.map(lambda v: isinstance(v, str) and v.strip().startswith("+")).any():
        values = values.map(lambda v: resolve_instant(v, start) if isinstance(v, str) else v)
    return frame.assign(**{column: pd.to_datetime(values, utc=True, format="mixed")})


def read_frame(path: Path, start: pd.Timestamp) -> pd.DataFrame:
    """A CSV, JSONL or Parquet file as a frame (``timestamp`` as UTC); raises DataError."""
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path}: unknown data file kind '{suffix}' (use .csv, .jsonl, .parquet)")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = _read_jsonl(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    try:
        return with_times(frame, start)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: column '{TIMESTAMP}' is not a time: {exc}") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    """JSON Lines (one object per line), or a JSON list of objects for a ``.json`` file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return pd.DataFrame(json.loads(text))
    return pd.DataFrame([json.loads(line) for line in text.splitlines() if line.strip()])


def replay_batches(
    frame: pd.DataFrame, column: str, every: float | None
) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """A replayed file's batches in time order, each with the time it is due: one per
    distinct time, or one per ``every`` seconds (due at the end of its span)."""
    if column not in frame:
        raise DataError(f"replay needs a '{column}' column (the rows' own times)")
    times = pd.to_datetime(frame[column], utc=True)
    ordered = frame.assign(**{column: times}).sort_values(column, kind="stable")
    if every:
        span = pd.Timedelta(seconds=every)
        first = ordered[column].iloc[0] if len(ordered) else None
        keys = ((ordered[column] - first) // span) if first is not None else ordered[column]
        for bucket, group in ordered.groupby(keys, sort=True):
            assert first is not None
            yield first + span * (int(bucket) + 1), group.reset_index(drop=True)
        return
    for when, group in ordered.groupby(column, sort=True):
        yield pd.Timestamp(str(when)), group.reset_index(drop=True)


def write_snapshot(path: Path, frame: pd.DataFrame) -> None:
    """Write a golden file (JSONL, CSV or Parquet by suffix), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    elif suffix == ".csv":
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
        tmp.write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
    tmp.replace(path)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Batches sent on one port as one frame (empty batches kept out)."""
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
