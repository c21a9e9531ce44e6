"""Simulate: a steel hot-strip line (flowengine.nodes.analytics.steelsim) as a deterministic source of readings."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import model_validator

from flowengine.context import Context
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.analytics.steelsim import CHUNK, LineConfig, SteelLine
from flowengine.types import Batch

#: Default start when not realtime, so that history runs are reproducible.
EPOCH = "2026-01-01T00:00:00Z"
#: Rows generated at once: enough to amortise numpy and pandas overhead per block.
BLOCK_ROWS = 1 << 17


class SimulateConfig(NodeConfig):
    seed: int = option(0, description="Random seed: the same seed and settings give the same data.")
    rate: float = option(10.0, gt=0, le=100_000, description="Ticks per second (Hz).")
    sensors: int = option(
        6,
        ge=1,
        le=10_000,
        description="Sensors read each tick: furnace_temp, roll_force, cooling_water_flow, "
        "strip_speed, cooling_water_temp, strip_thickness, then per-stand channels.",
    )
    realtime: bool = option(
        True, description="Emit each tick when due; false emits as fast as possible (history)."
    )
    start: datetime | None = option(
        None,
        description=f"Time of tick 0 (UTC unless zoned). Default: now if realtime, else {EPOCH}. "
        "A past start in realtime catches up at full speed.",
        examples=[EPOCH],
    )
    duration: float | None = option(None, gt=0, description="Simulated seconds, then end.")
    count: int | None = option(None, ge=1, description="Ticks, then end (instead of duration).")
    batch_size: int | None = option(
        None, ge=1, description="Rows per batch; default one tick (a row per sensor)."
    )
    line: str = option("line3", description="Line id, written to the `line` column.")
    defect_interval: float = option(
        300.0, description="Mean seconds between defects (one per interval, at a random time)."
    )
    precursor_duration: tuple[float, float] = option(
        (20.0, 60.0), advanced=True, description="Min and max seconds of a precursor."
    )
    defect_duration: tuple[float, float] = option(
        (5.0, 20.0), advanced=True, description="Min and max seconds of a defect."
    )
    noise: float = option(1.0, ge=0, advanced=True, description="Scale of measurement noise.")
    drift: float = option(1.0, ge=0, advanced=True, description="Scale of slow drift.")
    bad_quality: float = option(
        0.0, ge=0, le=1, advanced=True, description="Share of readings flagged uncertain or bad."
    )

    @model_validator(mode="after")
    def _check(self) -> SimulateConfig:
        if self.duration is not None and self.count is not None:
            raise ValueError("set either 'duration' or 'count', not both")
        self.line_config()  # the model's own checks (e.g. an interval too short for episodes)
        return self

    def line_config(self) -> LineConfig:
        """The model's settings: the fields it shares with this config have the same names."""
        names = {f.name for f in fields(LineConfig)}
        return LineConfig(**{k: v for k, v in self.model_dump().items() if k in names})


class Simulate(Source[SimulateConfig]):
    """Readings of a simulated hot-strip line in the long format, with a ground-truth `defect`.

    Blocks of ticks are generated at once and emitted as ``iloc`` slices, so a batch costs
    one slice whatever its size; the values do not depend on the batch size or the pacing.

    The series is a pure function of the seed and the tick number, so a checkpoint keeps only
    the position (the next row) and the time of tick 0: a restored source goes on with the
    same series where the checkpoint left it, with the same timestamps (in realtime, a restart
    after a pause catches up at full speed). It replays itself and so needs no journal.
    """

    icon = "science"
    replayable = True
    firable = True  # the editor's button: one more batch of the series

    def __init__(self, config: SimulateConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._model: SteelLine | None = None

    async def start(self) -> None:
        if self._model is not None:  # a restart goes on where the stream was
            return
        cfg = self.config
        self._model = model = SteelLine(cfg.line_config())
        self._k = k = cfg.sensors
        self._batch = cfg.batch_size or k
        self._end = cfg.count if cfg.duration is None else model.ticks_for(cfg.duration)
        # Ticks generated at once: a multiple of lcm(batch, k) rows, so no batch spans two blocks.
        unit = math.lcm(self._batch, k) // k
        block = min(CHUNK, BLOCK_ROWS // k) if cfg.realtime else BLOCK_ROWS // k
        self._block = unit * max(1, block // unit)
        now = self.ctx.clock.now().floor("ms")
        start = pd.Timestamp(cfg.start or (now if cfg.realtime else EPOCH))
        self._start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        self._epoch = self._start.timestamp()
        self._frame = pd.DataFrame()
        self._pos = 0  # next row of the frame to emit
        self._row0 = 0  # stream row number of the frame's first row
        self._next = 0  # next tick to generate

    def snapshot(self) -> dict[str, Any]:
        """The next row of the series and the time of tick 0: all a restore needs."""
        return {"row": self._row0 + self._pos, "start": self._start}

    def restore(self, state: Any) -> None:
        """Go on at the saved row, regenerating its block when it stopped inside one."""
        self._start = pd.Timestamp(state["start"])
        self._epoch = self._start.timestamp()
        row = int(state["row"])
        self._next = row // self._k // self._block * self._block
        self._frame, self._pos, self._row0 = pd.DataFrame(), 0, self._next * self._k
        if row > self._row0:
            self._generate()
            self._pos = row - self._row0

    def _generate(self) -> None:
        """The next block of ticks, as the frame batches are sliced from."""
        assert self._model is not None
        n = self._block if self._end is None else min(self._block, self._end - self._next)
        self._frame = self._model.long_frame(
            self._next, n, self._start, self.ctx.node_id, self.config.line
        )
        self._row0, self._next, self._pos = self._next * self._k, self._next + n, 0

    async def read(self) -> Batch:
        if self._pos >= len(self._frame):
            if self._end is not None and self._next >= self._end:
                raise Done
            self._generate()
        pos = self._pos
        end = self._pos = min(pos + self._batch, len(self._frame))
        if self.config.realtime:  # wait until the batch's last tick is due
            due = self._epoch + ((self._row0 + end - 1) // self._k) / self.config.rate
            if (delay := due - self.ctx.clock.time()) > 0:
                await self.ctx.clock.sleep(delay)
        # columns: a chain of built-in nodes then builds no DataFrame (see flowengine.columns)
        return Batch.rows_of(self._frame, pos, end, None, self.ctx.node_id, self.ctx.clock.time())
