"""Join: as-of join of right rows onto left rows within a tolerance, state across batches."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flowengine.testing import FlowResult, run_flow
from tests.helpers.timed import T0, Timed


def join(left: list[list[list[Any]]], right: list[list[list[Any]]], **cfg: Any) -> FlowResult:
    flow = {
        "r": {"type": "timed", "frames": right, "wires": ["j.right"]},
        "l": {"type": "timed", "frames": left, "pause": 0.3, "wires": ["j.left"]},
        "j": {"type": "join", "tolerance": 2, **cfg, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    return run_flow(flow, types={"timed": Timed})


def seconds(frame: pd.DataFrame) -> list[float]:
    return (frame["timestamp"] - T0).dt.total_seconds().tolist()


def test_left_rows_get_the_latest_right_row_within_tolerance() -> None:
    right = [[[0, "speed", 1.0], [3, "speed", 2.0]], [[10, "speed", 3.0]]]
    # the left source starts 0.3 s late so the right state is in place (arrival order matters)
    left = [[[11, "temp", 100.0], [3.5, "temp", 101.0], [20, "temp", 102.0]]]
    result = join(left, right)
    frame = result.frame("cap")
    assert seconds(frame) == [11.0, 3.5, 20.0]  # left order kept
    assert frame["value"].tolist() == [100.0, 101.0, 102.0]
    # right keeps `tolerance` (2 s) before its newest row (10): the row at 3 is gone for 3.5
    got = frame["value_right"].tolist()
    assert got[0] == 3.0 and pd.isna(got[1]) and pd.isna(got[2])


def test_by_key_joins_only_equal_keys() -> None:
    right = [[[0, "a", 1.0], [1, "b", 2.0]]]
    left = [[[1.5, "a", 10.0], [1.5, "b", 20.0], [1.5, "c", 30.0]]]
    frame = join(left, right, by="sensor").frame("cap")
    values = frame["value_right"].tolist()
    assert values[:2] == [1.0, 2.0] and pd.isna(values[2])
