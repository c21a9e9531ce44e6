"""EtherNet/IP in: poll Logix tags (several per request) into long-format rows."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pandas as pd

from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source
from flowengine.nodes.enip.client import EnipClient
from flowengine.nodes.enip.config import EnipConfig, TagSpec
from flowengine.types import Result

#: The columns of every row ``enip_in`` emits, in order.
COLUMNS = ["timestamp", "sensor", "value", "quality", "source", "tag", "data_type", "status"]
#: The status of a good reading (CIP general status 0x00).
SUCCESS = "Success"


class EnipInConfig(NodeConfig, EnipConfig):
    """A Logix controller (`host`, `port`, `slot` or `route`), the tags and the poll interval."""


def _element_type(data_type: str | None) -> str | None:
    """``REAL`` of ``REAL[10]``."""
    return data_type.partition("[")[0] if data_type else None


def _scaled(value: Any, spec: TagSpec) -> Any:
    """``value * scale + offset`` for numbers (not BOOLs or strings); others unchanged."""
    if spec.scale == 1.0 and spec.offset == 0.0:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return value * spec.scale + spec.offset


def _row(
    sensor: str, tag: str, value: Any, data_type: str | None, error: str | None, spec: TagSpec
) -> dict[str, Any]:
    if error is None and isinstance(value, float) and not math.isfinite(value):
        error = f"value is not finite: {value!r}"
    return {
        "sensor": sensor,
        "value": None if error and value is None else _scaled(value, spec),
        "quality": "bad" if error else "good",
        "tag": tag,
        "data_type": data_type,
        "status": error or SUCCESS,
    }


def leaves(sensor: str, tag: str, value: Any) -> Iterator[tuple[str, str, Any]]:
    """``(sensor, tag, value)`` per atomic value: a structure's members as ``Tag.Member``, an
    array's elements as ``Tag[i]``, recursively."""
    if isinstance(value, dict):
        for key, member in value.items():
            yield from leaves(f"{sensor}.{key}", f"{tag}.{key}", member)
    elif isinstance(value, list | tuple):
        for i, element in enumerate(value):
            yield from leaves(f"{sensor}[{i}]", f"{tag}[{i}]", element)
    else:
        yield sensor, tag, value


def rows_of(spec: TagSpec, result: Any) -> list[dict[str, Any]]:
    """One tag's rows: one per array element (``Temps[3]``) or structure member
    (``Line3.Temp``); a failed tag gives its rows (one per element asked for) quality bad with
    the CIP status text."""
    error, value, dtype = result.error, result.value, result.type
    if error is None and value is None:
        error = "no value"
    if spec.count is not None:
        names = spec.elements()
        values = value if isinstance(value, list) else [value]
        if error is None and len(values) != len(names):
            error = f"asked for {len(names)} elements, got {len(values)}"
        if error is not None:
            return [_row(s, t, None, None, error, spec) for s, t in names]
        out = []
        for (sensor, tag), element in zip(names, values, strict=True):
            for name, member, leaf in leaves(sensor, tag, element):
                out.append(_row(name, member, leaf, _element_type(dtype), None, spec))
        return out
    if error is not None:
        return [_row(spec.name, spec.plc_tag, None, None, error, spec)]
    if isinstance(value, dict | list):  # a whole structure, or BOOLs of a DWORD
        member_type = None if isinstance(value, dict) else _element_type(dtype)
        return [
            _row(name, member, leaf, member_type, None, spec)
            for name, member, leaf in leaves(spec.name, spec.plc_tag, value)
        ]
    return [_row(spec.name, spec.plc_tag, value, dtype, None, spec)]


def frame_of(results: Sequence[tuple[TagSpec, Any]], source: str) -> pd.DataFrame:
    """The long format: timestamp (UTC, receive time: Logix keeps no per-tag time), sensor,
    value, quality (good/bad), source (``host:port``), tag, data_type, status."""
    rows = [row for spec, result in results for row in rows_of(spec, result)]
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("timestamp", "source")])
    frame.insert(0, "timestamp", pd.Timestamp.now(tz="UTC"))
    frame.insert(4, "source", source)
    return frame


class EnipIn(Source[EnipInConfig]):
    """Values of Logix tags (ControlLogix, CompactLogix, or any EtherNet/IP device that serves
    Read Tag) in the long format.

    Columns: timestamp (UTC receive time), sensor, value, quality (good/bad), source
    (`host:port`), tag, data_type and status (the CIP status text; `Success` when good).
    All tags go out in Multiple Service packets, so a poll is one or a few requests. A tag that
    fails (unknown, wrong type, a structure without the tag list) is a `bad` row with its status
    while the others go on; a lost connection raises, so the runtime shows `retrying` and
    reconnects with backoff.
    """

    icon = "lan"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("pycomm3", "enip"),)
    client: EnipClient | None = None
    _due: float = 0.0
    limiter: RateLimiter

    async def start(self) -> None:
        self.limiter = RateLimiter(30.0)
        self.client = EnipClient(self.config)
        await self.client.connect()
        self._due = time.monotonic()
        mode = self.client.mode
        if self.client.upload_error:
            mode = f"probe (no tag list: {self.client.upload_error})"
        self.ctx.status(f"{len(self.config.tags)} tags, {mode}")

    async def read(self) -> Result:
        assert self.client is not None  # the runtime calls start first
        if (delay := self._due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due + self.config.poll_interval, time.monotonic())
        frame = frame_of(await self.client.read(), self.config.address)
        bad = frame[frame["quality"] == "bad"]
        if not bad.empty:
            self.ctx.count("bad", len(bad))
            first = bad.iloc[0]
            self.limiter.log(
                self.ctx.log,
                logging.WARNING,
                lambda: f"{len(bad)} bad reading(s), e.g. {first['tag']}: {first['status']}",
            )
        return frame

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
