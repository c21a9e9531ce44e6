"""Compute: columns from pandas expressions, in order, without touching the input frame."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from flowengine.testing import check_text, run_flow

ROWS = [{"sensor": "a", "value": 1200.0}, {"sensor": "b", "value": 1300.0}]


def compute(columns: Any, rows: list[dict[str, Any]] = ROWS) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": rows, "wires": ["c"]},
        "c": {"type": "compute", "columns": columns, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }


def test_columns_computed_in_order_later_using_earlier() -> None:
    columns = {"value_f": "value * 9 / 5 + 32", "hot": "value_f > 2250", "delta": "value_f - value"}
    frame = run_flow(compute(columns)).frame("cap")
    value_f = [r["value"] * 9 / 5 + 32 for r in ROWS]
    assert list(frame.columns) == ["timestamp", "sensor", "value", "value_f", "hot", "delta"]
    assert frame["value_f"].tolist() == value_f
    assert frame["hot"].tolist() == [f > 2250 for f in value_f]
    assert frame["delta"].tolist() == [f - r["value"] for f, r in zip(value_f, ROWS, strict=True)]


def test_a_column_may_be_replaced() -> None:
    frame = run_flow(compute({"value": "value / 1000"})).frame("cap")
    assert frame["value"].tolist() == [r["value"] / 1000 for r in ROWS]


def test_input_frame_is_not_modified_for_other_recipients() -> None:
    flow = compute({"value": "value * 2", "extra": "value + 1"})
    flow["src"]["wires"] = ["c", "raw"]
    flow["raw"] = {"type": "capture"}
    result = run_flow(flow)
    raw = result.frame("raw")
    assert list(raw.columns) == ["timestamp", "sensor", "value"]
    assert raw["value"].tolist() == [r["value"] for r in ROWS]
    assert result.frame("cap")["value"].tolist() == [r["value"] * 2 for r in ROWS]


def test_empty_columns_mapping_is_rejected() -> None:
    checked = check_text(compute({}))
    [problem] = checked.errors
    assert problem.node == "c"
    assert "columns" in problem.message


def test_invalid_expression_names_the_column() -> None:
    checked = check_text(compute({"ok": "value + 1", "broken": "value +* 2"}))
    [problem] = checked.errors
    assert problem.node == "c"
    assert "'broken'" in problem.message


def test_unknown_column_routes_the_batch_to_error() -> None:
    flow = compute({"x": "missing_col * 2"})
    flow["c"]["wires"] = {"error": ["cap"]}
    [failed] = run_flow(flow).batches("cap")
    assert "missing_col" in (failed.error or "")
    assert list(failed.frame.columns) == ["timestamp", "sensor", "value"]


MIXED = [
    {"timestamp": "2026-01-01T00:00:00Z", "sensor": "a", "value": 1300.0, "quality": "good"},
    {"timestamp": "2026-01-01T00:00:03Z", "sensor": None, "value": float("nan"), "quality": "bad"},
]
SOURCES = {
    "simulate": {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3},
    "rows": {"type": "frames", "frames": [MIXED, MIXED[::-1], MIXED[:1]]},
}
COLUMNS = {
    "value_f": "value * 9 / 5 + 32",
    "hot": "value_f > 2250 and quality == 'good'",
    "value": "value // 7",  # replaced in place, as pandas' assign does
    "late": "timestamp >= '2026-01-01T00:00:02Z'",
    "named": "sensor",  # a bare column: a copy, not the same memory
    "two": "2",
}


@pytest.mark.parametrize("source", SOURCES)
def test_frames_are_what_pandas_eval_and_assign_make(source: str) -> None:
    flow = compute(COLUMNS)
    flow["src"] = {**SOURCES[source], "wires": ["c", "raw"]}
    flow["raw"] = {"type": "capture"}
    result = run_flow(flow)
    inputs = [b.frame for b in result.batches("raw")]
    got = [b.frame for b in result.batches("cap")]
    assert len(got) == len(inputs)
    for frame, out in zip(inputs, got, strict=True):
        for name, expr in COLUMNS.items():
            made = frame.eval(expr)
            if not isinstance(made, pd.Series):
                made = pd.Series(made, index=frame.index)
            frame = frame.assign(**{name: made})
        pd.testing.assert_frame_equal(out, frame, check_exact=True)
        assert out.columns.dtype == frame.columns.dtype
        out.loc[out.index[0], "named"] = "changed"  # copy-on-write: the input stays
    assert "changed" not in pd.concat(inputs)["sensor"].tolist()
