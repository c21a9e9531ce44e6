"""Inject: fixed rows on start, every interval, on a cron schedule, or on the editor's button."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import pandas as pd
from croniter import croniter
from pydantic import ValidationInfo, field_validator

from flowengine.columns import Columns
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.types import Batch


class InjectConfig(NodeConfig):
    rows: list[dict[str, Any]] = option(
        [{"sensor": "inject", "value": 1.0}],
        description="Rows to emit each time; a missing `timestamp` is set to the firing time.",
        examples=[[{"sensor": "setpoint", "value": 1250.0}]],
    )
    interval: float | None = option(None, gt=0, description="Seconds between firings.")
    cron: str | None = option(
        None,
        description="Cron schedule (5 fields, UTC), instead of interval.",
        examples=["*/5 * * * *"],
    )
    count: int | None = option(
        None,
        ge=1,
        description="Firings before the source ends; default once, or forever when "
        "an interval or cron is set.",
    )
    once: bool = option(
        True,
        description="Fire immediately at start, then on the schedule. Without a schedule, "
        "`false` makes a button-only inject (Node-RED's inject without repeat): it never fires "
        "by itself, only from the editor's inject button, and keeps the flow running.",
    )
    topic: str | None = option(None, description="Topic carried with each batch.")

    @field_validator("rows")
    @classmethod
    def _timestamps(cls, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, row in enumerate(rows):
            value = row.get("timestamp")
            if value is None:
                continue
            try:
                if not isinstance(value, str | date):  # numbers would silently mean 1970
                    raise TypeError
                _parse_times(pd.Series([value], dtype=object), pd.Timestamp(0, tz="UTC"))
            except (ValueError, TypeError):
                raise ValueError(f"row {i}: timestamp {value!r} is not an ISO 8601 time") from None
        return rows

    @field_validator("cron")
    @classmethod
    def _schedule(cls, cron: str | None, info: ValidationInfo) -> str | None:
        if cron is not None and info.data.get("interval") is not None:
            raise ValueError("set either 'interval' or 'cron', not both")
        if cron is not None and not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression '{cron}'")
        return cron


def _parse_times(values: pd.Series, now: pd.Timestamp) -> pd.Series:
    """Given timestamps (ISO 8601 text or datetimes) as UTC; missing ones become ``now``."""
    return pd.to_datetime(values.astype(object).fillna(now), utc=True, format="ISO8601")


class Inject(Source[InjectConfig]):
    """Emit fixed rows once, every `interval` seconds, or on a `cron` schedule.

    A checkpoint keeps the firings left and whether the first one is still due, so a restored
    inject goes on counting instead of firing its `count` again; the schedule itself follows
    the clock (an interval restarts, a cron fires at its next time).
    """

    icon = "touch_app"
    state_attrs = ("_left", "_first")
    replayable = True  # its rows are in the flow file: the restored count is all it needs
    firable = True

    async def start(self) -> None:
        cfg = self.config
        scheduled = cfg.interval is not None or cfg.cron is not None
        #: no schedule and not once: fires only from the button (``fire``), never by itself
        self._button_only = not scheduled and not cfg.once
        self._left = cfg.count if cfg.count is not None else (None if scheduled else 1)
        self._first = cfg.once or not scheduled
        self._cron = croniter(cfg.cron, self.ctx.clock.now().to_pydatetime()) if cfg.cron else None

    async def _wait(self) -> None:
        if self._first:
            self._first = False
            return
        clock = self.ctx.clock
        if self._cron is not None:
            delay = self._cron.get_next(datetime).timestamp() - clock.time()
        else:
            delay = self.config.interval or 0.0
        await clock.sleep(max(0.0, delay))

    async def read(self) -> Batch:
        if self._button_only:
            self.ctx.status("waiting for the inject button")
            await asyncio.Event().wait()  # until the flow stops (cancelled): ``fire`` emits
        if self._left == 0:
            raise Done
        await self._wait()
        if self._left is not None:
            self._left -= 1
        return self._rows()

    async def fire(self) -> Batch:
        """The rows now (the editor's inject button): the schedule and count go on unchanged."""
        return self._rows()

    def _rows(self) -> Batch:
        frame = pd.DataFrame(self.config.rows)
        now = self.ctx.clock.now()
        if "timestamp" in frame:
            frame["timestamp"] = _parse_times(frame["timestamp"], now)
        else:
            frame.insert(0, "timestamp", now)
        # as columns (the frame is this call's own), so built-in nodes need not build one
        columns = Columns.of_frame(frame)
        kept = frame if columns is None else None
        return Batch(kept, self.config.topic, self.ctx.node_id, now.timestamp(), columns=columns)
