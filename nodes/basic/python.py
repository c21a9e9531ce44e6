"""Python: a function written in the flow file, `def process(df): ...` (opt-in only)."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd
from pydantic import field_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class PythonConfig(NodeConfig):
    code: str = option(
        description="Python source defining `process(df)`, returning a DataFrame, a mapping "
        "port -> DataFrame, or None to drop. `pd` and `np` are available.",
        examples=["def process(df):\n    return df[df['value'] > df['value'].mean()]\n"],
        widget="code",
    )

    @field_validator("code")
    @classmethod
    def _compiles(cls, code: str) -> str:
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
        if not any(isinstance(n, ast.FunctionDef) and n.name == "process" for n in tree.body):
            raise ValueError("the code must define a function `process(df)`")
        return code


class Python(Transform[PythonConfig]):
    """Run a `process(df)` function written in the flow file.

    This runs arbitrary code from the file, so the type loads only when the flow sets
    `settings: {allow_code: true}` or `flowengine run --allow-code` is given. Whatever the code
    keeps between calls (globals) is its own: checkpoints do not see it, a restart loses it.
    """

    icon = "code"
    runs_code = True

    async def start(self) -> None:
        namespace: dict[str, Any] = {"pd": pd, "np": np}
        exec(compile(self.config.code, f"<node {self.ctx.node_id}>", "exec"), namespace)
        process = namespace.get("process")
        if not callable(process):
            raise ValueError("the code must define a function `process(df)`")
        self._process = process

    def process(self, batch: Batch) -> Result:
        return self._process(batch.frame)  # type: ignore[no-any-return]
