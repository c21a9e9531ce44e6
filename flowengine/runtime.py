"""The graph executor: one task per node, one bounded buffer per wire, shutdown by draining.

Start order is sinks, then transforms, then sources. Stopping cancels the sources only; every
node then finishes what is buffered, flushes, closes, and closes its outgoing wires, so the end
of stream travels down the graph and nothing already read is lost. A watchdog bounds the drain.

``apply`` deploys a new version of the flow into the running one (the editor's Deploy): nodes
whose type and settings are unchanged keep their instance, state, inbox and counters; the
others stop the same way the whole flow does (sources cancelled, the rest drain, flush and
close) and their successors start. A restarted node's successor takes over its inbox, so what
was queued for the old config is processed by the new one. A wire closes when the last node
run that may send on it lets go, never while a batch is on its way.
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
from typing import Any, TypeAlias

import networkx as nx
import pandas as pd

from flowengine.context import Context
from flowengine.inbox import Inbox, Wire
from flowengine.logs import RateLimiter, add_secrets, redact
from flowengine.model import FlowSettings, RetryPolicy
from flowengine.node import Node, Sink, Source, Transform
from flowengine.problems import FlowError, Problem
from flowengine.status import NodeStats
from flowengine.types import ERROR_PORT, Batch, Result
from flowengine.validate import BuiltNode, CheckedFlow

log = logging.getLogger("flowengine.runtime")

_KIND_ORDER = {"sink": 0, "transform": 1, "source": 2}
#: Seconds a node's ``close`` may take after a hard stop.
CLOSE_TIMEOUT = 5.0
#: A wire as (source node, output port, destination node, input port).
WireKey: TypeAlias = tuple[str, str, str, str]


class NotRunning(RuntimeError):
    """``apply`` was called on a flow that is not running (not started, stopping or ended)."""


class NodeLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes messages with the node id and attaches it to the record for JSON logs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"node '{extra['node']}': {msg}", kwargs


@dataclass(slots=True, eq=False)
class NodeRun:
    """Everything the runtime keeps for one running node."""

    built: BuiltNode
    node: Node
    stats: NodeStats
    log: NodeLogAdapter
    retry: RetryPolicy
    capacity: int
    inbox: Inbox | None = None
    outputs: dict[str, list[Wire]] = field(default_factory=dict)
    started: bool = False
    attempt: int = 0
    next_delay: float | None = None
    handler: Any = None
    handler_is_async: bool = False
    error_log: RateLimiter = field(default_factory=RateLimiter)
    task: asyncio.Task[None] | None = None
    #: Set when a deploy removes or replaces this run.
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set after the first start attempt (a new source waits for its new consumers).
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: The replaced run's task, which must end (close) before this run starts.
    after: asyncio.Task[None] | None = None
    gate: list[asyncio.Event] = field(default_factory=list)
    #: True once the node reads and sends no more (its stream has ended).
    ended: bool = False
    #: Replaced or removed by a deploy: the node id's status is no longer this run's to set.
    retired: bool = False
    #: Deliveries waiting on a full wire, and wires a deploy took away meanwhile.
    delivering: int = 0
    dropped: list[Wire] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.built.defn.id


@dataclass(slots=True)
class DeployReport:
    """What ``apply`` did, by node id; ``failed`` maps nodes that could not be created to why."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    rewired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wires_added: list[WireKey] = field(default_factory=list)
    wires_removed: list[WireKey] = field(default_factory=list)


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
        self._wires: dict[WireKey, Wire] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._retired: list[NodeRun] = []
        self._group: asyncio.TaskGroup | None = None
        self._live = asyncio.Event()
        self._ended = asyncio.Event()
        self._deploying = asyncio.Lock()
        self._dropped = 0
        self.stats: dict[str, NodeStats] = {}
        self._add_secrets(checked)
        self._build()

    # ---- building -------------------------------------------------------------------------
    @staticmethod
    def _add_secrets(checked: CheckedFlow) -> None:
        for built in checked.nodes.values():
            add_secrets(getattr(built.config, name) for name in built.config.secret_fields())

    @staticmethod
    def _active(checked: CheckedFlow) -> list[BuiltNode]:
        """The nodes that run: built, enabled and in the graph."""
        return [b for n, b in checked.nodes.items() if not b.defn.disabled and n in checked.graph]

    def _build(self) -> None:
        for built in self._active(self.checked):
            try:
                run = self._make_run(built)
            except Exception as exc:
                raise FlowError([self._cannot_create(built, exc)]) from exc
            self._runs[run.id] = run
            self.stats[run.id] = run.stats
        self._wire_up()

    def _cannot_create(self, built: BuiltNode, exc: Exception) -> Problem:
        message = redact(f"cannot create: {type(exc).__name__}: {exc}")
        return Problem(str(self.flow.path), built.defn.pos, message, built.defn.id)

    def _make_run(self, built: BuiltNode, stats: NodeStats | None = None) -> NodeRun:
        """A node instance with its context and inbox; raises what its constructor raises."""
        node_id = built.defn.id
        if stats is None:
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
            capacity=built.defn.queue_size or self.settings.queue_size,
        )
        ctx = Context(
            node_id,
            stats=stats,
            outputs=run.outputs,
            sender=self._sender_for(run),
            log=adapter,
            flow_dir=self.flow.path.parent,
        )
        run.node = built.cls(built.config, ctx)
        if isinstance(run.node, Transform):
            run.handler = run.node.process
        elif isinstance(run.node, Sink):
            run.handler = run.node.write
        run.handler_is_async = inspect.iscoroutinefunction(run.handler)
        if built.cls.inputs:
            run.inbox = Inbox()
        return run

    def _wire_up(self) -> None:
        """Make every run's outputs and inbox match the graph of ``self.checked``.

        Synchronous, so no batch sees half a routing table. A run that has ended gets no new
        wires (it sends nothing more); a wire that left the graph is detached and closes when
        its last sender lets go of it.
        """
        wanted: dict[WireKey, int] = {}
        for src, dest, data in self.checked.graph.edges(data=True):
            sender, receiver = self._runs.get(src), self._runs.get(dest)
            if sender and receiver and receiver.inbox is not None and not sender.ended:
                wanted[(src, data["port"], dest, data["dest_port"])] = receiver.capacity
        for key, wire in list(self._wires.items()):
            if key not in wanted or wire.closed:
                del self._wires[key]
                if wire.inbox is not None:
                    wire.inbox.detach(wire)
        outputs: dict[str, dict[str, list[Wire]]] = {}
        incoming: dict[str, list[Wire]] = {}
        for key, capacity in wanted.items():
            wire = self._wires.get(key)
            if wire is None:
                wire = self._wires[key] = Wire(*key, capacity)
            elif wire.capacity != capacity:
                wire.resize(capacity)
            inbox = self._runs[key[2]].inbox
            assert inbox is not None
            if wire.inbox is not inbox:
                inbox.attach(wire)
            outputs.setdefault(key[0], {}).setdefault(key[1], []).append(wire)
            incoming.setdefault(key[2], []).append(wire)
        for node_id, run in self._runs.items():
            if not run.ended:
                self._set_outputs(run, outputs.get(node_id, {}))
            if run.inbox is not None:
                run.stats.wires = incoming.get(node_id, [])

    def _set_outputs(self, run: NodeRun, outputs: dict[str, list[Wire]]) -> None:
        """Swap ``run``'s routing table in place (its context reads the same dict)."""
        before = {id(w): w for ws in run.outputs.values() for w in ws}
        after = {id(w) for ws in outputs.values() for w in ws}
        for ws in outputs.values():
            for wire in ws:
                if id(wire) not in before:
                    wire.refs += 1
        for key, wire in before.items():
            if key not in after:
                if run.delivering:
                    run.dropped.append(wire)  # a batch is on its way: let go after it
                else:
                    self._release(wire)
        run.outputs.clear()
        run.outputs.update(outputs)

    @staticmethod
    def _release(wire: Wire) -> None:
        """One sender fewer; the last one closes the wire (end of stream for its reader)."""
        wire.refs -= 1
        if wire.refs <= 0 and wire.inbox is not None:
            wire.inbox.close(wire)

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
                port != ERROR_PORT  # the cheap test first: this runs on every unwired send
                and port not in (run.built.cls.output_ports(run.built.config) or ())
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
            await self._deliver_waiting(run, wires, i, item)
            return

    async def _deliver_waiting(self, run: NodeRun, wires: list[Wire], i: int, item: Batch) -> None:
        """The rest of a fan-out from ``wires[i]`` (full): wait for room wire by wire. A deploy
        that takes wires away meanwhile lets go of them only after this batch is on them all."""
        frame, topic, created, error = item.frame, item.topic, item.created, item.error
        run.delivering += 1
        try:
            for j in range(i, len(wires)):
                wire = wires[j]
                if j > i:
                    copy = frame.copy(deep=False)
                    item = Batch(copy, topic, run.id, created, wire.dest_port, error)
                assert wire.inbox is not None
                try:
                    await wire.inbox.put(wire, item)
                except asyncio.CancelledError:  # finish the fan-out: nothing read is lost
                    for rest in wires[j + 1 :]:
                        assert rest.inbox is not None
                        rest.inbox.put_nowait(
                            rest,
                            Batch(
                                frame.copy(deep=False),
                                topic,
                                run.id,
                                created,
                                rest.dest_port,
                                error,
                            ),
                        )
                    raise
        finally:
            run.delivering -= 1
            if not run.delivering and run.dropped:
                for gone in run.dropped:
                    self._release(gone)
                run.dropped.clear()

    # ---- node tasks -----------------------------------------------------------------------
    async def _try_start(self, run: NodeRun) -> None:
        try:
            await run.node.start()
        except Exception as exc:
            await self._failed(run, exc, "start failed")
            return
        finally:
            run.ready.set()
        run.started = True
        run.stats.set_state("ok", "")

    async def _open(self, run: NodeRun) -> bool:
        """Call ``start`` until it succeeds, backing off between attempts. A node a deploy
        removed gets one more attempt, then gives up: False."""
        while not run.started:
            if run.next_delay is not None:
                if run.halt.is_set():
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.halt.wait(), run.next_delay)
                run.next_delay = None
            await self._try_start(run)
        return True

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
        for consumer in run.gate:  # deployed with new consumers downstream: they start first
            await consumer.wait()
        while True:
            if not await self._open(run):
                return
            sent_before = run.stats.batches_out
            try:
                await run.node.run()
                return
            except Exception as exc:
                if run.stats.batches_out > sent_before:
                    run.attempt = 0  # it worked for a while: start the backoff over
                await self._failed(run, exc, "source failed")

    async def _unless_stopped(self, task: asyncio.Task[None], run: NodeRun | None = None) -> bool:
        """Wait for ``task`` unless ``stop`` (or a deploy halting ``run``) comes first, then
        cancel it; True if it finished."""
        assert self._stop_event is not None
        stoppers = {asyncio.create_task(self._stop_event.wait())}
        if run is not None:
            stoppers.add(asyncio.create_task(run.halt.wait()))
        try:
            await asyncio.wait({task, *stoppers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for stopper in stoppers:
                stopper.cancel()
            if not task.done():
                task.cancel()
            await asyncio.wait({task})
        return not task.cancelled()

    async def _source_main(self, run: NodeRun) -> None:
        task = asyncio.create_task(self._supervise_source(run), name=f"source:{run.id}")
        if await self._unless_stopped(task, run) and (exc := task.exception()) is not None:
            run.log.error("source crashed: %s: %s", type(exc).__name__, exc)  # a bug, not data
        await self._finish(run)

    async def _consume_main(self, run: NodeRun) -> None:
        assert run.inbox is not None
        if not await self._open(run):  # removed by a deploy before it could ever start
            lost = 0
            while await run.inbox.get() is not None:  # its wires are detached: none blocks
                lost += 1
            if lost:
                self._dropped += lost
                run.log.error("removed before it could start: %d queued batches dropped", lost)
            await self._finish(run)
            return
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
        rows = len(batch.frame)
        run.error_log.log(run.log, logging.ERROR, lambda: f"{message} (batch of {rows} rows)")
        if run.outputs.get(ERROR_PORT):
            failed = Batch(batch.frame, batch.topic, run.id, batch.created, error=message)
            await self._send(run, failed, ERROR_PORT, None)

    async def _finish(self, run: NodeRun) -> None:
        """Flush, close, and let go of every outgoing wire (the end of stream, unless a
        successor of this node still sends on it)."""
        run.ended = True
        try:
            pending = await run.node.flush()
            await self._send(run, pending, "out", None)
        except Exception as exc:
            run.log.error("flush failed: %s: %s", type(exc).__name__, exc)
            run.stats.errors += 1
        await self._close_node(run)
        if run.stats.state != "error" and not run.retired:
            run.stats.set_state("stopped")
        for wires in run.outputs.values():
            for wire in wires:
                self._release(wire)
        run.outputs.clear()

    # ---- lifecycle ------------------------------------------------------------------------
    async def _node_main(self, run: NodeRun) -> None:
        """One node's task; a hard stop still closes the node (files, connections)."""
        try:
            if run.after is not None:  # the instance this one replaces closes first
                await asyncio.wait({run.after})
            if isinstance(run.node, Source):
                await self._source_main(run)
            else:
                await self._consume_main(run)
        except asyncio.CancelledError:
            run.ended = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._close_node(run), CLOSE_TIMEOUT)
            if not run.retired:
                run.stats.set_state("stopped", "stopped before draining")
            raise
        finally:
            run.ready.set()

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
                    self._spawn(group, self._runs[node_id])
                self._group = group
                self._live.set()
        finally:
            self._group = None
            self._ended.set()
            guard.cancel()
            if timer:
                timer.cancel()
            if watchdog:
                watchdog.cancel()
        runs = [*self._runs.values(), *self._retired]
        lost = sum(r.inbox.depth for r in runs if r.inbox) + self._dropped
        if lost:
            log.error("%d batches were still queued when the flow stopped", lost)
        errors = sum(s.errors for s in self.stats.values())
        return RunReport(drained and not lost, time.monotonic() - began, lost, errors)

    def _spawn(self, group: asyncio.TaskGroup, run: NodeRun) -> None:
        run.task = group.create_task(self._node_main(run), name=f"node:{run.id}")
        self._tasks.append(run.task)

    def stop(self) -> None:
        """Ask the flow to stop: sources stop, everything in flight drains. Idempotent."""
        if self._stop_event is not None and not self._stop_event.is_set():
            self._stopping = True
            log.info("stopping: draining queues")
            self._stop_event.set()

    # ---- deploying ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the node tasks run and ``stop`` has not been asked for."""
        return self._group is not None and not self._stopping

    async def wait_started(self) -> bool:
        """Once ``run`` is scheduled: wait until the node tasks run, then True; False when the
        run ended first (stopped while starting) or is stopping."""
        live = asyncio.create_task(self._live.wait())
        ended = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait({live, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            live.cancel()
            ended.cancel()
        return self.running

    async def apply(self, checked: CheckedFlow) -> DeployReport:
        """Deploy ``checked`` into the running flow; see the module docstring.

        Returns once the routing table is swapped and the new node tasks are created; new
        nodes then start in the background (their status shows how that goes: ``retrying``
        with the error, like any node). A node that cannot even be created shows ``error``
        and receives nothing. A second ``apply`` waits for this one. Raises
        :class:`NotRunning` when the flow is not running, :class:`FlowError` when ``checked``
        has errors.
        """
        if not checked.ok:
            raise FlowError(checked.problems)
        async with self._deploying:
            if self._stop_event is None:
                raise NotRunning("the flow is not running: start it before deploying into it")
            if not await self.wait_started():
                raise NotRunning("the flow has stopped or is stopping: start it again")
            if all(task.done() for task in self._tasks):
                raise NotRunning("the flow has ended: every node has finished")
            return self._apply(checked)

    def _apply(self, checked: CheckedFlow) -> DeployReport:
        """The synchronous part of ``apply``: nothing else runs while the flow is rebuilt."""
        assert self._group is not None
        report = DeployReport()
        old_runs, old_keys = self._runs, _keys(self.checked.graph, self._runs)
        wanted = {b.defn.id: b for b in self._active(checked)}
        restart = self._to_restart(checked, wanted)
        self.checked, self.flow, self.settings = checked, checked.flow, checked.flow.settings
        self._add_secrets(checked)
        runs: dict[str, NodeRun] = {}
        stats: dict[str, NodeStats] = {}
        fresh: list[NodeRun] = []
        for node_id, built in wanted.items():
            old = old_runs.get(node_id)
            if old is not None and node_id not in restart:
                old.built = built
                runs[node_id], stats[node_id] = old, old.stats
                report.kept.append(node_id)
                continue
            (report.added if old is None else report.restarted).append(node_id)
            run = self._successor(old, built, report)
            if run is None:
                stats[node_id] = (old.stats if old else None) or self._failed_stats(built, report)
                continue
            runs[node_id], stats[node_id] = run, run.stats
            fresh.append(run)
        report.removed = [n for n in old_runs if n not in wanted]
        for node_id in report.removed:
            self._retire(old_runs[node_id])
        self._runs, self.stats = runs, stats
        self._wire_up()

        new_keys = _keys(checked.graph, runs)
        report.wires_added = sorted(new_keys - old_keys)
        report.wires_removed = sorted(old_keys - new_keys)
        touched = {n for key in new_keys ^ old_keys for n in (key[0], key[2])}
        report.rewired = [n for n in report.kept if n in touched]
        consumers = {r.id: r for r in fresh if r.inbox is not None}
        for run in sorted(fresh, key=lambda r: _KIND_ORDER[r.built.cls.kind]):
            if isinstance(run.node, Source):
                descendants = nx.descendants(checked.graph, run.id)
                run.gate = [consumers[d].ready for d in descendants if d in consumers]
            self._spawn(self._group, run)
        self._tasks = [t for t in self._tasks if not t.done()]
        self._retired = [r for r in self._retired if not (r.task and r.task.done())]
        log.info(
            "deployed: %d added, %d removed, %d restarted, %d kept (%d rewired)",
            *map(len, (report.added, report.removed, report.restarted, report.kept)),
            len(report.rewired),
        )
        return report

    def _to_restart(self, checked: CheckedFlow, wanted: Mapping[str, BuiltNode]) -> set[str]:
        """Running nodes whose type or settings changed, plus finished consumers that a
        running node feeds in the new flow (they must read again: a new instance)."""
        settings = checked.flow.settings
        restart = {
            n
            for n, b in wanted.items()
            if n in self._runs and not _same(self._runs[n], b, settings)
        }
        live: set[str] = set()
        for node_id in nx.topological_sort(checked.graph.subgraph(wanted)):
            old = self._runs.get(node_id)
            if old is None or node_id in restart or not old.ended:
                live.add(node_id)
            elif old.inbox is not None and not live.isdisjoint(checked.graph.predecessors(node_id)):
                restart.add(node_id)
                live.add(node_id)
        return restart

    def _successor(
        self, old: NodeRun | None, built: BuiltNode, report: DeployReport
    ) -> NodeRun | None:
        """A new run for ``built``, replacing ``old`` (retired here) if any; it reads what
        was queued for ``old``. None when the node cannot be created (in ``report.failed``)."""
        stats = None
        if old is not None:
            self._retire(old)
            stats = old.stats  # its counters go on
            stats.type, stats.kind = built.defn.type, built.cls.kind
            stats.restart_rate()
        try:
            run = self._make_run(built, stats)
        except Exception as exc:
            message = self._cannot_create(built, exc).message
            report.failed[built.defn.id] = message
            log.error("node '%s': %s", built.defn.id, message)
            if stats is not None:
                self._show_failure(stats, message)
            return None
        run.stats.set_state("starting", "")
        if old is not None:
            run.after = old.task
            if old.inbox is not None and run.inbox is not None:
                run.inbox.take_over(old.inbox)
        return run

    def _failed_stats(self, built: BuiltNode, report: DeployReport) -> NodeStats:
        stats = NodeStats(built.defn.id, built.defn.type, built.cls.kind)
        self._show_failure(stats, report.failed[built.defn.id])
        return stats

    @staticmethod
    def _show_failure(stats: NodeStats, message: str) -> None:
        stats.errors += 1
        stats.last_error = message
        stats.wires = []
        stats.set_state("error", message[:200])

    def _retire(self, run: NodeRun) -> None:
        """Stop ``run`` as the whole flow stops: a source is cancelled, a consumer reads on
        until its wires close (or its successor takes them), then flushes and closes."""
        run.retired = True
        run.halt.set()
        if run.task is not None and not run.task.done():
            self._retired.append(run)

    # ---- reading --------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        """The running instance of ``node_id``."""
        return self._runs[node_id].node

    @property
    def stopping(self) -> bool:
        return self._stopping

    def snapshot(self) -> list[dict[str, object]]:
        """Status and counters of every node, JSON-ready (``rows_per_s`` over a few seconds,
        ``last_error`` the latest error text)."""
        return [s.snapshot() for s in self.stats.values()]

    def wire_fill(self) -> dict[WireKey, float]:
        """How full each wire's buffer is, 0..1, by (source, port, destination, input port)."""
        return {key: wire.fill for key, wire in self._wires.items()}


def _same(run: NodeRun, built: BuiltNode, settings: FlowSettings) -> bool:
    """True when ``run`` can stay as ``built`` under ``settings``: same type, config, queue
    size (for a node with inputs) and retry policy (disabled nodes are not running at all)."""
    return (
        run.built.cls is built.cls
        and run.built.config == built.config
        and (not built.cls.inputs or run.capacity == (built.defn.queue_size or settings.queue_size))
        and run.retry == (built.defn.retry or settings.retry)
    )


def _keys(graph: nx.MultiDiGraph, runs: Mapping[str, NodeRun]) -> set[WireKey]:
    """The wires of ``graph`` between nodes that have a run."""
    return {
        (src, data["port"], dest, data["dest_port"])
        for src, dest, data in graph.edges(data=True)
        if src in runs and dest in runs
    }
