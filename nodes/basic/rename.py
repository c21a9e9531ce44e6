"""Rename: columns, and sensor names (for friendly names of PLC tags)."""

from __future__ import annotations

import pandas as pd

from flowengine.columns import Columns
from flowengine.context import Context
from flowengine.frames import Edits
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

    icon = "drive_file_rename_outline"

    def __init__(self, config: RenameConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()
        #: The column names of the last batch of columns, and those names renamed.
        self._names: tuple[str, ...] | None = None
        self._renamed: tuple[str, ...] | None = None

    def process(self, batch: Batch) -> Result:
        cfg, cols = self.config, batch.columns
        if cols is not None:
            if cfg.sensors and (sensor := cols.get("sensor")) is not None:
                renamed = pd.Series(sensor, dtype=sensor.dtype).replace(cfg.sensors)
                cols = cols.assign("sensor", renamed._values)
            if cols.names is not self._names:  # a source sends the same names each time
                self._renamed = Columns.renamed(cols.names, cfg.columns)
                self._names = cols.names
            if self._renamed is not None:  # else equal labels: a frame's business
                return batch.derive_columns(cols.named(self._renamed), self.ctx.node_id)
        frame = batch.frame
        if cfg.sensors and "sensor" in frame.columns:
            renamed = frame["sensor"].replace(cfg.sensors)
            frame = self._edits.assign(frame, "sensor", renamed._values)
        return self._edits.rename(frame, cfg.columns) if cfg.columns else frame
