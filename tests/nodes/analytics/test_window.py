"""Window: streaming results equal a whole-series reference, whatever the batching."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.analytics.windows import AGGREGATIONS, Windower, parse_duration
from flowengine.testing import check_text, run_flow
from tests.helpers.windows import MS, Row, frame, reference


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Row], list[list[Row]], int, int, int, list[int]]:
    """Rows (unique times per sensor), shuffled within the lateness, cut into batches; plus
    how far before the final watermark some too-late rows come (they must change nothing)."""
    n = draw(st.integers(1, 40))
    rows: list[Row] = []
    for sensor in ("a", "b"):
        times = draw(st.sets(st.integers(0, 30_000), max_size=n))
        for t in sorted(times):
            rows.append((sensor, t, draw(st.integers(-1000, 1000)) / 4))
    if not rows:
        rows = [("a", 0, 1.0)]
    size = draw(st.sampled_from([1000, 2500, 5000, 10_000]))
    step = draw(st.sampled_from([size, size // 2, 1000, 3000]))
    lateness = draw(st.integers(0, 4000))
    jitter = [draw(st.integers(0, lateness)) for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: rows[i][1] + jitter[i])
    arrived = [rows[i] for i in order]
    cuts = sorted(draw(st.sets(st.integers(1, len(rows)), max_size=6)) | {0, len(rows)})
    batches = [arrived[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    too_late = draw(st.lists(st.integers(1, 5000), max_size=3))
    return rows, batches, size * MS, step * MS, lateness * MS, too_late


@settings(max_examples=60, deadline=None)
@given(streams())
def test_streaming_equals_whole_series_reference(
    case: tuple[list[Row], list[list[Row]], int, int, int, list[int]],
) -> None:
    rows, batches, size, step, lateness, too_late = case
    windows = Windower(size, step, AGGREGATIONS, lateness=lateness)
    outputs = []
    for batch in batches:
        out, late = windows.push(frame(batch))
        assert late.empty  # every row arrived within the lateness
        outputs.append(out)
    watermark = max(t for _, t, _ in rows) - lateness // MS
    out, late = windows.push(frame([("a", watermark - d, 99.0) for d in too_late]))
    assert len(late) == len(too_late) and out.empty
    outputs.append(windows.flush())
    expected = reference(rows, size, step)
    produced = [o for o in outputs if not o.empty]
    if not produced:  # a step longer than the size leaves gaps no row may fall in
        assert expected.empty
        return
    result = pd.concat(produced, ignore_index=True)
    result = result.sort_values(["timestamp", "sensor"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(result, expected, check_dtype=False, rtol=1e-6, atol=1e-6)


def test_pandas_resample_agrees_for_tumbling_mean() -> None:
    rows: list[Row] = [("a", t, float(t % 7)) for t in range(0, 30_000, 700)]
    windows = Windower(parse_duration("10s"), aggregations=["mean", "count"])
    result = pd.concat([windows.push(frame(rows))[0], windows.flush()], ignore_index=True)
    series = frame(rows).set_index("timestamp")["value"].resample("10s")
    assert result["value_mean"].tolist() == pytest.approx(series.mean().tolist())
    assert result["value_count"].tolist() == series.count().tolist()
    assert (result["timestamp"] - result["window_start"] == pd.Timedelta("10s")).all()


def test_rows_beyond_lateness_are_rejected_and_left_out() -> None:
    windows = Windower(parse_duration("10s"), lateness=parse_duration("2s"))
    windows.push(frame([("a", 0, 1.0), ("a", 15_000, 2.0)]))
    out, late = windows.push(frame([("a", 13_500, 3.0), ("a", 13_000, 4.0), ("a", 12_000, 5.0)]))
    assert late["value"].tolist() == [5.0]
    assert out.empty
    rest = windows.flush()
    assert rest["value_mean"].tolist() == [
        3.0
    ]  # (2 + 3 + 4) / 3: 13 s is the watermark, 12 s too late


def test_node_emits_windows_flushes_and_routes_late_rows() -> None:
    rows = [
        {"timestamp": f"2026-01-01T00:00:{s:02d}Z", "sensor": sensor, "value": float(s)}
        for s in range(0, 30, 2)
        for sensor in ("a", "b")
    ]
    flow = {
        "src": {"type": "inject", "rows": rows, "count": 2, "interval": 0.01, "wires": ["w"]},
        "w": {
            "type": "window",
            "size": "10s",
            "aggregations": ["mean", "last", "count"],
            "lateness": "5s",
            "wires": {"out": ["cap"], "error": ["late"]},
        },
        "cap": {"type": "capture"},
        "late": {"type": "capture"},
    }
    result = run_flow(flow)
    out = result.frame("cap")
    assert list(out.columns) == [
        "timestamp",
        "window_start",
        "sensor",
        "value_mean",
        "value_last",
        "value_count",
    ]
    assert out["value_count"].sum() == len(rows) + 6  # the second copies of s >= 23 count
    assert out[out["sensor"] == "a"]["value_last"].tolist() == [8.0, 18.0, 28.0]
    late = result.frame("late")
    assert len(late) == len(rows) - 6
    assert result.stats("w")["counters"] == {"late_rows": len(rows) - 6}


@pytest.mark.parametrize(
    "config",
    [{"size": "0s"}, {"size": "soon"}, {"size": "10s", "aggregations": ["median"]}],
)
def test_bad_config_is_a_flow_error(config: dict[str, Any]) -> None:
    flow = {
        "src": {"type": "inject", "wires": ["w"]},
        "w": {"type": "window", **config, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    assert [p.node for p in check_text(flow).errors] == ["w"]
