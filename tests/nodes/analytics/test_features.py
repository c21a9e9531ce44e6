"""Features: wide window rows per group equal a whole-series reference, whatever the batching."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.analytics.featurize import Featurizer
from flowengine.nodes.analytics.windows import AGGREGATIONS, parse_duration
from flowengine.testing import check_text, run_flow
from tests.helpers.windows import BASE, MS, reference

Row = tuple[str, str, int, float, int]  # line, sensor, ms offset, value, label


def frame(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([BASE + r[2] * MS for r in rows], utc=True),
            "line": [r[0] for r in rows],
            "sensor": [r[1] for r in rows],
            "value": [r[3] for r in rows],
            "defect": [r[4] for r in rows],
        }
    )


def expected(rows: list[Row], size: int, step: int) -> pd.DataFrame:
    """Per line: the window node's loop reference, pivoted wide; labels as the window max."""
    parts = []
    for line in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == line]
        ref = reference([(s, t, v) for _, s, t, v, _ in mine], size, step)
        wide = ref.pivot(index="timestamp", columns="sensor")
        wide.columns = [f"{s}_{c.removeprefix('value_')}" for c, s in wide.columns]
        wide = wide.drop(columns=[c for c in wide.columns if "window_start" in c])
        ends = wide.index.astype("int64")
        wide["defect"] = [max(r[4] for r in mine if e - size <= BASE + r[2] * MS < e) for e in ends]
        parts.append(wide.reset_index().assign(line=line))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["timestamp", "line"]).reset_index(drop=True)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Row], list[list[Row]], int, int, int]:
    """Rows (unique times per line and sensor) shuffled within the lateness, one line behind
    the other by up to 20 s, cut into batches."""
    rows: list[Row] = []
    for line, sensor in itertools.product(("L1", "L2"), ("a", "b")):
        for t in sorted(draw(st.sets(st.integers(0, 30_000), max_size=25))):
            value = draw(st.integers(-1000, 1000)) / 4 + 1200.0  # plant-sized: centring matters
            rows.append((line, sensor, t, value, draw(st.integers(0, 1))))
    if not rows:
        rows = [("L1", "a", 0, 1.0, 0)]
    size = draw(st.sampled_from([1000, 2500, 5000, 10_000]))
    step = draw(st.sampled_from([d for d in (250, 500, 1000, 1250, 2500, 5000) if size % d == 0]))
    lateness = draw(st.integers(0, 4000))
    jitter = [draw(st.integers(0, lateness)) for _ in rows]
    # one line may arrive far behind the other (its own clock): never late for that alone
    lag = {"L1": 0, "L2": draw(st.integers(0, 20_000))}
    order = sorted(range(len(rows)), key=lambda i: rows[i][2] + jitter[i] + lag[rows[i][0]])
    arrived = [rows[i] for i in order]
    cuts = sorted(draw(st.sets(st.integers(1, len(rows)), max_size=6)) | {0, len(rows)})
    batches = [arrived[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    return rows, batches, size * MS, step * MS, lateness * MS


@settings(max_examples=80, deadline=None)
@given(streams())
def test_streaming_equals_whole_series_reference(
    case: tuple[list[Row], list[list[Row]], int, int, int],
) -> None:
    rows, batches, size, step, lateness = case
    feats = Featurizer(size, step, AGGREGATIONS, by=["line"], labels=["defect"], lateness=lateness)
    outputs = []
    for batch in batches:
        out, late = feats.push(frame(batch))
        assert late.empty
        outputs.append(out)
    outputs.append(feats.flush())
    result = pd.concat([o for o in outputs if not o.empty], ignore_index=True)
    result = result.sort_values(["timestamp", "line"]).reset_index(drop=True)
    want = expected(rows, size, step)
    # a sensor with no row in a window is missing (NaN) in the wide row, as in the reference
    want = want.reindex(columns=result.columns)
    pd.testing.assert_frame_equal(result, want, check_dtype=False, rtol=1e-6, atol=1e-6)


def test_late_rows_are_rejected_and_change_nothing() -> None:
    feats = Featurizer(parse_duration("10s"), lateness=parse_duration("2s"), by=["line"])
    feats.push(frame([("L1", "a", 0, 1.0, 0), ("L1", "a", 15_000, 2.0, 0)]))
    out, late = feats.push(frame([("L1", "a", 13_500, 3.0, 0), ("L1", "a", 12_000, 5.0, 0)]))
    assert late["value"].tolist() == [5.0] and out.empty
    assert feats.flush()["a_mean"].tolist() == [2.5]


def test_fixed_sensors_give_a_stable_schema() -> None:
    feats = Featurizer(
        parse_duration("1s"), aggregations=["mean", "slope"], sensors=["b", "zz", "a"]
    )
    feats.push(frame([("L1", "a", 0, 1.0, 0), ("L1", "b", 100, 2.0, 0), ("L1", "c", 0, 9.0, 0)]))
    out = feats.flush()
    assert list(out.columns) == [
        "timestamp",
        "b_mean",
        "b_slope",
        "zz_mean",
        "zz_slope",
        "a_mean",
        "a_slope",
    ]
    assert out["zz_mean"].isna().all() and out["a_mean"].tolist() == [1.0]


def test_node_turns_simulated_readings_into_feature_rows() -> None:
    flow: dict[str, Any] = {
        "plc": {
            "type": "simulate",
            "realtime": False,
            "duration": 120,
            "batch_size": 600,
            "defect_interval": 120,
            "wires": ["feat"],
        },
        "feat": {
            "type": "features",
            "size": "10s",
            "step": "1s",
            "aggregations": ["mean", "std", "slope"],
            "labels": ["defect"],
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    out = run_flow(flow).frame("cap")
    assert list(out.columns[:3]) == ["timestamp", "line", "cooling_water_flow_mean"]
    assert len(out) == 129  # windows ending 1 s .. 129 s: flush emits the partial tail too
    assert out["timestamp"].diff().dropna().eq(pd.Timedelta("1s")).all()
    assert out["defect"].max() == 1  # the episode's defect shows in the carried label
    temp = out["furnace_temp_mean"].to_numpy()
    assert np.all((temp > 1100) & (temp < 1300))


def test_partial_false_emits_only_full_windows_per_line() -> None:
    """A defect model is trained on full windows: `partial: false` leaves out each line's
    first windows (they start before its first reading) and the tail `flush` would add, and
    the windows it keeps are the same rows as with `partial: true`."""
    rows: list[Row] = [
        (line, "a", t, float(t % 7), 0)
        for line, start in (("L1", 0), ("L2", 4_500))  # L2 starts later, mid-second
        for t in range(start, 30_000, 100)
    ]
    outputs = {}
    for partial in (True, False):
        feats = Featurizer(
            parse_duration("10s"), parse_duration("1s"), ["mean", "count"], by=["line"],
            partial=partial,
        )  # fmt: skip
        parts = [feats.push(frame(rows[i : i + 37]))[0] for i in range(0, len(rows), 37)]
        outputs[partial] = pd.concat([*parts, feats.flush()], ignore_index=True)
    full, every = outputs[False], outputs[True]
    seconds = (full["timestamp"] - pd.Timestamp(BASE, tz="UTC")).dt.total_seconds()
    ends = {line: seconds[full["line"] == line].astype(int).tolist() for line in ("L1", "L2")}
    assert ends == {"L1": list(range(10, 31)), "L2": list(range(15, 31))}
    assert (full["a_count"] == 100).all()  # ten seconds of 10 Hz readings in every row
    kept = every.merge(full[["timestamp", "line"]], on=["timestamp", "line"])
    pd.testing.assert_frame_equal(
        kept.sort_values(["line", "timestamp"], ignore_index=True),
        full.sort_values(["line", "timestamp"], ignore_index=True),
    )
    assert len(every) > len(full) and (every["a_count"] < 100).any()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"size": "10s", "step": "3s"}, "multiple of step"),
        ({"size": "0s"}, "positive"),
        ({"size": "10s", "aggregations": ["median"]}, "aggregations.0"),
    ],
)
def test_bad_config_is_a_flow_error(config: dict[str, Any], message: str) -> None:
    flow = {
        "src": {"type": "inject", "wires": ["f"]},
        "f": {"type": "features", **config, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    [problem] = check_text(flow).errors
    assert problem.node == "f" and message in problem.message


def test_a_bad_value_fails_its_batch_only_and_missing_lines_are_one_group() -> None:
    feats = Featurizer(parse_duration("1s"), by=["line"])
    bad = frame([("L1", "a", 0, 1.0, 0)]).assign(value=["oops"])
    with pytest.raises((ValueError, TypeError)):
        feats.push(bad)
    outs = []
    for second in range(3):  # the node goes on; rows without a line are one group, not three
        rows = frame([("L1", "a", second * 1000, 1.0, 0), ("L1", "a", second * 1000 + 1, 2.0, 0)])
        outs.append(feats.push(rows.assign(line=[None, float("nan")]))[0])
    out = pd.concat([*outs, feats.flush()], ignore_index=True)
    assert len(feats._groups) == 1
    assert out["line"].isna().all() and out["timestamp"].is_unique
    assert out["a_mean"].tolist() == [1.5, 1.5, 1.5]
