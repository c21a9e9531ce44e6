"""Change: set, delete, move, convert and scale columns, in the order the operations are listed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from flowengine import frames
from flowengine.context import Context
from flowengine.exprs import check_expression, values
from flowengine.frames import Edits
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result

#: Unit conversions as (factor, offset): new = value * factor + offset.
UNITS: dict[str, tuple[float, float]] = {
    "degC->degF": (9 / 5, 32.0), "degF->degC": (5 / 9, -160 / 9),
    "degC->K": (1.0, 273.15), "K->degC": (1.0, -273.15),
    "bar->psi": (14.503773773, 0.0), "psi->bar": (1 / 14.503773773, 0.0),
    "mm->in": (1 / 25.4, 0.0), "in->mm": (25.4, 0.0),
}  # fmt: skip


class SetOp(NodeConfig):
    """Set a column to a constant or an expression."""

    op: Literal["set"]
    column: str = option(description="Column to create or replace.")
    value: Any = option(None, description="A constant (when `expr` is not given).")
    expr: str | None = option(None, description="A pandas expression.", examples=["value * 2"])

    @field_validator("expr")
    @classmethod
    def _valid(cls, expr: str | None) -> str | None:
        return None if expr is None else check_expression(expr, "expr")


class DeleteOp(NodeConfig):
    """Drop columns."""

    op: Literal["delete"]
    columns: list[str] = option(description="Columns to drop (missing ones are ignored).")


class MoveOp(NodeConfig):
    """Rename a column."""

    op: Literal["move"]
    column: str = option(description="Column to rename.")
    to: str = option(description="New name (replaces a column of that name).")


class ConvertOp(NodeConfig):
    """Convert a column's type."""

    op: Literal["convert"]
    column: str = option(description="Column to convert.")
    dtype: Literal["float", "int", "str", "bool", "datetime"] = option(
        description="Target type; `datetime` parses to tz-aware UTC."
    )


class ScaleOp(NodeConfig):
    """value * factor + offset, or a named unit conversion."""

    op: Literal["scale"]
    column: str = option("value", description="Numeric column to scale.")
    factor: float = option(1.0, description="Multiplier.")
    offset: float = option(0.0, description="Added after the factor.")
    unit: str | None = option(
        None, description="A named conversion instead of factor/offset.", examples=["degC->degF"]
    )

    @model_validator(mode="after")
    def _known(self) -> ScaleOp:
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"unknown unit '{self.unit}'; known: {', '.join(UNITS)}")
        return self


Operation = Annotated[SetOp | DeleteOp | MoveOp | ConvertOp | ScaleOp, Field(discriminator="op")]


class ChangeConfig(NodeConfig):
    operations: list[Operation] = option(
        description=(
            "Applied in order: {op: set, column, value | expr}, {op: delete, columns}, "
            "{op: move, column, to}, {op: convert, column, dtype: float|int|str|bool|datetime}, "
            "{op: scale, column (value), factor, offset | unit: " + " ".join(UNITS) + "}."
        ),
        examples=[
            [{"op": "scale", "unit": "degC->degF"}, {"op": "set", "column": "unit", "value": "F"}]
        ],
        min_length=1,
    )


#: The pandas dtype of each `convert` target.
_DTYPES = {"float": "float64", "int": "int64", "str": "string", "bool": "boolean"}


def _convert(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "datetime":
        return pd.to_datetime(series, utc=True)
    return series.astype(pd.api.types.pandas_dtype(_DTYPES[dtype]))


def _scaled(frame: pd.DataFrame, column: str, factor: float, offset: float) -> Any:
    """``frame[column] * factor + offset``: numpy on a numeric column (what pandas runs)."""
    values = frames.column(frame, column)
    if type(values) is np.ndarray and values.dtype.kind in "iuf":
        with np.errstate(all="ignore"):
            return values * factor + offset
    return (frame[column] * factor + offset)._values


class Change(Transform[ChangeConfig]):
    """Reshape columns declaratively, so common edits need no code node."""


    def __init__(self, config: ChangeConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()

    def process(self, batch: Batch) -> Result:
        frame, edits = batch.frame, self._edits
        for op in self.config.operations:
            if isinstance(op, SetOp):
                if op.expr is None:
                    frame = frame.assign(**{op.column: op.value})
                else:
                    frame = edits.assign(frame, op.column, values(frame, op.expr))
            elif isinstance(op, DeleteOp):
                columns = frame.columns
                frame = edits.drop(frame, [c for c in op.columns if c in columns])
            elif isinstance(op, MoveOp):
                frame = frame.drop(columns=[op.to], errors="ignore")
                frame = frame.rename(columns={op.column: op.to}, errors="raise")
            elif isinstance(op, ConvertOp):
                frame = frame.assign(**{op.column: _convert(frame[op.column], op.dtype)})
            else:
                factor, offset = UNITS[op.unit] if op.unit else (op.factor, op.offset)
                frame = edits.assign(frame, op.column, _scaled(frame, op.column, factor, offset))
        return frame
