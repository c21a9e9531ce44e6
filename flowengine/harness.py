"""A flow under test: run it on a fake clock, feed it, move time, look at what every node did.

``flowengine test`` runs each case through a :class:`FlowHarness`; a Python test may too::

    clock = FakeClock("2026-01-01T00:00:00Z")
    async with FlowHarness(check_text(flow), clock=clock) as h:
        await h.feed("plc", frame)          # a replaced source emits it; the flow settles
        await h.advance(30)                 # timers fire in order, each settled
        assert h.outputs("alert")[0]["event"].tolist() == ["raise"]

Nothing here sleeps on the wall clock: :meth:`FlowHarness.settle` is ``Runtime.settled``, and
time moves only when the test moves it (:mod:`flowengine.clock`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

import pandas as pd

from flowengine.clock import FakeClock, Instant
from flowengine.inbox import Wire
from flowengine.node import Node
from flowengine.runtime import RunReport, Runtime
from flowengine.standins import (
    Feeder,
    MockSource,
    MockTransform,
    Range,
    Rows,
    as_frame,
    check_state,
    reshape,
)
from flowengine.types import ERROR_PORT, Batch
from flowengine.validate import BuiltNode, CheckedFlow

__all__ = ["FlowHarness", "Recorder", "StateRejected"]

#: Timers a drain may fire before the harness stops moving fake time (a timer that re-arms).
MAX_DRAIN_STEPS = 10_000


class StateRejected(Exception):
    """A node refused the state a test gave it (its ``restore`` raised): the case cannot run
    as written."""


class Recorder:
    """The harness's observer (``Runtime.observe``): every send of every node, by port, what
    each node received, and every error, in order."""

    def __init__(self) -> None:
        self.by_port: dict[tuple[str, str], list[pd.DataFrame]] = {}
        self.received: dict[str, list[tuple[str, pd.DataFrame]]] = {}
        self.messages: dict[str, list[str]] = {}

    def sent(self, node_id: str, port: str, batch: Batch, wires: Sequence[Wire]) -> None:
        self.by_port.setdefault((node_id, port), []).append(batch.frame)
        for wire in wires:
            self.received.setdefault(wire.dest, []).append((wire.dest_port, batch.frame))

    def failed(self, node_id: str, message: str) -> None:
        self.messages.setdefault(node_id, []).append(message)


class FlowHarness:
    """Runs ``checked`` on ``clock`` as a test case: an async context manager.

    * ``target``: the whole flow (None), one node id, or ``(from, to)``: the nodes on paths
      from one to the other (either may be None: all downstream / all upstream).
    * ``replace_io``: a source whose type has ``io = True`` becomes a feeder, such a sink a
      drop whose input is recorded (``outputs(sink)``).
    * ``feeders``: node id -> ports the test feeds: a source named here becomes a feeder
      whatever its type; another node gets a feeder wired into those inputs. None: every input
      of every node can be fed. A node with no input left in the target is always fed.
    * ``mocks``: node id -> fixed output ``{port: rows}``: a source sends it once at start, a
      transform in answer to every batch; a mocked sink drops what it gets.
    * ``state``: node id -> a state as its ``snapshot`` gives it, restored after its start.

    Leaving the block stops the flow and drains it: fake time moves while the drain waits for
    it, up to the flow's ``drain_timeout`` (then what is left is cancelled, as in production).
    What was flushed is in :meth:`outputs` afterwards, and :attr:`report` says how it went.
    """

    def __init__(
        self,
        checked: CheckedFlow,
        *,
        clock: FakeClock,
        feeders: Mapping[str, Collection[str]] | None = None,
        replace_io: bool = True,
        mocks: Mapping[str, Mapping[str, Rows]] | None = None,
        state: Mapping[str, Any] | None = None,
        target: str | Range | None = None,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self._shape = reshape(
            checked, target=target, replace_io=replace_io, feeders=feeders, mocks=mocks or {}
        )
        self.runtime = Runtime(self._shape.checked, seed=seed, clock=clock)
        self.recorder = Recorder()
        self.runtime.observe(self.recorder)
        self._name_origins(checked)
        for node_id, ports in (mocks or {}).items():
            self._mock(node_id, ports)
        #: Why nodes refused the state given to them (their ``restore`` raised).
        self.rejected: list[str] = []
        for node_id, snapshot in (state or {}).items():
            self._seed(node_id, snapshot)
        self._task: asyncio.Task[RunReport] | None = None
        #: How the run ended, once the harness has stopped it.
        self.report: RunReport | None = None

    def _name_origins(self, checked: CheckedFlow) -> None:
        """An input feeder's batches come from the node that feeds that input in the real
        flow, when just one does (a watchdog names its input after it)."""
        for node_id, feeds in self._shape.feeds.items():
            for port, feeder_id in feeds.items():
                if feeder_id == node_id:
                    continue  # a replaced source: its own name
                edges = checked.graph.in_edges(node_id, data="dest_port")
                senders = {src for src, _, dest_port in edges if dest_port == port}
                feeder = self.runtime.node(feeder_id)
                if len(senders) == 1 and isinstance(feeder, Feeder):
                    feeder.origin = senders.pop()

    def _seed(self, node_id: str, state: Any) -> None:
        """Give ``node_id`` ``state`` at its start; a state it cannot take fails the case (a
        :class:`StateRejected` at the next settle), never passes it unnoticed."""
        if node_id not in self._shape.originals:
            raise ValueError(f"state for node '{node_id}', which is not in the flow under test")
        node = self.runtime.node(node_id)
        if type(node) is not self._shape.originals[node_id].cls:
            raise ValueError(
                f"state for node '{node_id}', which this test replaces by a stand-in "
                f"({type(node).__name__}: mocked, fed, or external I/O with replace_io): "
                "the state would not be used"
            )
        check_state(node_id, type(node), state)
        self.runtime.seed_state(node_id, state)
        restore = node.restore

        def guarded(given: Any) -> None:
            try:
                restore(given)
            except Exception as exc:  # refused: the case fails at the next settle
                self.rejected.append(
                    f"node '{node_id}' rejected the given state: {type(exc).__name__}: {exc}"
                )

        node.restore = guarded  # type: ignore[method-assign,assignment]  # the runtime calls it

    def _mock(self, node_id: str, ports: Mapping[str, Rows]) -> None:
        node = self.runtime.node(node_id)
        if not isinstance(node, MockSource | MockTransform):
            return  # a mocked sink sends nothing
        allowed = (*node.config.ports, ERROR_PORT)
        for port in ports:
            if port not in allowed:
                raise ValueError(
                    f"mock of '{node_id}' sends on '{port}', which it does not have "
                    f"(ports: {', '.join(allowed)})"
                )
        node.output = {port: as_frame(rows) for port, rows in ports.items()}

    # ---- running --------------------------------------------------------------------------
    async def __aenter__(self) -> FlowHarness:
        self._task = asyncio.create_task(self.runtime.run(), name="flow-under-test")
        if not await self.runtime.wait_started():
            await self._end()
            raise RuntimeError(f"the flow did not start: {self.runtime.snapshot()}")
        try:
            await self.settle()
        except BaseException:
            await self._end()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.finish()
        else:
            await self._end()

    async def settle(self) -> None:
        """Wait until the flow has done all it can before time moves or more input comes."""
        await self.runtime.settled()
        self._raise_if_crashed()

    async def feed(self, node_id: str, frame: Rows, port: str = "out") -> None:
        """A source (replaced by a feeder) emits ``frame`` on output ``port``; any other node
        receives it on input ``port`` (the default ``out`` means its first input). Then settle."""
        feeder, out = self._feeder(node_id, port)
        feeder.queue.put_nowait((out, as_frame(frame)))
        await self.settle()

    def _feeder(self, node_id: str, port: str) -> tuple[Feeder, str]:
        """The feeder that takes what is fed to ``node_id`` on ``port``, and its port."""
        original = self._original(node_id)
        feeds = self._shape.feeds.get(node_id, {})
        if original.cls.kind == "source":
            if not feeds:
                raise ValueError(
                    f"source '{node_id}' runs for real: name it in feeders= to feed it"
                )
            if port not in feeds and port == "in":
                port = next(iter(feeds))
        elif port == "out":
            port = original.cls.inputs[0] if original.cls.inputs else port
        if port not in feeds:
            fed = ", ".join(feeds) or "none"
            raise ValueError(
                f"node '{node_id}' is not fed on '{port}' (fed ports: {fed}); name it in feeders="
            )
        node = self.runtime.node(feeds[port])
        assert isinstance(node, Feeder)
        out = port if original.cls.kind == "source" else "out"
        return node, out

    async def advance(self, seconds: float) -> None:
        """Move fake time forward; each timer that falls due fires and settles in turn."""
        await self.clock.advance(seconds, self.settle)

    async def advance_to(self, when: Instant) -> None:
        """Move fake time forward to ``when`` (epoch seconds, ISO text or a timestamp)."""
        await self.clock.advance_to(when, self.settle)

    async def finish(self) -> RunReport:
        """Stop the flow and let it drain (flushes included): the feeders first send what was
        fed to them, then the end of stream goes down the graph. Fake time moves only while
        the drain waits for it. Idempotent."""
        if self.report is not None:
            return self.report
        assert self._task is not None, "use the harness as `async with`"
        limit = self.clock.monotonic() + self.runtime.settings.drain_timeout
        for _ in range(MAX_DRAIN_STEPS):
            await self.settle()
            if not self.runtime.stopping and not self._input_pending():
                self.runtime.stop()  # what was fed is in the flow: now the end of stream
                continue
            deadline = self.clock.next_deadline()
            held = self.runtime.held_by_clock() or self._input_pending()
            if self._task.done() or deadline is None or not held:
                break
            if deadline > limit:  # the drain gets drain_timeout fake seconds, as in real time
                self.runtime.stop()
                self.runtime.hard_stop()
                break
            await self.clock.advance(max(deadline - self.clock.monotonic(), 0.0), self.settle)
        self.runtime.stop()
        self.report = await self._task
        return self.report

    def _input_pending(self) -> bool:
        """A feeder still holds fed frames (the flow is held up behind a node on the clock)."""
        for feeds in self._shape.feeds.values():
            for feeder_id in feeds.values():
                node = self.runtime.node(feeder_id)
                if isinstance(node, Feeder) and not node.queue.empty():
                    return True
        return False

    async def _end(self) -> None:
        """Stop at once (the test failed): cancel the flow, let its nodes close."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})

    def _raise_if_crashed(self) -> None:
        if self.rejected:
            raise StateRejected("; ".join(self.rejected))
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                raise RuntimeError(f"the flow under test crashed: {exc!r}") from exc

    # ---- looking --------------------------------------------------------------------------
    def _original(self, node_id: str) -> BuiltNode:
        try:
            return self._shape.originals[node_id]
        except KeyError:
            known = ", ".join(sorted(self._shape.originals))
            raise KeyError(f"no node '{node_id}' in the flow under test ({known})") from None

    def node(self, node_id: str) -> Node[Any]:
        """The running instance of ``node_id`` (a stand-in when replaced or mocked)."""
        self._original(node_id)
        return self.runtime.node(node_id)

    def outputs(self, node_id: str, port: str = "out") -> list[pd.DataFrame]:
        """The frames ``node_id`` sent on ``port``, in order (``error``: failed batches). For
        a sink, which sends nothing: the frames it received (``out``: on any input)."""
        original = self._original(node_id)
        if original.cls.kind == "sink" and port != ERROR_PORT:
            got = self.recorder.received.get(node_id, [])
            return [frame for p, frame in got if port in ("out", p)]
        return list(self.recorder.by_port.get((node_id, port), ()))

    def inputs(self, node_id: str, port: str | None = None) -> list[pd.DataFrame]:
        """The frames ``node_id`` received (on ``port``, or on any input), in order."""
        self._original(node_id)
        got = self.recorder.received.get(node_id, [])
        return [frame for p, frame in got if port is None or p == port]

    def counters(self, node_id: str) -> dict[str, int]:
        """The node's own counters (``ctx.count``) and ``errors``, the errors it counted."""
        self._original(node_id)
        stats = self.runtime.stats[node_id]
        return {**stats.counters, "errors": stats.errors}

    def errors(self, node_id: str) -> list[str]:
        """The messages of every error the node reported, in order."""
        self._original(node_id)
        return list(self.recorder.messages.get(node_id, ()))
