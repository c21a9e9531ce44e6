"""Partitions: which subject a row goes to, and how a stream records its partition count.

A row's partition is ``crc32(key text) % partitions`` (zlib's CRC-32, the IEEE polynomial):
the same in every process, Python version and language, unlike Python's salted ``hash()``.
The key text is canonical, so ``3``, ``3.0`` and ``"3"`` land together: integral numbers as
integers, other floats by ``repr``, booleans as ``true``/``false``, missing values as ``""``.

NATS 2.9 has no metadata on streams, so the count goes into the stream's description as
``flowengine partitions=8 partition_by=line``; a consumer reads it back from there.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

_MARK = re.compile(r"\bflowengine partitions=(\d+)(?: partition_by=(\S+))?")


def key_text(value: Any) -> str:
    """The canonical text of a partition key (see the module doc)."""
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def partition_of(value: Any, partitions: int) -> int:
    """The partition of one key value."""
    return zlib.crc32(key_text(value).encode()) % partitions


def split(frame: pd.DataFrame, column: str, partitions: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``frame``'s rows by partition of ``column``, in partition order, row order kept."""
    if column not in frame.columns:
        raise KeyError(f"partition_by column '{column}' is not in the batch")
    keys = frame[column]
    codes = {k: partition_of(k, partitions) for k in pd.unique(keys)}
    parts = keys.map(codes).to_numpy()
    for p in sorted(set(codes.values())):
        yield p, frame[parts == p]


def mark(partitions: int, column: str) -> str:
    """The description of a partitioned stream."""
    return f"flowengine partitions={partitions} partition_by={column}"


def marked(description: str | None) -> tuple[int | None, str | None]:
    """``(partitions, partition_by)`` read from a stream's description; None when unmarked."""
    match = _MARK.search(description or "")
    if match is None:
        return None, None
    return int(match.group(1)), match.group(2)


def subject_of(base: str, partition: int | None) -> str:
    """The subject a partition travels on (``base.p``), or ``base`` when not partitioned."""
    return base if partition is None else f"{base}.{partition}"
