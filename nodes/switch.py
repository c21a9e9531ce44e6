"""Switch: route rows by conditions to ports `out1`..`out8`, unmatched rows to `otherwise`.

Ports are declared on the class (validation and the runtime read ``cls.outputs``), so they
cannot follow the config: the i-th rule sends to ``out<i>`` and its name is documentation.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import field_validator

from flowengine.exprs import check_expressions
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result

MAX_RULES = 8
PORTS = tuple(f"out{i}" for i in range(1, MAX_RULES + 1))


class SwitchConfig(NodeConfig):
    rules: dict[str, str] = option(
        description="Rule name -> pandas expression, in order; the i-th rule sends to `out<i>`.",
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
        return check_expressions(rules, "rule")


class Switch(Transform):
    """Split each batch by row conditions, so one wire carries one kind of row."""

    Config = SwitchConfig
    config: SwitchConfig
    outputs = (*PORTS, "otherwise")

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        taken = pd.Series(False, index=frame.index)
        result: dict[str, pd.DataFrame] = {}
        for port, expr in zip(PORTS, self.config.rules.values(), strict=False):
            mask = pd.Series(frame.eval(expr), index=frame.index).astype(bool)
            if self.config.mode == "first":
                mask &= ~taken
            taken |= mask
            result[port] = frame[mask]
        result["otherwise"] = frame[~taken]
        return result
