"""Window: per-sensor time windows (tumbling or sliding) with aggregations, across batches."""

from __future__ import annotations

from pydantic import field_validator

from flowengine.context import Context
from flowengine.node import NodeConfig, option
from flowengine.nodes.analytics.windows import (
    AGGREGATIONS,
    Aggregation,
    StreamTransform,
    Windower,
    parse_duration,
)


class WindowConfig(NodeConfig):
    size: str = option(
        description="Window length (a pandas Timedelta); windows are aligned to the epoch.",
        examples=["10s", "1min"],
    )
    step: str | None = option(
        None,
        description="Distance between window starts; unset means tumbling windows (step = size).",
        examples=["10s"],
    )
    aggregations: list[Aggregation] = option(
        ["mean"],
        description="Aggregations per window, each a column `<value>_<name>`. "
        f"One of: {', '.join(AGGREGATIONS)}; slope is the least-squares trend in units/second.",
        examples=[["mean", "std", "slope"]],
        min_length=1,
    )
    lateness: str = option(
        "0s",
        description="How far behind the newest timestamp a row may arrive and still count; "
        "older rows are counted as `late_rows` and sent to the error port.",
        examples=["2s"],
    )
    key: str = option("sensor", description="Column whose values get separate windows.")
    value: str = option("value", description="Numeric column to aggregate.", advanced=True)

    @field_validator("size", "step", "lateness")
    @classmethod
    def _duration(cls, text: str | None) -> str | None:
        if text is not None and parse_duration(text) < 0:
            raise ValueError(f"duration {text!r} must not be negative")
        return text

    @field_validator("size", "step")
    @classmethod
    def _positive(cls, text: str | None) -> str | None:
        if text is not None and parse_duration(text) == 0:
            raise ValueError("window size and step must be positive")
        return text


class Window(StreamTransform[WindowConfig]):
    """Aggregate time windows per key; emits a window once the watermark passes its end.

    Output: one row per (window end, key) with `timestamp` (the end), `window_start`, the key
    and one column per aggregation. State lives across batches; `flush` emits the open windows.
    """

    icon = "view_week"

    def __init__(self, config: WindowConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        cfg = self.config
        self.stream = Windower(
            parse_duration(cfg.size),
            parse_duration(cfg.step) if cfg.step else None,
            cfg.aggregations,
            key=cfg.key,
            value=cfg.value,
            lateness=parse_duration(cfg.lateness),
        )
