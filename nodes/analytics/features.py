"""Features: sliding windows per line and sensor, as one wide row per window (model input)."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from flowengine.context import Context
from flowengine.node import NodeConfig, option
from flowengine.nodes.analytics.featurize import Featurizer
from flowengine.nodes.analytics.windows import Aggregation, StreamTransform, parse_duration


class FeaturesConfig(NodeConfig):
    size: str = option(
        "10s", description="Window length; windows are aligned to the epoch.", examples=["10s"]
    )
    step: str | None = option(
        "1s",
        description="Distance between window ends (a row per step); size must be a multiple. "
        "Unset means tumbling windows.",
        examples=["1s"],
    )
    aggregations: list[Aggregation] = option(
        ["mean", "std", "min", "max", "slope"],
        min_length=1,
        description="Aggregations per sensor, each a column `<sensor>_<aggregation>`.",
    )
    sensors: list[str] | None = option(
        None,
        description="Sensors to use, in this column order (a fixed schema for a model); "
        "unset means every sensor seen so far, sorted.",
        examples=[["furnace_temp", "roll_force"]],
    )
    by: list[str] = option(
        ["line"],
        description="Columns that get their own rows (one row per line and window); "
        "columns missing from the input are ignored.",
    )
    labels: list[str] = option(
        [],
        description="Columns carried as their maximum over the window, e.g. a ground-truth "
        "`defect` for training history.",
        examples=[["defect"]],
    )
    lateness: str = option(
        "0s",
        description="How far behind the newest timestamp a row may arrive; older rows are "
        "counted as `late_rows` and sent to the error port.",
        examples=["2s"],
    )
    partial: bool = option(
        True,
        description="Emit windows that hold less than `size` of a line's data: its first "
        "windows, which start before its first reading, and those the end of the stream "
        "flushes. A model trained on full windows misreads them (the slope and spread of a "
        "second of data are noise), so a flow that scores windows sets false.",
    )
    key: str = option("sensor", advanced=True, description="Column naming the sensor.")
    value: str = option("value", advanced=True, description="Numeric column aggregated.")

    @field_validator("size", "step", "lateness")
    @classmethod
    def _duration(cls, text: str | None) -> str | None:
        if text is not None and parse_duration(text) < 0:
            raise ValueError(f"duration {text!r} must not be negative")
        return text

    @model_validator(mode="after")
    def _panes(self) -> FeaturesConfig:
        size = parse_duration(self.size)
        step = parse_duration(self.step) if self.step else size
        if size <= 0 or step <= 0:
            raise ValueError("size and step must be positive")
        if size % step:
            raise ValueError(f"size {self.size} must be a multiple of step {self.step}")
        return self

    def featurizer(self) -> Featurizer:
        """The window state these settings describe: the node's and ``FeatureEngineer``'s."""
        return Featurizer(
            parse_duration(self.size),
            parse_duration(self.step) if self.step else None,
            self.aggregations,
            sensors=self.sensors,
            by=self.by,
            labels=self.labels,
            key=self.key,
            value=self.value,
            lateness=parse_duration(self.lateness),
            partial=self.partial,
        )


class Features(StreamTransform[FeaturesConfig]):
    """Per (line, sensor) windows, emitted as one wide row per line once a window has ended.

    Same results as `window` + `pivot` for aligned windows, in one pass and several times
    cheaper (see flowengine.nodes.analytics.featurize); state lives across batches, `flush` emits open windows.
    """

    icon = "insights"

    def __init__(self, config: FeaturesConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        # the same window state as flowengine.inference.FeatureEngineer for scripts
        self.stream = self.config.featurizer()
