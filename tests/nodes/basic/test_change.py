"""Change: ordered column operations (set, delete, move, convert, scale)."""

from __future__ import annotations

from typing import Any

import pytest

from flowengine.testing import check_text, run_flow

ROWS = [{"sensor": "t", "value": 20.0, "raw": "1"}, {"sensor": "t", "value": 100.0, "raw": "2"}]


def change(operations: list[dict[str, Any]], rows: list[dict[str, Any]] = ROWS) -> Any:
    flow = {
        "src": {"type": "inject", "rows": rows, "wires": ["ch"]},
        "ch": {
            "type": "change",
            "operations": operations,
            "wires": {"out": ["cap"], "error": ["err"]},
        },
        "cap": {"type": "capture"},
        "err": {"type": "capture"},
    }
    return run_flow(flow)


def test_operations_apply_in_order() -> None:
    ops = [
        {"op": "scale", "unit": "degC->degF"},
        {"op": "set", "column": "unit", "value": "degF"},
        {"op": "set", "column": "double", "expr": "value * 2"},
        {"op": "convert", "column": "raw", "dtype": "int"},
        {"op": "move", "column": "raw", "to": "code"},
        {"op": "delete", "columns": ["sensor"]},
    ]
    frame = change(ops).frame("cap")
    expected_f = [v["value"] * 9 / 5 + 32 for v in ROWS]
    assert frame["value"].tolist() == pytest.approx(expected_f)
    assert frame["double"].tolist() == pytest.approx([2 * f for f in expected_f])
    assert frame["unit"].tolist() == ["degF", "degF"]
    assert frame["code"].tolist() == [1, 2]
    assert "raw" not in frame and "sensor" not in frame


def test_factor_and_offset_scale() -> None:
    frame = change([{"op": "scale", "factor": 0.5, "offset": -1}]).frame("cap")
    assert frame["value"].tolist() == [v["value"] * 0.5 - 1 for v in ROWS]


def test_failed_conversion_routes_to_error() -> None:
    result = change([{"op": "convert", "column": "sensor", "dtype": "float"}])
    assert result.batches("cap") == []
    [failed] = result.batches("err")
    assert failed.error


def test_config_errors() -> None:
    bad = [
        [{"op": "scale", "unit": "furlongs"}],
        [{"op": "set", "column": "x", "expr": "__import__('os')"}],
        [{"op": "rename", "column": "x"}],
    ]
    for ops in bad:
        assert check_text({"ch": {"type": "change", "operations": ops}}).errors, ops
