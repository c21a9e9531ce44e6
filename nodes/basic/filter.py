"""Filter: keep the rows that match a pandas query expression."""

from __future__ import annotations

from pydantic import field_validator

from flowengine.exprs import check_expression, evaluate
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
        mask = evaluate(frame, self.config.query)
        if not self.ctx.wired("rejected"):
            return frame[mask]
        return {"out": frame[mask], "rejected": frame[~mask]}
