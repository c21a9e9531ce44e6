"""Filter: keep the rows that match a pandas query expression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import field_validator

from flowengine.exprs import check_expression, values
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

    outputs = ("out", "rejected")

    def process(self, batch: Batch) -> Result:
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
