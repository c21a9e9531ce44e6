"""Switch: route rows by conditions to a port per rule (named after it), the rest to `otherwise`.

The ports follow the config through ``output_ports``, which validation, the runtime and the
editor all ask, so a wire to a rule that does not exist is a validation error.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import field_validator

from flowengine.columns import Columns
from flowengine.exprs import check_expressions, compiled, values
from flowengine.frames import take_rows
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result

MAX_RULES = 32
_PORT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class SwitchConfig(NodeConfig):
    rules: dict[str, str] = option(
        description="Rule name -> pandas expression, in order; each rule's rows go to the port "
        "of its name (wire `high: [...]`).",
        examples=[{"alarm": "value > 1400", "high": "value > 1250"}],
        min_length=1,
        max_length=MAX_RULES,
    )
    mode: Literal["first", "all"] = option(
        "first", description="`first`: a row goes to the first matching rule; `all`: to every one."
    )

    @field_validator("rules")
    @classmethod
    def _valid(cls, rules: dict[str, str]) -> dict[str, str]:
        for name in rules:
            if not _PORT.match(name) or name in ("otherwise", "error"):
                raise ValueError(
                    f"rule name {name!r} must be a port name (letters, digits, _ and -, "
                    "not starting with a digit) other than 'otherwise' and 'error'"
                )
        return check_expressions(rules, "rule")


class Switch(Transform[SwitchConfig]):
    """Split each batch by row conditions, so one wire carries one kind of row."""

    icon = "alt_route"
    outputs = ("otherwise",)  # plus one port per rule: see output_ports

    @classmethod
    def output_ports(cls, config: NodeConfig | None) -> tuple[str, ...] | None:
        if not isinstance(config, SwitchConfig):
            return None
        return (*config.rules, "otherwise")

    def process(self, batch: Batch) -> Result:
        cols = batch.columns
        if cols is not None:
            routed = self._on_columns(batch, cols)
            if routed is not None:
                return routed
        frame = batch.frame
        taken = np.zeros(len(frame.index), dtype=bool)
        result: dict[str, pd.DataFrame | None] = {}
        for port, expr in self.config.rules.items():
            mask = _as_bool(values(frame, expr))
            if self.config.mode == "first":
                mask &= ~taken
            taken |= mask
            result[port] = _rows(frame, mask, result)
        result["otherwise"] = _rows(frame, ~taken, result)
        return result

    def _on_columns(self, batch: Batch, cols: Columns) -> dict[str, Batch | None] | None:
        """The frame path's result as columns; None where pandas must evaluate a rule."""
        masks = []
        for expr in self.config.rules.values():
            program = compiled(expr)
            mask = None if program is None else program.column_values(cols)
            if type(mask) is not np.ndarray or mask.dtype != bool:
                return None  # pandas' truth of other values: the frame path
            masks.append(mask)
        taken = np.zeros(cols.length, dtype=bool)
        result: dict[str, Batch | None] = {}
        node = self.ctx.node_id
        for port, mask in zip(self.config.rules, masks, strict=True):
            if self.config.mode == "first":
                mask = mask & ~taken
            taken |= mask
            rows = cols.take(mask)
            result[port] = None if rows is None else batch.derive_columns(rows, node)
        rows = cols.take(~taken)
        result["otherwise"] = None if rows is None else batch.derive_columns(rows, node)
        return result


def _as_bool(mask: object) -> np.ndarray:
    """A rule's values as a bool array, as ``Series.astype(bool)`` makes it (a new array)."""
    if type(mask) is np.ndarray and mask.dtype == bool:
        return mask.copy()
    return pd.Series(mask, dtype=getattr(mask, "dtype", None)).astype(bool).to_numpy(copy=True)


def _rows(frame: pd.DataFrame, mask: np.ndarray, sent: dict[str, pd.DataFrame | None]) -> Any:
    """The matching rows; a whole frame goes to a second port as its own (shallow) copy."""
    rows = take_rows(frame, mask)
    if rows is frame and any(other is frame for other in sent.values()):
        return frame.copy(deep=False)
    return rows
