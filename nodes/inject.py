"""Inject: fixed rows on start, every interval, or on a cron schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from croniter import croniter
from pydantic import model_validator

from flowengine.node import Done, NodeConfig, Source, option


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
    once: bool = option(True, description="Fire immediately at start, then on the schedule.")
    topic: str | None = option(None, description="Topic carried with each batch.")

    @model_validator(mode="after")
    def _schedule(self) -> InjectConfig:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set either 'interval' or 'cron', not both")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"invalid cron expression '{self.cron}'")
        return self


class Inject(Source):
    """Emit fixed rows once, every `interval` seconds, or on a `cron` schedule."""

    Config = InjectConfig
    config: InjectConfig

    async def start(self) -> None:
        cfg = self.config
        scheduled = cfg.interval is not None or cfg.cron is not None
        self._left = cfg.count if cfg.count is not None else (None if scheduled else 1)
        self._first = cfg.once or not scheduled
        self._cron = croniter(cfg.cron, datetime.now(UTC)) if cfg.cron else None

    async def _wait(self) -> None:
        if self._first:
            self._first = False
            return
        if self._cron is not None:
            delay = self._cron.get_next(datetime).timestamp() - datetime.now(UTC).timestamp()
        else:
            delay = self.config.interval or 0.0
        await asyncio.sleep(max(0.0, delay))

    async def read(self) -> pd.DataFrame:
        if self._left == 0:
            raise Done
        await self._wait()
        if self._left is not None:
            self._left -= 1
        frame = pd.DataFrame(self.config.rows)
        now = pd.Timestamp.now(tz="UTC")
        if "timestamp" in frame:
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        else:
            frame.insert(0, "timestamp", now)
        return frame
