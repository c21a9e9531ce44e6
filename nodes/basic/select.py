"""Select: keep (or drop) named columns."""

from __future__ import annotations

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class SelectConfig(NodeConfig):
    columns: list[str] = option(
        description="Columns to keep, in this order.",
        min_length=1,
        examples=[["timestamp", "sensor", "value"]],
    )
    drop: bool = option(False, description="Drop the listed columns instead of keeping them.")
    missing_ok: bool = option(False, description="Ignore listed columns a batch does not have.")


class Select(Transform[SelectConfig]):
    """Keep the listed columns (or drop them); a missing column is an error naming it."""

    def process(self, batch: Batch) -> Result:
        frame, cfg = batch.frame, self.config
        missing = [c for c in cfg.columns if c not in frame.columns]
        if missing and not cfg.missing_ok:
            raise KeyError(f"missing columns {missing}; the batch has {list(frame.columns)}")
        present = [c for c in cfg.columns if c in frame.columns]
        return frame.drop(columns=present) if cfg.drop else frame[present]
