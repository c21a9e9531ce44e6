"""Python: a function written in the flow file, `def process(df): ...` for a batch at a time or
`def process_row(row): ...` for a row at a time (opt-in only)."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd
from pydantic import field_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.nodes.basic.rowfunc import RowRunner
from flowengine.types import Batch, Result

#: The functions the code may define (one of them).
ENTRIES = ("process", "process_row")


class PythonConfig(NodeConfig):
    code: str = option(
        description="Python source defining either `process(df)`, called per batch with a "
        "DataFrame and returning a DataFrame, a mapping port -> DataFrame, or None to drop; or "
        "`process_row(row)`, called per row with a dict (as a Node-RED function gets "
        "`msg.payload`) and returning a dict, a list of dicts, or None to drop (a row whose "
        "call raises goes to `error`; small batches need no DataFrame this way). Globals "
        "persist between calls. `pd` and `np` are available.",
        examples=[
            "def process(df):\n    return df[df['value'] > df['value'].mean()]\n",
            "def process_row(row):\n    row['over'] = row['value'] > 60\n    return row\n",
        ],
        widget="code",
    )

    @field_validator("code")
    @classmethod
    def _compiles(cls, code: str) -> str:
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} & set(ENTRIES)
        if not defined:
            raise ValueError("the code must define a function `process(df)` or `process_row(row)`")
        if len(defined) > 1:
            raise ValueError("define `process(df)` or `process_row(row)`, not both")
        return code


class Python(Transform[PythonConfig]):
    """Run a `process(df)` or `process_row(row)` function written in the flow file.

    This runs arbitrary code from the file, so the type loads only when the flow sets
    `settings: {allow_code: true}` or `flowengine run --allow-code` is given. Whatever the code
    keeps between calls (globals) is its own: checkpoints do not see it, a restart loses it.
    """

    icon = "code"
    runs_code = True

    async def start(self) -> None:
        namespace: dict[str, Any] = {"pd": pd, "np": np}
        exec(compile(self.config.code, f"<node {self.ctx.node_id}>", "exec"), namespace)
        row = namespace.get("process_row")
        if callable(row):
            self._rows: RowRunner | None = RowRunner(row, self.ctx)
            return
        process = namespace.get("process")
        if not callable(process):
            raise ValueError("the code must define a function `process(df)` or `process_row(row)`")
        self._rows, self._process = None, process

    def process(self, batch: Batch) -> Result:
        if self._rows is not None:
            return self._rows(batch)
        return self._process(batch.frame)  # type: ignore[no-any-return]
