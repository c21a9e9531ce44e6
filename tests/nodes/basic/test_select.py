"""Select: keep listed columns in order, or drop them; missing columns are errors unless allowed."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from flowengine.testing import run_flow
from tests.helpers.shapes import Shapes

ROW = {"sensor": "a", "value": 1.0, "quality": "good", "source": "plc"}


def select(**config: Any) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": [ROW], "wires": ["s"]},
        "s": {"type": "select", **config, "wires": {"out": ["cap"], "error": ["err"]}},
        "cap": {"type": "capture"},
        "err": {"type": "capture"},
    }


def test_keeps_listed_columns_in_the_listed_order() -> None:
    columns = ["value", "sensor", "timestamp"]
    frame = run_flow(select(columns=columns)).frame("cap")
    assert list(frame.columns) == columns
    assert frame[["value", "sensor"]].to_dict("records") == [{"value": 1.0, "sensor": "a"}]


def test_drop_removes_listed_columns_and_keeps_the_rest_in_order() -> None:
    frame = run_flow(select(columns=["quality", "timestamp"], drop=True)).frame("cap")
    assert list(frame.columns) == ["sensor", "value", "source"]


def test_missing_column_goes_to_error_naming_it() -> None:
    result = run_flow(select(columns=["sensor", "pressure"]))
    assert result.batches("cap") == []
    [failed] = result.batches("err")
    assert "pressure" in (failed.error or "")
    assert failed.frame["sensor"].tolist() == ["a"]


def test_missing_column_in_drop_mode_is_also_an_error() -> None:
    result = run_flow(select(columns=["pressure"], drop=True))
    assert result.batches("cap") == []
    assert "pressure" in (result.batches("err")[0].error or "")


def test_missing_ok_keeps_what_is_there() -> None:
    result = run_flow(select(columns=["pressure", "value", "sensor"], missing_ok=True))
    assert list(result.frame("cap").columns) == ["value", "sensor"]
    assert result.batches("err") == []


def test_missing_ok_in_drop_mode_drops_what_is_there() -> None:
    result = run_flow(select(columns=["pressure", "source"], drop=True, missing_ok=True))
    assert list(result.frame("cap").columns) == ["timestamp", "sensor", "value", "quality"]


SIMULATED = {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3}


@pytest.mark.parametrize(
    ("config", "reference"),
    [
        (
            {"columns": ["value", "timestamp", "sensor"]},
            lambda f: f[["value", "timestamp", "sensor"]],
        ),
        (
            {"columns": ["sensor", "line"], "drop": True},
            lambda f: f.drop(columns=["sensor", "line"]),
        ),
        ({"columns": ["defect", "gone"], "missing_ok": True}, lambda f: f[["defect"]]),
    ],
)
def test_frames_are_what_pandas_selects(config: dict[str, Any], reference: Any) -> None:
    flow = select(**config)
    flow["src"] = {**SIMULATED, "wires": ["s", "raw"]}
    flow["raw"] = {"type": "capture"}
    result = run_flow(flow)
    inputs = [b.frame for b in result.batches("raw")]
    got = [b.frame for b in result.batches("cap")]
    assert len(got) == len(inputs) == 9
    for frame, out in zip(inputs, got, strict=True):
        pd.testing.assert_frame_equal(out, reference(frame), check_exact=True)
        assert out.columns.dtype == frame.columns.dtype


def test_each_batch_is_selected_by_its_own_columns() -> None:
    flow = select(columns=["b", "a"])
    flow["src"] = {"type": "shapes", "wires": ["s"]}
    result = run_flow(flow, types={"shapes": Shapes})
    assert [list(b.frame.columns) for b in result.batches("cap")] == [["b", "a"], ["b", "a"]]
    assert [b.frame["a"].tolist() for b in result.batches("cap")] == [[1.0], [3.0]]
    [failed] = result.batches("err")
    assert "['b']" in (failed.error or "") and failed.frame["a"].tolist() == [2.0]
