"""The test format, as pydantic models: the one spec that validation, the runner, the docs and
``flowengine test --schema`` read.

A test file (``line3.test.yaml`` beside ``line3.yaml``) holds ``cases``; a flow file may hold
the same cases inline under ``tests:``. A case names what runs (``target``), what is given
(environment, node state, a fake start time), what goes in (``input`` steps) and what must
come out (``expect``, per node output port).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from flowengine.flowtest.query import check_query

#: Where the fake clock starts when a case gives no ``now``.
DEFAULT_NOW = "2026-01-01T00:00:00Z"
#: Column types a ``schema`` expectation may name.
ColumnType = Literal["int", "float", "number", "string", "bool", "datetime", "any"]


def to_seconds(value: object) -> float:
    """Seconds from a number or a duration text (``30s``, ``5min``, ``1h``, ``500ms``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a duration must be a number of seconds or a text such as '30s'")
    if isinstance(value, str):
        try:
            seconds = pd.Timedelta(value.strip()).total_seconds()
        except ValueError:
            raise ValueError(f"'{value}' is not a duration (examples: 30s, 5min, 1h)") from None
    else:
        seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


def to_instant(value: object) -> str:
    """An instant as written: ISO 8601 text (a date or datetime, UTC unless it says), or
    ``+DURATION`` after the case's start time (``+10s``). Kept as text; resolved by
    :func:`resolve_instant`."""
    if isinstance(value, datetime | date):
        return pd.Timestamp(value).isoformat()
    if not isinstance(value, str):
        raise ValueError("an instant must be an ISO time (2026-01-01T06:00:00Z) or '+30s'")
    if value.strip().startswith("+"):
        to_seconds(value.strip()[1:])
        return value.strip()
    try:
        pd.Timestamp(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO time (2026-01-01T06:00:00Z) or '+30s'") from None
    return value


def resolve_instant(value: str, start: pd.Timestamp) -> pd.Timestamp:
    """``value`` (checked by :func:`to_instant`) as a UTC time; ``+30s`` counts from ``start``."""
    text = value.strip()
    if text.startswith("+"):
        return start + pd.Timedelta(seconds=to_seconds(text[1:]))
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


Duration = Annotated[float, BeforeValidator(to_seconds)]
Instant = Annotated[str, BeforeValidator(to_instant)]
Pattern = Annotated[str, BeforeValidator(_pattern)]
#: Inline rows (a list of mappings) or a data file (CSV, JSONL or Parquet, relative to the
#: test file).
Rows = list[dict[str, Any]] | str


class Strict(BaseModel):
    """Unknown keys are errors (a typo never silently tests nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Range(Strict):
    """A sub-graph: the nodes on paths from ``from`` to ``to`` (one of them may be left out:
    everything downstream of ``from`` or upstream of ``to``)."""

    from_: str | None = Field(
        default=None, alias="from", description="First node of the sub-graph."
    )
    to: str | None = Field(default=None, description="Last node of the sub-graph.")

    @model_validator(mode="after")
    def _one(self) -> Range:
        if self.from_ is None and self.to is None:
            raise ValueError("a target range needs 'from', 'to' or both")
        return self


class Given(Strict):
    """What the world looks like when the case starts."""

    now: Instant | None = Field(
        default=None,
        description="Fake clock start (UTC unless it says otherwise).",
        examples=[DEFAULT_NOW],
    )
    env: dict[str, str | int | float | bool] = Field(
        default={},
        description="Variables for ${VAR} in the flow, over the .env beside the flow "
        "(the process environment is not read: a test gives what it needs).",
    )
    state: dict[str, dict[str, Any]] = Field(
        default={},
        description="Node id -> state restored before the first batch (as a checkpoint).",
    )
    watermark: dict[str, Any] = Field(
        default={}, description="sql_in node id -> its watermark (the last value already read)."
    )
    config: dict[str, dict[str, Any]] = Field(
        default={},
        description="Node id -> config keys set over the flow's for this case, checked like "
        "the flow's (a simulator without defects, or sending a minute at a time).",
        examples=[{"plc": {"defect_interval": 100000, "batch_size": 600}}],
    )


class Feed(Strict):
    """One batch (or a replayed file) into a node: a source emits it, any other node takes it
    as input."""

    feed: str = Field(description="Node id, or node.port for a node with several inputs.")
    rows: list[dict[str, Any]] | None = Field(default=None, description="Inline rows: one batch.")
    file: str | None = Field(default=None, description="CSV, JSONL or Parquet file: one batch.")
    replay: str | None = Field(
        default=None,
        description="A data file fed at its own timestamps: the fake clock moves to each.",
    )
    timestamp: str = Field(
        default="timestamp", description="Replay: the column that holds the time."
    )
    every: Duration | None = Field(
        default=None,
        description="Replay: one batch per this much time (default: per distinct time).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Feed:
        given = [k for k in ("rows", "file", "replay") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a feed step needs exactly one of 'rows', 'file' or 'replay'")
        return self


class Advance(Strict):
    """Move the fake clock forward; timers that fall due fire in order, each settled."""

    advance: Duration = Field(description="How long, e.g. 30s, 5min.")


class AdvanceTo(Strict):
    """Move the fake clock to an instant (ISO, or +DURATION from the start)."""

    advance_to: Instant


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = next((k for k in ("feed", "advance", "advance_to") if k in value), None)
        return f"{kind} step" if kind else None
    return None


#: The union tags of steps; never keys, so error locations skip them.
STEP_TAGS = ("feed step", "advance step", "advance_to step")
Step = Annotated[
    Annotated[Feed, Tag(STEP_TAGS[0])]
    | Annotated[Advance, Tag(STEP_TAGS[1])]
    | Annotated[AdvanceTo, Tag(STEP_TAGS[2])],
    Discriminator(
        _step_kind,
        custom_error_type="step",
        custom_error_message="a step is {feed: NODE, rows|file|replay: ...}, {advance: 30s} "
        "or {advance_to: TIME}",
    ),
]


class Tolerance(Strict):
    """Numbers are equal when within ``abs`` or within ``rel`` of the expected value."""

    abs: float = Field(default=1e-9, ge=0)
    rel: float = Field(default=1e-9, ge=0)


class RowCount(Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class AlertEvent(Strict):
    """One alert event (a row with an ``event`` column, as the alert node emits)."""

    event: Literal["raise", "clear", "escalate"]
    severity: str | None = None
    message: Pattern | None = Field(
        default=None, description="Regular expression searched in `message`."
    )
    after: Instant | None = Field(default=None, description="At or after this time (or +DURATION).")
    before: Instant | None = Field(
        default=None, description="At or before this time (or +DURATION)."
    )
    where: dict[str, Any] = Field(default={}, description="Other columns and their values.")


class Expectation(Strict):
    """What one node port must have sent (all of it, over the whole case)."""

    rows: Rows | None = Field(default=None, description="Exactly these rows (a frame equality).")
    ignore_order: bool = Field(default=False, description="rows/snapshot: any row order.")
    columns: list[str] | None = Field(
        default=None, description="rows/snapshot: compare only these."
    )
    tolerance: float | Tolerance = Field(
        default_factory=Tolerance,
        description="Numeric tolerance: a number (absolute) or {abs, rel}.",
    )
    schema_: dict[str, ColumnType] | None = Field(
        default=None,
        alias="schema",
        description="Column -> type (int, float, number, string, ...).",
    )
    row_count: int | RowCount | None = Field(default=None, description="A count, or {min, max}.")
    contains: list[dict[str, Any]] | None = Field(
        default=None, description="Partial rows, each matching at least one row."
    )
    query: str | None = Field(
        default=None,
        description="A pandas query that holds for every row.",
        examples=["value >= 0"],
    )
    snapshot: bool | str | None = Field(
        default=None,
        description="Compare with a golden file (true: __snapshots__/...; or a path), "
        "written by `flowengine test --update`.",
    )
    no_output: bool | None = Field(default=None, description="true: nothing was sent on this port.")
    alerts: list[AlertEvent] | None = Field(
        default=None, description="Exactly these alert events, in order ([]: none)."
    )
    counters: dict[str, int] | None = Field(
        default=None, description="Node counters (e.g. parse_errors: 2; 'errors' counts errors)."
    )
    errors: list[Pattern] | None = Field(
        default=None, description="Each pattern matches an error of the node ([]: no errors)."
    )

    @field_validator("query")
    @classmethod
    def _safe(cls, query: str | None) -> str | None:
        return None if query is None else check_query(query)

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        checks = ("rows", "schema_", "row_count", "contains", "query", "snapshot", "no_output")
        more = ("alerts", "counters", "errors")
        if all(getattr(self, k) is None for k in (*checks, *more)):
            raise ValueError(
                "an expectation needs at least one of rows, schema, row_count, contains, "
                "query, snapshot, no_output, alerts, counters, errors"
            )
        return self


def _mock(value: Any) -> Any:
    """``mocks: {node: [rows]}`` is short for ``{node: {out: [rows]}}``."""
    return {"out": value} if isinstance(value, list | str) else value


Mock = Annotated[dict[str, Rows], BeforeValidator(_mock)]


class CaseSpec(Strict):
    """One test case."""

    name: str = Field(min_length=1, description="Unique in its file; -k selects on it.")
    description: str | None = None
    skip: bool | str = Field(default=False, description="true or a reason: the case is not run.")
    target: str | Range | None = Field(
        default=None, description="Omitted: the whole flow; a node id; or {from: A, to: B}."
    )
    replace_io: bool = Field(
        default=True,
        description="External I/O nodes become feeders (sources) and captures (sinks).",
    )
    mocks: dict[str, Mock] = Field(
        default={},
        description="Node id -> fixed output per port ({out: rows}), replacing the node.",
    )
    given: Given = Field(default_factory=Given)
    input: list[Step] = Field(default=[], description="Steps in order: feed, advance, advance_to.")
    expect: dict[str, Expectation] = Field(
        min_length=1, description="node or node.port (e.g. parse.error) -> expectation."
    )
    timeout: Duration = Field(
        default=60.0, description="Wall-clock limit for the case, in seconds."
    )


class SuiteSpec(Strict):
    """A test file: the flow under test, defaults for every case, and the cases."""

    version: Literal[1] = 1
    flow: str | None = Field(
        default=None,
        description="The flow file, relative to this file (default: NAME.yaml for NAME.test.yaml).",
    )
    given: Given | None = Field(default=None, description="Defaults for every case's `given`.")
    cases: list[CaseSpec] = Field(min_length=1)


def merged_given(defaults: Given | None, case: CaseSpec) -> Given:
    """The case's ``given`` over the file's: each key the case sets wins."""
    if defaults is None:
        return case.given
    mine = case.given.model_dump(exclude_unset=True, by_alias=True)
    return Given.model_validate({**defaults.model_dump(exclude_unset=True), **mine})


#: Every key the format knows (for "did you mean" hints on unknown keys).
MODELS: tuple[type[BaseModel], ...] = (
    SuiteSpec, CaseSpec, Given, Range, Feed, Advance, AdvanceTo, Expectation, AlertEvent,
    Tolerance, RowCount,
)  # fmt: skip
KEYS = sorted({f.alias or name for m in MODELS for name, f in m.model_fields.items()})


def json_schema() -> dict[str, Any]:
    """JSON Schema of a test file (inline ``tests:`` in a flow is its ``cases`` list)."""
    return SuiteSpec.model_json_schema(by_alias=True)
