"""A check for ``query`` expectations, so a test file can run no code but a pandas query: the
same rules as node expressions (:mod:`flowengine.exprs`; no ``@`` local names either)."""

from __future__ import annotations

import pandas as pd

from flowengine.exprs import check_expression


def check_query(query: str) -> str:
    """Return ``query`` when it is a safe pandas query; raise ``ValueError`` saying why not."""
    return check_expression(query, "query")


def holds(frame: pd.DataFrame, query: str) -> pd.Series:
    """Per row, whether ``query`` (checked) holds; a constant result is broadcast."""
    result = frame.eval(query)
    if isinstance(result, pd.Series):
        return result.fillna(False).astype(bool)
    return pd.Series(bool(result), index=frame.index)
