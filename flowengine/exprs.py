"""Checks for pandas expressions in configs and flow tests, so typos fail at validation, not at
the first batch (node configs and ``flowengine test`` queries share these rules).

Expressions run through pandas' own engines (`DataFrame.eval` / `query`), never Python `eval`.
pandas would also run method calls and attribute access (``value.to_csv('/tmp/x')``), so only
arithmetic, comparisons, boolean logic, constants, column names and pandas' math functions pass.
"""

from __future__ import annotations

import ast
import re

import pandas as pd

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
    return expr


def check_expressions(named: dict[str, str], what: str) -> dict[str, str]:
    """Check every expression of a name -> expression mapping (``what`` names the kind)."""
    for name, expr in named.items():
        check_expression(expr, f"{what} '{name}'")
    return named


def evaluate(frame: pd.DataFrame, expr: str) -> pd.Series:
    """``expr`` (checked by :func:`check_expression`) on ``frame`` as a column of it: pandas
    returns a Series, or a scalar for a constant expression, which is broadcast."""
    result = frame.eval(expr)
    if isinstance(result, pd.Series):
        return result  # the common case: no copy, no realignment
    return pd.Series(result, index=frame.index)
