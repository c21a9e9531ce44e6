"""Checks for pandas expressions in configs, so typos fail at validation, not at the first batch.

Expressions run through pandas' own engines (`DataFrame.eval` / `query`), never Python `eval`.
"""

from __future__ import annotations

import ast
import re

_BACKTICKED = re.compile(r"`[^`]*`")


def check_expression(expr: str, what: str = "expression") -> str:
    """Return ``expr`` when it parses as a pandas expression; raise ``ValueError`` otherwise."""
    if not expr.strip():
        raise ValueError(f"{what} is empty")
    try:
        ast.parse(_BACKTICKED.sub("_col", expr.strip()), mode="eval")
    except SyntaxError as exc:
        raise ValueError(
            f"{what} is not a valid expression ({exc.msg}): {expr.strip()!r}"
        ) from None
    return expr
