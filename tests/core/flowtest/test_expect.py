"""Expectations and diffs, without running a flow: each failure says which rows and columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from flowengine.flowtest.expect import Checking, Observed, check
from flowengine.flowtest.select import SelectError, parse
from flowengine.flowtest.spec import Expectation

START = pd.Timestamp("2026-01-01T00:00:00Z")


def run(exp: dict, frame: pd.DataFrame, tmp_path: Path, **seen) -> list:
    ctx = Checking(START, tmp_path, tmp_path / "snap" / "x.jsonl", update=seen.pop("update", False))
    return check("node.out", Expectation.model_validate(exp), Observed([frame], **seen), ctx)


def readings() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"], utc=True),
            "sensor": ["a", "b"],
            "value": [1.0, 2.5],
        }
    )


def test_rows_diff_names_rows_and_columns(tmp_path):
    expected = [
        {"timestamp": "+0s", "sensor": "a", "value": 1.0},
        {"timestamp": "2026-01-01T00:00:05Z", "sensor": "b", "value": 2.4},
    ]
    (failure,) = run({"rows": expected}, readings(), tmp_path)
    assert failure.title == "node.out: rows differ"
    assert "1 row(s) differ in column(s): value" in failure.detail
    assert "row  column  expected  actual" in failure.detail
    assert "1    value   2.4       2.5" in failure.detail
    assert "  ! 1" in failure.detail  # the differing row is marked in the frames shown
    assert run({"rows": expected, "tolerance": 0.2}, readings(), tmp_path) == []
    assert run({"rows": expected, "tolerance": {"rel": 0.05}}, readings(), tmp_path) == []


def test_rows_columns_subset_order_and_counts(tmp_path):
    assert (
        run(
            {
                "rows": [{"sensor": "b"}, {"sensor": "a"}],
                "columns": ["sensor"],
                "ignore_order": True,
            },
            readings(),
            tmp_path,
        )
        == []
    )
    (ordered,) = run(
        {"rows": [{"sensor": "b"}, {"sensor": "a"}], "columns": ["sensor"]}, readings(), tmp_path
    )
    assert "2 row(s) differ in column(s): sensor" in ordered.detail
    (extra,) = run({"rows": [{"sensor": "a"}, {"sensor": "b"}]}, readings(), tmp_path)
    assert "unexpected columns: timestamp, value (compare a subset with `columns:`)" in extra.detail
    (short,) = run({"rows": [{"sensor": "a"}], "columns": ["sensor"]}, readings(), tmp_path)
    assert "expected 1 rows, got 2" in short.detail
    assert (
        "unexpected row 1: {timestamp: 2026-01-01T00:00:05Z, sensor: 'b', value: 2.5}"
        in short.detail
    )
    (typed,) = run(
        {"rows": [{"sensor": "a"}, {"sensor": 2}], "columns": ["sensor"]}, readings(), tmp_path
    )
    assert "1    sensor  2         'b'" in typed.detail


def test_rows_from_a_file(tmp_path):
    (tmp_path / "want.csv").write_text(
        "timestamp,sensor,value\n2026-01-01T00:00:00Z,a,1\n2026-01-01T00:00:05Z,b,2.5\n"
    )
    assert run({"rows": "want.csv"}, readings(), tmp_path) == []
    (gone,) = run({"rows": "nope.jsonl"}, readings(), tmp_path)
    assert gone.title == f"node.out: expected rows: {tmp_path / 'nope.jsonl'}: no such file"


def test_schema_count_contains_query(tmp_path):
    frame = readings()
    assert (
        run(
            {
                "schema": {"timestamp": "datetime", "sensor": "string", "value": "float"},
                "row_count": 2,
            },
            frame,
            tmp_path,
        )
        == []
    )
    (schema,) = run({"schema": {"value": "int", "gone": "any"}}, frame, tmp_path)
    assert schema.title.startswith(
        "node.out: schema differs: column 'value' is float64, expected int; column 'gone' is missing"
    )
    assert (
        run({"row_count": {"min": 3}}, frame, tmp_path)[0].title
        == "node.out: expected >= 3 rows, got 2"
    )
    assert run({"contains": [{"sensor": "b", "value": 2.5}]}, frame, tmp_path) == []
    (missing,) = run({"contains": [{"sensor": "b", "value": 9}]}, frame, tmp_path)
    assert "no row matches {sensor: 'b', value: 9}" in missing.detail
    assert run({"query": "value > 0 and sensor != 'x'"}, frame, tmp_path) == []
    (query,) = run({"query": "value < 2"}, frame, tmp_path)
    assert query.title == "node.out: query 'value < 2' is false for 1 of 2 rows"
    assert "'b'" in query.detail
    (unknown,) = run({"query": "nope > 1"}, frame, tmp_path)
    assert "query 'nope > 1' failed" in unknown.title


@pytest.mark.parametrize(
    "query", ["value.to_csv('x')", "__import__('os')", "@x > 1", "value[0] > 1", "f(value)"]
)
def test_unsafe_queries_are_refused(query):
    with pytest.raises(ValidationError, match="query"):
        Expectation.model_validate({"query": query})


def test_no_output_counters_errors(tmp_path):
    empty = pd.DataFrame()
    assert run({"no_output": True}, empty, tmp_path) == []
    (sent,) = run({"no_output": True}, readings(), tmp_path)
    assert sent.title == "node.out: expected no output, got 2 rows"
    seen = {"counters": {"parse_errors": 2}, "errors": ["bad value 'x' in row 3"]}
    assert (
        run(
            {"counters": {"parse_errors": 2, "late": 0}, "errors": ["bad value"]},
            empty,
            tmp_path,
            **seen,
        )
        == []
    )
    (counters,) = run({"counters": {"parse_errors": 1}}, empty, tmp_path, **seen)
    assert counters.title == "node: counters differ: parse_errors: expected 1, got 2"
    (errors,) = run({"errors": ["timeout"]}, empty, tmp_path, **seen)
    assert errors.title == "node: no error matches 'timeout'"
    assert "bad value 'x' in row 3" in errors.detail
    assert (
        run({"errors": []}, empty, tmp_path, **seen)[0].title == "node: expected no errors, got 1"
    )


def test_alerts(tmp_path):
    events = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-01T00:00:08Z", "2026-01-01T00:01:00Z"], utc=True),
            "event": ["raise", "clear"],
            "severity": ["critical", "critical"],
            "message": ["Line 3: defect probability 0.95 (critical)", "Line 3: cleared"],
            "line": ["3", "3"],
        }
    )
    good = [
        {
            "event": "raise",
            "severity": "critical",
            "before": "+10s",
            "message": "Line 3",
            "where": {"line": "3"},
        },
        {"event": "clear", "after": "2026-01-01T00:00:30Z"},
    ]
    assert run({"alerts": good}, events, tmp_path) == []
    (late,) = run({"alerts": [{"event": "raise", "before": "+5s"}, good[1]]}, events, tmp_path)
    assert (
        "event 0: expected raise before +5s, got raise critical at 2026-01-01T00:00:08Z"
        in late.detail
    )
    (extra,) = run({"alerts": [good[0]]}, events, tmp_path)
    assert "event 1: unexpected clear critical" in extra.detail
    assert run({"alerts": []}, pd.DataFrame(), tmp_path) == []


def test_snapshots_are_written_only_with_update(tmp_path):
    (missing,) = run({"snapshot": True}, readings(), tmp_path)
    assert missing.title == (
        f"node.out: snapshot {tmp_path / 'snap' / 'x.jsonl'} does not exist; "
        "run `flowengine test --update` to write it"
    )
    assert not (tmp_path / "snap").exists()
    assert run({"snapshot": True}, readings(), tmp_path, update=True) == []
    assert (tmp_path / "snap" / "x.jsonl").read_text().count("\n") == 2
    assert run({"snapshot": True}, readings(), tmp_path) == []
    changed = readings().assign(value=[1.0, 3.0])
    (differs,) = run({"snapshot": True}, changed, tmp_path)
    assert "differs from snapshot" in differs.title and "value" in differs.detail
    assert run({"snapshot": "golden.parquet"}, changed, tmp_path, update=True) == []
    assert run({"snapshot": "golden.parquet"}, changed, tmp_path) == []


def test_keyword_selection():
    ids = ["a.test.yaml::alert raises", "a.test.yaml::quiet hour", "b.test.yaml::alert quiet"]
    pick = lambda expr: [i for i in ids if parse(expr)(i)]  # noqa: E731
    assert pick("alert") == [ids[0], ids[2]]
    assert pick("alert and not quiet") == [ids[0]]
    assert pick("(b.test or raises) and ALERT") == [ids[0], ids[2]]
    assert pick("") == ids
    for bad in ("alert and", "(alert", "or x", "a )"):
        with pytest.raises(SelectError):
            parse(bad)
