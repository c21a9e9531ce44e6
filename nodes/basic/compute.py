"""Compute: new or replaced columns from `DataFrame.eval` expressions."""

from __future__ import annotations

from pydantic import field_validator

from flowengine.columns import Columns
from flowengine.context import Context
from flowengine.exprs import check_expressions, compiled, values
from flowengine.frames import Edits
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
    """Add columns computed with pandas' expression semantics (never Python `eval`)."""

    icon = "calculate"

    def __init__(self, config: ComputeConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()

    def process(self, batch: Batch) -> Result:
        cols = batch.columns
        if cols is not None:
            done = self._on_columns(cols)
            if done is not None:
                return batch.derive_columns(done, self.ctx.node_id)
        frame = batch.frame
        for name, expr in self.config.columns.items():
            frame = self._edits.assign(frame, name, values(frame, expr))
        return frame

    def _on_columns(self, cols: Columns) -> Columns | None:
        """The frame path's result as columns; None where pandas must evaluate an expression."""
        for name, expr in self.config.columns.items():
            program = compiled(expr)
            result = None if program is None else program.column_values(cols)
            if result is None:
                return None
            cols = cols.assign(name, result)
        return cols
