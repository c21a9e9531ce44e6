"""Compute: new or replaced columns from `DataFrame.eval` expressions."""

from __future__ import annotations

from pydantic import field_validator

from flowengine.exprs import check_expressions, evaluate
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class ComputeConfig(NodeConfig):
    columns: dict[str, str] = option(
        description="Column name -> expression, applied in order (later ones may use earlier).",
        examples=[{"value_f": "value * 9 / 5 + 32", "hot": "value > 1250"}],
        min_length=1,
    )

    @field_validator("columns")
    @classmethod
    def _valid(cls, columns: dict[str, str]) -> dict[str, str]:
        return check_expressions(columns, "column")


class Compute(Transform[ComputeConfig]):
    """Add columns computed with pandas' expression engine (never Python `eval`)."""

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        for name, expr in self.config.columns.items():
            frame = frame.assign(**{name: evaluate(frame, expr)})
        return frame
