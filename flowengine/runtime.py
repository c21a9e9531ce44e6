"""The graph executor: one task per node, one bounded buffer per wire, shutdown by draining.

Start order is sinks, then transforms, then sources. Stopping cancels the sources only; every
node then finishes what is buffered, flushes, closes, and closes its outgoing wires, so the end
of stream travels down the graph and nothing already read is lost. A watchdog bounds the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import pandas as pd

from flowengine.context import Context
from flowengine.inbox import Inbox, Wire
from flowengine.logs import add_secrets, redact
from flowengine.model import RetryPolicy
from flowengine.node import Node, Sink, Source, Transform
from flowengine.problems import FlowError, Problem
from flowengine.status import NodeStats
from flowengine.types import ERROR_PORT, Batch, Result
from flowengine.validate import BuiltNode, CheckedFlow

log = logging.getLogger("flowengine.runtime")

_KIND_ORDER = {"sink": 0, "transform": 1, "source": 2}
#: Seconds a node's ``close`` may take after a hard stop.
CLOSE_TIMEOUT = 5.0


class NodeLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes messages with the node id and attaches it to the record for JSON logs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"node '{extra['node']}': {msg}", kwargs


class _RateLimiter:
    """At most one log line per ``period`` seconds; counts what it held back."""

    def __init__(self, period: float = 1.0) -> None:
        self.period = period
        self.last = 0.0
        self.held = 0

    def allow(self) -> tuple[bool, int]:
        now = time.monotonic()
        if now - self.last >= self.period:
            held, self.held, self.last = self.held, 0, now
            return True, held
        self.held += 1
        return False, 0


@dataclass(slots=True, eq=False)
class NodeRun:
    """Everything the runtime keeps for one running node."""

    built: BuiltNode
    node: Node
    stats: NodeStats
    log: NodeLogAdapter
    retry: RetryPolicy
    inbox: Inbox | None = None
    outputs: dict[str, list[Wire]] = field(default_factory=dict)
    started: bool = False
    attempt: int = 0
    next_delay: float | None = None
    handler: Any = None
    handler_is_async: bool = False
    error_log: _RateLimiter = field(default_factory=_RateLimiter)

    @property
    def id(self) -> str:
        return self.built.defn.id


@dataclass(slots=True)
class RunReport:
    """How a run ended: whether it drained cleanly and what it left behind."""

    drained: bool
    duration: float
    lost_batches: int = 0
    errors: int = 0


class Runtime:
    """Runs one checked flow. ``run`` returns when the flow has drained after ``stop``, or when
    every source has finished by itself."""

    def __init__(self, checked: CheckedFlow, *, seed: int | None = None) -> None:
        if not checked.ok:
            raise FlowError(checked.problems)
        self.checked = checked
        self.flow = checked.flow
        self.settings = checked.flow.settings
        self._rng = random.Random(seed)
        self._stop_event: asyncio.Event | None = None
        self._stopping = False
        self._runs: dict[str, NodeRun] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.stats: dict[str, NodeStats] = {}
        for built in checked.nodes.values():
            add_secrets(getattr(built.config, name) for name in built.config.secret_fields())
        self._build()

    # ---- building -------------------------------------------------------------------------
    def _build(self) -> None:
        graph = self.checked.graph
        for node_id, built in self.checked.nodes.items():
            if built.defn.disabled or node_id not in graph:
                continue
            stats = NodeStats(node_id, built.defn.type, built.cls.kind)
            adapter = NodeLogAdapter(
                logging.getLogger(f"flowengine.node.{built.defn.type}"), {"node": node_id}
            )
            run = NodeRun(
                built=built,
                node=None,  # type: ignore[arg-type]
                stats=stats,
                log=adapter,
                retry=built.defn.retry or self.settings.retry,
            )
            ctx = Context(
                node_id,
                stats=stats,
                outputs=run.outputs,
                sender=self._sender_for(run),
                log=adapter,
                flow_dir=self.flow.path.parent,
            )
            try:
                run.node = built.cls(built.config, ctx)
            except Exception as exc:
                problem = Problem(
                    str(self.flow.path),
                    built.defn.pos,
                    f"cannot create: {type(exc).__name__}: {exc}",
                    node_id,
                )
                raise FlowError([problem]) from exc
            if isinstance(run.node, Transform):
                run.handler = run.node.process
            elif isinstance(run.node, Sink):
                run.handler = run.node.write
            run.handler_is_async = inspect.iscoroutinefunction(run.handler)
            if built.cls.inputs:
                run.inbox = Inbox()
            self._runs[node_id] = run
            self.stats[node_id] = stats
        for src, dest, data in graph.edges(data=True):
            if src not in self._runs or dest not in self._runs:
                continue
            receiver = self._runs[dest]
            capacity = receiver.built.defn.queue_size or self.settings.queue_size
            wire = Wire(src, data["port"], dest, data["dest_port"], capacity)
            assert receiver.inbox is not None  # validation rejects wires into sources
            receiver.inbox.attach(wire)
            receiver.stats.wires.append(wire)
            self._runs[src].outputs.setdefault(data["port"], []).append(wire)

    def start_order(self) -> list[str]:
        """Node ids in start order: sinks, then transforms, then sources; downstream first."""
        graph = self.checked.graph.subgraph(self._runs)
        topo = {n: i for i, n in enumerate(nx.topological_sort(graph))}
        return sorted(
            self._runs, key=lambda n: (_KIND_ORDER[self._runs[n].built.cls.kind], -topo[n])
        )

    # ---- sending --------------------------------------------------------------------------
    def _sender_for(self, run: NodeRun) -> Any:
        async def send(result: Result, port: str) -> None:
            await self._send(run, result, port, None)

        return send

    def _batches(
        self, run: NodeRun, result: Result, port: str, parent: Batch | None
    ) -> Iterator[tuple[str, Batch]]:
        """Flatten a result (frame, batch, per-port mapping of one or several) into sends."""
        if result is None:
            return
        if isinstance(result, Mapping):
            for out_port, value in result.items():
                values = value if isinstance(value, list | tuple) else [value]
                for item in values:
                    yield from self._batches(run, item, str(out_port), parent)
            return
        if isinstance(result, pd.DataFrame):
            topic, created = (parent.topic, parent.created) if parent else (None, time.time())
            yield port, Batch(result, topic, run.id, created)
        elif isinstance(result, Batch):
            yield port, result
        else:
            raise TypeError(
                f"returned {type(result).__name__}; expected a DataFrame, Batch, mapping or None"
            )

    async def _send(self, run: NodeRun, result: Result, port: str, parent: Batch | None) -> None:
        kind = type(result)
        if kind is pd.DataFrame:  # the common case, without the generator
            topic, created = (parent.topic, parent.created) if parent else (None, time.time())
            await self._deliver(run, port, Batch(result, topic, run.id, created))
        elif kind is Batch:
            await self._deliver(run, port, result)  # type: ignore[arg-type]
        else:
            for out_port, batch in self._batches(run, result, port, parent):
                await self._deliver(run, out_port, batch)

    async def _deliver(self, run: NodeRun, port: str, batch: Batch) -> None:
        """Put ``batch`` on every wire of ``port``: the frame itself to the first, shallow
        copy-on-write copies to the others, so no recipient sees another's changes."""
        wires = run.outputs.get(port)
        if not wires:
            if (
                port not in (run.built.cls.output_ports(run.built.config) or ())
                and port != ERROR_PORT
            ):
                raise ValueError(
                    f"sent to port '{port}', which type '{run.built.defn.type}' does not declare"
                )
            return  # an unwired port drops (and does not count as output)
        rows = len(batch.frame.index)
        if not rows and batch.error is None:
            return  # an empty frame means filtered
        stats = run.stats
        stats.batches_out += 1
        stats.rows_out += rows
        stats.last_data = time.time()
        frame, topic, created, error = batch.frame, batch.topic, batch.created, batch.error
        for i, wire in enumerate(wires):
            inbox = wire.inbox
            assert inbox is not None
            item = Batch(
                frame if i == 0 else frame.copy(deep=False),
                topic,
                run.id,
                created,
                wire.dest_port,
                error,
            )
            if len(wire.items) < wire.capacity:
                inbox.put_nowait(wire, item)
                continue
            try:
                await inbox.put(wire, item)
            except asyncio.CancelledError:  # finish the fan-out: nothing already read is lost
                for rest in wires[i + 1 :]:
                    assert rest.inbox is not None
                    rest.inbox.put_nowait(
                        rest,
                        Batch(
                            frame.copy(deep=False), topic, run.id, created, rest.dest_port, error
                        ),
                    )
                raise

    # ---- node tasks -----------------------------------------------------------------------
    async def _try_start(self, run: NodeRun) -> None:
        try:
            await run.node.start()
        except Exception as exc:
            await self._failed(run, exc, "start failed")
            return
        run.started = True
        run.stats.set_state("ok", "")

    async def _open(self, run: NodeRun) -> None:
        """Call ``start`` until it succeeds, backing off between attempts."""
        while not run.started:
            if run.next_delay is not None:
                await asyncio.sleep(run.next_delay)
                run.next_delay = None
            await self._try_start(run)

    async def _failed(self, run: NodeRun, exc: BaseException, what: str) -> None:
        """Record a failed connect or run, close the node, and schedule the next attempt."""
        delay = run.retry.delay(run.attempt, self._rng)
        run.attempt += 1
        run.next_delay = delay
        run.started = False
        stats = run.stats
        stats.errors += 1
        stats.retries += 1
        stats.last_error = redact(f"{type(exc).__name__}: {exc}")
        stats.set_state("retrying", redact(f"{exc} (retry in {delay:.1f}s)"))
        run.log.warning("%s: %s; retrying in %.1fs", what, stats.last_error, delay)
        await self._close_node(run)

    async def _close_node(self, run: NodeRun) -> None:
        try:
            await run.node.close()
        except Exception as exc:
            run.log.error("close failed: %s: %s", type(exc).__name__, exc)

    async def _supervise_source(self, run: NodeRun) -> None:
        """Run a source; on failure close it, back off and connect again."""
        assert isinstance(run.node, Source)
        while True:
            await self._open(run)
            sent_before = run.stats.batches_out
            try:
                await run.node.run()
                return
            except Exception as exc:
                if run.stats.batches_out > sent_before:
                    run.attempt = 0  # it worked for a while: start the backoff over
                await self._failed(run, exc, "source failed")

    async def _unless_stopped(self, task: asyncio.Task[None]) -> bool:
        """Wait for ``task`` unless ``stop`` comes first (then cancel it); True if it finished."""
        assert self._stop_event is not None
        stopper = asyncio.create_task(self._stop_event.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
            await asyncio.wait({task})
        return not task.cancelled()

    async def _source_main(self, run: NodeRun) -> None:
        task = asyncio.create_task(self._supervise_source(run), name=f"source:{run.id}")
        if await self._unless_stopped(task) and (exc := task.exception()) is not None:
            run.log.error("source crashed: %s: %s", type(exc).__name__, exc)  # a bug, not data
        await self._finish(run)

    async def _consume_main(self, run: NodeRun) -> None:
        assert run.inbox is not None
        await self._open(run)
        stats = run.stats
        is_transform = isinstance(run.node, Transform)
        handler, is_async = run.handler, run.handler_is_async
        while (batch := await run.inbox.get()) is not None:
            stats.batches_in += 1
            stats.rows_in += len(batch.frame.index)
            stats.last_data = time.time()
            try:
                result = handler(batch)
                if is_async:
                    result = await result
                if is_transform and result is not None:
                    await self._send(run, result, "out", batch)
            except Exception as exc:
                await self._node_error(run, exc, batch)
                continue
            if stats.state == "error":
                stats.set_state("ok", "")
        await self._finish(run)

    async def _node_error(self, run: NodeRun, exc: Exception, batch: Batch) -> None:
        """Log, count, show on the node, and send the batch to the ``error`` port if wired."""
        stats = run.stats
        stats.errors += 1
        message = redact(f"{type(exc).__name__}: {exc}")
        stats.last_error = message
        stats.set_state("error", message[:200])
        allowed, held = run.error_log.allow()
        if allowed:
            suffix = f" (+{held} more since last report)" if held else ""
            run.log.error("%s (batch of %d rows)%s", message, len(batch.frame), suffix)
        if run.outputs.get(ERROR_PORT):
            failed = Batch(batch.frame, batch.topic, run.id, batch.created, error=message)
            await self._send(run, failed, ERROR_PORT, None)

    async def _finish(self, run: NodeRun) -> None:
        """Flush, close, and end the stream on every outgoing wire."""
        try:
            pending = await run.node.flush()
            await self._send(run, pending, "out", None)
        except Exception as exc:
            run.log.error("flush failed: %s: %s", type(exc).__name__, exc)
            run.stats.errors += 1
        await self._close_node(run)
        if run.stats.state != "error":
            run.stats.set_state("stopped")
        for wires in run.outputs.values():
            for wire in wires:
                assert wire.inbox is not None
                wire.inbox.close(wire)

    # ---- lifecycle ------------------------------------------------------------------------
    async def _node_main(self, run: NodeRun) -> None:
        """One node's task; a hard stop still closes the node (files, connections)."""
        try:
            if isinstance(run.node, Source):
                await self._source_main(run)
            else:
                await self._consume_main(run)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._close_node(run), CLOSE_TIMEOUT)
            run.stats.set_state("stopped", "stopped before draining")
            raise

    async def _start_phase(self, order: list[str]) -> bool:
        """Start nodes in ``order``; False when ``stop`` came first (a hung connect included)."""

        async def start_each() -> None:
            for node_id in order:
                await self._try_start(self._runs[node_id])

        return await self._unless_stopped(asyncio.create_task(start_each()))

    async def run(self, duration: float | None = None) -> RunReport:
        """Start every node, run until ``stop`` (or ``duration`` seconds), then drain."""
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        began = time.monotonic()
        order = self.start_order()
        timer = loop.call_later(duration, self.stop) if duration is not None else None
        watchdog: asyncio.TimerHandle | None = None
        drained = True

        def hard_stop() -> None:
            nonlocal drained
            drained = False
            log.error(
                "drain took longer than %gs; cancelling what is left", self.settings.drain_timeout
            )
            for task in self._tasks:
                task.cancel()

        async def arm_watchdog() -> None:
            nonlocal watchdog
            assert self._stop_event is not None
            await self._stop_event.wait()
            watchdog = loop.call_later(self.settings.drain_timeout, hard_stop)

        guard = asyncio.create_task(arm_watchdog())
        try:
            if not await self._start_phase(order):
                for run in self._runs.values():
                    await self._close_node(run)
                    run.stats.set_state("stopped", "stopped while starting")
                return RunReport(True, time.monotonic() - began)
            # A child cancelled by the watchdog ends quietly; TaskGroup ignores cancelled children.
            async with asyncio.TaskGroup() as group:
                for node_id in order:
                    task = group.create_task(
                        self._node_main(self._runs[node_id]), name=f"node:{node_id}"
                    )
                    self._tasks.append(task)
        finally:
            guard.cancel()
            if timer:
                timer.cancel()
            if watchdog:
                watchdog.cancel()
        lost = sum(r.inbox.depth for r in self._runs.values() if r.inbox)
        if lost:
            log.error("%d batches were still queued when the flow stopped", lost)
        errors = sum(s.errors for s in self.stats.values())
        return RunReport(drained and not lost, time.monotonic() - began, lost, errors)

    def stop(self) -> None:
        """Ask the flow to stop: sources stop, everything in flight drains. Idempotent."""
        if self._stop_event is not None and not self._stop_event.is_set():
            self._stopping = True
            log.info("stopping: draining queues")
            self._stop_event.set()

    def node(self, node_id: str) -> Node:
        """The running instance of ``node_id``."""
        return self._runs[node_id].node

    @property
    def stopping(self) -> bool:
        return self._stopping

    def snapshot(self) -> list[dict[str, object]]:
        """Status and counters of every node, JSON-ready."""
        return [s.snapshot() for s in self.stats.values()]
