"""Batches as NATS payloads: Arrow IPC (the default) or JSON rows, named by a header.

Arrow IPC keeps the columns' types and is 8x faster than JSON rows for a 1,000-row batch (see
docs/connectors-nats.md for the measurement). Tables are put in one canonical form before
encoding (no pandas metadata, timestamps in ns, plain strings), so the same rows always give
the same bytes: a batch replayed after a crash gets the same ``Nats-Msg-Id`` and JetStream's
duplicate window drops it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

ARROW = "application/vnd.apache.arrow.stream"
JSON = "application/json"
CONTENT_TYPE = "Content-Type"
MSG_ID = "Nats-Msg-Id"
#: Arrow IPC streams start with this continuation marker (for payloads without a header).
ARROW_MAGIC = b"\xff\xff\xff\xff"
#: ``compression: auto`` compresses batches of at least this many rows (smaller ones grow).
AUTO_ROWS = 64

Format = Literal["arrow", "json"]
Compression = Literal["auto", "none", "zstd", "lz4"]


class PayloadError(ValueError):
    """A payload that cannot be decoded, or a batch that cannot be encoded."""


def encode(frame: pd.DataFrame, fmt: Format, compression: Compression = "auto") -> bytes:
    """``frame`` as one payload in ``fmt``; a column Arrow cannot type raises PayloadError."""
    if fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", date_unit="us")
        return (text or "[]").encode()
    try:
        table = canonical(pa.Table.from_pandas(frame, preserve_index=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise PayloadError(f"cannot encode the batch as Arrow: {exc}") from None
    codec = compression
    if codec == "auto":
        codec = "zstd" if len(frame) >= AUTO_ROWS else "none"
    options = ipc.IpcWriteOptions(compression=None if codec == "none" else codec)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def canonical(table: pa.Table) -> pa.Table:
    """One form for equal rows: no schema metadata, ns timestamps, plain (not large) strings."""
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit != "ns":
            kind = pa.timestamp("ns", kind.tz)
        elif pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_large_binary(kind):
            kind = pa.binary()
        fields.append(pa.field(field.name, kind))
    schema = pa.schema(fields)
    if schema.equals(table.schema.remove_metadata()):
        return table.replace_schema_metadata(None)
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. a year beyond 2262 in ns
        return table.replace_schema_metadata(None)


def decode(data: bytes, headers: Mapping[str, str] | None) -> pd.DataFrame:
    """A payload back as a frame: by its Content-Type, else by its first bytes."""
    piece = decode_piece(data, headers)
    return piece.to_pandas() if isinstance(piece, pa.Table) else piece


def decode_piece(data: bytes, headers: Mapping[str, str] | None) -> pa.Table | pd.DataFrame:
    """A payload as an Arrow table (Arrow IPC) or a frame (JSON rows), so that a fetch of many
    small Arrow batches becomes one table and one conversion to pandas (:func:`join`), not
    one conversion per message (that was most of a worker's CPU at 12 rows per message)."""
    kind = (headers or {}).get(CONTENT_TYPE, "")
    if kind == ARROW or (not kind and data.startswith(ARROW_MAGIC)):
        return _arrow(data)
    if kind in (JSON, "") or kind.startswith(JSON):
        return _json(data)
    raise PayloadError(f"unknown Content-Type '{kind[:60]}' (expected {ARROW} or {JSON})")


def join(pieces: list[pa.Table | pd.DataFrame]) -> pd.DataFrame | None:
    """Decoded payloads, in order, as one frame (None when they hold no rows). Runs of Arrow
    tables are concatenated as Arrow (types promoted: a column that is all null in one batch
    and float in the next is float) and converted once."""
    parts: list[pd.DataFrame] = []
    run: list[pa.Table] = []

    def flush() -> None:
        if not run:
            return
        try:
            table = run[0] if len(run) == 1 else pa.concat_tables(run, promote_options="permissive")
            parts.append(table.to_pandas())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            parts.extend(t.to_pandas() for t in run)  # types that do not unify: as pandas does
        run.clear()

    for piece in pieces:
        if isinstance(piece, pa.Table):
            if piece.num_rows:
                run.append(piece)
            continue
        flush()
        if not piece.empty:
            parts.append(piece)
    flush()
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _arrow(data: bytes) -> pa.Table:
    try:
        table: pa.Table = ipc.open_stream(data).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise PayloadError(f"not an Arrow IPC stream: {str(exc)[:200]}") from None
    return table


def _json(data: bytes) -> pd.DataFrame:
    """JSON rows: an array of objects, or one object (one row)."""
    try:
        value: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {str(exc)[:200]}") from None
    rows = [value] if isinstance(value, dict) else value
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise PayloadError("JSON rows must be an array of objects (or one object)")
    frame = pd.DataFrame.from_records(rows)
    if "timestamp" in frame.columns:
        frame["timestamp"] = _times(frame["timestamp"])
    return frame


def _times(column: pd.Series) -> pd.Series:
    """ISO 8601 strings, or epoch seconds or milliseconds (by size), as UTC timestamps."""
    try:
        if pd.api.types.is_numeric_dtype(column):
            big = column.abs().max() > 1e11
            times = pd.to_datetime(column, unit="ms" if big else "s", utc=True)
        else:
            times = pd.to_datetime(column, utc=True, format="ISO8601")
        # ns as Arrow batches decode: pandas 3 concatenates [us] and [ns] columns as objects
        return times.dt.as_unit("ns")
    except (ValueError, TypeError, OverflowError) as exc:
        raise PayloadError(f"unreadable timestamp: {str(exc)[:200]}") from None


def msg_id(subject: str, payload: bytes) -> str:
    """The ``Nats-Msg-Id`` of a payload: a digest of its subject and bytes, so a batch sent
    again (a retry, a replay after a crash) carries the same id."""
    digest = hashlib.blake2b(payload, digest_size=16, person=b"flowengine")
    digest.update(subject.encode())
    return digest.hexdigest()


def pieces(frame: pd.DataFrame, fmt: Format, compression: Compression, limit: int) -> list[bytes]:
    """``frame`` encoded as payloads of at most ``limit`` bytes (the server's max_payload):
    one when it fits, else halves, recursively (deterministic, so ids stay stable)."""
    payload = encode(frame, fmt, compression)
    if len(payload) <= limit:
        return [payload]
    if len(frame) <= 1:
        raise PayloadError(
            f"one row is {len(payload)} bytes, over the server's max_payload ({limit} bytes)"
        )
    half = len(frame) // 2
    return pieces(frame.iloc[:half], fmt, compression, limit) + pieces(
        frame.iloc[half:], fmt, compression, limit
    )
