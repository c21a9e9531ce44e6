"""The column-wise path of ``mqtt_in``'s parser, for batches of plain JSON objects.

Most MQTT traffic is one small JSON object per message with the reading in one field
(``{"sensor": "s7", "value": 42.1, "ts": ...}``). For a batch of those the parser decodes
every payload (orjson when installed), checks the whole batch column by column, and builds the
frame from column lists at once: no row dictionary per message, no per-row function calls.

Whatever this path does not take (another payload shape, a value that is a string, an ISO
timestamp it cannot read at once, a non-finite value under ``non_finite: error``, a
compressed or oversized payload, anything unparseable) sends the batch down the per-message
path, which gives the same rows and puts each bad payload on the error port. Tests compare the
two paths frame for frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flowengine.lists import Lists
from flowengine.nodes.mqtt import fastjson
from flowengine.nodes.mqtt.config import MqttParsing

#: Columns every row has, in order; a payload field of one of these names is not copied.
FIXED = ("timestamp", "sensor", "value", "quality", "source", "topic")
MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # gzip, zstd: decompressed by the other path
_NUMBER = frozenset((int, float))
_NESTED = frozenset((dict, list))
_MISSING = object()
_NAN = float("nan")
TIMES = frozenset({"timestamp"})


@dataclass
class Columns:
    """Parsed readings of one or more batches, column by column (``objs`` for the rest)."""

    ts: list[int] = field(default_factory=list)
    sensor: list[Any] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    quality: list[str] = field(default_factory=list)
    topic: list[str] = field(default_factory=list)
    objs: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def extend(self, other: Columns) -> None:
        self.ts += other.ts
        self.sensor += other.sensor
        self.value += other.value
        self.quality += other.quality
        self.topic += other.topic
        self.objs += other.objs

    def split(self, k: int) -> tuple[Columns, Columns]:
        """The first ``k`` rows and the rest."""
        head, tail = Columns(), Columns()
        for name in ("ts", "sensor", "value", "quality", "topic", "objs"):
            values = getattr(self, name)
            setattr(head, name, values[:k])
            setattr(tail, name, values[k:])
        return head, tail


def parse(
    cfg: MqttParsing,
    messages: Sequence[tuple[str, bytes, int]],
    sensor_of: Callable[[str], Any],
    field_name: str | None,
) -> Columns | None:
    """The readings of ``messages`` (one per message), or ``None`` when any of them needs
    the per-message path. ``sensor_of(topic)`` is the sensor when the payload names none."""
    limit, codec = cfg.max_payload_bytes, cfg.decompress
    objs: list[dict[str, Any]] = []
    try:
        for _, payload, _ in messages:
            if len(payload) > limit or (codec != "none" and _compressed(payload, codec)):
                return None
            obj = fastjson.loads(payload)
            if type(obj) is not dict:
                return None
            objs.append(obj)
        raw = [o[cfg.value_field] for o in objs]
    except Exception:  # anything unparseable: the per-message path names it
        return None
    if not _NUMBER.issuperset(map(type, raw)):
        return None
    try:  # map(float): C speed, and no numpy call costs for the few messages of a read
        values = list(map(float, raw))
    except OverflowError:  # an integer beyond a double: the other path makes it infinite
        return None
    good = cfg.non_finite == "keep" or all(map(math.isfinite, values))
    if not good and cfg.non_finite == "error":
        return None
    stamps = _stamps(cfg, objs, messages)
    if stamps is None:
        return None
    topics = [t for t, _, _ in messages]
    if field_name is None:
        sensors = [sensor_of(t) for t in topics]
    else:
        pairs = zip(objs, topics, strict=True)
        sensors = [o[field_name] if field_name in o else sensor_of(t) for o, t in pairs]
    if good:
        quality = ["good"] * len(objs)
    else:
        quality = ["good" if math.isfinite(v) else "bad" for v in values]
    return Columns(stamps, sensors, values, quality, topics, objs)


def _compressed(payload: bytes, codec: str) -> bool:
    return codec != "auto" or payload[:2] == MAGIC[0] or payload[:4] == MAGIC[1]


def _stamps(
    cfg: MqttParsing, objs: list[dict[str, Any]], messages: Sequence[tuple[str, bytes, int]]
) -> list[int] | None:
    """Nanoseconds since the epoch per row: the receive time without a timestamp field, else
    the field read as the per-message path reads it (``None``: let that path do it)."""
    name, fmt = cfg.timestamp_field, cfg.timestamp_format
    present = [o.get(name, _MISSING) for o in objs]
    if present.count(_MISSING) == len(present):
        return [received for _, _, received in messages]
    kinds = {type(s) for s in present}
    try:
        if kinds <= {int} or kinds == {float}:
            if fmt == "iso":
                return None
            array = np.array(present, dtype=np.int64 if kinds == {int} else float)
            if fmt == "auto":  # numbers above 10^11 are milliseconds
                millis = np.abs(array) > 1e11
            else:
                millis = np.full(len(array), fmt == "epoch_ms")
            scale = np.where(millis, 1_000_000, 1_000_000_000)
            if array.dtype.kind == "f":
                ns = np.rint(array * scale)
                if not (np.abs(ns) < 2.0**63).all():  # NaN fails this too
                    return None
                return ns.astype(np.int64).tolist()
            bound = (2**63 - 1) // scale
            if not ((array > -bound) & (array < bound)).all():
                return None
            return (array * scale).tolist()
        if kinds == {str} and fmt in ("auto", "iso"):
            index = pd.to_datetime(present, utc=True, format="ISO8601")
            if index.hasnans:
                return None
            return index.as_unit("ns").asi8.tolist()
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def lists(
    cols: Columns, source: str, value_field: str, timestamp_field: str, field_name: str | None
) -> Lists:
    """The rows of ``cols`` as lists that give the per-message path's frame: the fixed
    columns, then every scalar payload field in the order first seen (missing ones NaN,
    nested ones left out)."""
    data: dict[str, list[Any]] = {
        "timestamp": cols.ts,
        "sensor": cols.sensor,
        "value": cols.value,
        "quality": cols.quality,
        "source": [source] * len(cols),
        "topic": cols.topic,
    }
    objs = cols.objs
    first = objs[0].keys()
    same = len(objs) == 1 or all(o.keys() == first for o in objs)
    keys = list(first) if same else list(dict.fromkeys(k for o in objs for k in o))
    skip = {*FIXED, value_field, timestamp_field, field_name}
    for key in keys:
        if key in skip:
            continue
        column = [o[key] for o in objs] if same else [o.get(key, _MISSING) for o in objs]
        if same and _NESTED.isdisjoint(map(type, column)):
            data[key] = column
            continue
        kept = [_NAN if v is _MISSING or type(v) in _NESTED else v for v in column]
        if any(v is not _MISSING and type(v) not in _NESTED for v in column):
            data[key] = kept
    return Lists(data, len(cols), TIMES)


def frame(
    cols: Columns, source: str, value_field: str, timestamp_field: str, field_name: str | None
) -> pd.DataFrame:
    """The rows of ``cols`` as the per-message path's frame (see :func:`lists`)."""
    return lists(cols, source, value_field, timestamp_field, field_name).frame()
