"""Checking one expectation against what a node port sent; each failure says what differs.

Pure: the runner hands in what it observed (frames, counters, error messages), so the checks
test without running a flow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from flowengine.flowtest.data import DataError, concat, read_frame, rows_frame, write_snapshot
from flowengine.flowtest.diff import MAX_ROWS, Compare, diff_frames, render, same, show
from flowengine.flowtest.query import holds
from flowengine.flowtest.spec import AlertEvent, Expectation, RowCount, Tolerance, resolve_instant


@dataclass(slots=True)
class Observed:
    """What one node port did over a case."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        return concat(self.frames)


@dataclass(frozen=True, slots=True)
class Failure:
    """One expectation that did not hold: a one-line title and the detail (a diff)."""

    title: str
    detail: str = ""


@dataclass(slots=True)
class Checking:
    """Where a check runs: the case start, the test file's folder, snapshots, --update."""

    start: pd.Timestamp
    base: Path
    snapshot: Path
    update: bool = False
    #: Snapshots written by --update (reported, not failures).
    written: list[Path] = field(default_factory=list)


def check(where: str, exp: Expectation, seen: Observed, ctx: Checking) -> list[Failure]:
    """Every failure of ``exp`` for ``where`` (``node.port``); empty when it holds."""
    tol = exp.tolerance if isinstance(exp.tolerance, Tolerance) else Tolerance(abs=exp.tolerance)
    how = Compare(tol, ctx.start)
    frame = seen.frame
    checks: list[tuple[Any, Callable[[], Failure | None]]] = [
        (exp.no_output, lambda: _no_output(where, bool(exp.no_output), frame)),
        (exp.row_count, lambda: _row_count(where, exp.row_count, frame)),
        (exp.schema_, lambda: _schema(where, exp.schema_ or {}, frame)),
        (exp.rows, lambda: _rows(where, exp, frame, how, ctx)),
        (exp.contains, lambda: _contains(where, exp.contains or [], frame, how)),
        (exp.query, lambda: _query(where, exp.query or "", frame)),
        (exp.snapshot or None, lambda: _snapshot(where, exp, frame, how, ctx)),
        (exp.alerts, lambda: _alerts(where, exp.alerts or [], frame, how)),
        (exp.counters, lambda: _counters(where, exp.counters or {}, seen.counters)),
        (exp.errors, lambda: _errors(where, exp.errors or [], seen.errors)),
    ]
    failures = []
    for given, run in checks:
        failure = run() if given is not None else None
        if failure is not None:
            failures.append(failure)
    return failures


def _frame(frame: pd.DataFrame, rows: int = MAX_ROWS) -> str:
    if not len(frame):
        return "(no rows)"
    text = frame.head(rows).map(show).to_string() if len(frame.columns) else ""
    more = f"\n... {len(frame) - rows} more rows" if len(frame) > rows else ""
    return text + more


def _no_output(where: str, none: bool, frame: pd.DataFrame) -> Failure | None:
    if none and len(frame):
        return Failure(f"{where}: expected no output, got {len(frame)} rows", _frame(frame))
    if not none and not len(frame):
        return Failure(f"{where}: expected output, got none")
    return None


def _row_count(where: str, count: int | RowCount | None, frame: pd.DataFrame) -> Failure | None:
    n = len(frame)
    if isinstance(count, int):
        ok, wanted = n == count, str(count)
    else:
        assert count is not None
        low, high = count.min, count.max
        ok = (low is None or n >= low) and (high is None or n <= high)
        wanted = " and ".join(
            t for t in (f">= {low}" if low is not None else "", f"<= {high}" if high else "") if t
        )
    return None if ok else Failure(f"{where}: expected {wanted} rows, got {n}", _frame(frame))


_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda d: ptypes.is_integer_dtype(d) and not ptypes.is_bool_dtype(d),
    "float": ptypes.is_float_dtype,
    "number": lambda d: ptypes.is_numeric_dtype(d) and not ptypes.is_bool_dtype(d),
    "string": lambda d: ptypes.is_string_dtype(d) or ptypes.is_object_dtype(d),
    "bool": ptypes.is_bool_dtype,
    "datetime": ptypes.is_datetime64_any_dtype,
    "any": lambda d: True,
}


def _schema(where: str, schema: Mapping[str, str], frame: pd.DataFrame) -> Failure | None:
    problems = []
    for column, kind in schema.items():
        if column not in frame.columns:
            problems.append(f"column '{column}' is missing (columns: {', '.join(frame.columns)})")
        elif not _KINDS[kind](frame[column].dtype):
            problems.append(f"column '{column}' is {frame[column].dtype}, expected {kind}")
    if not problems:
        return None
    return Failure(f"{where}: schema differs: " + "; ".join(problems))


def _expected_frame(rows: list[dict[str, Any]] | str, ctx: Checking) -> pd.DataFrame:
    if isinstance(rows, str):
        return read_frame(ctx.base / rows, ctx.start)
    return rows_frame(rows, ctx.start)


def _rows(
    where: str, exp: Expectation, frame: pd.DataFrame, how: Compare, ctx: Checking
) -> Failure | None:
    assert exp.rows is not None
    try:
        expected = _expected_frame(exp.rows, ctx)
    except DataError as exc:
        return Failure(f"{where}: expected rows: {exc}")
    diff = diff_frames(expected, frame, how, columns=exp.columns, ignore_order=exp.ignore_order)
    if not diff:
        return None
    return Failure(f"{where}: rows differ", render(diff, expected, frame))


def _contains(
    where: str, partial: list[dict[str, Any]], frame: pd.DataFrame, how: Compare
) -> Failure | None:
    missing = []
    for row in partial:
        cols = list(row)
        if not all(c in frame.columns for c in cols):
            missing.append(row)
            continue
        if not any(
            all(same(row[c], frame[c].iloc[i], how) for c in cols) for i in range(len(frame))
        ):
            missing.append(row)
    if not missing:
        return None
    shown = "\n".join("no row matches " + _dict(r) for r in missing)
    return Failure(
        f"{where}: {len(missing)} expected row(s) not found", f"{shown}\n{_frame(frame)}"
    )


def _dict(row: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {show(v)}" for k, v in row.items()) + "}"


def _query(where: str, query: str, frame: pd.DataFrame) -> Failure | None:
    if not len(frame):
        return None
    try:
        ok = holds(frame, query)
    except Exception as exc:  # an unknown column, a type pandas cannot compare
        return Failure(f"{where}: query {query!r} failed: {type(exc).__name__}: {exc}")
    bad = frame[~ok.to_numpy()]
    if not len(bad):
        return None
    return Failure(
        f"{where}: query {query!r} is false for {len(bad)} of {len(frame)} rows", _frame(bad)
    )


def _snapshot(
    where: str, exp: Expectation, frame: pd.DataFrame, how: Compare, ctx: Checking
) -> Failure | None:
    path = ctx.base / exp.snapshot if isinstance(exp.snapshot, str) else ctx.snapshot
    if ctx.update:
        write_snapshot(path, frame)
        ctx.written.append(path)
        return None
    if not path.is_file():
        return Failure(
            f"{where}: snapshot {path} does not exist; run `flowengine test --update` to write it"
        )
    try:
        golden = read_frame(path, ctx.start)
    except DataError as exc:
        return Failure(f"{where}: snapshot: {exc}")
    diff = diff_frames(golden, frame, how, columns=exp.columns, ignore_order=exp.ignore_order)
    if not diff:
        return None
    return Failure(
        f"{where}: differs from snapshot {path} (`flowengine test --update` accepts the new "
        "output)",
        render(diff, golden, frame),
    )


def _alerts(
    where: str, wanted: list[AlertEvent], frame: pd.DataFrame, how: Compare
) -> Failure | None:
    if len(frame) and "event" not in frame.columns:
        return Failure(f"{where}: no 'event' column: alerts are what an alert node emits")
    rows = (
        [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")] if len(frame) else []
    )
    problems = []
    for k in range(max(len(wanted), len(rows))):
        if k >= len(rows):
            problems.append(f"event {k}: expected {_event(wanted[k])}, got none")
        elif k >= len(wanted):
            problems.append(f"event {k}: unexpected {_actual_event(rows[k])}")
        else:
            why = _event_mismatch(wanted[k], rows[k], how)
            if why:
                problems.append(
                    f"event {k}: expected {_event(wanted[k])}, got {_actual_event(rows[k])} ({why})"
                )
    if not problems:
        return None
    return Failure(
        f"{where}: alert events differ ({len(rows)} sent, {len(wanted)} expected)",
        "\n".join(problems),
    )


def _event(e: AlertEvent) -> str:
    parts = [e.event, e.severity or ""]
    parts += [f"after {e.after}" if e.after else "", f"before {e.before}" if e.before else ""]
    return " ".join(p for p in parts if p)


def _actual_event(row: dict[str, Any]) -> str:
    parts = [str(row.get("event")), str(row.get("severity") or "")]
    if "timestamp" in row:
        parts.append("at " + show(row["timestamp"]))
    return " ".join(p for p in parts if p)


def _event_mismatch(e: AlertEvent, row: dict[str, Any], how: Compare) -> str:
    """Why ``row`` is not the event ``e`` (empty when it is)."""
    if row.get("event") != e.event:
        return "event"
    if e.severity is not None and row.get("severity") != e.severity:
        return "severity"
    if e.message is not None and not re.search(e.message, str(row.get("message", ""))):
        return f"message {show(row.get('message'))} does not match {e.message!r}"
    when = row.get("timestamp")
    for bound, later in ((e.after, True), (e.before, False)):
        if bound is None:
            continue
        limit = resolve_instant(bound, how.start)
        stamp = pd.Timestamp(when) if when is not None else None
        if stamp is None or (stamp < limit if later else stamp > limit):
            return f"time {show(when)} is not {'after' if later else 'before'} {show(limit)}"
    for col, value in e.where.items():
        if not same(value, row.get(col), how):
            return f"{col} is {show(row.get(col))}, expected {show(value)}"
    return ""


def _counters(where: str, wanted: dict[str, int], actual: dict[str, int]) -> Failure | None:
    node = where.partition(".")[0]
    wrong = {k: (v, actual.get(k, 0)) for k, v in wanted.items() if actual.get(k, 0) != v}
    if not wrong:
        return None
    detail = ", ".join(f"{k}: expected {v}, got {got}" for k, (v, got) in wrong.items())
    known = ", ".join(f"{k}={v}" for k, v in sorted(actual.items())) or "none"
    return Failure(f"{node}: counters differ: {detail}", f"counters: {known}")


def _errors(where: str, patterns: list[str], messages: list[str]) -> Failure | None:
    node = where.partition(".")[0]
    shown = "\n".join(f"  {m}" for m in messages[:MAX_ROWS]) or "  (none)"
    if not patterns:
        if messages:
            return Failure(f"{node}: expected no errors, got {len(messages)}", shown)
        return None
    missing = [p for p in patterns if not any(re.search(p, m) for m in messages)]
    if not missing:
        return None
    return Failure(
        f"{node}: no error matches " + ", ".join(repr(p) for p in missing),
        f"errors ({len(messages)}):\n{shown}",
    )
