"""Batch: gather rows into one frame by count or by time, so sinks write fewer, larger chunks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pandas as pd
from pydantic import model_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class BatchConfig(NodeConfig):
    count: int | None = option(
        None, gt=0, description="Emit every this many rows.", examples=[1000]
    )
    interval: float | None = option(
        None, gt=0, description="Emit what is held this many seconds after its first row arrived."
    )

    @model_validator(mode="after")
    def _one(self) -> BatchConfig:
        if self.count is None and self.interval is None:
            raise ValueError("set 'count', 'interval' or both")
        return self


class BatchNode(Transform[BatchConfig]):
    """Hold rows until `count` rows (sent in chunks of exactly `count`) or `interval` seconds.

    The interval is checked when batches arrive and by a timer task, so a quiet input still
    gets its rows out on time. What is held at the end of the stream is flushed. A checkpoint
    keeps the held rows and their age, so after a restart they go out at the same count, or
    when the rest of their interval has passed.
    """

    icon = "inventory_2"

    async def start(self) -> None:
        self._frames: list[pd.DataFrame] = []
        self._rows = 0
        self._first = 0.0
        self._arrived = asyncio.Event()
        self._timer = asyncio.create_task(self._tick()) if self.config.interval else None

    def snapshot(self) -> dict[str, Any]:
        """The held rows and the age of the first (a monotonic time means nothing after a
        restart; an age does)."""
        age = self.ctx.clock.monotonic() - self._first if self._frames else 0.0
        return {"frames": list(self._frames), "rows": self._rows, "age": age}

    def restore(self, state: Any) -> None:
        """Hold the rows again and re-arm the timer for what is left of their interval."""
        self._frames, self._rows = list(state["frames"]), int(state["rows"])
        if self._frames:
            self._first = self.ctx.clock.monotonic() - float(state["age"])
            self._arrived.set()

    def _take(self) -> pd.DataFrame:
        frame = pd.concat(self._frames, ignore_index=True)
        self._frames, self._rows = [], 0
        return frame

    async def _tick(self) -> None:
        interval, clock = self.config.interval or 0.0, self.ctx.clock
        while True:
            if not self._frames:
                self._arrived.clear()
                await self._arrived.wait()
            await clock.sleep(max(self._first + interval - clock.monotonic(), 0.0))
            if self._frames and clock.monotonic() - self._first >= interval:
                await self.ctx.send(self._take())

    def process(self, batch: Batch) -> Result:
        if batch.frame.empty:
            return None
        now = self.ctx.clock.monotonic()
        if not self._frames:
            self._first = now
            self._arrived.set()
        self._frames.append(batch.frame)
        self._rows += len(batch.frame)
        out: list[pd.DataFrame] = []
        count = self.config.count
        if count is not None and self._rows >= count:
            frame = self._take()
            full = len(frame) // count * count
            out = [frame.iloc[i : i + count] for i in range(0, full, count)]
            if full < len(frame):
                self._frames, self._rows = [frame.iloc[full:]], len(frame) - full
                self._first = now
        interval = self.config.interval
        if interval is not None and self._frames and now - self._first >= interval:
            out.append(self._take())
        return {"out": out} if out else None

    async def flush(self) -> Result:
        return self._take() if self._frames else None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
