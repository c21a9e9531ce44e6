"""Sending: a batch handed over in its sender's call to an idle reader, and new batches handed
over as they are: order, counts, errors, stop and depth as through the reader's own task."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from flowengine.node import Done, NodeConfig, Sink, Source, Transform, option
from flowengine.runtime import Runtime
from flowengine.sending import MAX_DIRECT_DEPTH
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch, Result
from tests.helpers.peers import until


class CountConfig(NodeConfig):
    batches: int = option(10, description="Batches to emit.")


class Count(Source[CountConfig]):
    """Emits one numbered row per read, yielding to the loop between reads."""

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> Result:
        if self.n >= self.config.batches:
            raise Done
        self.n += 1
        await asyncio.sleep(0)
        return pd.DataFrame({"seq": [self.n - 1]})


class Where(Transform):
    """Records, per batch, the task it was handled in; passes the rows on as a new frame."""

    tasks: list[str] = []

    def process(self, batch: Batch) -> Result:
        task = asyncio.current_task()
        Where.tasks.append(task.get_name() if task else "")
        if int(batch.frame["seq"].iloc[0]) == 3:
            raise ValueError("poison at 3")
        return batch.frame.assign(seen=1)


def test_an_idle_chain_handles_batches_in_the_senders_call_with_the_same_results():
    Where.tasks = []
    result = run_flow(
        {
            "src": {"type": "count", "batches": 12, "wires": ["a"]},
            "a": {"type": "where", "wires": {"out": ["b"], "error": ["errors"]}},
            "b": {"type": "compute", "columns": {"double": "seq * 2"}, "wires": ["cap"]},
            "cap": {"type": "capture"},
            "errors": {"type": "capture"},
        },
        types={"count": Count, "where": Where},
    )
    # the chain waits idle between reads: the source's call runs it (one task, no switches)
    assert Where.tasks[-1] == "source:src"
    assert set(Where.tasks) <= {"source:src", "node:a"}
    out = result.frame("cap")
    assert out["seq"].tolist() == [n for n in range(12) if n != 3]
    assert out["double"].tolist() == [2 * n for n in range(12) if n != 3]
    # the poison batch went to the error port, counted on the node that failed, and on
    errors = result.batches("errors")
    assert [b.frame["seq"].tolist() for b in errors] == [[3]]
    assert errors[0].error == "ValueError: poison at 3"
    a, b = result.stats("a"), result.stats("b")
    assert (a["rows_in"], a["errors"]) == (12, 1)
    assert (b["rows_in"], b["rows_out"]) == (11, 11)


class TwoSenders(Source):
    """Two coroutines of one source send interleaved, numbered rows (tag a and tag b)."""

    per_sender = 150

    async def run(self) -> None:
        async def one(tag: str) -> None:
            for i in range(self.per_sender):
                await self.ctx.send(pd.DataFrame({"tag": [tag], "seq": [i]}))

        await asyncio.gather(one("a"), one("b"))


class Order(Transform):
    """Records the order it handles rows in."""

    seen: list[tuple[str, int]] = []

    def process(self, batch: Batch) -> Result:
        Order.seen.extend(zip(batch.frame["tag"], batch.frame["seq"], strict=True))
        return batch.frame.copy()


class Held(Sink):
    """Takes one batch at a time and yields meanwhile, so its one-batch queue is often full."""

    got: list[tuple[str, int]] = []

    async def write(self, batch: Batch) -> None:
        Held.got.extend(zip(batch.frame["tag"], batch.frame["seq"], strict=True))
        await asyncio.sleep(0)


def test_a_batch_handed_over_and_one_queued_meanwhile_keep_their_order():
    """One sender's batch waits for room downstream inside the hand-over while the other
    sender's batch queues for the same transform: the transform's task takes the queued one
    only after the handed-over one is on its way, so the sink sees the transform's order."""
    Order.seen, Held.got = [], []
    result = run_flow(
        {
            "src": {"type": "two", "wires": ["t"]},
            "t": {"type": "order", "wires": ["sink"], "queue_size": 1},
            "sink": {"type": "held", "queue_size": 1},
        },
        types={"two": TwoSenders, "order": Order, "held": Held},
    )
    assert len(Held.got) == 2 * TwoSenders.per_sender
    assert Held.got == Order.seen
    for tag in "ab":
        assert [s for t, s in Held.got if t == tag] == list(range(TwoSenders.per_sender))
    assert result.report.lost_batches == 0


class Slow(Sink):
    """A sink that takes its time, so the chain before it backs up while the flow stops."""

    rows: list[int] = []

    async def write(self, batch: Batch) -> None:
        Slow.rows.extend(batch.frame["seq"].tolist())
        await asyncio.sleep(0.001)


class Endless(Source):
    async def start(self) -> None:
        self.n = 0

    async def read(self) -> Result:
        self.n += 1
        await asyncio.sleep(0)
        return pd.DataFrame({"seq": [self.n - 1]})


def test_stop_while_handed_over_batches_wait_downstream_loses_nothing():
    Slow.rows = []
    runtime = Runtime(
        check_text(
            {
                "src": {"type": "endless", "wires": ["a"]},
                "a": {"type": "compute", "columns": {"x": "seq + 1"}, "wires": ["b"]},
                "b": {"type": "compute", "columns": {"y": "x + 1"}, "wires": ["slow"]},
                "slow": {"type": "slow", "queue_size": 2},
            },
            types={"endless": Endless, "slow": Slow},
        )
    )

    async def main() -> Any:
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(Slow.rows) >= 30, task)
        runtime.stop()
        return await task

    report = asyncio.run(main())
    assert report.drained and report.lost_batches == 0
    sent = runtime.stats["src"].rows_out
    assert Slow.rows == list(range(sent))
    assert runtime.stats["a"].rows_out == runtime.stats["b"].rows_out == sent


def test_a_long_chain_is_handed_over_only_so_deep_and_loses_nothing():
    hops = 3 * MAX_DIRECT_DEPTH
    nodes: dict[str, Any] = {"src": {"type": "count", "batches": 40, "wires": ["t0"]}}
    for i in range(hops):
        nxt = f"t{i + 1}" if i + 1 < hops else "cap"
        nodes[f"t{i}"] = {"type": "compute", "columns": {"seq": "seq + 1"}, "wires": [nxt]}
    nodes["cap"] = {"type": "capture"}
    result = run_flow(nodes, types={"count": Count})
    assert result.frame("cap")["seq"].tolist() == [n + hops for n in range(40)]


class Twice(Transform):
    """Sends one new batch on two ports (each with one wire)."""

    outputs = ("out", "other")

    def process(self, batch: Batch) -> Result:
        new = batch.derive(batch.frame.assign(n=1))
        return {"out": new, "other": new}


class Retopic(Transform):
    """Changes the batch it received (its topic) before passing it on."""

    def process(self, batch: Batch) -> Result:
        batch.topic = "changed"
        return batch


def test_one_new_batch_on_two_ports_reaches_each_recipient_as_sent():
    result = run_flow(
        {
            "src": {"type": "count", "batches": 3, "wires": ["two"]},
            "two": {"type": "twice", "wires": {"out": ["re"], "other": ["plain"]}},
            "re": {"type": "retopic", "wires": ["cap_re"]},
            "plain": {"type": "capture"},
            "cap_re": {"type": "capture"},
        },
        types={"count": Count, "twice": Twice, "retopic": Retopic},
    )
    assert [b.topic for b in result.batches("cap_re")] == ["changed"] * 3
    assert [b.topic for b in result.batches("plain")] == [None] * 3
    assert [b.origin for b in result.batches("plain")] == ["two"] * 3
