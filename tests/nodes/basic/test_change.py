"""Change: ordered column operations (set, delete, move, convert, scale)."""

from __future__ import annotations

from typing import Any

import pandas as pd
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


SIMULATED = {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3}
OPERATIONS: list[dict[str, Any]] = [
    {"op": "scale", "unit": "degC->degF"},
    {"op": "scale", "column": "defect", "factor": 2.0, "offset": 1.0},  # int8 -> float
    {"op": "set", "column": "hot", "expr": "value > 2000 and quality == 'good'"},
    {"op": "set", "column": "unit", "value": "F"},
    {"op": "delete", "columns": ["source", "not_there"]},
    {"op": "move", "column": "line", "to": "plant_line"},
]


def old_change(frame: Any) -> Any:
    """The operations above as the change node did them with pandas."""
    frame = frame.assign(value=frame["value"] * (9 / 5) + 32.0)
    frame = frame.assign(defect=frame["defect"] * 2.0 + 1.0)
    frame = frame.assign(hot=frame.eval("value > 2000 and quality == 'good'"))
    frame = frame.assign(unit="F").drop(columns=["source", "not_there"], errors="ignore")
    return frame.rename(columns={"line": "plant_line"})


def test_frames_are_what_the_pandas_operations_make() -> None:
    flow_raw = {
        "src": {**SIMULATED, "wires": ["ch", "raw"]},
        "ch": {"type": "change", "operations": OPERATIONS, "wires": ["cap"]},
        "cap": {"type": "capture"},
        "raw": {"type": "capture"},
    }
    result = run_flow(flow_raw)
    inputs = [b.frame for b in result.batches("raw")]
    got = [b.frame for b in result.batches("cap")]
    assert len(got) == len(inputs) == 9
    for frame, out in zip(inputs, got, strict=True):
        pd.testing.assert_frame_equal(out, old_change(frame), check_exact=True)
