"""Change: set, delete, move, convert and scale columns, in the order the operations are listed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from flowengine import frames
from flowengine.columns import Columns
from flowengine.context import Context
from flowengine.exprs import check_expression, compiled, values
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
    dtype: Literal["float", "int", "str", "bool", "datetime", "number"] = option(
        description="Target type; `datetime` parses to tz-aware UTC; `number` reads a leading "
        "number as JavaScript's parseFloat does (`'3.2V'` -> 3.2, no number -> NaN) where "
        "`float` fails the batch."
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
            "{op: move, column, to}, "
            "{op: convert, column, dtype: float|int|str|bool|datetime|number}, "
            "{op: scale, column (value), factor, offset | unit: " + " ".join(UNITS) + "}."
        ),
        examples=[
            [{"op": "scale", "unit": "degC->degF"}, {"op": "set", "column": "unit", "value": "F"}]
        ],
        min_length=1,
    )


#: The pandas dtype of each `convert` target.
_DTYPES = {"float": "float64", "int": "int64", "str": "string", "bool": "boolean"}


#: A leading decimal number, as JavaScript's parseFloat reads it.
_LEADING_NUMBER = r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"


def _convert(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "datetime":
        return pd.to_datetime(series, utc=True)
    if dtype == "number":  # numbers stay; text gives its leading number or NaN
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return series.astype("float64")
        found = series.astype("string").str.extract(_LEADING_NUMBER, expand=False)
        return pd.to_numeric(found, errors="coerce").astype("float64")
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

    icon = "edit"

    def __init__(self, config: ChangeConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()

    def process(self, batch: Batch) -> Result:
        operations = self.config.operations
        done, cols = 0, batch.columns
        if cols is not None:  # as columns while each operation gives what pandas gives
            for op in operations:
                edited = _on_columns(cols, op)
                if edited is None:
                    break
                cols, done = edited, done + 1
            if done == len(operations):
                return batch.derive_columns(cols, self.ctx.node_id)
        # the rest on a frame: the one these columns stand for, or the batch's own
        frame = batch.frame if cols is None or done == 0 else cols.frame()
        for op in operations[done:]:
            frame = self._on_frame(frame, op)
        return frame

    def _on_frame(self, frame: pd.DataFrame, op: Operation) -> pd.DataFrame:
        edits = self._edits
        if isinstance(op, SetOp):
            if op.expr is None:
                return frame.assign(**{op.column: op.value})
            return edits.assign(frame, op.column, values(frame, op.expr))
        if isinstance(op, DeleteOp):
            columns = frame.columns
            return edits.drop(frame, [c for c in op.columns if c in columns])
        if isinstance(op, MoveOp):
            frame = frame.drop(columns=[op.to], errors="ignore")
            return frame.rename(columns={op.column: op.to}, errors="raise")
        if isinstance(op, ConvertOp):
            return frame.assign(**{op.column: _convert(frame[op.column], op.dtype)})
        factor, offset = UNITS[op.unit] if op.unit else (op.factor, op.offset)
        return edits.assign(frame, op.column, _scaled(frame, op.column, factor, offset))


#: Constants `set` gives as pandas broadcasts them (others, lists say, go through the frame).
_SCALARS = (str, int, float, bool)


def _on_columns(cols: Columns, op: Operation) -> Columns | None:
    """``op`` on columns as :meth:`Change._on_frame` does it on their frame; None where pandas
    must do it (a missing column's error, say)."""
    if isinstance(op, SetOp):
        if op.expr is None:
            if type(op.value) not in _SCALARS:
                return None
            return cols.assign(op.column, pd.Series(op.value, index=cols.index)._values)
        program = compiled(op.expr)
        result = None if program is None else program.column_values(cols)
        return None if result is None else cols.assign(op.column, result)
    if isinstance(op, DeleteOp):
        return cols.drop(op.columns)
    if isinstance(op, MoveOp):
        if op.column == op.to or op.column not in cols.names:
            return None  # pandas' KeyError
        return cols.drop([op.to]).rename({op.column: op.to})
    values = cols.get(op.column)
    if values is None:
        return None
    if isinstance(op, ConvertOp):
        converted = _convert(pd.Series(values, dtype=values.dtype, copy=False), op.dtype)
        return cols.assign(op.column, converted._values)
    factor, offset = UNITS[op.unit] if op.unit else (op.factor, op.offset)
    if type(values) is np.ndarray and values.dtype.kind in "iuf":
        with np.errstate(all="ignore"):
            return cols.assign(op.column, values * factor + offset)
    scaled = pd.Series(values, dtype=values.dtype, copy=False) * factor + offset
    return cols.assign(op.column, scaled._values)
