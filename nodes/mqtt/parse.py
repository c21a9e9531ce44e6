"""MQTT payloads to rows of the long format: JSON numbers, objects and arrays of readings."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial
from logging import WARNING, Logger, LoggerAdapter
from typing import Any

import pandas as pd

from flowengine.compression import decompress
from flowengine.lists import Lists
from flowengine.logs import RateLimiter
from flowengine.nodes.mqtt import columns, fastjson
from flowengine.nodes.mqtt.columns import Columns
from flowengine.nodes.mqtt.config import MqttParsing


class PayloadError(ValueError):
    """A payload that is not JSON, or JSON of a shape without readings."""


#: Characters of an unparseable payload kept in its error row.
PREVIEW = 1000


def preview(payload: bytes) -> str:
    """The start of a payload as text (invalid UTF-8 replaced), for the error port."""
    text = payload[: PREVIEW * 4].decode("utf-8", errors="replace")
    return text if len(text) <= PREVIEW else text[:PREVIEW] + "..."


def to_number(value: Any) -> float | None:
    """A JSON value as a float: numbers and numeric strings (an int too large for a float
    becomes +/-inf, so the ``non_finite`` policy sees it); None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class Parser:
    """Turns (topic, payload, received) into long-format rows; unparseable ones are kept aside."""

    def __init__(self, cfg: MqttParsing, source: str) -> None:
        self.cfg = cfg
        self.source = source
        spec = cfg.sensor_from
        self.level: int | None = None
        self.field: str | None = None
        if isinstance(spec, int) or (isinstance(spec, str) and spec.lstrip("-").isdigit()):
            self.level = int(spec)
        elif isinstance(spec, str) and spec.startswith("topic["):
            self.level = int(spec[6:].rstrip("]"))
        elif spec != "topic":
            self.field = spec
        #: Rows parsed one message at a time, after everything in ``parts``.
        self.rows: list[dict[str, Any]] = []
        #: Earlier rows, in order: per-message rows or column-wise batches.
        self.parts: list[list[dict[str, Any]] | Columns] = []
        self.bad: list[dict[str, Any]] = []
        self._sensors: dict[str, Any] = {}

    @property
    def pending(self) -> int:
        """Rows parsed and not taken yet."""
        return len(self.rows) + sum(map(len, self.parts))

    def add_many(self, messages: list[tuple[str, bytes, int]]) -> list[int] | None:
        """Parse the messages of one read: column-wise when the batch allows it (then each
        message is one row: returns ``None``), else one by one (returns the rows each gave)."""
        cols = columns.parse(self.cfg, messages, self._topic_sensor, self.field)
        if cols is None:
            counts = []
            for message in messages:
                before = len(self.rows)
                self.add(*message)
                counts.append(len(self.rows) - before)
            return counts
        if self.rows:
            self.parts.append(self.rows)
            self.rows = []
        last = self.parts[-1] if self.parts else None
        if isinstance(last, Columns):
            last.extend(cols)
        else:
            self.parts.append(cols)
        return None

    def _topic_sensor(self, topic: str) -> Any:
        """The sensor of a message whose payload names none (by topic, remembered)."""
        sensor = self._sensors.get(topic)
        if sensor is None:
            if len(self._sensors) > 10_000:
                self._sensors.clear()
            sensor = self._sensors[topic] = self._sensor(topic, None)
        return sensor

    def _sensor(self, topic: str, obj: dict[str, Any] | None) -> Any:
        if self.field is not None and obj is not None and self.field in obj:
            return obj[self.field]
        if self.level is not None:
            levels = topic.split("/")
            try:
                return levels[self.level]
            except IndexError:
                return topic
        return topic

    def add(self, topic: str, payload: bytes, received: int) -> bool:
        """Parse one message into ``rows`` (or ``bad``); False when it was unparseable.

        Any exception is this payload's alone (a 2,000-deep nesting raises ``RecursionError``,
        a 5,000-digit number ``ValueError``, a corrupt gzip or zstd payload
        ``CompressionError``): it never escapes to restart the source, which would drop what is
        buffered. A compressed payload is decoded first (``decompress``), to at most
        ``max_payload_bytes``.
        """
        try:
            if len(payload) > self.cfg.max_payload_bytes:
                raise PayloadError(
                    f"payload of {len(payload)} bytes exceeds max_payload_bytes "
                    f"({self.cfg.max_payload_bytes})"
                )
            limit = self.cfg.max_payload_bytes
            data = fastjson.loads(decompress(payload, self.cfg.decompress, limit))
            rows = list(self._readings(topic, data, received))
        except Exception as exc:  # any failure is this payload's: see the docstring
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, RecursionError):
                reason = "JSON nested too deeply"
            self.bad.append(
                {
                    "timestamp": received,
                    "topic": topic,
                    "payload": preview(payload),
                    "error": reason,
                }
            )
            return False
        self.rows.extend(rows)
        return True

    def _readings(self, topic: str, data: Any, received: int) -> Iterable[dict[str, Any]]:
        cfg = self.cfg
        if isinstance(data, bool) or data is None:
            raise PayloadError(f"not a reading: {data!r}")
        if isinstance(data, int | float):
            yield self._row(topic, None, data, received)
        elif isinstance(data, dict):
            if cfg.value_field in data:
                yield self._row(topic, data, data[cfg.value_field], received)
            else:  # {"temp": 1, "pressure": 2}: one reading per numeric field
                stamp = data.get(cfg.timestamp_field, received)
                found = False
                for key, val in data.items():
                    numeric = isinstance(val, int | float) and not isinstance(val, bool)
                    if numeric and key != cfg.timestamp_field:
                        found = True
                        yield self._stamped(topic, key, val, stamp, received)
                if not found:
                    raise PayloadError(f"no '{cfg.value_field}' field and no numeric fields")
        elif isinstance(data, list):
            if not data:
                raise PayloadError("empty array")
            for item in data:
                if isinstance(item, dict) and cfg.value_field in item:
                    yield self._row(topic, item, item[cfg.value_field], received)
                elif isinstance(item, int | float) and not isinstance(item, bool):
                    yield self._row(topic, None, item, received)
                else:
                    raise PayloadError(f"array item without '{cfg.value_field}': {item!r}")
        else:
            raise PayloadError(f"not a reading: {data!r}")

    def _row(self, topic: str, obj: dict[str, Any] | None, value: Any, received: int) -> Any:
        stamp = obj.get(self.cfg.timestamp_field, received) if obj else received
        row = self._stamped(topic, self._sensor(topic, obj), value, stamp, received)
        if obj:
            skip = (self.cfg.value_field, self.cfg.timestamp_field, self.field, *row)
            for key, val in obj.items():
                if key not in skip and not isinstance(val, dict | list):
                    row[key] = val
        return row

    def _stamped(self, topic: str, sensor: Any, value: Any, stamp: Any, received: int) -> Any:
        number = to_number(value)
        if number is None:
            raise PayloadError(f"value is not a number: {value!r}")
        finite = math.isfinite(number)
        if not finite and self.cfg.non_finite == "error":
            raise PayloadError(f"value is not finite: {value!r}")
        trusted = finite or self.cfg.non_finite == "keep"
        if stamp is None:  # the device sent no time: ours, and the reading is not trusted
            stamp, trusted = received, False
        return {
            "timestamp": self._time(stamp, received),
            "sensor": sensor,
            "value": number,
            "quality": "good" if trusted else "bad",
            "source": self.source,
            "topic": topic,
        }

    def _time(self, stamp: Any, received: int) -> int:
        """Nanoseconds since the epoch (one vectorised conversion per batch, not per row)."""
        fmt = self.cfg.timestamp_format
        if stamp is received:
            return received
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            if fmt == "iso":
                raise PayloadError(f"timestamp is not ISO 8601 text: {stamp!r}")
            ms = fmt == "epoch_ms" or (fmt == "auto" and abs(stamp) > 1e11)
            scale = 1_000_000 if ms else 1_000_000_000
            ns = stamp * scale if isinstance(stamp, int) else round(stamp * scale)
            if abs(ns) < 2**63:
                return ns
            raise PayloadError(f"bad timestamp: {stamp!r}")
        if isinstance(stamp, str) and fmt in ("auto", "iso"):
            try:
                ts = pd.Timestamp(stamp)
            except ValueError:
                raise PayloadError(f"bad timestamp: {stamp!r}") from None
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
            return int(ts.as_unit("ns").value)
        raise PayloadError(f"bad timestamp for format {fmt}: {stamp!r}")

    def take_rows(self, limit: int | None = None) -> pd.DataFrame | None:
        """The first ``limit`` (default all) parsed rows as a frame (``None`` if there are
        none), and forget them."""
        rows = self.take(limit)
        return rows.frame() if isinstance(rows, Lists) else rows

    def take(self, limit: int | None = None) -> pd.DataFrame | Lists | None:
        """Like :meth:`take_rows`, but rows that all came the column-wise way come as
        :class:`~flowengine.lists.Lists` (the same frame once built, none built before)."""
        if self.rows:
            self.parts.append(self.rows)
            self.rows = []
        left = self.pending if limit is None else limit
        parts: list[list[dict[str, Any]] | Columns] = []
        while self.parts and left > 0:
            part = self.parts.pop(0)
            if len(part) > left:
                if isinstance(part, Columns):
                    part, rest = part.split(left)
                    self.parts.insert(0, rest)
                else:
                    self.parts.insert(0, part[left:])
                    part = part[:left]
            left -= len(part)
            parts.append(part)
        if not parts:
            return None
        if all(isinstance(p, Columns) for p in parts):
            whole = parts[0]
            assert isinstance(whole, Columns)
            for more in parts[1:]:
                assert isinstance(more, Columns)
                whole.extend(more)
            cfg = self.cfg
            return columns.lists(
                whole, self.source, cfg.value_field, cfg.timestamp_field, self.field
            )
        frames = [self._frame(part) for part in parts]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _frame(self, part: list[dict[str, Any]] | Columns) -> pd.DataFrame:
        if isinstance(part, Columns):
            cfg = self.cfg
            return columns.frame(
                part, self.source, cfg.value_field, cfg.timestamp_field, self.field
            )
        frame = pd.DataFrame(part)
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="ns", utc=True))

    def take_bad(self) -> pd.DataFrame | None:
        """The unparseable messages as a frame (timestamp, topic, payload, error)."""
        bad, self.bad = self.bad, []
        if not bad:
            return None
        frame = pd.DataFrame(bad)
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="ns", utc=True))


def parse_warning(topic: str, error: str) -> str:
    """The seed's warning for one unparseable message."""
    return f"Could not parse JSON payload on topic {topic}: {error}"


def log_bad(limiter: RateLimiter, logger: Logger | LoggerAdapter[Any], bad: pd.DataFrame) -> None:
    """Offer each unparseable message to the rate limiter, so the line that goes out names one
    and the next says how many messages (not batches) were held back."""
    for topic, error in zip(bad["topic"], bad["error"], strict=True):
        limiter.log(logger, WARNING, partial(parse_warning, topic, error))
