"""Rename: columns, and sensor names (for friendly names of PLC tags)."""

from __future__ import annotations

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class RenameConfig(NodeConfig):
    columns: dict[str, str] = option(
        {}, description="Old column name -> new name.", examples=[{"value": "temperature_c"}]
    )
    sensors: dict[str, str] = option(
        {},
        description="Old `sensor` value -> new value.",
        examples=[{"ns=2;i=1001": "furnace_temp"}],
    )


class Rename(Transform[RenameConfig]):
    """Rename columns and/or values of the `sensor` column."""

    def process(self, batch: Batch) -> Result:
        frame, cfg = batch.frame, self.config
        if cfg.sensors and "sensor" in frame.columns:
            frame = frame.assign(sensor=frame["sensor"].replace(cfg.sensors))
        return frame.rename(columns=cfg.columns) if cfg.columns else frame
