"""Rename: column names and values of the `sensor` column."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flowengine.testing import run_flow
from tests.helpers.shapes import Shapes

ROWS = [
    {"sensor": "ns=2;i=1001", "value": 1.0},
    {"sensor": "ns=2;i=1002", "value": 2.0},
    {"sensor": "other", "value": 3.0},
]


def rename(rows: list[dict[str, Any]] = ROWS, **config: Any) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": rows, "wires": ["r"]},
        "r": {"type": "rename", **config, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }


def test_columns_renamed() -> None:
    frame = run_flow(rename(columns={"value": "temperature_c"})).frame("cap")
    assert list(frame.columns) == ["timestamp", "sensor", "temperature_c"]
    assert frame["temperature_c"].tolist() == [r["value"] for r in ROWS]


def test_sensor_values_renamed_and_others_left_alone() -> None:
    names = {"ns=2;i=1001": "furnace_temp", "ns=2;i=1002": "ladle_temp"}
    frame = run_flow(rename(sensors=names)).frame("cap")
    assert frame["sensor"].tolist() == [names.get(r["sensor"], r["sensor"]) for r in ROWS]


def test_sensor_names_can_be_swapped() -> None:
    rows = [{"sensor": "a", "value": 1.0}, {"sensor": "b", "value": 2.0}]
    frame = run_flow(rename(rows, sensors={"a": "b", "b": "a"})).frame("cap")
    assert frame["sensor"].tolist() == ["b", "a"]


def test_columns_and_sensors_together() -> None:
    config = {"columns": {"sensor": "tag"}, "sensors": {"other": "spare"}}
    frame = run_flow(rename(**config)).frame("cap")
    assert "sensor" not in frame.columns
    assert frame["tag"].tolist() == ["ns=2;i=1001", "ns=2;i=1002", "spare"]


def test_sensors_without_a_sensor_column_pass_through() -> None:
    frame = run_flow(rename([{"value": 1.0}], sensors={"a": "b"})).frame("cap")
    assert list(frame.columns) == ["timestamp", "value"]


def test_input_frame_is_not_modified_for_other_recipients() -> None:
    flow = rename(columns={"value": "v"}, sensors={"other": "spare"})
    flow["src"]["wires"] = ["r", "raw"]
    flow["raw"] = {"type": "capture"}
    raw = run_flow(flow).frame("raw")
    assert raw[["sensor", "value"]].to_dict("records") == ROWS


SIMULATED = {"type": "simulate", "realtime": False, "batch_size": 4, "count": 6, "seed": 3}


def test_frames_are_what_pandas_renames() -> None:
    columns, sensors = {"value": "value_c", "sensor": "tag", "nothing": "x"}, {"furnace_temp": "ft"}
    flow = rename(columns=columns, sensors=sensors)
    flow["src"] = {**SIMULATED, "wires": ["r", "raw"]}
    flow["raw"] = {"type": "capture"}
    result = run_flow(flow)
    inputs = [b.frame for b in result.batches("raw")]
    got = [b.frame for b in result.batches("cap")]
    assert len(got) == len(inputs) == 9
    for frame, out in zip(inputs, got, strict=True):
        expected = frame.assign(sensor=frame["sensor"].replace(sensors)).rename(columns=columns)
        pd.testing.assert_frame_equal(out, expected, check_exact=True)
        assert out.columns.dtype == expected.columns.dtype
    assert "ft" in pd.concat(got)["tag"].tolist()


def test_each_batch_is_renamed_by_its_own_columns() -> None:
    result = run_flow(
        {
            "src": {"type": "shapes", "wires": ["r"]},
            "r": {"type": "rename", "columns": {"c": "z"}, "wires": ["cap"]},
            "cap": {"type": "capture"},
        },
        types={"shapes": Shapes},
    )
    names = [list(b.frame.columns) for b in result.batches("cap")]
    assert names == [["a", "b", "z"], ["a", "z"], ["a", "b", "z"]]
