"""Deadband: report by exception, so a steady sensor costs nothing downstream."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import model_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class DeadbandConfig(NodeConfig):
    band: float | None = option(
        None,
        ge=0,
        description="Pass a row when |value - last reported| exceeds this.",
        examples=[0.5],
    )
    percent: float | None = option(
        None,
        ge=0,
        description="Or when the change exceeds this percent of the last reported value.",
    )
    max_silence: float | None = option(
        None, gt=0, description="Re-report a sensor after this many seconds (row time) of silence."
    )
    key: str = option("sensor", description="Column that identifies a series.")
    column: str = option("value", description="Numeric column compared.")

    @model_validator(mode="after")
    def _one(self) -> DeadbandConfig:
        if self.band is None and self.percent is None:
            raise ValueError("set 'band' or 'percent'")
        return self


class Deadband(Transform[DeadbandConfig]):
    """Pass a row only when its value moved beyond the band from the last reported one.

    The first row of each series always passes; the last reported value and time per series
    are kept across batches (the checkpointed state). Rows are compared in arrival order.
    """

    icon = "compress"
    state_attrs = ("_last",)

    async def start(self) -> None:
        self._last: dict[Any, tuple[float, pd.Timestamp | None]] = {}

    def _changed(self, value: float, last: float) -> bool:
        delta = abs(value - last)
        if pd.isna(value) or pd.isna(last):
            return pd.isna(value) != pd.isna(last)
        if self.config.band is not None and delta > self.config.band:
            return True
        return self.config.percent is not None and delta > abs(last) * self.config.percent / 100

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        cfg = self.config
        times = frame["timestamp"] if "timestamp" in frame else pd.Series(None, index=frame.index)
        silence = pd.Timedelta(seconds=cfg.max_silence) if cfg.max_silence else None
        keep: list[bool] = []
        for key, value, ts in zip(frame[cfg.key], frame[cfg.column], times, strict=True):
            seen = self._last.get(key)
            report = (
                seen is None
                or self._changed(float(value), seen[0])
                or (silence is not None and ts is not None and seen[1] is not None
                    and ts - seen[1] >= silence)
            )  # fmt: skip
            if report:
                self._last[key] = (float(value), ts)
            keep.append(report)
        self.ctx.count("suppressed", keep.count(False))
        return frame[keep]
