"""Pivot: long rows to wide feature rows on a time grid, aligned as-of, with lags and deltas."""

from __future__ import annotations

from pydantic import field_validator

from flowengine.context import Context
from flowengine.node import NodeConfig, option
from flowengine.nodes.analytics.windows import Pivoter, StreamTransform, parse_duration


class PivotConfig(NodeConfig):
    freq: str = option(
        description="Grid spacing (a pandas Timedelta); grid times are aligned to the epoch.",
        examples=["1s", "10s"],
    )
    tolerance: str | None = option(
        None,
        description="Oldest a value may be to fill a grid time; unset means any age.",
        examples=["5s"],
    )
    lags: list[int] = option(
        [],
        description="Add `<sensor>_lag<k>`: the value k grid steps earlier.",
        examples=[[1, 5]],
    )
    deltas: list[int] = option(
        [],
        description="Add `<sensor>_delta<k>`: the value minus the value k grid steps earlier.",
        examples=[[1]],
    )
    sensors: list[str] | None = option(
        None,
        description="Fixed feature columns, in this order (others are ignored); unset means "
        "every key seen so far, sorted.",
        examples=[["strip_temp", "roll_force"]],
    )
    lateness: str = option(
        "0s",
        description="How far behind the newest timestamp a row may arrive; grid rows wait this "
        "long, older rows are counted as `late_rows` and sent to the error port.",
        examples=["2s"],
    )
    key: str = option("sensor", description="Column whose values become the wide columns.")
    value: str = option(
        "value",
        description="Column to pivot, e.g. `value_mean` after a window node.",
        examples=["value", "value_mean"],
    )

    @field_validator("freq", "tolerance", "lateness")
    @classmethod
    def _duration(cls, text: str | None) -> str | None:
        if text is not None and parse_duration(text) < 0:
            raise ValueError(f"duration {text!r} must not be negative")
        return text

    @field_validator("freq")
    @classmethod
    def _positive(cls, text: str) -> str:
        if parse_duration(text) == 0:
            raise ValueError("freq must be positive")
        return text

    @field_validator("lags", "deltas")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if any(k < 1 for k in steps):
            raise ValueError("lags and deltas are counted in grid steps, 1 or more")
        return steps


class Pivot(StreamTransform[PivotConfig]):
    """Turn long readings into one wide row per grid time, emitted once the watermark passes.

    Alignment is as-of (the last value at or before the grid time, within `tolerance`), with
    the last values kept across batches; `flush` emits the grid up to the last row seen.
    """

    icon = "pivot_table_chart"

    def __init__(self, config: PivotConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        cfg = self.config
        self.stream = Pivoter(
            parse_duration(cfg.freq),
            parse_duration(cfg.tolerance) if cfg.tolerance is not None else None,
            lags=cfg.lags,
            deltas=cfg.deltas,
            keys=cfg.sensors,
            key=cfg.key,
            value=cfg.value,
            lateness=parse_duration(cfg.lateness),
        )
