"""Checkpoints of the analytics types: restored after any batch, a node emits what an
uninterrupted one does (windows, panes and watermarks at any cut), and snapshots pickle."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.analytics import ml
from flowengine.registry import default_registry
from flowengine.types import Batch
from tests.helpers.ml import history
from tests.helpers.state import Driven, Emitted, assert_resumes, assert_same, pickled
from tests.helpers.windows import Row, frame


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[pd.DataFrame], int, int]:
    """Rows of two sensors on two lines, shuffled within a lateness (plus a few rows beyond
    it, for the error port), cut into batches; and the batch after which the node crashes."""
    rows: list[Row] = []
    for sensor in ("a", "b"):
        times = draw(st.sets(st.integers(0, 20_000), min_size=1, max_size=25))
        rows += [(sensor, t, draw(st.integers(-400, 400)) / 4) for t in sorted(times)]
    lateness = draw(st.integers(0, 3000))
    jitter = [draw(st.integers(0, lateness + 1500)) for _ in rows]  # some come too late
    order = sorted(range(len(rows)), key=lambda i: rows[i][1] + jitter[i])
    arrived = [rows[i] for i in order]
    cuts = sorted(draw(st.sets(st.integers(1, len(rows)), max_size=6)) | {0, len(rows)})
    lines = draw(st.lists(st.sampled_from(["l1", "l2"]), min_size=len(rows), max_size=len(rows)))
    batches = [
        frame(arrived[a:b]).assign(line=lines[a:b]) for a, b in itertools.pairwise(cuts) if b > a
    ]
    return batches, draw(st.integers(0, len(batches))), lateness


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from([(1000, 1000), (2500, 500), (3000, 1000), (1000, 1500)]))
def test_window_resumes_at_any_cut(
    case: tuple[list[pd.DataFrame], int, int], shape: tuple[int, int]
) -> None:
    batches, cut, lateness = case
    size, step = shape
    config = {
        "size": f"{size}ms",
        "step": f"{step}ms",
        "lateness": f"{lateness}ms",
        "aggregations": ["mean", "std", "min", "max", "last", "count", "range", "slope"],
    }
    assert_resumes("window", config, batches, cut)


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from([(1000, 1000), (3000, 1000), (2000, 500)]))
def test_features_resume_at_any_cut(
    case: tuple[list[pd.DataFrame], int, int], shape: tuple[int, int]
) -> None:
    batches, cut, lateness = case
    size, step = shape
    config = {"size": f"{size}ms", "step": f"{step}ms", "lateness": f"{lateness}ms"}
    assert_resumes("features", config, batches, cut)


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from([500, 1000, 2000]), st.sampled_from([None, "1500ms"]))
def test_pivot_resumes_at_any_cut(
    case: tuple[list[pd.DataFrame], int, int], freq: int, tolerance: str | None
) -> None:
    batches, cut, lateness = case
    config = {
        "freq": f"{freq}ms",
        "tolerance": tolerance,
        "lags": [1, 3],
        "deltas": [2],
        "lateness": f"{lateness}ms",
    }
    assert_resumes("pivot", config, batches, cut)


def _alert_rows(seconds: range, values: list[float], line: str) -> pd.DataFrame:
    start = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": [start + pd.Timedelta(seconds=s) for s in seconds],
            "line": line,
            "value": values,
            "x": [v * 2 for v in values],
        }
    )


# two lines; raises need 2 s above 0.6 (for), escalate at 0.8, clear below 0.4 (hysteresis),
# then a 5 s cooldown; every cut falls inside some pending, active or cooling state
ALERTS = [
    _alert_rows(range(0, 3), [0.1, 0.7, 0.7], "1"),
    _alert_rows(range(3, 6), [0.7, 0.9, 0.5], "1"),
    _alert_rows(range(0, 4), [0.7, 0.7, 0.7, 0.3], "2"),
    _alert_rows(range(6, 9), [0.3, 0.9, 0.9], "1"),
    _alert_rows(range(9, 16), [0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9], "1"),
]


@pytest.mark.parametrize("cut", range(len(ALERTS) + 1))
def test_alert_resumes(cut: int) -> None:
    config = {
        "column": "value",
        "levels": {"warning": 0.6, "critical": 0.8},
        "clear_at": 0.4,
        "for": "2s",
        "cooldown": "5s",
        "key": ["line"],
        "features": ["x"],
    }
    out = assert_resumes("alert", config, ALERTS, cut)
    events = pd.concat([f for _, f in out])
    assert events["event"].tolist() == [
        *("raise", "escalate", "raise", "clear", "clear"),
        *("raise", "clear"),  # line 1 raises again only after its cooldown, at 11 s
    ]


async def _simulated(config: dict[str, Any], cut: int | None, pause: float = 0.0) -> Emitted:
    """Every batch of a simulate source; with ``cut``, restored into a fresh one after that."""
    first = Driven("simulate", config)
    await first.node.start()
    if cut is None:
        await first.drain()
        return first.sent
    await first.read(cut)
    state = pickled(first.node)
    await asyncio.sleep(pause)
    second = Driven("simulate", config)
    await second.node.start()
    second.node.restore(state)
    await second.drain()
    return first.sent + second.sent


@pytest.mark.parametrize("cut", [0, 1, 4, 5, 17])
def test_simulate_continues_its_series(cut: int) -> None:
    # 7-row batches of 3 sensors, so batches straddle ticks and (with a small block) blocks
    config = {"realtime": False, "count": 40, "sensors": 3, "batch_size": 7, "seed": 4}
    expected = asyncio.run(_simulated(config, None))
    assert sum(len(f) for _, f in expected) == 120
    assert_same(asyncio.run(_simulated(config, cut)), expected)


def test_realtime_simulate_keeps_its_timeline_across_a_restart() -> None:
    config = {"realtime": True, "rate": 200.0, "count": 12, "sensors": 2}
    expected = pd.concat([f for _, f in asyncio.run(_simulated(config, None))])
    resumed = pd.concat([f for _, f in asyncio.run(_simulated(config, 5, pause=0.1))])

    def relative(f: pd.DataFrame) -> pd.DataFrame:
        return f.assign(timestamp=f["timestamp"] - f["timestamp"].iloc[0]).reset_index(drop=True)

    pd.testing.assert_frame_equal(relative(resumed), relative(expected))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    trained = ml.train(history(seed=11, hours=0.25), "defect", folds=2, kind="logistic")
    return Path(ml.save(trained, folder / "m.joblib")[0])


def test_predict_keeps_no_state_and_scores_the_same(model: Path) -> None:
    rows = history(seed=11, hours=0.25).iloc[:30]
    batches = [rows.iloc[i : i + 10] for i in range(0, 30, 10)]
    out = assert_resumes("predict", {"model": str(model)}, batches, 1, model.parent)
    assert [len(f) for _, f in out] == [10, 10, 10]


#: A valid config of each analytics type with required settings (others use defaults).
CONFIGS: dict[str, dict[str, Any]] = {
    "alert": {"column": "value", "raise_at": 1.0},
    "pivot": {"freq": "1s"},
    "simulate": {"realtime": False, "count": 5},
    "window": {"size": "1s"},
    "watchdog": {"timeout": "30s"},
}
ANALYTICS = sorted(
    name
    for name in default_registry().names()
    if default_registry().get(name).__module__.startswith("flowengine.nodes.analytics.")
)


@pytest.mark.parametrize("type_name", ANALYTICS)
def test_snapshot_pickles_after_a_batch(type_name: str, model: Path) -> None:
    config = {"model": str(model)} if type_name == "predict" else CONFIGS.get(type_name, {})

    async def scenario() -> Any:
        driven = Driven(type_name, config, model.parent)
        await driven.node.start()
        if driven.node.kind == "source":
            await driven.read(2)
        elif type_name != "predict":  # predict wants feature rows: its own test above
            batch = frame([("a", 0, 1.0), ("b", 500, 2.0), ("a", 1500, 3.0)])
            await driven.feed([Batch(batch)])
        state = pickled(driven.node)
        fresh = Driven(type_name, config, model.parent)
        await fresh.node.start()
        fresh.node.restore(state)
        await driven.node.close()
        await fresh.node.close()
        return state

    assert (asyncio.run(scenario()) is None) == (type_name == "predict")
