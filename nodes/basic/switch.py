"""Switch: route rows by conditions to a port per rule (named after it), the rest to `otherwise`.

The ports follow the config through ``output_ports``, which validation, the runtime and the
editor all ask, so a wire to a rule that does not exist is a validation error.
"""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd
from pydantic import field_validator

from flowengine.exprs import check_expressions, evaluate
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

    outputs = ("otherwise",)  # plus one port per rule: see output_ports

    @classmethod
    def output_ports(cls, config: NodeConfig | None) -> tuple[str, ...] | None:
        if not isinstance(config, SwitchConfig):
            return None
        return (*config.rules, "otherwise")

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        taken = pd.Series(False, index=frame.index)
        result: dict[str, pd.DataFrame] = {}
        for port, expr in self.config.rules.items():
            mask = evaluate(frame, expr).astype(bool)
            if self.config.mode == "first":
                mask &= ~taken
            taken |= mask
            result[port] = frame[mask]
        result["otherwise"] = frame[~taken]
        return result
