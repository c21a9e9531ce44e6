"""Deploying into a running flow: only changed nodes restart, nothing accepted is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd
import pytest

from flowengine.inbox import Inbox, Wire
from flowengine.node import NodeConfig, Sink, Source, Transform, option
from flowengine.problems import FlowError
from flowengine.runtime import NotRunning, Runtime
from flowengine.testing import Capture, check_text
from flowengine.types import Batch, Result
from flowengine.validate import CheckedFlow
from tests.helpers.peers import until

T0 = pd.Timestamp("2026-01-01", tz="UTC")


class NumbersConfig(NodeConfig):
    sensor: str = option("a", description="Sensor name of every row.")
    rows: int = option(2, description="Rows per batch.")


class Numbers(Source):
    """Endless numbered rows (`seq`), one second apart, at most a batch per millisecond."""

    Config = NumbersConfig
    config: NumbersConfig

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> Result:
        await asyncio.sleep(0.001)
        first, self.n = self.n, self.n + self.config.rows
        seq = range(first, self.n)
        return pd.DataFrame(
            {
                "timestamp": [T0 + pd.Timedelta(seconds=s) for s in seq],
                "sensor": self.config.sensor,
                "value": 1.0,
                "seq": seq,
            }
        )


class AddConfig(NodeConfig):
    k: float = option(0.0, description="Added to `value`.")


class Add(Transform):
    """Adds `k` to `value`; remembers the seqs it processed."""

    Config = AddConfig
    config: AddConfig

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.seen: list[int] = []

    def process(self, batch: Batch) -> Result:
        self.seen.extend(batch.frame["seq"])
        return batch.frame.assign(value=batch.frame["value"] + self.config.k)


class Held(Sink):
    """Writes nothing until the test opens it (its `open` event)."""

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.open = asyncio.Event()
        self.rows: list[int] = []

    async def write(self, batch: Batch) -> None:
        await self.open.wait()
        self.rows.extend(batch.frame["seq"])


EVENTS: list[str] = []


class Logged(Numbers):
    """Numbers that log their start and close, to see the order of a restart."""

    async def start(self) -> None:
        await super().start()
        EVENTS.append(f"start {self.config.rows}")

    async def close(self) -> None:
        EVENTS.append(f"close {self.config.rows}")


class Offline(Source):
    """A PLC that never answers."""

    async def start(self) -> None:
        raise ConnectionError("PLC 10.0.0.9 unreachable")

    async def read(self) -> Result:
        return None


class Unbuildable(Sink):
    """A sink whose constructor fails."""

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        raise ValueError("bad calibration table")

    def write(self, batch: Batch) -> None:
        pass


TYPES = {
    "logged": Logged,
    "numbers": Numbers,
    "add": Add,
    "held": Held,
    "offline": Offline,
    "unbuildable": Unbuildable,
}


def flow(nodes: dict[str, Any], **settings: Any) -> CheckedFlow:
    checked = check_text(
        {"version": 1, "settings": settings, "nodes": nodes} if settings else nodes, types=TYPES
    )
    assert checked.ok, checked.errors
    return checked


def live(
    first: CheckedFlow, body: Callable[[Runtime, asyncio.Task[Any]], Coroutine[Any, Any, None]]
) -> Runtime:
    """Run ``first``, call ``body`` while it runs, then stop it and check it drained."""

    async def main() -> Runtime:
        runtime = Runtime(first)
        task = asyncio.create_task(runtime.run())
        assert await runtime.wait_started()
        try:
            await body(runtime, task)
        finally:
            runtime.stop()
            report = await asyncio.wait_for(task, 30)
        assert report.drained, report
        return runtime

    return asyncio.run(asyncio.wait_for(main(), 60))


def seqs(sink: Any) -> list[int]:
    if isinstance(sink, Capture):
        return [s for b in sink.batches for s in b.frame["seq"]]
    return list(sink.rows)


def test_only_the_changed_transform_restarts_and_the_others_keep_state():
    def version(k: float) -> CheckedFlow:
        return flow(
            {
                "src": {"type": "numbers", "wires": ["add"]},
                "add": {"type": "add", "k": k, "wires": ["win", "cap"]},
                "win": {"type": "window", "size": "24h", "aggregations": ["count"], "wires": ["w"]},
                "w": {"type": "capture"},
                "cap": {"type": "capture"},
            }
        )

    before: dict[str, Any] = {}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        before.update({n: runtime.node(n) for n in ("src", "add", "win", "cap")})
        stats = runtime.stats["cap"]
        await until(lambda: len(seqs(before["cap"])) >= 40, task, what="rows before deploy")
        report = await runtime.apply(version(1.0))
        assert report.restarted == ["add"]
        assert sorted(report.kept) == ["cap", "src", "w", "win"]
        assert report.added == report.removed == report.rewired == []
        for n in ("src", "win", "cap"):
            assert runtime.node(n) is before[n]
        assert runtime.node("add") is not before["add"]
        assert runtime.stats["cap"] is stats  # counters go on
        mark = before["src"].n
        await until(lambda: len(seqs(before["cap"])) >= mark + 40, task, what="rows after")

    runtime = live(version(0.0), body)
    cap = before["cap"]
    emitted = runtime.stats["src"].rows_out
    rows = pd.concat([b.frame for b in cap.batches], ignore_index=True)
    assert rows["seq"].tolist() == list(range(emitted))  # the source went on from its position
    values = rows["value"].tolist()
    switch = values.index(2.0)
    assert set(values[:switch]) == {1.0} and set(values[switch:]) == {2.0}
    assert runtime.stats["cap"].rows_in == emitted
    # One window for the whole run: the window node kept its state across the deploy.
    windows = pd.concat([b.frame for b in runtime.node("w").batches])  # type: ignore[attr-defined]
    assert windows["value_count"].tolist() == [emitted]


def test_a_restarted_node_processes_what_was_queued_for_it_with_its_new_config():
    def version(k: float, extra: bool) -> CheckedFlow:
        nodes: dict[str, Any] = {
            "src": {"type": "numbers", "wires": ["mid"]},
            "mid": {"type": "add", "k": k, "queue_size": 3, "wires": ["out"]},
            "out": {"type": "held", "queue_size": 2},
        }
        if extra:
            nodes["src"]["wires"].append("extra")
            nodes["extra"] = {"type": "capture"}
        return flow(nodes)

    seen: dict[str, Any] = {}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        old_mid, out, extra = runtime.node("mid"), runtime.node("out"), runtime.node("extra")
        fill = ("src", "out", "mid", "in")
        await until(lambda: runtime.wire_fill()[fill] == 1.0, task, what="mid's queue full")
        queued = runtime.stats["src"].rows_out - len(old_mid.seen)  # type: ignore[attr-defined]
        report = await runtime.apply(version(1.0, extra=False))
        assert report.restarted == ["mid"] and report.removed == ["extra"]
        assert report.rewired == ["src"]
        assert report.wires_removed == [("src", "out", "extra", "in")]
        out.open.set()  # type: ignore[attr-defined]
        new_mid = runtime.node("mid")
        await until(lambda: len(new_mid.seen) >= queued + 20, task, what="new mid working")
        seen.update(old=old_mid.seen, new=new_mid.seen, out=out, extra=extra)

    runtime = live(version(0.0, extra=True), body)
    emitted = runtime.stats["src"].rows_out
    assert sorted(seen["out"].rows) == list(range(emitted))  # nothing lost, nothing twice
    assert seen["old"] + seen["new"] == list(range(emitted))
    assert len(seen["old"]) < len(seen["new"])
    # The removed sink got a contiguous prefix: all it had accepted, then nothing more.
    extra = seqs(seen["extra"])
    assert extra == list(range(len(extra))) and extra


def test_a_new_node_and_wire_receive_batches():
    def version(two: bool) -> CheckedFlow:
        nodes: dict[str, Any] = {
            "src": {"type": "numbers", "wires": ["cap", "cap2"] if two else ["cap"]},
            "cap": {"type": "capture"},
        }
        if two:
            nodes["cap2"] = {"type": "capture"}
        return flow(nodes)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        cap = runtime.node("cap")
        await until(lambda: len(seqs(cap)) >= 10, task)
        report = await runtime.apply(version(True))
        assert report.added == ["cap2"] and report.rewired == ["src"]
        assert report.wires_added == [("src", "out", "cap2", "in")]
        cap2 = runtime.node("cap2")
        await until(lambda: len(seqs(cap2)) >= 10, task, what="batches at the new sink")
        mark = len(seqs(cap))
        await until(lambda: len(seqs(cap)) > mark, task, what="the old sink still fed")
        assert runtime.node("cap") is cap
        assert seqs(cap2)[0] > 0  # it joined a running flow

    live(version(False), body)


def test_rewiring_kept_nodes_swaps_their_routes_without_loss():
    def version(swap: bool) -> CheckedFlow:
        return flow(
            {
                "s1": {"type": "numbers", "sensor": "s1", "wires": ["b" if swap else "a"]},
                "s2": {"type": "numbers", "sensor": "s2", "wires": ["a" if swap else "b"]},
                "a": {"type": "capture"},
                "b": {"type": "capture"},
            }
        )

    def names(sink: Any) -> list[str]:
        return [s for b in sink.batches for s in b.frame["sensor"]]

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        a, b = runtime.node("a"), runtime.node("b")
        await until(lambda: len(names(a)) >= 10 and len(names(b)) >= 10, task)
        report = await runtime.apply(version(True))
        assert sorted(report.kept) == sorted(report.rewired) == ["a", "b", "s1", "s2"]
        await until(lambda: "s2" in names(a) and "s1" in names(b), task, what="swapped")
        await until(lambda: names(a)[-1] == "s2" and names(b)[-1] == "s1", task)

    runtime = live(version(False), body)
    a, b = runtime.node("a"), runtime.node("b")
    for source in ("s1", "s2"):
        rows = sorted(
            s
            for sink in (a, b)
            for batch in sink.batches  # type: ignore[attr-defined]
            for s, n in zip(batch.frame["seq"], batch.frame["sensor"], strict=True)
            if n == source
        )
        assert rows == list(range(runtime.stats[source].rows_out))


def test_a_broken_new_node_shows_its_error_and_the_rest_runs_on():
    base = {"src": {"type": "numbers", "wires": ["cap"]}, "cap": {"type": "capture"}}
    broken = {
        "src": {"type": "numbers", "wires": ["cap", "bad_sink"]},
        "cap": {"type": "capture"},
        "plc": {"type": "offline", "retry": {"initial": 0.05}, "wires": ["cap2"]},
        "cap2": {"type": "capture"},
        "bad_sink": {"type": "unbuildable"},
    }

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        cap = runtime.node("cap")
        report = await runtime.apply(flow(broken))
        assert sorted(report.added) == ["bad_sink", "cap2", "plc"]
        assert "bad calibration table" in report.failed["bad_sink"]
        state = {s["id"]: s for s in runtime.snapshot()}
        assert state["bad_sink"]["state"] == "error"
        assert "ValueError: bad calibration table" in str(state["bad_sink"]["last_error"])
        stats = runtime.stats["plc"]
        await until(lambda: stats.retries >= 2, task, what="the PLC retrying")
        assert stats.state == "retrying" and "unreachable" in stats.last_error
        mark = len(seqs(cap))
        await until(lambda: len(seqs(cap)) > mark + 20, task, what="the flow running on")
        # Fixed in the next deploy: it is created, and the error goes.
        fixed = dict(broken, bad_sink={"type": "capture"})
        report = await runtime.apply(flow(fixed))
        assert report.added == ["bad_sink"] and not report.failed
        sink = runtime.node("bad_sink")
        await until(lambda: len(seqs(sink)) > 0, task, what="the fixed sink fed")
        assert runtime.stats["bad_sink"].state == "ok"

    live(flow(base), body)


def test_a_kept_source_does_not_block_on_a_removed_sink_that_still_drains():
    def version(held: bool) -> CheckedFlow:
        nodes: dict[str, Any] = {
            "src": {"type": "numbers", "wires": ["hold" if held else "cap"]},
            "cap": {"type": "capture"},
        }
        if held:
            nodes["hold"] = {"type": "held", "queue_size": 3}
        return flow(nodes)

    kept: dict[str, Any] = {}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        hold = runtime.node("hold")
        wire = ("src", "out", "hold", "in")
        await until(lambda: runtime.wire_fill().get(wire) == 1.0, task, what="a full queue")
        assert {s["id"]: s for s in runtime.snapshot()}["hold"]["queues"] == [
            {"from": "src", "port": "out", "to_port": "in", "depth": 3, "capacity": 3}
        ]
        report = await runtime.apply(version(False))
        assert report.removed == ["hold"] and report.kept == ["src"]
        assert report.restarted == ["cap"]  # it had ended, unfed: fed now, it starts again
        assert wire not in runtime.wire_fill()
        cap = runtime.node("cap")
        await until(lambda: len(seqs(cap)) >= 20, task, what="the source going on")
        assert not hold.rows  # still blocked: the source did not wait for it
        hold.open.set()
        await until(lambda: runtime.stats["src"].rows_out > 0 and hold.rows, task)
        kept["hold"] = hold

    runtime = live(version(True), body)
    held, fed = kept["hold"].rows, seqs(runtime.node("cap"))
    assert held == list(range(len(held))) and len(held) >= 8  # 3 queued + 1 in hand + 1 waiting
    assert held + fed == list(range(runtime.stats["src"].rows_out))


def test_a_finished_sink_fed_again_restarts():
    def version(wired: bool) -> CheckedFlow:
        return flow(
            {
                "src": {"type": "numbers", "wires": ["a", "b"] if wired else ["a"]},
                "a": {"type": "capture"},
                "b": {"type": "capture"},
            }
        )

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        stats = runtime.stats["b"]
        await until(lambda: stats.state == "stopped", task, what="the unfed sink ending")
        report = await runtime.apply(version(True))
        assert report.restarted == ["b"] and sorted(report.kept) == ["a", "src"]
        b = runtime.node("b")
        await until(lambda: len(seqs(b)) > 5, task, what="b fed")

    live(version(False), body)


def test_deploys_queue_up_and_apply_needs_a_running_flow():
    v1 = flow({"src": {"type": "numbers", "wires": ["a"]}, "a": {"type": "capture"}})
    v2 = flow(
        {
            "src": {"type": "numbers", "wires": ["a", "x"]},
            "a": {"type": "capture"},
            "x": {"type": "add", "k": 1.0, "wires": ["y"]},
            "y": {"type": "capture"},
        }
    )
    v3 = flow(
        {
            "src": {"type": "numbers", "wires": ["a", "x"]},
            "a": {"type": "capture"},
            "x": {"type": "add", "k": 2.0, "wires": ["y"]},
            "y": {"type": "capture"},
        }
    )

    async def main() -> None:
        runtime = Runtime(v1)
        with pytest.raises(NotRunning, match="not running"):
            await runtime.apply(v2)
        task = asyncio.create_task(runtime.run())
        await asyncio.sleep(0)  # run() has begun: it is starting its nodes
        # Both issued while the flow is still starting: they wait for it, then for each other.
        first, second = await asyncio.gather(runtime.apply(v2), runtime.apply(v3))
        assert sorted(first.added) == ["x", "y"]
        assert second.restarted == ["x"] and not second.added
        y = runtime.node("y")
        await until(lambda: any(b.frame["value"].eq(3.0).any() for b in y.batches), task)
        bad = check_text({"a": {"type": "capture", "nope": 1}}, types=TYPES)
        with pytest.raises(FlowError):
            await runtime.apply(bad)
        runtime.stop()
        with pytest.raises(NotRunning, match="stopping"):
            await runtime.apply(v1)
        await asyncio.wait_for(task, 30)
        with pytest.raises(NotRunning):
            await runtime.apply(v1)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_snapshot_has_rows_per_second_and_the_last_error():
    class Picky(Transform):
        def process(self, batch: Batch) -> Result:
            if batch.frame["seq"].iloc[0] % 10 == 0:
                raise ValueError(f"bad row {batch.frame['seq'].iloc[0]}")
            return batch.frame

    checked = check_text(
        {"src": {"type": "numbers", "wires": ["p"]}, "p": {"type": "picky"}},
        types={**TYPES, "picky": Picky},
    )

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await until(lambda: runtime.stats["p"].errors >= 2, task)
        state = {s["id"]: s for s in runtime.snapshot()}
        assert state["src"]["rows_per_s"] > 0  # type: ignore[operator]
        assert state["p"]["rows_per_s"] > 0  # type: ignore[operator]
        assert str(state["p"]["last_error"]).startswith("ValueError: bad row")

    live(checked, body)


def test_a_removed_source_closes_and_a_restarted_one_closes_before_its_successor_starts():
    def version(rows: int, both: bool) -> CheckedFlow:
        nodes: dict[str, Any] = {
            "s1": {"type": "logged", "rows": rows, "wires": ["cap"]},
            "cap": {"type": "capture"},
        }
        if both:
            nodes["s2"] = {"type": "numbers", "sensor": "s2", "wires": ["cap"]}
        return flow(nodes)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        cap = runtime.node("cap")
        await until(lambda: len(cap.batches) >= 10, task)
        report = await runtime.apply(version(3, both=False))
        assert report.removed == ["s2"] and report.restarted == ["s1"]
        await until(lambda: EVENTS[-1:] == ["start 3"], task, what="the new s1")
        assert EVENTS == ["start 2", "close 2", "start 3"]
        assert "s2" not in runtime.stats
        mark = len(cap.batches)
        await until(lambda: len(cap.batches) > mark + 5, task, what="rows from the new s1")

    EVENTS.clear()
    runtime = live(version(2, both=True), body)
    frame = pd.concat([b.frame for b in runtime.node("cap").batches])  # type: ignore[attr-defined]
    s2 = frame[frame["sensor"] == "s2"]["seq"].tolist()
    assert s2 == list(range(len(s2))) and s2  # all the removed source sent arrived
    s1 = frame[frame["sensor"] == "a"]["seq"].tolist()
    first_new = s1.index(0, 1)  # the successor counts from 0 again, 3 rows a batch
    assert s1[:first_new] == list(range(first_new))
    assert s1[first_new:] == list(range(len(s1) - first_new))
    assert EVENTS[-1] == "close 3"


class Unstartable(Sink):
    async def start(self) -> None:
        raise ConnectionError("database down")

    def write(self, batch: Batch) -> None:
        pass


def test_removing_a_node_that_never_started_drops_its_queue_and_frees_the_source():
    def version(db: bool) -> CheckedFlow:
        nodes: dict[str, Any] = {
            "src": {"type": "numbers", "wires": ["db" if db else "cap"]},
            "cap": {"type": "capture"},
        }
        if db:
            nodes["db"] = {"type": "unstartable", "queue_size": 2, "retry": {"initial": 0.05}}
            nodes["feed"] = {"type": "numbers", "wires": ["cap"]}
        return check_text(nodes, types={**TYPES, "unstartable": Unstartable})

    async def main() -> tuple[int, int, int]:
        runtime = Runtime(version(True))
        task = asyncio.create_task(runtime.run())
        assert await runtime.wait_started()
        wire = ("src", "out", "db", "in")
        await until(lambda: runtime.wire_fill().get(wire) == 1.0, task, what="db's queue full")
        report = await runtime.apply(version(False))
        assert report.removed == ["db", "feed"]
        cap: Any = runtime.node("cap")
        mark = len(cap.batches)
        await until(lambda: len(cap.batches) > mark + 5, task, what="src free again")
        runtime.stop()
        result = await asyncio.wait_for(task, 30)
        src_rows = sum(len(b) for b in cap.batches if b.origin == "src")
        return result.lost_batches, runtime.stats["src"].rows_out - src_rows, src_rows

    lost, missing, fed = asyncio.run(asyncio.wait_for(main(), 60))
    assert lost >= 2 and missing == 2 * lost and fed > 0  # counted, not silently gone


def test_a_sender_blocked_on_a_wire_wakes_the_inbox_that_took_it_over():
    async def main() -> list[int]:
        old, new = Inbox(), Inbox()
        wire = Wire("a", "out", "b", "in", 1)
        old.attach(wire)
        wire.refs = 1
        await old.put(wire, Batch(pd.DataFrame({"n": [1]})))
        sender = asyncio.create_task(old.put(wire, Batch(pd.DataFrame({"n": [2]}))))
        await asyncio.sleep(0)
        assert not sender.done()
        new.take_over(old)
        assert await old.get() is None  # the old reader sees its end
        first = asyncio.create_task(new.get())  # takes 1 and lets the sender go on ...
        second = asyncio.create_task(new.get())  # ... while this one already waits for 2
        got = [await asyncio.wait_for(first, 1), await asyncio.wait_for(second, 1)]
        await asyncio.wait_for(sender, 1)
        new.detach(wire)
        new.close(wire)
        assert new.wires == [] and await new.get() is None
        return [int(b.frame["n"].iloc[0]) for b in got if b is not None]

    assert asyncio.run(main()) == [1, 2]


def test_labels_do_not_restart_a_node_but_queue_size_and_retry_do():
    def version(cap: dict[str, Any], **settings: Any) -> CheckedFlow:
        nodes = {"src": {"type": "numbers", "wires": ["cap"]}, "cap": {"type": "capture", **cap}}
        return flow(nodes, **settings)

    def capacity(runtime: Runtime) -> object:
        state = {s["id"]: s for s in runtime.snapshot()}
        return state["cap"]["queues"][0]["capacity"]  # type: ignore[index]

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        cap = runtime.node("cap")
        report = await runtime.apply(version({"name": "Archive", "description": "all rows"}))
        assert report.kept == ["src", "cap"] and runtime.node("cap") is cap
        report = await runtime.apply(version({"queue_size": 3}))
        assert report.restarted == ["cap"] and capacity(runtime) == 3
        report = await runtime.apply(version({"queue_size": 3, "retry": {"initial": 0.5}}))
        assert report.restarted == ["cap"]
        report = await runtime.apply(version({"queue_size": 3}, queue_size=5))
        assert report.restarted == ["cap"] and capacity(runtime) == 3  # retry back to default
        report = await runtime.apply(version({}, queue_size=5))
        assert report.restarted == ["cap"] and capacity(runtime) == 5
        sink = runtime.node("cap")
        await until(lambda: len(sink.batches) > 5, task)  # type: ignore[attr-defined]

    runtime = live(version({}), body)
    assert runtime.stats["cap"].rows_in == runtime.stats["src"].rows_out


def test_a_deploy_under_checkpoints_loses_nothing_and_checkpoints_go_on(tmp_path: Any) -> None:
    def version(k: float) -> CheckedFlow:
        return flow(
            {
                "src": {"type": "numbers", "wires": ["add"]},
                "add": {"type": "add", "k": k, "wires": ["cap", "cap2"]},
                "cap": {"type": "capture"},
                "cap2": {"type": "capture"},
            },
            checkpoint="20ms",
            state_dir=str(tmp_path),
        )

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        durable = runtime._durable
        assert durable is not None
        await until(lambda: durable.coordinator.completed >= 3, task, what="checkpoints")
        report = await runtime.apply(version(1.0))  # barriers may be on their way meanwhile
        assert report.restarted == ["add"]
        done = durable.coordinator.completed
        await until(lambda: durable.coordinator.completed >= done + 3, task, what="more after")

    runtime = live(version(0.0), body)
    emitted = runtime.stats["src"].rows_out
    for sink in ("cap", "cap2"):
        assert seqs(runtime.node(sink)) == list(range(emitted))  # in order, none lost


def test_a_restart_while_a_batch_handed_over_to_the_node_waits_downstream_loses_nothing():
    """A batch handed over to ``mid`` in the source's call waits for room on the held sink's
    full wire (going on in a task of ``mid``'s), the next ones queue on ``mid``'s wire, and a
    deploy restarts ``mid``: the old one finishes its batch first, the new one takes the queued
    ones and what follows; the sink gets every row once, in order."""

    def version(k: float) -> CheckedFlow:
        return flow(
            {
                "src": {"type": "numbers", "wires": ["mid"]},
                "mid": {"type": "add", "k": k, "queue_size": 2, "wires": ["out"]},
                "out": {"type": "held", "queue_size": 2},
            }
        )

    seen: dict[str, Any] = {}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        old_mid, out = runtime.node("mid"), runtime.node("out")
        # the sink writes one batch and holds two; mid's 4th waits; two more queue for mid
        fill = ("src", "out", "mid", "in")
        await until(lambda: runtime.wire_fill()[fill] == 1.0, task, what="mid's queue full")
        assert runtime.stats["mid"].batches_in == 4
        assert runtime.wire_fill()[("mid", "out", "out", "in")] == 1.0
        report = await runtime.apply(version(1.0))
        assert report.restarted == ["mid"]
        out.open.set()  # type: ignore[attr-defined]
        new_mid = runtime.node("mid")
        assert new_mid is not old_mid
        await until(lambda: len(new_mid.seen) >= 40, task, what="new mid working")
        seen.update(old=old_mid.seen, new=new_mid.seen, out=out)

    runtime = live(version(0.0), body)
    emitted = runtime.stats["src"].rows_out
    assert seen["out"].rows == list(range(emitted))  # nothing lost, nothing twice, in order
    assert seen["old"] + seen["new"] == list(range(emitted))
    assert len(seen["old"]) >= 8  # the four batches it had taken, and one it may have taken
