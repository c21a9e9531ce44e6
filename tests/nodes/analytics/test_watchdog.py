"""Watchdog: time moved by hand first (a replaced clock, no sleeping), then restarts from a
checkpoint, poison keys and bad config, then real flows where a source falls silent."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowengine.node import NodeConfig, Source, option
from flowengine.runtime import Runtime
from flowengine.testing import Capture, check_text, run_flow
from flowengine.types import Batch
from tests.helpers.peers import until
from tests.helpers.state import Driven, emitted, pickled
from tests.helpers.timed import T0, through

#: Where the hand-moved clock starts (any value: only differences count).
START = 1000.0


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Hand:
    """A watchdog driven directly, with its clocks replaced: `at(t)` moves time to START + t."""

    def __init__(self, start: float = START, **config: Any) -> None:
        self.driven = Driven("watchdog", {"timeout": 30, **config})
        self.clock = Clock(start)
        self.base = start
        node: Any = self.driven.node
        node.clock = self.clock
        node.wall = lambda: T0 + pd.Timedelta(seconds=self.clock.t - self.base)

    @property
    def node(self) -> Any:
        return self.driven.node

    def at(self, t: float) -> None:
        self.clock.t = self.base + t

    async def send(self, t: float, *sensors: Any, frame: pd.DataFrame | None = None) -> None:
        self.at(t)
        if frame is None:
            frame = pd.DataFrame({"sensor": list(sensors), "value": 1.0})
        await self.driven.feed([Batch(frame, origin="plc")])

    def check(self, t: float) -> None:
        """What the timer would send at t (it sleeps in real time: here it never wakes)."""
        self.at(t)
        self.driven.sent.extend(emitted(self.node.check()))

    def events(self, key: str = "sensor") -> list[tuple[Any, ...]]:
        """(event, key, silent_for) of every record so far, in order."""
        rows = [frame for _, frame in self.driven.sent]
        if not rows:
            return []
        records = pd.concat(rows, ignore_index=True)
        return list(zip(records["event"], records[key], records["silent_for"], strict=True))


def test_a_silent_sensor_raises_once_and_clears_when_its_data_returns() -> None:
    async def scenario() -> Hand:
        hand = Hand()
        await hand.node.start()
        await hand.send(0, "a", "b")
        await hand.send(20, "a")
        hand.check(29.9)
        assert hand.events() == []
        hand.check(30)  # b's deadline; a has until 50
        hand.check(45)  # no second raise for b
        await hand.send(49, "a")  # a keeps sending
        await hand.send(60, "b", "b")
        hand.check(78)
        hand.check(79)
        await hand.driven.finish()
        return hand

    hand = asyncio.run(scenario())
    assert hand.events() == [("raise", "b", 30.0), ("clear", "b", 60.0), ("raise", "a", 30.0)]
    records = pd.concat([f for _, f in hand.driven.sent], ignore_index=True)
    first = records.iloc[0]
    assert first["timestamp"] == first["since"] == T0 + pd.Timedelta(seconds=30)
    assert first["last_seen"] == T0 and first["severity"] == "warning"
    assert first["message"] == "b: no data for 30s (warning); last seen 00:00:00"
    assert records.iloc[1]["message"] == (
        "b: data again after 60s silence (cleared, warning since 00:00:30)"
    )
    assert hand.node.ctx.stats.counters == {"raised": 2, "cleared": 1}


def test_an_expected_sensor_that_never_reports_raises_timeout_after_the_start() -> None:
    async def scenario() -> Hand:
        hand = Hand(expected=["a", "c"], severity="critical", timeout="5m")
        await hand.node.start()
        await hand.send(100, "a")
        hand.check(299)
        hand.check(300)  # c: 300 s since the start; a: 200 s since its row
        await hand.send(301, "c")
        hand.check(400)
        return hand

    hand = asyncio.run(scenario())
    assert hand.events() == [("raise", "c", 300.0), ("clear", "c", 301.0), ("raise", "a", 300.0)]
    records = pd.concat([f for _, f in hand.driven.sent], ignore_index=True)
    assert records["severity"].tolist() == ["critical"] * 3
    assert records.iloc[0]["message"] == "c: no data since the start, 5min ago (critical)"
    assert pd.isna(records.iloc[0]["last_seen"])


def test_scope_source_watches_the_whole_input() -> None:
    async def scenario() -> Hand:
        hand = Hand(scope="source", timeout=10)
        await hand.node.start()
        await hand.send(5, "a")
        await hand.send(12, "b")  # another sensor: still the same input
        await hand.send(20, frame=pd.DataFrame({"sensor": [], "value": []}))  # no rows: no data
        hand.check(22)
        await hand.send(30, "c")
        return hand

    hand = asyncio.run(scenario())
    assert hand.events("source") == [("raise", "plc", 10.0), ("clear", "plc", 18.0)]
    assert "sensor" not in pd.concat([f for _, f in hand.driven.sent])


def test_restored_after_a_restart_it_neither_raises_again_nor_forgets() -> None:
    async def before() -> tuple[Hand, Any]:
        hand = Hand(expected=["never"])
        await hand.node.start()
        await hand.send(0, "a", "b")
        await hand.send(25, "a")
        hand.check(30)  # b and never raise
        await hand.send(40, "a")
        hand.at(50)  # the checkpoint: a seen 10 s ago, b and never silent
        state = pickled(hand.node)
        await hand.node.close()  # the crash
        return hand, state

    async def after(state: Any) -> Hand:
        hand = Hand(start=77_000.0, expected=["never"])  # another process, another origin
        await hand.node.start()
        hand.node.restore(state)
        hand.check(0)
        hand.check(19.9)
        await asyncio.sleep(0)  # let the re-armed timer look too: nothing is due
        hand.check(20)  # a: 10 s before the checkpoint + 20 s after it
        await hand.send(21, "b")  # b's data returns: the alert from before the crash clears
        hand.check(5000)  # b again; never stays raised, once
        return hand

    first, state = asyncio.run(before())
    assert first.events() == [("raise", "never", 30.0), ("raise", "b", 30.0)]
    second = asyncio.run(after(state))
    assert second.events() == [("raise", "a", 30.0), ("clear", "b", 71.0), ("raise", "b", 4979.0)]


def test_poison_keys_are_ignored_and_100k_rows_of_1000_sensors_mark_each_once() -> None:
    n, sensors = 100_000, 1000
    names = np.array([f"s{i:04d}" for i in range(sensors)], dtype=object)
    frame = pd.DataFrame(
        {
            "sensor": names[np.arange(n) % sensors],
            "value": np.where(np.arange(n) % 7 == 0, np.nan, 1e308),
            "line": np.arange(n) // 1000,
        }
    )
    poison = pd.DataFrame({"sensor": [None, math.nan, pd.NA, 7], "value": [math.inf] * 4})

    async def scenario() -> Hand:
        hand = Hand(timeout=10)
        await hand.node.start()
        await hand.send(0, frame=pd.concat([frame, poison]))
        await hand.send(5, frame=frame[frame["sensor"] != "s0042"])
        hand.check(10)
        hand.check(14.9)
        return hand

    hand = asyncio.run(scenario())
    assert hand.events() == [("raise", "s0042", 10.0), ("raise", 7, 10.0)]
    assert len(hand.node._seen) == sensors + 1  # no key for None / NaN / NA
    line = pd.concat([f for _, f in hand.driven.sent])["line"].tolist()
    assert line[0] == frame.loc[frame["sensor"] == "s0042", "line"].iloc[-1]


def test_a_batch_without_the_key_column_goes_to_the_error_port() -> None:
    flow = {
        "src": {"type": "frames", "frames": [[{"tag": "a", "value": 1.0}]], "wires": ["w"]},
        "w": {"type": "watchdog", "timeout": 60, "wires": {"out": ["cap"], "error": ["bad"]}},
        "cap": {"type": "capture"},
        "bad": {"type": "capture"},
    }
    result = run_flow(flow)
    [batch] = result.batches("bad")
    assert batch.error == (
        "ValueError: no column 'sensor' to tell which sensor sent a row (columns: tag, value)"
    )
    assert not result.batches("cap")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timeout": "soon"}, "field 'timeout':"),
        ({"timeout": 0}, "field 'timeout': 0: a duration must be positive"),
        ({"timeout": "-5s"}, "field 'timeout':"),
        ({"timeout": math.inf}, "field 'timeout':"),
        ({}, "missing required field 'timeout'"),
        ({"timeout": 5, "scope": "line"}, "field 'scope':"),
        ({"timeout": 5, "scope": "source", "expected": ["a"]}, "it needs scope 'sensor'"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    checked = check_text({"w": {"type": "watchdog", **config}})
    texts = [p.message for p in checked.problems]
    assert not checked.ok and any(message in t for t in texts), texts


def test_durations_read_like_other_duration_options() -> None:
    checked = check_text({"w": {"type": "watchdog", "timeout": "5m"}})
    assert checked.ok
    assert checked.nodes["w"].config.timeout == 300.0  # type: ignore[attr-defined]


# ---- in running flows ---------------------------------------------------------------------


def test_records_have_the_columns_of_alert_records() -> None:
    alert = through(
        {"type": "alert", "column": "value", "raise_at": 5, "key": ["sensor"]},
        [[[0, "a", 1.0], [1, "a", 9.0]]],
    ).frame("cap")
    hand = Hand()

    async def scenario() -> None:
        await hand.node.start()
        await hand.send(0, "a")
        hand.check(30)
        await hand.driven.finish()

    asyncio.run(scenario())
    record = pd.concat([f for _, f in hand.driven.sent])
    assert set(alert.columns) - {"value"} <= set(record.columns)  # silent_for instead
    for column in ("timestamp", "since"):
        for frame in (alert, record):
            dtype = frame[column].dtype
            assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"


def test_a_source_that_stops_sending_raises_in_a_running_flow() -> None:
    rows = [{"sensor": "a", "value": 1.0}]
    flow = {  # one batch now, the next in an hour: the input falls silent, it does not end
        "src": {"type": "inject", "rows": rows, "interval": 3600, "wires": ["w"]},
        "w": {"type": "watchdog", "timeout": "200ms", "expected": ["a", "b"], "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    runtime = Runtime(check_text(flow))
    cap = runtime.node("cap")
    assert isinstance(cap, Capture)

    def raised() -> set[str]:
        return {s for b in cap.batches for s in b.frame["sensor"]}

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        await until(lambda: raised() == {"a", "b"}, task, timeout=30, what="both alerts")
        assert runtime.stats["src"].state == "ok"  # silent, still running
        runtime.stop()
        await task

    asyncio.run(main())
    records = pd.concat([b.frame for b in cap.batches], ignore_index=True)
    assert records["event"].tolist() == ["raise", "raise"]
    assert (records["silent_for"] >= 0.2).all()
    assert runtime.stats["w"].counters == {"raised": 2}


#: Opens the gate of `trickle` sources (module level: the same config must restore its state).
GATE = {"open": False}


class TrickleConfig(NodeConfig):
    frames: list[list[str]] = option(description="Batches of sensor names, in order.")
    gate: int = option(description="Batches sent before waiting for GATE.")


class Trickle(Source[TrickleConfig]):
    """Sends its batches, waits for GATE after `gate` of them, then idles (never ends).
    Its position is its state, so a restart from a checkpoint goes on from there."""

    state_attrs = ("n",)
    replayable = True

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> pd.DataFrame | None:
        while self.n >= len(self.config.frames) or (
            self.n >= self.config.gate and not GATE["open"]
        ):
            await asyncio.sleep(0.01)
        names = self.config.frames[self.n]
        self.n += 1
        return pd.DataFrame({"sensor": names, "value": 1.0})


def test_a_restart_from_a_checkpoint_neither_raises_again_nor_forgets(tmp_path: Path) -> None:
    text = f"""
version: 1
settings: {{checkpoint: 20ms, state_dir: {tmp_path}}}
nodes:
  src: {{type: trickle, frames: [[a, b], [a]], gate: 1, wires: [w]}}
  w: {{type: watchdog, timeout: 300ms, wires: [cap]}}
  cap: {{type: capture}}
"""

    def run(until_events: list[tuple[str, str]]) -> list[tuple[str, str]]:
        runtime = Runtime(check_text(text, types={"trickle": Trickle}, path=tmp_path / "w.yaml"))
        cap = runtime.node("cap")
        assert isinstance(cap, Capture)

        def events() -> list[tuple[str, str]]:
            frames = [b.frame for b in cap.batches]
            return [(e, s) for f in frames for e, s in zip(f["event"], f["sensor"], strict=True)]

        async def main() -> None:
            task = asyncio.create_task(runtime.run())
            await until(lambda: events() == until_events, task, what=str(until_events))
            runtime.stop()
            await task

        asyncio.run(main())
        return events()

    GATE["open"] = False
    assert sorted(run([("raise", "a"), ("raise", "b")])) == [("raise", "a"), ("raise", "b")]
    GATE["open"] = True  # the second run: a's data returns, b stays silent
    # until a falls silent again: b, still raised from before, would have raised long before
    assert run([("clear", "a"), ("raise", "a")]) == [("clear", "a"), ("raise", "a")]
