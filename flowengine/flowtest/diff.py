"""Frame equality with numeric tolerance, and a readable diff: which rows and columns differ.

Values compare by kind: numbers within a tolerance, times as UTC instants (expected ones may be
ISO text or ``+10s`` after the case start), missing values (None, NaN, NaT) equal each other,
everything else by ``==``. A number never equals a string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from flowengine.flowtest.spec import Tolerance, resolve_instant

#: Differing cells listed in a diff before "... and N more".
MAX_CELLS = 20
#: Rows of each frame shown under a diff.
MAX_ROWS = 20
CELL_WIDTH = 40


@dataclass(frozen=True, slots=True)
class Compare:
    """How values compare: the numeric tolerance and the time ``+10s`` counts from."""

    tolerance: Tolerance
    start: pd.Timestamp


def plain(value: Any) -> Any:
    """A cell as a plain Python value; every kind of missing value is None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, datetime | date) and not isinstance(value, pd.Timestamp):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    return value


def _as_time(value: Any, start: pd.Timestamp) -> pd.Timestamp | None:
    if isinstance(value, pd.Timestamp):
        return value
    if isinstance(value, str):
        try:
            return resolve_instant(value, start)
        except ValueError:
            return None
    return None


def same(expected: Any, actual: Any, how: Compare) -> bool:
    """Whether ``actual`` matches ``expected`` (see the module docstring)."""
    e, a = plain(expected), plain(actual)
    if e is None or a is None:
        return e is None and a is None
    if isinstance(e, bool) or isinstance(a, bool):
        return isinstance(e, bool) and isinstance(a, bool) and e == a
    if isinstance(e, int | float) and isinstance(a, int | float):
        if math.isinf(e) or math.isinf(a):
            return e == a
        tol = how.tolerance
        return math.isclose(a, e, rel_tol=tol.rel, abs_tol=tol.abs)
    if isinstance(e, pd.Timestamp) or isinstance(a, pd.Timestamp):
        te, ta = _as_time(e, how.start), _as_time(a, how.start)
        return te is not None and ta is not None and te == ta
    if isinstance(e, list | tuple) and isinstance(a, list | tuple):
        return len(e) == len(a) and all(same(x, y, how) for x, y in zip(e, a, strict=True))
    return bool(e == a)


def show(value: Any) -> str:
    """A cell for a diff: null, numbers as written, text quoted, times in ISO."""
    v = plain(value)
    if v is None:
        text = "null"
    elif isinstance(v, pd.Timestamp):
        text = v.isoformat().replace("+00:00", "Z")
    elif isinstance(v, bool):
        text = "true" if v else "false"
    else:
        text = repr(v)
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."


@dataclass(slots=True)
class FrameDiff:
    """How an actual frame differs from the expected one; empty when they match."""

    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    #: (expected row, actual row, column, expected value, actual value)
    cells: list[tuple[int, int, str, Any, Any]] = field(default_factory=list)
    missing_rows: list[int] = field(default_factory=list)
    extra_rows: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.missing_columns
            or self.extra_columns
            or self.cells
            or self.missing_rows
            or self.extra_rows
        )


def _row(frame: pd.DataFrame, i: int, columns: Sequence[str]) -> list[Any]:
    return [frame[c].iloc[i] for c in columns]


def _cell_diffs(
    expected: pd.DataFrame,
    i: int,
    actual: pd.DataFrame,
    j: int,
    columns: Sequence[str],
    how: Compare,
) -> list[tuple[int, int, str, Any, Any]]:
    out = []
    for col, e, a in zip(
        columns, _row(expected, i, columns), _row(actual, j, columns), strict=True
    ):
        if not same(e, a, how):
            out.append((i, j, col, e, a))
    return out


def diff_frames(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    how: Compare,
    *,
    columns: Sequence[str] | None = None,
    ignore_order: bool = False,
) -> FrameDiff:
    """Compare ``actual`` with ``expected`` on ``columns`` (default: all of both)."""
    result = FrameDiff()
    if columns is None:
        columns = list(expected.columns)
        result.extra_columns = [c for c in actual.columns if c not in expected.columns]
        if not len(expected) and not len(expected.columns):
            columns = []
    result.missing_columns = [c for c in columns if c not in actual.columns]
    missing_expected = [c for c in columns if c not in expected.columns]
    expected = expected.assign(**{c: None for c in missing_expected})
    shared = [c for c in columns if c in actual.columns]
    if ignore_order:
        pairs, result.missing_rows, result.extra_rows = _match(expected, actual, shared, how)
    else:
        n = min(len(expected), len(actual))
        pairs = [(i, i) for i in range(n)]
        result.missing_rows = list(range(n, len(expected)))
        result.extra_rows = list(range(n, len(actual)))
    for i, j in pairs:
        result.cells += _cell_diffs(expected, i, actual, j, shared, how)
    return result


def _match(
    expected: pd.DataFrame, actual: pd.DataFrame, columns: Sequence[str], how: Compare
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pair rows in any order: equal rows first; the rest to their closest row (fewest
    differing cells), so a diff shows the cells that differ rather than whole rows."""
    free = list(range(len(actual)))
    pairs: list[tuple[int, int]] = []
    unmatched: list[int] = []
    for i in range(len(expected)):
        hit = next((j for j in free if not _cell_diffs(expected, i, actual, j, columns, how)), None)
        if hit is None:
            unmatched.append(i)
        else:
            free.remove(hit)
            pairs.append((i, hit))
    missing: list[int] = []
    for i in unmatched:
        if not free:
            missing.append(i)
            continue
        best = min(free, key=lambda j: len(_cell_diffs(expected, i, actual, j, columns, how)))
        free.remove(best)
        pairs.append((i, best))
    return sorted(pairs), missing, free


def render(diff: FrameDiff, expected: pd.DataFrame, actual: pd.DataFrame) -> str:
    """The diff as text: a summary line, the differing cells, then both frames."""
    lines: list[str] = []
    if diff.missing_columns:
        lines.append("missing columns: " + ", ".join(diff.missing_columns))
    if diff.extra_columns:
        lines.append(
            "unexpected columns: "
            + ", ".join(map(str, diff.extra_columns))
            + " (compare a subset with `columns:`)"
        )
    if len(expected) != len(actual):
        lines.append(f"expected {len(expected)} rows, got {len(actual)}")
    if diff.cells:
        rows = sorted({(i, j) for i, j, *_ in diff.cells})
        cols = sorted({c for _, _, c, _, _ in diff.cells}, key=str)
        lines.append(f"{len(rows)} row(s) differ in column(s): {', '.join(map(str, cols))}")
        lines += _cell_table(diff.cells)
    for i in diff.missing_rows[:MAX_CELLS]:
        lines.append(f"missing row {i}: {_row_text(expected, i)}")
    for j in diff.extra_rows[:MAX_CELLS]:
        lines.append(f"unexpected row {j}: {_row_text(actual, j)}")
    more = len(diff.missing_rows) + len(diff.extra_rows) - 2 * MAX_CELLS
    if more > 0:
        lines.append(f"... and more missing/unexpected rows ({more})")
    bad_e = {i for i, *_ in diff.cells} | set(diff.missing_rows)
    bad_a = {j for _, j, *_ in diff.cells} | set(diff.extra_rows)
    lines += _frame_text("expected", expected, bad_e)
    lines += _frame_text("actual", actual, bad_a)
    return "\n".join(lines)


def _cell_table(cells: list[tuple[int, int, str, Any, Any]]) -> list[str]:
    table = [("row", "column", "expected", "actual")]
    for i, j, col, e, a in cells[:MAX_CELLS]:
        where = str(i) if i == j else f"{i} (actual {j})"
        table.append((where, str(col), show(e), show(a)))
    widths = [max(len(r[k]) for r in table) for k in range(4)]
    out = [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in table
    ]
    if len(cells) > MAX_CELLS:
        out.append(f"  ... and {len(cells) - MAX_CELLS} more differing cells")
    return out


def _row_text(frame: pd.DataFrame, i: int) -> str:
    return "{" + ", ".join(f"{c}: {show(frame[c].iloc[i])}" for c in frame.columns) + "}"


def _frame_text(title: str, frame: pd.DataFrame, marked: set[int]) -> list[str]:
    """``frame``'s first rows, with ``!`` before the rows that differ."""
    lines = [f"{title} ({len(frame)} rows):"]
    if not len(frame):
        return lines
    shown = frame.head(MAX_ROWS).map(show) if len(frame.columns) else frame.head(MAX_ROWS)
    text = shown.to_string(index=True).splitlines()
    lines.append("    " + text[0])
    for k, line in enumerate(text[1:]):
        lines.append(("  ! " if k in marked else "    ") + line)
    if len(frame) > MAX_ROWS:
        lines.append(f"    ... {len(frame) - MAX_ROWS} more rows")
    return lines
