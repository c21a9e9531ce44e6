"""Filter: keep the rows that match a pandas query expression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import field_validator

from flowengine.columns import Columns
from flowengine.exprs import check_expression, compiled, values
from flowengine.frames import take_rows
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class FilterConfig(NodeConfig):
    query: str = option(
        description="A `DataFrame.query` expression; backticks quote odd column names.",
        examples=["value > 1250 and sensor == 'furnace_temp'"],
    )

    @field_validator("query")
    @classmethod
    def _valid(cls, query: str) -> str:
        return check_expression(query, "query")


class Filter(Transform[FilterConfig]):
    """Keep matching rows on `out`; the others go to `rejected` when it is wired."""

    icon = "filter_alt"
    outputs = ("out", "rejected")

    def process(self, batch: Batch) -> Result:
        cols = batch.columns
        if cols is not None and (program := compiled(self.config.query)) is not None:
            mask = program.column_values(cols)
            if type(mask) is np.ndarray and mask.dtype == bool:  # else as pandas does, below
                return self._split(batch, cols, mask)
        frame = batch.frame
        mask = values(frame, self.config.query)
        if type(mask) is not np.ndarray or mask.dtype != bool:  # pandas decides what it means
            series = pd.Series(mask, index=frame.index, dtype=mask.dtype)
            if not self.ctx.wired("rejected"):
                return frame[series]
            return {"out": frame[series], "rejected": frame[~series]}
        if not self.ctx.wired("rejected"):
            return take_rows(frame, mask)
        return {"out": take_rows(frame, mask), "rejected": take_rows(frame, ~mask)}

    def _split(self, batch: Batch, cols: Columns, mask: np.ndarray) -> Result:
        """The frame path's result, as columns (no DataFrame is built)."""
        node = self.ctx.node_id
        kept = cols.take(mask)
        out = None if kept is None else batch.derive_columns(kept, node)
        if not self.ctx.wired("rejected"):
            return out
        other = cols.take(~mask)
        return {
            "out": out,
            "rejected": None if other is None else batch.derive_columns(other, node),
        }
