"""Select: keep (or drop) named columns."""

from __future__ import annotations

from flowengine.context import Context
from flowengine.frames import Edits
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

    icon = "view_column"

    def __init__(self, config: SelectConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()

    def process(self, batch: Batch) -> Result:
        cols, cfg = batch.columns, self.config
        if cols is not None:  # the same checks and result, without a DataFrame
            names = cols.names
            present = [c for c in cfg.columns if c in names]
            if len(present) < len(cfg.columns) and not cfg.missing_ok:
                missing = [c for c in cfg.columns if c not in names]
                raise KeyError(f"missing columns {missing}; the batch has {list(names)}")
            if cfg.drop:
                return batch.derive_columns(cols.drop(present), self.ctx.node_id)
            if len(set(present)) == len(present):  # a name listed twice: a frame's business
                return batch.derive_columns(cols.select(present), self.ctx.node_id)
        frame = batch.frame
        columns = frame.columns
        present = [c for c in cfg.columns if c in columns]
        if len(present) < len(cfg.columns) and not cfg.missing_ok:
            missing = [c for c in cfg.columns if c not in columns]
            raise KeyError(f"missing columns {missing}; the batch has {list(columns)}")
        if cfg.drop:
            return self._edits.drop(frame, present)
        return self._edits.select(frame, present)
