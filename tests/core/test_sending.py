"""Sending: a batch handed over in its sender's call to an idle reader, and new batches handed
over as they are: order, counts, errors, stop and depth as through the reader's own task."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from flowengine.node import Sink, Source, Transform
from flowengine.runtime import Runtime
from flowengine.sending import MAX_DIRECT_DEPTH
from flowengine.testing import Counter, check_text, run_flow
from flowengine.types import Batch, Result
from tests.helpers.peers import until


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
            "src": {"type": "count", "batches": 12, "rows": 1, "wires": ["a"]},
            "a": {"type": "where", "wires": {"out": ["b"], "error": ["errors"]}},
            "b": {"type": "compute", "columns": {"double": "seq * 2"}, "wires": ["cap"]},
            "cap": {"type": "capture"},
            "errors": {"type": "capture"},
        },
        types={"count": Counter, "where": Where},
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
    nodes: dict[str, Any] = {"src": {"type": "count", "batches": 40, "rows": 1, "wires": ["t0"]}}
    for i in range(hops):
        nxt = f"t{i + 1}" if i + 1 < hops else "cap"
        nodes[f"t{i}"] = {"type": "compute", "columns": {"seq": "seq + 1"}, "wires": [nxt]}
    nodes["cap"] = {"type": "capture"}
    result = run_flow(nodes, types={"count": Counter})
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
            "src": {"type": "count", "batches": 3, "rows": 1, "wires": ["two"]},
            "two": {"type": "twice", "wires": {"out": ["re"], "other": ["plain"]}},
            "re": {"type": "retopic", "wires": ["cap_re"]},
            "plain": {"type": "capture"},
            "cap_re": {"type": "capture"},
        },
        types={"count": Counter, "twice": Twice, "retopic": Retopic},
    )
    assert [b.topic for b in result.batches("cap_re")] == ["changed"] * 3
    assert [b.topic for b in result.batches("plain")] == [None] * 3
    assert [b.origin for b in result.batches("plain")] == ["two"] * 3


class Reconnecting(Sink):
    """A plain ``write`` that must wait now and then, as ``mqtt_out`` while its broker is
    away: then it returns what to await (here: until the test lets it go on)."""

    rows: list[int] = []
    waiting = False
    gate: asyncio.Event | None = None

    def write(self, batch: Batch) -> Any:
        seq = batch.frame["seq"].tolist()
        if seq[0] == 5:
            return self._later(seq)
        Reconnecting.rows.extend(seq)
        return None

    async def _later(self, seq: list[int]) -> None:
        assert Reconnecting.gate is not None
        Reconnecting.waiting = True
        await Reconnecting.gate.wait()
        Reconnecting.rows.extend(seq)


class Counted(Sink):
    """A plain ``write`` that returns something that is not to be awaited."""

    def write(self, batch: Batch) -> int:
        return len(batch)


def test_a_handed_over_write_that_must_wait_neither_holds_the_source_nor_is_lost_at_stop():
    """The sink's write of batch 5 waits (a reconnection): the rest of it goes on in a task of
    the sink's, so the source goes on sending (queued on the sink's wire meanwhile), and the
    stop, which cancels the source, does not cancel that write: every row arrives, in order."""
    Reconnecting.rows, Reconnecting.waiting = [], False
    runtime = Runtime(
        check_text(
            {
                "src": {"type": "count", "batches": 10**9, "rows": 1, "wires": ["sink"]},
                "sink": {"type": "reconnecting", "queue_size": 4},
            },
            types={"count": Counter, "reconnecting": Reconnecting},
        )
    )

    async def main() -> Any:
        Reconnecting.gate = asyncio.Event()
        task = asyncio.create_task(runtime.run())
        await until(lambda: Reconnecting.waiting, task, what="the write waiting")
        # not held inside the sink's write: the source fills the sink's queue behind it
        await until(lambda: runtime.stats["src"].batches_out >= 6 + 4, task, what="queued")
        assert Reconnecting.rows == [0, 1, 2, 3, 4]
        runtime.stop()
        await asyncio.sleep(0)
        Reconnecting.gate.set()
        return await task

    report = asyncio.run(main())
    assert report.drained and report.lost_batches == 0
    sent = runtime.stats["src"].rows_out
    assert Reconnecting.rows == list(range(sent))
    assert runtime.stats["sink"].errors == 0


def test_what_a_plain_write_returns_is_awaited_only_when_it_is_awaitable():
    result = run_flow(
        {
            "src": {"type": "count", "batches": 5, "rows": 2, "wires": ["sink"]},
            "sink": {"type": "counted"},
        },
        types={"count": Counter, "counted": Counted},
    )
    stats = result.stats("sink")
    assert (stats["rows_in"], stats["errors"]) == (10, 0)


class Hung(Sink):
    """A plain ``write`` whose wait never ends (a destination that hangs)."""

    cancelled = 0
    closed = False

    def write(self, batch: Batch) -> Any:
        return self._forever()

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            Hung.cancelled += 1
            raise

    async def close(self) -> None:
        Hung.closed = True


def test_a_hard_stop_cancels_a_handed_over_write_that_hangs_and_closes_the_sink():
    """The drain watchdog's hard stop reaches the rest of a handed-over write (a task of the
    sink's) as it reaches a write in the sink's own task: cancelled, the sink closed."""
    Hung.cancelled, Hung.closed = 0, False
    checked = check_text(
        {
            "version": 1,
            "settings": {"drain_timeout": 0.2},
            "nodes": {
                "src": {"type": "count", "batches": 5, "rows": 1, "wires": ["hung"]},
                "hung": {"type": "hung"},
            },
        },
        types={"count": Counter, "hung": Hung},
    )
    runtime = Runtime(checked)
    report = asyncio.run(asyncio.wait_for(runtime.run(duration=0.05), 30))
    assert not report.drained
    assert report.lost_batches == 4  # one in the sink's hands, the rest queued behind it
    assert Hung.cancelled == 1 and Hung.closed
    assert runtime.stats["hung"].state == "stopped"


class TimedOut(Sink):
    """A plain ``write`` whose wait has its own deadline (``asyncio.timeout``, bound to the
    task it runs in) and always misses it."""

    def write(self, batch: Batch) -> Any:
        return self._within()

    async def _within(self) -> None:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()


def test_a_handed_over_write_that_must_wait_runs_in_its_own_task():
    """Its deadline fires in its own task (an error of the sink's, the batch to its error
    port), never in the source that handed the batch over."""
    result = run_flow(
        {
            "src": {"type": "count", "batches": 3, "rows": 1, "wires": ["sink"]},
            "sink": {"type": "timed", "wires": {"error": ["errors"]}},
            "errors": {"type": "capture"},
        },
        types={"count": Counter, "timed": TimedOut},
        timeout=20,
    )
    assert result.stats("src")["rows_out"] == 3
    assert result.stats("sink")["errors"] == 3
    assert [b.frame["seq"].tolist() for b in result.batches("errors")] == [[0], [1], [2]]
    assert all((b.error or "").startswith("TimeoutError") for b in result.batches("errors"))


class SlowToClose(Source):
    """A source that sends one batch and then nothing, and whose first ``close`` hangs (a
    device that does not answer), so its wire stays open through the stop and its receiver
    waits on it for more."""

    closes = 0

    async def start(self) -> None:
        self.sent = False

    async def read(self) -> Result:
        if self.sent:
            await asyncio.Event().wait()
        self.sent = True
        return pd.DataFrame({"seq": [0]})

    async def close(self) -> None:
        SlowToClose.closes += 1
        if SlowToClose.closes == 1:
            await asyncio.Event().wait()


def test_a_hard_stop_while_the_sink_waits_for_more_cancels_its_handed_over_write():
    """The sink's handed-over write hangs (a task of the sink's) while the sink's own task
    waits on the source's wire, which the source, hanging in ``close``, never closes: the hard
    stop cancels the sink's task there, and the write with it."""
    Hung.cancelled, Hung.closed, SlowToClose.closes = 0, False, 0
    checked = check_text(
        {
            "version": 1,
            "settings": {"drain_timeout": 0.2},
            "nodes": {
                "src": {"type": "slow_close", "wires": ["hung"]},
                "hung": {"type": "hung"},
            },
        },
        types={"slow_close": SlowToClose, "hung": Hung},
    )
    runtime = Runtime(checked)

    async def main() -> tuple[Any, int]:
        report = await asyncio.wait_for(runtime.run(duration=0.05), 30)
        return report, Hung.cancelled  # before asyncio.run cancels what is left over

    report, cancelled = asyncio.run(main())
    assert not report.drained
    assert cancelled == 1 and Hung.closed
