"""Compute: columns from pandas expressions, in order, without touching the input frame."""

from __future__ import annotations

from typing import Any

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
