"""FlowHarness and Runtime.settled: a flow on a fake clock, fed by hand, every node observed.

Settling is deterministic: no test here waits on the wall clock, yet a slow sink, a node that
works in a thread and a node that hands work to a background thread are all waited for, and a
node asleep on the fake clock is not.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pandas as pd
import pytest

from flowengine.harness import StateRejected
from flowengine.node import NodeConfig, Sink, Source, Transform, option
from flowengine.testing import FakeClock, FlowHarness, check_text
from flowengine.types import Batch, Result

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


class Empty(NodeConfig):
    pass


class Plc(Source[Empty]):
    """An I/O source that must never run in a test (it would need a device)."""

    io = True
    outputs = ("out", "alarms")

    async def start(self) -> None:
        raise ConnectionError("a test reached for the network")


class Historian(Sink[Empty]):
    """An I/O sink that must never run in a test."""

    io = True

    async def start(self) -> None:
        raise ConnectionError("a test reached for the network")

    def write(self, batch: Batch) -> None:
        raise AssertionError("unreachable")


class Split(Transform[Empty]):
    """`value` >= 10 to `high`, the rest to `low`; counts and reports rows without a value;
    a batch with a `boom` column raises."""

    outputs = ("high", "low")

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        if "boom" in frame:
            raise ValueError("boom column")
        missing = int(frame["value"].isna().sum())
        if missing:
            self.ctx.count("parse_errors", missing)
            self.ctx.error(f"{missing} rows without a value")
        frame = frame.dropna(subset=["value"])
        return {"high": frame[frame["value"] >= 10], "low": frame[frame["value"] < 10]}


class SlowConfig(NodeConfig):
    seconds: float = option(0.02, description="Real seconds per batch.")


class Threaded(Transform[SlowConfig]):
    """Works in a thread (``asyncio.to_thread``) inside ``process``."""

    async def process(self, batch: Batch) -> Result:
        await asyncio.to_thread(time.sleep, self.config.seconds)
        return batch.frame.assign(threaded=True)


class Background(Transform[SlowConfig]):
    """Hands each batch to a background task that works in a thread, then sends (like
    predict's model reload: ``process`` returns before the work is done)."""

    async def start(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def process(self, batch: Batch) -> Result:
        task = asyncio.get_running_loop().create_task(self._later(batch.frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _later(self, frame: pd.DataFrame) -> None:
        await asyncio.to_thread(time.sleep, self.config.seconds)
        await self.ctx.send(frame.assign(background=True))


class RealSleep(Sink[SlowConfig]):
    """A slow sink in real time (``asyncio.sleep``, not the clock): settling waits for it."""

    written: ClassVar[list[int]] = []

    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(self.config.seconds)
        self.written.append(len(batch.frame))


class Picky(Transform[Empty]):
    """Keeps a count; its ``restore`` refuses a state without one (as a node whose state
    format changed would)."""

    def __init__(self, config: Empty, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.n = 0

    def snapshot(self) -> dict[str, int]:
        return {"n": self.n}

    def restore(self, state: Any) -> None:
        self.n = int(state["n"])

    def process(self, batch: Batch) -> Result:
        self.n += len(batch.frame)
        return batch.frame.assign(n=self.n)


TYPES: dict[str, Any] = {
    "plc": Plc,
    "historian": Historian,
    "split": Split,
    "threaded": Threaded,
    "background": Background,
    "realsleep": RealSleep,
    "picky": Picky,
}


def frame(*values: float, **extra: Any) -> pd.DataFrame:
    n = len(values)
    stamps = [T0 + pd.Timedelta(seconds=i) for i in range(n)]
    return pd.DataFrame({"timestamp": stamps, "sensor": "t", "value": list(values), **extra})


def values(frames: list[pd.DataFrame], column: str = "value") -> list[Any]:
    return [v for f in frames for v in f[column].tolist()]


def scenario(
    flow: dict[str, Any], body: Callable[[FlowHarness], Awaitable[None]], **options: Any
) -> FlowHarness:
    """Run ``body`` inside a harness over ``flow`` on a fake clock; the harness after exit."""

    async def main() -> FlowHarness:
        clock = options.pop("clock", None) or FakeClock(T0)
        harness = FlowHarness(check_text(flow, types=TYPES), clock=clock, **options)
        async with harness as h:
            await body(h)
        return harness

    return asyncio.run(asyncio.wait_for(main(), 60))


PLANT = {
    "plc": {"type": "plc", "wires": {"out": ["split"], "alarms": ["hist"]}},
    "split": {"type": "split", "wires": {"high": ["hist"], "low": ["low"], "error": ["errs"]}},
    "low": {"type": "filter", "query": "value >= 0", "wires": ["hist"]},
    "hist": {"type": "historian"},
    "errs": {"type": "debug"},
}


# ---- hostile cases first --------------------------------------------------------------------
def test_io_nodes_never_run_they_are_fed_and_captured() -> None:
    async def body(h: FlowHarness) -> None:
        await h.feed("plc", frame(12.0, 3.0, -1.0))
        await h.feed("plc", frame(99.0), port="alarms")

    h = scenario(PLANT, body)
    assert h.errors("plc") == [] and h.errors("hist") == []  # neither connected anywhere
    assert values(h.outputs("plc")) == [12.0, 3.0, -1.0]
    assert values(h.outputs("plc", "alarms")) == [99.0]
    assert sorted(values(h.outputs("hist"))) == [3.0, 12.0, 99.0]  # what the sink received
    assert h.report is not None and h.report.drained


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": "nope"}, "target node 'nope'"),
        ({"target": ("low", "plc")}, "no path from 'low' to 'plc'"),
        ({"mocks": {"nope": {"out": []}}}, "'nope' is not in the flow"),
        ({"state": {"nope": {}}}, "state for node 'nope'"),
        ({"mocks": {"split": {"middle": [{"value": 1}]}}}, "does not have"),
        ({"feeders": {"split": ["left"]}}, "no input port 'left' to feed"),
        ({"feeders": {"plc": ["status"]}}, "no output port 'status' to feed"),
    ],
)
def test_bad_harness_options_are_refused_with_the_node_named(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FlowHarness(check_text(PLANT, types=TYPES), clock=FakeClock(), **options)


def test_feeding_what_is_not_fed_says_how_to_feed_it() -> None:
    flow = {
        "src": {"type": "inject", "interval": 60, "wires": ["split"]},
        "split": {"type": "split", "wires": {"high": ["hist"]}},
        "hist": {"type": "historian"},
    }

    async def body(h: FlowHarness) -> None:
        with pytest.raises(ValueError, match="runs for real: name it in feeders="):
            await h.feed("src", frame(1.0))
        with pytest.raises(ValueError, match="not fed on 'in'"):
            await h.feed("split", frame(1.0))
        with pytest.raises(KeyError, match="no node 'ghost'"):
            await h.feed("ghost", frame(1.0))

    scenario(flow, body, feeders={"hist": ["in"]})


def test_a_failing_batch_goes_to_error_with_its_message_even_when_unwired() -> None:
    flow = {"f": {"type": "split"}}

    async def body(h: FlowHarness) -> None:
        await h.feed("f", frame(1.0, boom=1))
        await h.feed("f", frame(float("nan"), 20.0))

    h = scenario(flow, body)
    assert h.errors("f") == ["ValueError: boom column", "1 rows without a value"]
    assert values(h.outputs("f", "error")) == [1.0]
    assert h.counters("f") == {"parse_errors": 1, "errors": 2}
    assert values(h.outputs("f", "high")) == [20.0] and h.outputs("f", "low") == []


# ---- settling ----------------------------------------------------------------------------------
def test_settled_covers_a_fan_out_and_every_port_is_observed() -> None:
    async def body(h: FlowHarness) -> None:
        await h.feed("plc", frame(12.0, 3.0, -1.0))
        assert values(h.outputs("split", "high")) == [12.0]  # no waiting: it is there
        assert values(h.outputs("split", "low")) == [3.0, -1.0]
        assert values(h.outputs("low")) == [3.0]
        assert sorted(values(h.outputs("hist"))) == [3.0, 12.0]

    scenario(PLANT, body)


def test_settled_covers_a_join_fed_on_both_inputs() -> None:
    flow = {
        "j": {"type": "join", "tolerance": 5, "wires": ["out"]},
        "out": {"type": "historian"},
    }

    async def body(h: FlowHarness) -> None:
        await h.feed("j", frame(7.0).rename(columns={"value": "setpoint"}), port="right")
        await h.feed("j", frame(1.0))  # `out` is the first input: left
        joined = h.outputs("out")
        assert len(joined) == 1 and joined[0]["setpoint"].tolist() == [7.0]
        assert h.inputs("j", "right")[0]["setpoint"].tolist() == [7.0]

    scenario(flow, body)


def test_settled_waits_for_a_slow_sink_in_real_time() -> None:
    RealSleep.written.clear()
    flow = {
        "src": {
            "type": "frames",
            "frames": [[{"value": 1}], [{"value": 2}], [{"value": 3}]],
            "wires": ["slow"],
        },
        "slow": {"type": "realsleep", "seconds": 0.02},
    }

    async def body(h: FlowHarness) -> None:
        assert RealSleep.written == [1, 1, 1]  # entering settled: all three written

    scenario(flow, body)


def test_settled_waits_for_work_in_a_thread_and_in_a_background_thread() -> None:
    flow = {
        "t": {"type": "threaded", "wires": ["b"]},
        "b": {"type": "background", "wires": ["hist"]},
        "hist": {"type": "historian"},
    }

    async def body(h: FlowHarness) -> None:
        for i in range(3):
            await h.feed("t", frame(float(i)))
            got = h.outputs("hist")
            assert len(got) == i + 1
            assert got[-1][["value", "threaded", "background"]].values.tolist() == [
                [float(i), True, True]
            ]

    scenario(flow, body, feeders={"t": ["in"]})


def test_a_node_asleep_on_the_fake_clock_does_not_hold_settling_up() -> None:
    flow = {
        "d": {"type": "delay", "delay": 10, "queue_size": 1, "wires": ["hist"]},
        "hist": {"type": "historian"},
    }

    async def body(h: FlowHarness) -> None:
        for i in range(5):  # one held, one queued, the rest behind a full wire
            await h.feed("d", frame(float(i)))
        assert h.outputs("hist") == []
        await h.advance(9.999)
        assert h.outputs("hist") == []
        await h.advance(0.001)  # the three that were on their way, all due now
        assert values(h.outputs("hist")) == [0.0, 1.0, 2.0]
        await h.advance(10)  # the feeder sent the rest when there was room: 10 s ago
        assert values(h.outputs("hist")) == [0.0, 1.0, 2.0, 3.0, 4.0]

    scenario(flow, body)


def test_two_harnesses_settle_side_by_side_on_one_loop() -> None:
    flow = {
        "tick": {"type": "inject", "interval": 1, "rows": [{"value": 1.0}], "wires": ["d"]},
        "d": {"type": "delay", "delay": 0.5, "wires": ["hist"]},
        "hist": {"type": "historian"},
    }

    async def one(start: str) -> list[pd.Timestamp]:
        clock = FakeClock(start)
        async with FlowHarness(check_text(flow, types=TYPES), clock=clock) as h:
            for _ in range(4):
                await h.advance(1)
        return [t for f in h.outputs("hist") for t in f["timestamp"]]

    async def both() -> list[list[pd.Timestamp]]:
        return list(await asyncio.gather(one("2026-01-01T00:00:00Z"), one("2030-06-01T12:00Z")))

    first, second = asyncio.run(asyncio.wait_for(both(), 60))
    assert [t.second for t in first] == [0, 1, 2, 3, 4] and first[0].year == 2026
    assert [t.second for t in second] == [0, 1, 2, 3, 4] and second[0].year == 2030


# ---- targets, mocks, state, the end ------------------------------------------------------
def test_a_single_node_target_runs_that_node_alone() -> None:
    async def body(h: FlowHarness) -> None:
        await h.feed("low", frame(-5.0, 5.0))
        assert values(h.outputs("low")) == [5.0]
        with pytest.raises(KeyError, match="no node 'split'"):
            h.outputs("split")

    scenario(PLANT, body, target="low")


def test_a_range_target_keeps_the_paths_between_and_feeds_the_first() -> None:
    flow = {
        "src": {"type": "plc", "wires": ["a"]},
        "a": {"type": "compute", "columns": {"value": "value + 1"}, "wires": ["b"]},
        "b": {"type": "compute", "columns": {"value": "value * 10"}, "wires": ["c"]},
        "c": {"type": "compute", "columns": {"value": "value - 1"}, "wires": ["d"]},
        "d": {"type": "historian"},
    }

    async def body(h: FlowHarness) -> None:
        await h.feed("b", frame(1.0, 2.0))
        assert values(h.outputs("c")) == [9.0, 19.0]
        with pytest.raises(KeyError):
            h.outputs("d")

    scenario(flow, body, target=("b", "c"))


def test_mocks_replace_a_source_and_a_transform_with_fixed_output() -> None:
    flow = {
        "src": {"type": "inject", "interval": 5, "wires": ["model"]},
        "model": {"type": "compute", "columns": {"score": "value * 2"}, "wires": ["hist"]},
        "hist": {"type": "historian"},
    }
    mocks = {
        "src": {"out": [{"timestamp": "2026-01-01T00:00:00Z", "value": 1.0}]},
        "model": {"out": pd.DataFrame({"score": [0.9]})},
    }

    async def body(h: FlowHarness) -> None:
        assert values(h.outputs("src")) == [1.0]  # once, at the start
        await h.advance(60)  # a mocked inject has no schedule
        assert values(h.outputs("src")) == [1.0]
        await h.feed("model", frame(5.0))  # a mocked transform answers every batch alike
        assert values(h.outputs("hist"), "score") == [0.9, 0.9]

    h = scenario(flow, body, mocks=mocks)
    assert h.outputs("src")[0]["timestamp"].tolist() == [T0]


def test_seeded_state_is_restored_before_the_first_batch() -> None:
    flow = {"b": {"type": "batch", "count": 3, "wires": ["hist"]}, "hist": {"type": "historian"}}
    held = {"frames": [frame(1.0, 2.0)], "rows": 2, "age": 0.0}

    async def body(h: FlowHarness) -> None:
        await h.feed("b", frame(3.0))
        assert values(h.outputs("b")) == [1.0, 2.0, 3.0]

    scenario(flow, body, state={"b": held})


def test_a_state_the_node_refuses_fails_with_its_reason_and_nothing_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = {
        "src": {"type": "plc", "wires": ["p"]},
        "p": {"type": "picky", "wires": ["hist"]},
        "hist": {"type": "historian"},
    }
    reached: list[str] = []

    async def body(h: FlowHarness) -> None:
        reached.append("body")  # never: the case stops before its first step

    with pytest.raises(StateRejected) as info:
        scenario(flow, body, state={"p": {"count": 3}})
    assert str(info.value) == "node 'p' rejected the given state: KeyError: 'n'"
    assert reached == []
    gc.collect()  # an exception nobody retrieved is logged when its task is collected
    assert "never retrieved" not in caplog.text


def test_a_state_the_node_takes_is_used() -> None:
    flow = {"p": {"type": "picky", "wires": ["hist"]}, "hist": {"type": "historian"}}

    async def body(h: FlowHarness) -> None:
        await h.feed("p", frame(1.0, 2.0))

    h = scenario(flow, body, state={"p": {"n": 40}})
    assert values(h.outputs("p"), "n") == [42, 42]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"d": {"last": {}}}, r"node 'd' keeps no state 'last' \(its state: _last\) \(did you"),
        ({"d": [1, 2]}, "state for node 'd' must map its state names"),
        ({"f": {"x": 1}}, "state for node 'f', whose type 'filter' keeps none"),
        ({"hist": {"x": 1}}, r"node 'hist', which this test replaces by a stand-in \(Drop: mocked"),
    ],
)
def test_a_state_that_would_be_ignored_is_refused_before_the_run(
    state: dict[str, Any], message: str
) -> None:
    flow = {
        "d": {"type": "deadband", "band": 1.0, "wires": ["f"]},
        "f": {"type": "filter", "query": "value > 0", "wires": ["hist"]},
        "hist": {"type": "historian"},
    }
    with pytest.raises(ValueError, match=message):
        FlowHarness(check_text(flow, types=TYPES), clock=FakeClock(), state=state)


def test_leaving_the_harness_drains_and_what_is_flushed_is_observed() -> None:
    flow = {"b": {"type": "batch", "count": 100, "wires": ["hist"]}, "hist": {"type": "historian"}}

    async def body(h: FlowHarness) -> None:
        await h.feed("b", frame(1.0, 2.0))
        assert h.outputs("b") == []

    h = scenario(flow, body)
    assert values(h.outputs("b")) == [1.0, 2.0]
    assert values(h.outputs("hist")) == [1.0, 2.0]
    assert h.report is not None and h.report.drained and h.report.lost_batches == 0


@pytest.mark.parametrize(("delay", "drained"), [(10, True), (3600, False)])
def test_a_drain_waiting_on_the_fake_clock_moves_it_up_to_the_drain_timeout(
    delay: float, drained: bool
) -> None:
    flow = {"d": {"type": "delay", "delay": delay, "wires": ["h"]}, "h": {"type": "historian"}}
    clock = FakeClock(T0)

    async def body(h: FlowHarness) -> None:
        await h.feed("d", frame(1.0))

    h = scenario(flow, body, clock=clock)
    assert h.report is not None and h.report.drained is drained
    if drained:
        assert values(h.outputs("h")) == [1.0]
        assert clock.now() == T0 + pd.Timedelta(seconds=delay)
    else:  # the default drain_timeout, 15 s, passed first: cut short, as in production
        assert h.outputs("h") == [] and clock.now() == T0


def test_leaving_sends_what_feeders_still_hold_before_the_end_of_stream() -> None:
    flow = {
        "d": {"type": "delay", "delay": 5, "queue_size": 1, "wires": ["h"]},
        "h": {"type": "historian"},
    }
    clock = FakeClock(T0)

    async def body(h: FlowHarness) -> None:
        for i in range(5):  # two of them wait in the feeder: the wire is full
            await h.feed("d", frame(float(i)))

    h = scenario(flow, body, clock=clock)
    assert values(h.outputs("h")) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert clock.now() == T0 + pd.Timedelta(seconds=10)
    assert h.report is not None and h.report.drained


def test_a_failed_start_retries_on_the_fake_clock() -> None:
    flow = {
        "src": {"type": "plc", "wires": ["hist"]},
        "hist": {"type": "historian", "retry": {"initial": 5, "jitter": 0}},
    }

    async def body(h: FlowHarness) -> None:
        assert len(h.errors("hist")) == 1  # the first start, at once
        await h.advance(4.9)
        assert len(h.errors("hist")) == 1
        await h.advance(0.1)
        assert len(h.errors("hist")) == 2  # the retry, 5 fake seconds later
        assert h.errors("hist")[0] == (
            "start failed: ConnectionError: a test reached for the network"
        )

    scenario(flow, body, replace_io=False, feeders={"src": ["out"]})
