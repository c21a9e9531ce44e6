"""Pivot: streaming wide rows equal `pd.merge_asof` on the whole series, whatever the batching."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.analytics.windows import Pivoter, parse_duration
from flowengine.testing import check_text, run_flow
from tests.helpers.windows import BASE, MS, Row, frame


def reference(
    rows: list[Row], freq: int, tolerance: int | None, lags: list[int], deltas: list[int]
) -> pd.DataFrame:
    """merge_asof of each sensor onto the grid of the whole series, then shifts."""
    data = frame(rows)
    ns = [BASE + t * MS for _, t, _ in rows]
    first, last = -(-min(ns) // freq) * freq, max(ns) // freq * freq
    grid = pd.DataFrame(
        {"timestamp": pd.to_datetime(np.arange(first, last + 1, freq), utc=True).as_unit("ns")}
    )
    wide = grid.copy()
    tol = pd.Timedelta(tolerance) if tolerance is not None else None
    for sensor in sorted(set(data["sensor"])):
        right = data[data["sensor"] == sensor][["timestamp", "value"]].sort_values("timestamp")
        col = pd.merge_asof(grid, right, on="timestamp", direction="backward", tolerance=tol)
        wide[sensor] = col["value"]
        for k in lags:
            wide[f"{sensor}_lag{k}"] = col["value"].shift(k)
        for k in deltas:
            wide[f"{sensor}_delta{k}"] = col["value"] - col["value"].shift(k)
    return wide


@st.composite
def streams(draw: st.DrawFn) -> dict[str, Any]:
    """Rows (unique times per sensor), shuffled within the lateness, cut into batches."""
    rows: list[Row] = []
    for sensor in ("a", "b", "c"):
        times = draw(st.sets(st.integers(0, 20_000), max_size=15))
        rows += [(sensor, t, draw(st.integers(-100, 100)) / 8) for t in sorted(times)]
    if not rows:
        rows = [("a", 5, 1.0)]
    lateness = draw(st.integers(0, 3000))
    jitter = [draw(st.integers(0, lateness)) for _ in rows]
    arrived = [r for _, r in sorted(zip(jitter, rows, strict=True), key=lambda p: p[1][1] + p[0])]
    cuts = sorted(draw(st.sets(st.integers(1, len(rows)), max_size=6)) | {0, len(rows)})
    return {
        "rows": rows,
        "batches": [arrived[a:b] for a, b in itertools.pairwise(cuts) if b > a],
        "lateness": lateness * MS,
        "freq": draw(st.sampled_from([250, 1000, 1500])) * MS,
        "tolerance": draw(st.one_of(st.none(), st.integers(0, 3000).map(lambda t: t * MS))),
        "lags": draw(st.lists(st.integers(1, 4), max_size=2, unique=True)),
        "deltas": draw(st.lists(st.integers(1, 4), max_size=2, unique=True)),
    }


@settings(max_examples=60, deadline=None)
@given(streams())
def test_streaming_equals_merge_asof_on_the_whole_series(case: dict[str, Any]) -> None:
    pivot = Pivoter(
        case["freq"],
        case["tolerance"],
        lags=case["lags"],
        deltas=case["deltas"],
        lateness=case["lateness"],
    )
    outputs = []
    for batch in case["batches"]:
        out, late = pivot.push(frame(batch))
        assert late.empty
        outputs.append(out)
    outputs.append(pivot.flush())
    expected = reference(
        case["rows"], case["freq"], case["tolerance"], case["lags"], case["deltas"]
    )
    produced = [o for o in outputs if not o.empty]
    result = pd.concat(produced, ignore_index=True) if produced else expected.iloc[:0]
    result = result.reindex(columns=expected.columns)
    pd.testing.assert_frame_equal(result, expected, check_dtype=False)


def test_last_values_carry_across_batches_and_rows_wait_for_the_watermark() -> None:
    pivot = Pivoter(parse_duration("1s"), parse_duration("5s"), deltas=[1])
    out, _ = pivot.push(frame([("a", 0, 1.0), ("b", 500, 10.0), ("a", 2000, 3.0)]))
    assert out["timestamp"].tolist() == [pd.Timestamp(BASE + s * 10**9, tz="UTC") for s in (0, 1)]
    out, _ = pivot.push(frame([("b", 3500, 12.0)]))
    assert out["a"].tolist() == [3.0, 3.0] and out["b"].tolist() == [10.0, 10.0]
    assert out["a_delta1"].tolist() == [2.0, 0.0]
    assert pivot.flush().empty  # 3 s was already emitted at the watermark 3.5 s


def test_late_rows_are_rejected() -> None:
    pivot = Pivoter(parse_duration("1s"), lateness=parse_duration("1s"))
    pivot.push(frame([("a", 5000, 1.0)]))
    out, late = pivot.push(frame([("a", 4000, 2.0), ("a", 3900, 3.0)]))
    assert late["value"].tolist() == [3.0]
    assert out.empty
    assert pivot.flush()["a"].tolist() == [2.0, 1.0]


def test_window_then_pivot_on_value_mean() -> None:
    rows = [
        {"timestamp": f"2026-01-01T00:00:{s:02d}Z", "sensor": sensor, "value": float(s)}
        for s in range(0, 40)
        for sensor in ("a", "b")
    ]
    flow = {
        "src": {"type": "inject", "rows": rows, "wires": ["w"]},
        "w": {"type": "window", "size": "10s", "wires": ["p"]},
        "p": {
            "type": "pivot",
            "freq": "10s",
            "value": "value_mean",
            "sensors": ["b", "a"],
            "lags": [1],
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    out = run_flow(flow).frame("cap")
    assert list(out.columns) == ["timestamp", "b", "b_lag1", "a", "a_lag1"]
    assert out["a"].tolist() == [4.5, 14.5, 24.5, 34.5]
    assert out["a_lag1"].tolist()[1:] == [4.5, 14.5, 24.5]


def test_bad_config_is_a_flow_error() -> None:
    flow = {
        "src": {"type": "inject", "wires": ["p"]},
        "p": {"type": "pivot", "freq": "1s", "lags": [0], "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    assert [p.node for p in check_text(flow).errors] == ["p"]
