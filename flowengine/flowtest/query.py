"""A check for ``query`` expectations, so a test file can run no code but a pandas query.

pandas' ``DataFrame.query`` would also run method calls, attribute access and ``@`` local
names; only arithmetic, comparisons, boolean logic, constants, column names (backticks for odd
ones) and pandas' math functions pass. The same rules as the nodes' expression checker, kept
here because the core does not import node families.
"""

from __future__ import annotations

import ast
import re

import pandas as pd

_BACKTICKED = re.compile(r"`[^`]*`")
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
    ast.List, ast.Tuple, ast.Load, ast.boolop, ast.operator, ast.unaryop, ast.cmpop, ast.Call,
)  # fmt: skip


def check_query(query: str) -> str:
    """Return ``query`` when it is a safe pandas query; raise ``ValueError`` saying why not."""
    text = query.strip()
    if not text:
        raise ValueError("query is empty")
    if "@" in _BACKTICKED.sub("", text):
        raise ValueError("query uses '@' (local variables), which is not allowed")
    try:
        tree = ast.parse(_BACKTICKED.sub("_col", text), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"query is not a valid expression ({exc.msg}): {text!r}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS or node.keywords:
                shown = name or ast.unparse(node.func)
                raise ValueError(
                    f"query calls '{shown}', which is not allowed; functions: "
                    + ", ".join(sorted(FUNCTIONS))
                )
        elif isinstance(node, ast.Attribute | ast.Subscript):
            raise ValueError(
                f"query uses '{ast.unparse(node)}': attribute access and indexing are not "
                "allowed (use backticks for odd column names)"
            )
        elif not isinstance(node, _ALLOWED):
            raise ValueError(f"query uses '{ast.unparse(node)}', which is not allowed")
    return query


def holds(frame: pd.DataFrame, query: str) -> pd.Series:
    """Per row, whether ``query`` (checked) holds; a constant result is broadcast."""
    result = frame.eval(query)
    if isinstance(result, pd.Series):
        return result.fillna(False).astype(bool)
    return pd.Series(bool(result), index=frame.index)
