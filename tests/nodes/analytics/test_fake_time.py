"""Fake time is honoured by every time-based node of this family: alert (`for` and `cooldown`
over rows stamped at fake times), watchdog (silence timeouts, record times), simulate
(realtime pacing and its default start), predict (the model file's reload check).

Each test runs the node in a FlowHarness on a FakeClock and asserts what came out at which
fake time; nothing sleeps and nothing is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.nodes.analytics import ml
from flowengine.testing import FakeClock, FlowHarness, check_text
from tests.helpers.ml import history

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
SINK = {"out": {"type": "debug", "rows": 0, "level": "debug"}}


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def run(
    flow: dict[str, Any],
    body: Callable[[FlowHarness], Awaitable[None]],
    start: pd.Timestamp = T0,
    **options: Any,
) -> FlowHarness:
    async def main() -> FlowHarness:
        harness = FlowHarness(check_text(flow), clock=FakeClock(start), **options)
        async with harness as h:
            await body(h)
        return harness

    return asyncio.run(asyncio.wait_for(main(), 120))


def events(frames: list[pd.DataFrame]) -> list[tuple[str, pd.Timestamp]]:
    return [(e, t) for f in frames for e, t in zip(f["event"], f["timestamp"], strict=True)]


# ---- alert ------------------------------------------------------------------------------------
def test_alert_for_raises_once_rows_stamped_at_fake_times_have_held_long_enough() -> None:
    flow = {
        "tick": {"type": "inject", "interval": 1, "rows": [{"value": 0.9}], "wires": ["a"]},
        "a": {"type": "alert", "condition": "value > 0.8", "for": "5s", "wires": ["out"]},
        **SINK,
    }

    async def body(h: FlowHarness) -> None:
        await h.advance(4.999)
        assert h.outputs("a") == []
        await h.advance(0.001)
        assert events(h.outputs("a")) == [("raise", at(5))]
        await h.advance(60)
        assert len(h.outputs("a")) == 1  # still active: no second raise

    run(flow, body)


def test_alert_cooldown_holds_back_a_raise_until_fake_time_has_passed_it() -> None:
    flow = {
        "a": {
            "type": "alert",
            "column": "value",
            "raise_at": 0.8,
            "cooldown": "30s",
            "wires": ["out"],
        },
        **SINK,
    }

    async def body(h: FlowHarness) -> None:
        async def reading(value: float) -> None:  # a live reading, stamped now
            await h.feed("a", pd.DataFrame({"timestamp": [h.clock.now()], "value": [value]}))

        for second, value in enumerate([0.9, 0.5, 0.9, 0.5]):
            await h.advance_to(at(second))
            await reading(value)
        await h.advance_to(at(31))  # 30 s after the clear at +1: allowed again
        await reading(0.9)

    h = run(flow, body)
    assert events(h.outputs("a")) == [("raise", T0), ("clear", at(1)), ("raise", at(31))]


# ---- watchdog ---------------------------------------------------------------------------------
def test_watchdog_raises_at_the_fake_timeout_and_clears_when_data_returns() -> None:
    flow = {
        "w": {"type": "watchdog", "timeout": "30s", "expected": ["b"], "wires": ["out"]},
        **SINK,
    }

    async def body(h: FlowHarness) -> None:
        await h.advance(10)
        await h.feed("w", pd.DataFrame({"sensor": ["a"], "value": [1.0]}))
        await h.advance(19.999)
        assert h.outputs("w") == []
        await h.advance(0.001)  # `b` never reported: 30 s after the start
        await h.advance(9.999)
        assert events(h.outputs("w")) == [("raise", at(30))]
        await h.advance(0.001)  # `a`: 30 s after it was seen at +10
        assert events(h.outputs("w")) == [("raise", at(30)), ("raise", at(40))]
        await h.advance(5)
        await h.feed("w", pd.DataFrame({"sensor": ["a"], "value": [2.0]}))

    h = run(flow, body)
    records = pd.concat(h.outputs("w"), ignore_index=True)
    assert records[["event", "sensor", "silent_for"]].values.tolist() == [
        ["raise", "b", 30.0],
        ["raise", "a", 30.0],
        ["clear", "a", 35.0],
    ]
    assert records["timestamp"].tolist() == [at(30), at(40), at(45)]
    assert records["last_seen"].tolist()[1] == at(10)
    assert h.counters("w") == {"raised": 2, "cleared": 1, "errors": 0}


# ---- simulate ---------------------------------------------------------------------------------
def test_simulate_in_realtime_emits_each_tick_when_fake_time_reaches_it() -> None:
    flow = {
        "sim": {"type": "simulate", "rate": 2, "sensors": 1, "count": 6, "wires": ["out"]},
        **SINK,
    }
    start = pd.Timestamp("2026-05-01T08:00:00.250Z")

    async def body(h: FlowHarness) -> None:
        got = lambda: [t for f in h.outputs("sim") for t in f["timestamp"]]  # noqa: E731
        assert got() == [start]  # tick 0 is due at the start (default start: now)
        await h.advance(0.499)
        assert len(got()) == 1
        await h.advance(0.001)
        assert got() == [start, start + pd.Timedelta(seconds=0.5)]
        await h.advance(60)
        assert got() == [start + pd.Timedelta(seconds=0.5 * k) for k in range(6)]

    run(flow, body, start=start)


# ---- predict ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two binary models on different data, so their versions differ."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, seed in (("first", 11), ("second", 12)):
        trained = ml.train(
            history(seed=seed, hours=0.2),
            "defect",
            horizon=20.0,
            folds=2,
            name="line3",
            kind="logistic",
        )
        paths[name] = ml.save(trained, folder / f"{name}.joblib")[0]
    return paths


def test_predict_checks_its_model_file_when_fake_time_says_so(
    models: dict[str, Path], tmp_path: Path
) -> None:
    live = tmp_path / "live.joblib"
    live.write_bytes(models["first"].read_bytes())
    ml.card_path(live).write_bytes(ml.card_path(models["first"]).read_bytes())
    features = history(seed=5, hours=0.05).drop(columns="defect")
    batch = lambda i: features.iloc[i * 3 : i * 3 + 3]  # noqa: E731
    flow = {
        "p": {"type": "predict", "model": str(live), "check_every": "10s", "wires": ["out"]},
        **SINK,
    }
    first, second = (ml.load_model(models[n]).version for n in ("first", "second"))

    async def body(h: FlowHarness) -> None:
        version = lambda: h.outputs("p")[-1]["model_version"].iloc[0]  # noqa: E731
        await h.feed("p", batch(0))
        tmp = tmp_path / ".swap.joblib"
        tmp.write_bytes(models["second"].read_bytes())
        tmp.replace(live)  # atomic, as `flowengine train` writes it
        await h.advance(9.9)
        await h.feed("p", batch(1))  # not time to look yet
        await h.feed("p", batch(2))
        assert version() == first and h.counters("p") == {"errors": 0}
        await h.advance(0.1)
        await h.feed("p", batch(3))  # looks, loads in a thread; this batch keeps the old one
        assert version() == first
        await h.feed("p", batch(4))  # the load has finished (settled): swapped in
        assert version() == second

    h = run(flow, body)
    assert h.counters("p") == {"reloads": 1, "errors": 0}
    assert [f["model_version"].iloc[0] for f in h.outputs("p")] == [first] * 4 + [second]
