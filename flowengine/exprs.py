"""Checks for pandas expressions in configs and flow tests, so typos fail at validation, not at
the first batch (node configs and ``flowengine test`` queries share these rules), and their
evaluation.

Expressions have pandas' syntax and results (`DataFrame.eval`), never Python `eval`. pandas
would also run method calls and attribute access (``value.to_csv('/tmp/x')``), so only
arithmetic, comparisons, boolean logic, constants, column names and pandas' math functions pass.

`DataFrame.eval` parses its text again on every call (~0.5 ms, whatever the frame's size), so
:func:`values` runs a form compiled once (:mod:`flowengine.exprcompile`, same results) and
calls pandas only for what that does not cover.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from flowengine.exprcompile import Compiled, compile_expression

_BACKTICKED = re.compile(r"`[^`]*`")
#: The math functions pandas' expression engine supports.
FUNCTIONS = frozenset(
    [
        "sin",
        "cos",
        "tan",
        "exp",
        "log",
        "expm1",
        "log1p",
        "log10",
        "sqrt",
        "sinh",
        "cosh",
        "tanh",
        "arcsin",
        "arccos",
        "arctan",
        "arccosh",
        "arcsinh",
        "arctanh",
        "arctan2",
        "abs",
        "floor",
        "ceil",
    ]
)
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Constant,
    ast.List, ast.Tuple, ast.Load, ast.boolop, ast.operator, ast.unaryop, ast.cmpop,
)  # fmt: skip


def check_expression(expr: str, what: str = "expression") -> str:
    """Return ``expr`` when it is a safe pandas expression; raise ``ValueError`` otherwise."""
    if not expr.strip():
        raise ValueError(f"{what} is empty")
    if "@" in _BACKTICKED.sub("", expr):
        raise ValueError(f"{what} uses '@' (local variables), which is not allowed")
    try:
        tree = ast.parse(_BACKTICKED.sub("_col", expr.strip()), mode="eval")
    except SyntaxError as exc:
        raise ValueError(
            f"{what} is not a valid expression ({exc.msg}): {expr.strip()!r}"
        ) from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS or node.keywords:
                shown = name or ast.unparse(node.func)
                raise ValueError(
                    f"{what} calls '{shown}', which is not allowed; functions: "
                    + ", ".join(sorted(FUNCTIONS))
                )
        elif isinstance(node, ast.Attribute | ast.Subscript):
            raise ValueError(
                f"{what} uses '{ast.unparse(node)}': attribute access and indexing are not "
                "allowed (use backticks for odd column names)"
            )
        elif not isinstance(node, _ALLOWED):
            raise ValueError(f"{what} uses '{ast.unparse(node)}', which is not allowed")
        elif isinstance(node, ast.BinOp) and _unbounded(node):
            raise ValueError(
                f"{what} computes '{ast.unparse(node)}': a constant raised (or shifted) by more "
                f"than {MAX_CONSTANT_EXPONENT:,}, or by another constant expression, may never "
                "finish in Python's integers; write the exponent as a number"
            )
    return expr


#: The largest exponent (or shift) of a constant base: beyond it ``3 ** n`` or ``1 << n``
#: is an integer of millions of digits that pandas (and Python) would compute forever.
MAX_CONSTANT_EXPONENT = 10_000


def _unbounded(node: ast.BinOp) -> bool:
    """``const ** x`` or ``const << x`` unless ``x`` is a number literal of at most
    ``MAX_CONSTANT_EXPONENT``; a column base is numpy's and bounded."""
    if not isinstance(node.op, ast.Pow | ast.LShift):
        return False
    if any(isinstance(n, ast.Name) for n in ast.walk(node.left)):
        return False
    right = node.right
    while isinstance(right, ast.UnaryOp) and isinstance(right.op, ast.USub | ast.UAdd):
        right = right.operand
    value = right.value if isinstance(right, ast.Constant) else None
    if isinstance(value, int | float):  # bool is an int
        return abs(value) > MAX_CONSTANT_EXPONENT
    return any(isinstance(n, ast.Name) for n in ast.walk(right)) is False


def check_expressions(named: dict[str, str], what: str) -> dict[str, str]:
    """Check every expression of a name -> expression mapping (``what`` names the kind)."""
    for name, expr in named.items():
        check_expression(expr, f"{what} '{name}'")
    return named


@lru_cache(maxsize=1024)
def compiled(expr: str) -> Compiled | None:
    """``expr`` compiled once per process (None: pandas evaluates it every time)."""
    return compile_expression(expr)


def values(frame: pd.DataFrame, expr: str) -> Any:
    """``expr`` (checked by :func:`check_expression`) on ``frame``: the values of the column it
    makes, an ndarray or extension array of ``len(frame)`` (read-only: a bare column name
    gives the frame's own). Errors are pandas' own."""
    program = compiled(expr)
    if program is not None:
        try:
            result = program.values(frame)
        except Exception:  # Fallback, or an error pandas words its own way
            pass
        else:
            if len(result) == len(frame.index):
                return result
    return pandas_values(frame, expr)


def pandas_values(frame: pd.DataFrame, expr: str) -> Any:
    """``expr`` through `DataFrame.eval`: a constant result is broadcast."""
    result = frame.eval(expr)
    if not isinstance(result, pd.Series):
        result = pd.Series(result, index=frame.index)
    return result._values


def evaluate(frame: pd.DataFrame, expr: str) -> pd.Series:
    """:func:`values` as a Series on ``frame``'s index (pandas' values and dtype; unnamed)."""
    result = values(frame, expr)
    fresh = isinstance(result, np.ndarray) and result.base is None
    # a view of the frame's data is copied: the Series may be written to
    series: pd.Series = pd.Series(result, index=frame.index, dtype=result.dtype, copy=not fresh)
    return series
