"""The ``python`` node's row mode: ``process_row(row)`` called once per row with a dict, as a
Node-RED function node is called once per message with ``msg.payload``.

Rows are read from the batch's lists, columns or frame and the rows returned become plain lists
again (:class:`~flowengine.lists.Lists`), so a small batch pays no DataFrame on either side:
a few microseconds a row instead of pandas' fixed cost per batch. Values are Python scalars
(``float``, ``int``, ``str``, ``bool``), timestamps ``pandas.Timestamp`` in UTC.

A row whose call raises (or returns something that is not a row) goes to the ``error`` port
with an ``error`` column saying why; the batch's other rows go on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from logging import WARNING
from typing import Any

import pandas as pd

from flowengine.context import Context
from flowengine.lists import UTC, Lists, utc_time, utc_times
from flowengine.logs import RateLimiter
from flowengine.types import Batch, Result

RowFunction = Callable[[dict[str, Any]], Any]
_NAN = float("nan")
#: Below this many rows, timestamps are made one by one (a vectorised call costs more).
_FEW = 16


def columns_of(batch: Batch) -> tuple[list[Any], list[list[Any]]]:
    """The batch's column names and one list of Python values per column."""
    lists = batch.lists
    if lists is not None:
        names, cols = list(lists.data), []
        for name, values in lists.data.items():
            cols.append(_timestamps(values) if name in lists.times else values)
        return names, cols
    frame = batch.frame
    return list(frame.columns), [series.tolist() for _, series in frame.items()]


def _timestamps(nanoseconds: list[int]) -> list[pd.Timestamp]:
    if len(nanoseconds) < _FEW:
        return [utc_time(ns) for ns in nanoseconds]
    return list(utc_times(nanoseconds))


def lists_of(rows: list[dict[str, Any]]) -> Lists:
    """The rows as lists: columns in the order first seen (missing values NaN); a column of
    UTC timestamps only stays one (``datetime64[ns, UTC]``), others as pandas reads them."""
    first = rows[0]
    if len(rows) == 1:
        data = {k: [v] for k, v in first.items()}
    elif all(r.keys() == first.keys() for r in rows):
        data = {k: [r[k] for r in rows] for k in first}
    else:
        keys = dict.fromkeys(k for r in rows for k in r)
        data = {k: [r.get(k, _NAN) for r in rows] for k in keys}
    times = []
    for name, values in data.items():
        if type(values[0]) is pd.Timestamp and all(
            type(v) is pd.Timestamp and v.tz is UTC for v in values
        ):
            data[name] = [v.value for v in values]
            times.append(name)
    return Lists(data, len(rows), frozenset(times))


def _row_failed(i: int, why: str) -> str:
    return f"row {i}: {why}"


class RowRunner:
    """Calls a row function over batches; see the module docstring."""

    def __init__(self, function: RowFunction, ctx: Context) -> None:
        self.function = function
        self.ctx = ctx
        self.limiter = RateLimiter(5.0)

    def __call__(self, batch: Batch) -> Result:
        names, cols = columns_of(batch)
        function, out = self.function, []
        bad: list[tuple[int, str]] = []
        for i, values in enumerate(zip(*cols, strict=True)):
            try:
                got = function(dict(zip(names, values, strict=True)))
            except Exception as exc:
                bad.append((i, f"{type(exc).__name__}: {exc}"))
                continue
            if got is None:
                continue
            if type(got) is dict:
                out.append(got)
            elif isinstance(got, list) and all(isinstance(r, dict) for r in got):
                out.extend(got)
            else:
                bad.append(
                    (
                        i,
                        f"process_row returned {type(got).__name__}, not a dict, a "
                        "list of dicts or None",
                    )
                )
        good = batch.derive_lists(lists_of(out)) if out else None
        if not bad:
            return good
        failed = self._failed(batch, names, cols, bad)
        return {"out": good, "error": failed} if good is not None else {"error": failed}

    def _failed(
        self, batch: Batch, names: list[Any], cols: list[list[Any]], bad: list[tuple[int, str]]
    ) -> Batch:
        """The failed rows as they came in, each with its ``error``; counted and logged."""
        message = bad[-1][1]
        self.ctx.error(message, len(bad))
        for i, why in bad:
            self.limiter.log(self.ctx.log, WARNING, partial(_row_failed, i, why))
        data = {name: [col[i] for i, _ in bad] for name, col in zip(names, cols, strict=True)}
        data["error"] = [why for _, why in bad]
        frame = pd.DataFrame(data)
        return Batch(frame, batch.topic, self.ctx.node_id, batch.created, error=message)
