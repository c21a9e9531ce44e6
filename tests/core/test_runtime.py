"""The graph executor: backpressure, draining, fan-out isolation, error routing, retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

from flowengine.node import Done, NodeConfig, Sink, Source, Transform, option
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch, Result
from tests.helpers.peers import until


class CounterConfig(NodeConfig):
    batches: int = option(10, description="Batches to emit; 0 for endless.")
    rows: int = option(1, description="Rows per batch.")


class Counter(Source):
    """Emits numbered rows as fast as downstream takes them."""

    Config = CounterConfig
    config: CounterConfig

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> Result:
        cfg = self.config
        if cfg.batches and self.n >= cfg.batches:
            raise Done
        first = self.n * cfg.rows
        self.n += 1
        await asyncio.sleep(0)
        return pd.DataFrame({"seq": range(first, first + cfg.rows), "value": 1.0})


class SlowConfig(NodeConfig):
    delay: float = 0.01


class WatchedSink(Sink):
    """A slow sink that records how far the upstream source ran ahead at each write."""

    Config = SlowConfig
    config: SlowConfig
    runtime: Runtime | None = None

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.seen = 0
        self.ahead: list[int] = []
        self.rows: list[int] = []

    async def write(self, batch: Batch) -> None:
        assert WatchedSink.runtime is not None
        self.ahead.append(WatchedSink.runtime.stats["src"].batches_out - self.seen)
        self.seen += 1
        self.rows.extend(batch.frame["seq"].tolist())
        await asyncio.sleep(self.config.delay)


def make_runtime(nodes: dict[str, Any], **types: Any) -> Runtime:
    return Runtime(check_text(nodes, types={"counter": Counter, **types}))


def test_slow_sink_bounds_the_queue_and_slows_the_source():
    runtime = make_runtime(
        {
            "src": {"type": "counter", "batches": 0, "rows": 100, "wires": ["slow"]},
            "slow": {"type": "watched", "delay": 0.002, "queue_size": 4},
        },
        watched=WatchedSink,
    )
    WatchedSink.runtime = runtime
    sink = runtime.node("slow")

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        await until(lambda: sink.seen >= 60, task)  # unthrottled, thousands would be emitted
        runtime.stop()
        await task

    asyncio.run(main())
    wire = runtime._runs["slow"].inbox.wires[0]
    assert wire.capacity == 4
    # at each write the source was at most the queue plus the batch in hand ahead of the sink
    assert max(sink.ahead) <= 4 + 2
    emitted = runtime.stats["src"].batches_out
    assert emitted <= sink.seen + 4 + 1
    # drained: every emitted row written, in order
    assert sink.rows == list(range(emitted * 100))


def test_stop_mid_stream_loses_nothing():
    runtime = make_runtime(
        {
            "src": {"type": "counter", "batches": 0, "rows": 7, "wires": ["mid"]},
            "mid": {"type": "compute", "columns": {"double": "value * 2"}, "wires": ["slow"]},
            "slow": {"type": "watched", "delay": 0.001, "queue_size": 3},
        },
        watched=WatchedSink,
    )
    WatchedSink.runtime = runtime
    sink = runtime.node("slow")

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        await until(lambda: sink.seen >= 20, task)
        runtime.stop()
        return await task

    report = asyncio.run(main())
    assert report.drained and report.lost_batches == 0
    read = runtime.stats["src"].rows_out
    assert read == len(sink.rows) == runtime.stats["mid"].rows_out
    assert sink.rows == list(range(read))
    assert all(s.state == "stopped" for s in runtime.stats.values())


class Mutator(Transform):
    """Misbehaves on purpose: writes a column into its input frame in place."""

    class Config(NodeConfig):
        column: str
        mark: float

    def process(self, batch: Batch) -> Result:
        batch.frame[self.config.column] = 1
        batch.frame.loc[batch.frame.index[0], "value"] = self.config.mark
        return batch.frame


def test_fan_out_recipients_do_not_see_each_others_changes():
    result = run_flow(
        {
            "src": {"type": "counter", "batches": 3, "rows": 5, "wires": ["a", "b"]},
            "a": {"type": "mutator", "column": "from_a", "mark": -1, "wires": ["cap_a"]},
            "b": {"type": "mutator", "column": "from_b", "mark": -2, "wires": ["cap_b"]},
            "cap_a": {"type": "capture"},
            "cap_b": {"type": "capture"},
        },
        types={"counter": Counter, "mutator": Mutator},
    )
    a, b = result.frame("cap_a"), result.frame("cap_b")
    assert "from_a" in a and "from_b" not in a
    assert "from_b" in b and "from_a" not in b
    assert len(a) == len(b) == 15
    # each changed the first value of its own copy only
    assert a["value"].tolist() == [-1.0, 1, 1, 1, 1] * 3
    assert b["value"].tolist() == [-2.0, 1, 1, 1, 1] * 3


class Picky(Transform):
    """Fails on odd batches, splits even ones over two ports."""

    outputs = ("out", "big")

    def process(self, batch: Batch) -> Result:
        first = int(batch.frame["seq"].iloc[0])
        if (first // 2) % 2:
            raise ValueError(f"odd batch starting at {first}")
        frame = batch.frame
        return {"out": frame[frame["seq"] % 2 == 0], "big": [frame[frame["seq"] % 2 == 1]]}


def test_errors_go_to_the_error_port_and_the_flow_goes_on(caplog):
    result = run_flow(
        {
            "src": {"type": "counter", "batches": 6, "rows": 2, "wires": ["p"]},
            "p": {"type": "picky", "wires": {"out": ["even"], "big": ["odd"], "error": ["errors"]}},
            "even": {"type": "capture"},
            "odd": {"type": "capture"},
            "errors": {"type": "capture"},
        },
        types={"counter": Counter, "picky": Picky},
    )
    errors = result.batches("errors")
    assert [b.frame["seq"].tolist() for b in errors] == [[2, 3], [6, 7], [10, 11]]
    assert errors[0].error == "ValueError: odd batch starting at 2"
    assert result.frame("even")["seq"].tolist() == [0, 4, 8]
    assert result.frame("odd")["seq"].tolist() == [1, 5, 9]
    stats = result.stats("p")
    assert stats["errors"] == 3 and stats["last_error"].startswith("ValueError")
    assert "node 'p': ValueError: odd batch starting at 2" in caplog.text


def test_unwired_error_port_only_logs_and_counts():
    result = run_flow(
        {
            "src": {"type": "counter", "batches": 4, "rows": 2, "wires": ["p"]},
            "p": {"type": "picky", "wires": {"out": ["even"]}},
            "even": {"type": "capture"},
        },
        types={"counter": Counter, "picky": Picky},
    )
    assert result.stats("p")["errors"] == 2
    assert result.frame("even")["seq"].tolist() == [0, 4]


class Flaky(Source):
    """Fails to connect twice, then emits, then drops the connection once, then ends."""

    attempts = 0
    states: list[str] = []

    async def start(self) -> None:
        Flaky.states.append(self.ctx.stats.state)
        Flaky.attempts += 1
        if Flaky.attempts <= 2:
            raise ConnectionError(f"refused (attempt {Flaky.attempts})")
        self.sent = 0

    async def read(self) -> Result:
        self.sent += 1
        if Flaky.attempts == 3 and self.sent == 3:
            raise ConnectionError("connection reset")
        if self.sent > 3:
            raise Done
        return pd.DataFrame({"attempt": [Flaky.attempts], "n": [self.sent]})


def test_source_reconnects_with_backoff_and_shows_retrying():
    Flaky.attempts = 0
    Flaky.states = []
    checked = check_text(
        {
            "src": {"type": "flaky", "retry": {"initial": 0.01, "max": 0.02}, "wires": ["cap"]},
            "cap": {"type": "capture"},
        },
        types={"flaky": Flaky},
    )
    runtime = Runtime(checked)
    stats = runtime.stats["src"]
    asyncio.run(runtime.run())
    frame = pd.concat([b.frame for b in runtime.node("cap").batches])
    assert frame[["attempt", "n"]].values.tolist() == [[3, 1], [3, 2], [4, 1], [4, 2], [4, 3]]
    assert stats.retries == 3  # two refused connects, one dropped connection
    assert Flaky.states == ["starting", "retrying", "retrying", "retrying"]
    assert stats.state == "stopped"
    assert "connection reset" in stats.last_error


def test_retry_delays_grow_and_stay_within_jitter():
    from flowengine.settings import RetryPolicy

    policy = RetryPolicy(initial=1, max=8, factor=2, jitter=0.25)
    import random

    rng = random.Random(1)
    for attempt, base in enumerate([1, 2, 4, 8, 8]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert base * 0.75 <= min(delays) and max(delays) <= base * 1.25
        assert max(delays) - min(delays) > base * 0.2  # jitter really spreads them


ORDER: list[str] = []


class Recorder(Transform):
    async def start(self) -> None:
        ORDER.append(self.ctx.node_id)

    def process(self, batch: Batch) -> Result:
        return batch


class RecordingSource(Counter):
    async def start(self) -> None:
        ORDER.append(self.ctx.node_id)
        await super().start()


class RecordingSink(Sink):
    async def start(self) -> None:
        ORDER.append(self.ctx.node_id)

    def write(self, batch: Batch) -> None:
        pass


def test_start_order_is_sinks_then_transforms_then_sources():
    ORDER.clear()
    run_flow(
        {
            "src": {"type": "rsrc", "batches": 1, "wires": ["t1"]},
            "t1": {"type": "rec", "wires": ["t2"]},
            "t2": {"type": "rec", "wires": ["out"]},
            "out": {"type": "rsink"},
        },
        types={"rsrc": RecordingSource, "rec": Recorder, "rsink": RecordingSink},
    )
    assert ORDER == ["out", "t2", "t1", "src"]


class Stuck(Sink):
    closed = False

    async def write(self, batch: Batch) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        Stuck.closed = True


def test_drain_is_bounded_by_the_timeout():
    checked = check_text(
        {
            "version": 1,
            "settings": {"drain_timeout": 0.2},
            "nodes": {
                "src": {"type": "counter", "batches": 5, "wires": ["stuck"]},
                "stuck": {"type": "stuck"},
            },
        },
        types={"counter": Counter, "stuck": Stuck},
    )
    runtime = Runtime(checked)
    Stuck.closed = False
    report = asyncio.run(runtime.run(duration=0.05))
    assert not report.drained
    assert report.lost_batches == 4  # one is stuck in the sink's hands, the rest queued
    assert Stuck.closed  # a hard stop still closes files and connections
    assert runtime.stats["stuck"].state == "stopped"


def test_a_mapping_to_an_undeclared_port_is_an_error():
    class Wrong(Transform):
        def process(self, batch: Batch) -> Result:
            return {"nope": batch.frame}

    result = run_flow(
        {
            "src": {"type": "counter", "batches": 1, "wires": ["w"]},
            "w": {"type": "wrong", "wires": {"error": ["errs"]}},
            "errs": {"type": "capture"},
        },
        types={"counter": Counter, "wrong": Wrong},
    )
    (err,) = result.batches("errs")
    assert "port 'nope'" in (err.error or "")


def test_invalid_flow_cannot_be_run():
    from flowengine.problems import FlowError

    with pytest.raises(FlowError, match="unknown node type 'nope'"):
        Runtime(check_text({"a": {"type": "nope"}}))


def test_a_source_that_never_waits_can_still_be_stopped():
    result = run_flow({"sim": {"type": "simulate", "realtime": False}}, duration=0.3, timeout=20)
    assert result.report.drained
    assert result.stats("sim")["state"] == "stopped"


def test_retry_delay_survives_very_long_outages():
    from flowengine.settings import RetryPolicy

    assert RetryPolicy(jitter=0).delay(5000) == 30.0
    assert RetryPolicy(factor=1e10, jitter=0, max=7).delay(50) == 7.0


class HungConnect(Source):
    async def start(self) -> None:
        await asyncio.sleep(3600)


def test_stop_interrupts_a_hung_connect():
    checked = check_text(
        {"src": {"type": "hung", "wires": ["cap"]}, "cap": {"type": "capture"}},
        types={"hung": HungConnect},
    )
    runtime = Runtime(checked)

    async def main() -> Any:
        async with asyncio.timeout(10):
            return await runtime.run(duration=0.1)

    report = asyncio.run(main())
    assert report.drained
    assert runtime.stats["src"].state == "stopped"


class LockedConfig(NodeConfig):
    password: str = option(description="Password.", secret=True)


class Locked(Sink):
    """Fails to connect once and rejects every batch, quoting its password each time."""

    Config = LockedConfig
    config: LockedConfig
    tries = 0

    async def start(self) -> None:
        Locked.tries += 1
        if Locked.tries == 1:
            raise ConnectionError(f"cannot log in with {self.config.password}")

    def write(self, batch: Batch) -> None:
        raise PermissionError(f"pw={self.config.password} refused")


def test_secrets_are_masked_in_status_and_error_batches():
    Locked.tries = 0
    runtime = Runtime(
        check_text(
            {
                "src": {"type": "counter", "batches": 2, "wires": ["lock"]},
                "lock": {
                    "type": "locked",
                    "password": "tr0ub4dor",
                    "retry": {"initial": 0.01},
                    "wires": {"error": ["errs"]},
                },
                "errs": {"type": "capture"},
            },
            types={"counter": Counter, "locked": Locked},
        )
    )
    asyncio.run(runtime.run())
    errors = runtime.node("errs").batches
    assert len(errors) == 2 and Locked.tries == 2
    assert errors[0].error == "PermissionError: pw=****** refused"
    snap = str(runtime.snapshot())
    assert "tr0ub4dor" not in snap and "pw=****** refused" in snap


class LateSink(Sink):
    """Cannot start twice (its database is down), then keeps everything."""

    tries = 0

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.rows: list[int] = []

    async def start(self) -> None:
        LateSink.tries += 1
        if LateSink.tries <= 2:
            raise ConnectionError("database down")

    def write(self, batch: Batch) -> None:
        self.rows.extend(batch.frame["seq"])


def test_a_sink_that_cannot_start_yet_holds_back_the_source_and_loses_nothing():
    LateSink.tries = 0
    result = run_flow(
        {
            "src": {"type": "counter", "batches": 30, "rows": 2, "wires": ["db"]},
            "db": {"type": "late", "retry": {"initial": 0.02}, "queue_size": 2},
        },
        types={"counter": Counter, "late": LateSink},
    )
    assert LateSink.tries == 3
    assert result.node("db").rows == list(range(60))
    assert result.stats("db")["retries"] == 2


class Chatty(Transform):
    def process(self, batch: Batch) -> Result:
        self.ctx.count("seen_rows", len(batch.frame))
        self.ctx.status(f"last seq {batch.frame['seq'].iloc[-1]}")
        return None


def test_node_status_text_and_counters_reach_stats_and_metrics():
    from prometheus_client import CollectorRegistry, generate_latest

    from flowengine.metrics import RuntimeCollector

    result = run_flow(
        {
            "src": {"type": "counter", "batches": 3, "rows": 4, "wires": ["c"]},
            "c": {"type": "chatty"},
        },
        types={"counter": Counter, "chatty": Chatty},
    )
    stats = result.stats("c")
    assert stats["counters"] == {"seen_rows": 12}
    assert stats["text"] == "last seq 11"
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(result.runtime))
    text = generate_latest(registry).decode()
    assert 'flowengine_node_counter_total{name="seen_rows",node="c",type="chatty"} 12.0' in text
    assert 'flowengine_node_rows_in_total{node="c",type="chatty"} 12.0' in text


class Bulk(Source):
    """Emits large frames (10,000 rows) as fast as downstream takes them."""

    Config = CounterConfig
    config: CounterConfig

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> Result:
        if self.n >= self.config.batches:
            raise Done
        self.n += 1
        return pd.DataFrame({"seq": range(10_000), "value": 1.0})


class Slow(Sink):
    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(0.001)


def test_memory_stays_bounded_however_far_the_source_could_run_ahead():
    import tracemalloc

    def peak(batches: int) -> int:
        tracemalloc.start()
        try:
            result = run_flow(
                {
                    "src": {"type": "bulk", "batches": batches, "wires": ["slow"]},
                    "slow": {"type": "slow", "queue_size": 2},
                },
                types={"bulk": Bulk, "slow": Slow},
            )
            assert result.stats("slow")["batches_in"] == batches
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(20), peak(160)  # 160 frames of 160 kB would be 25 MB if all queued
    assert long < short * 1.5 + 1_000_000
