"""The graph executor: one task per node, one bounded buffer per wire, shutdown by draining.

Start order is sinks, then transforms, then sources. Stopping cancels the sources only; every
node then finishes what is buffered, flushes, closes, and closes its outgoing wires, so the end
of stream travels down the graph and nothing already read is lost. A watchdog bounds the drain.

The parts: :mod:`~flowengine.noderun` (the record of one running node), :mod:`~flowengine.wiring`
(the routing table), :mod:`~flowengine.sending` (results onto wires), :mod:`~flowengine.nodetask`
(one node's task) and :mod:`~flowengine.deploy` (``Runtime.apply``, the editor's Deploy).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from flowengine import settle
from flowengine.buffer import SinkBuffer
from flowengine.checkpoint import CheckpointBackend
from flowengine.clock import SYSTEM_CLOCK, Clock
from flowengine.context import Context, Observer
from flowengine.deploy import Deploying, DeployReport, NotRunning
from flowengine.durable import Durability, state_folder
from flowengine.inbox import Inbox, Wire
from flowengine.logs import add_secrets, redact
from flowengine.node import Node, Sink, Source, Transform
from flowengine.noderun import KIND_ORDER, NodeLogAdapter, NodeRun, WireKey, active_nodes
from flowengine.nodetask import NodeTasks
from flowengine.paths import refusals
from flowengine.problems import FlowError, Problem
from flowengine.sending import send_acknowledged, send_plain
from flowengine.status import NodeStats
from flowengine.types import Result
from flowengine.validate import BuiltNode, CheckedFlow
from flowengine.wiring import wire_up

__all__ = ["DeployReport", "NotRunning", "RunReport", "Runtime", "WireKey", "mask_secrets"]

log = logging.getLogger("flowengine.runtime")


@dataclass(slots=True)
class RunReport:
    """How a run ended: whether it drained cleanly and what it left behind."""

    drained: bool
    duration: float
    lost_batches: int = 0
    errors: int = 0


def mask_secrets(checked: CheckedFlow) -> None:
    """Mask the secrets of ``checked``'s nodes in every log and view of this process (the
    editor calls it too: the flow runs in another process, its data shows in this one)."""
    for built in checked.nodes.values():
        config = built.config
        add_secrets(getattr(config, name) for name in config.secret_fields())
        # header maps: their credential-keyed values (Authorization, X-API-Key, ...)
        add_secrets(v for v in vars(config).values() if isinstance(v, dict))


class Runtime(Deploying):
    """Runs one checked flow. ``run`` returns when the flow has drained after ``stop``, or when
    every source has finished by itself.

    ``clock`` is the time every node reads and sleeps on (``ctx.clock``), and the one retry
    backoffs wait on; a test passes a :class:`~flowengine.clock.FakeClock`. Status timing,
    the drain watchdog and checkpoint intervals stay on real time.

    ``checkpoint_store`` keeps the checkpoints of a flow with ``settings.checkpoint`` somewhere
    else than beside the flow file (a store another host can read: ``--worker``).
    """

    def __init__(
        self,
        checked: CheckedFlow,
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        checkpoint_store: CheckpointBackend | None = None,
    ) -> None:
        if not checked.ok:
            raise FlowError(checked.problems)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._observer: Observer | None = None
        self._nodes = NodeTasks(random.Random(seed))
        self._nodes.drain_timeout = checked.flow.settings.drain_timeout
        self._stopping = False
        self._drained = True
        self._watchdog: asyncio.TimerHandle | None = None
        self._runs: dict[str, NodeRun] = {}
        self._wires: dict[WireKey, Wire] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._retired: list[NodeRun] = []
        self._group: asyncio.TaskGroup | None = None
        self._live = asyncio.Event()
        #: Called the moment the node tasks run, before any of them has (the editor's flow
        #: process answers ``start`` from it: a node that then keeps the loop busy cannot
        #: hold that answer up).
        self.on_started: Callable[[], None] | None = None
        self._ended = asyncio.Event()
        self._deploying = asyncio.Lock()
        self.stats: dict[str, NodeStats] = {}
        self._adopt(checked)
        if checkpoint_store is not None and not self.settings.checkpoint:
            raise ValueError("a checkpoint store needs settings.checkpoint (e.g. 1s)")
        self._durable = (
            Durability(self.flow, self._runs, checkpoint_store)
            if self.settings.checkpoint
            else None
        )
        self._nodes.durable = self._durable
        self._build()

    # ---- building -------------------------------------------------------------------------
    def _adopt(self, checked: CheckedFlow) -> None:
        """Make ``checked`` the flow this runtime runs, its secrets masked in every log."""
        self.checked, self.flow, self.settings = checked, checked.flow, checked.flow.settings
        mask_secrets(checked)

    def _build(self) -> None:
        """One run per active node, then the wires; a node that cannot be created fails the flow."""
        for built in active_nodes(self.checked):
            try:
                run = self._make_run(built)
            except Exception as exc:
                raise FlowError([self._cannot_create(built, exc)]) from exc
            self._runs[run.id] = run
            self.stats[run.id] = run.stats
        wire_up(self.checked.graph, self._runs, self._wires)

    def _cannot_create(self, built: BuiltNode, exc: Exception) -> Problem:
        """Why ``built`` could not be created, located at its node and with secrets masked."""
        message = redact(f"cannot create: {type(exc).__name__}: {exc}")
        return Problem(str(self.flow.path), built.defn.pos, message, built.defn.id)

    def _make_run(self, built: BuiltNode, stats: NodeStats | None = None) -> NodeRun:
        """A node instance with its context and inbox; raises what its constructor raises."""
        node_id = built.defn.id
        refused = refusals(self.checked.write_policy, built.config, self.flow.path.parent)
        if refused:  # the editor's write policy, checked again whoever built ``checked``
            raise PermissionError("; ".join(f"field '{name}': {why}" for name, why in refused))
        if stats is None:
            stats = NodeStats(node_id, built.defn.type, built.cls.kind)
        adapter = NodeLogAdapter(
            logging.getLogger(f"flowengine.node.{built.defn.type}"), {"node": node_id}
        )
        outputs: dict[str, list[Wire]] = {}
        ctx = Context(
            node_id,
            stats=stats,
            outputs=outputs,
            sender=lambda result, port: sender(run, result, port),
            log=adapter,
            flow_dir=self.flow.path.parent,
            journaled=(
                self._durable is not None
                and issubclass(built.cls, Source)
                and not built.cls.replayable
            ),
            clock=self.clock,
        )
        ctx.observer = self._observer
        sender = self._sender_for(built)
        run = NodeRun(
            built=built,
            node=built.cls(built.config, ctx),
            stats=stats,
            log=adapter,
            retry=built.defn.retry or self.settings.retry,
            capacity=built.defn.queue_size or self.settings.queue_size,
            outputs=outputs,
            clock=self.clock,
            observer=self._observer,
        )
        if isinstance(run.node, Transform):
            run.handler = run.node.process
        elif isinstance(run.node, Sink):
            run.handler = run.node.write
            if built.defn.buffer is not None:  # store-and-forward: the inbox drains to disk
                run.buffer = SinkBuffer(run, built.defn.buffer, state_folder(self.flow))
                run.handler = run.buffer.put
        run.handler_is_async = inspect.iscoroutinefunction(run.handler)
        if built.cls.inputs:
            run.inbox = Inbox()
        return run

    def _sender_for(self, built: BuiltNode) -> Callable[[NodeRun, Result, str], Awaitable[None]]:
        """How ``built``'s sends travel: a source's through its journal when the flow
        checkpoints; a source that confirms upstream (``acknowledge``) confirms after each
        send; everything else straight onto its wires."""
        if issubclass(built.cls, Source):
            if self._durable is not None:
                return self._durable.send
            if built.cls.acknowledge is not Source.acknowledge:
                return send_acknowledged
        return send_plain

    def start_order(self) -> list[str]:
        """Node ids in start order: sinks, then transforms, then sources; downstream first."""
        graph = self.checked.graph.subgraph(self._runs)
        topo = {n: i for i, n in enumerate(nx.topological_sort(graph))}
        return sorted(
            self._runs, key=lambda n: (KIND_ORDER[self._runs[n].built.cls.kind], -topo[n])
        )

    # ---- lifecycle ------------------------------------------------------------------------
    async def run(self, duration: float | None = None) -> RunReport:
        """Start every node, run until ``stop`` (or ``duration`` seconds), then drain."""
        loop = asyncio.get_running_loop()
        if self.clock is not SYSTEM_CLOCK:  # a test: ``settled`` waits for thread work
            settle.count_threads(loop)
        self._nodes.stop = asyncio.Event()
        began = time.monotonic()
        order = self.start_order()
        timer = loop.call_later(duration, self.stop) if duration is not None else None
        self._drained = True
        guard = asyncio.create_task(self._arm_watchdog())
        try:
            if not await self._start_phase(order):
                await self._abandon_start()
                if self._durable is not None:
                    await self._durable.confirm()  # nothing to confirm: lets the store go
                return RunReport(True, time.monotonic() - began)
            ticker = self._checkpoints()
            # A child cancelled by the watchdog ends quietly; TaskGroup ignores cancelled children.
            try:
                async with asyncio.TaskGroup() as group:
                    for node_id in order:
                        self._spawn(group, self._runs[node_id])
                    self._group = group
                    self._live.set()
                    if self.on_started is not None:
                        self.on_started()
            finally:
                if ticker is not None:
                    ticker.cancel()
        finally:
            self._group = None
            self._ended.set()
            guard.cancel()
            if timer:
                timer.cancel()
            if self._watchdog:
                self._watchdog.cancel()
        report = self._report(began)
        if self._durable is not None:  # the sources hear of a clean stop's last checkpoint
            await self._durable.confirm()
        return report

    async def _start_phase(self, order: list[str]) -> bool:
        """Start nodes in ``order``; False when ``stop`` came first (a hung connect included)."""

        async def start_each() -> None:
            for node_id in order:
                await self._nodes.try_start(self._runs[node_id])

        return await self._nodes.unless_stopped(asyncio.create_task(start_each()))

    async def _abandon_start(self) -> None:
        """``stop`` came while starting: close what was opened, run no node task."""
        for run in self._runs.values():
            await self._nodes.close_node(run)
            run.stats.set_state("stopped", "stopped while starting")

    async def _arm_watchdog(self) -> None:
        """Once ``stop`` is asked for, give the drain ``drain_timeout`` seconds."""
        assert self._nodes.stop is not None
        await self._nodes.stop.wait()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self.settings.drain_timeout, self.hard_stop)

    def hard_stop(self) -> None:
        """The drain took too long: cancel every node task (each still closes its node); the
        run reports that it did not drain."""
        self._drained = False
        log.error(
            "drain took longer than %gs; cancelling what is left", self.settings.drain_timeout
        )
        for task in self._tasks:
            task.cancel()

    def _report(self, began: float) -> RunReport:
        """Count what the run left queued (lost) and every node's errors."""
        runs = [*self._runs.values(), *self._retired]
        lost = sum(r.inbox.depth for r in runs if r.inbox) + self._nodes.dropped
        if lost:
            log.error("%d batches were still queued when the flow stopped", lost)
        errors = sum(s.errors for s in self.stats.values())
        if self._durable is not None:
            self._durable.finish(self._drained and not lost)
        return RunReport(self._drained and not lost, time.monotonic() - began, lost, errors)

    def _checkpoints(self) -> asyncio.Task[None] | None:
        """The checkpoint ticker, when ``settings.checkpoint`` is set (see flowengine.durable)."""
        if self._durable is None:
            return None
        return asyncio.create_task(self._durable.run_checkpoints(), name="checkpoints")

    def _spawn(self, group: asyncio.TaskGroup, run: NodeRun) -> None:
        """Start ``run``'s task in ``group``; ``_tasks`` is what a hard stop cancels."""
        run.task = group.create_task(self._nodes.main(run), name=f"node:{run.id}")
        self._tasks.append(run.task)

    def stop(self) -> None:
        """Ask the flow to stop: sources stop, everything in flight drains. Idempotent."""
        stop = self._nodes.stop
        if stop is not None and not stop.is_set():
            self._stopping = True
            log.info("stopping: draining queues")
            stop.set()

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

    # ---- the editor's buttons ------------------------------------------------------------
    async def fire(self, node_id: str) -> None:
        """One extra batch from the running source ``node_id`` now (``Source.fire``), sent
        like its own; returns once it is on its wires (or handed over to an idle receiver:
        see flowengine/sending.py). :class:`KeyError` for an unknown node,
        :class:`TypeError` for one that is not a ``firable`` source, :class:`NotRunning` when
        the flow or the node is not running (stopping, backing off, ended)."""
        run = self._runs[node_id]
        if not isinstance(run.node, Source) or not run.node.firable:
            raise TypeError(f"node '{node_id}' ({run.built.defn.type}) cannot be fired")
        if not self.running or not run.started or run.ended or run.retired:
            raise NotRunning(f"node '{node_id}' is not running")
        result = await run.node.fire()
        if result is not None:
            await run.node.ctx.send(result)

    def set_debug(self, node_id: str, on: bool) -> None:
        """Turn the output of the debug node ``node_id`` (its log lines and kept batches) on
        or off without a deploy; a restart of that node turns it on again. :class:`KeyError`
        for an unknown node, :class:`TypeError` for a node without such a switch."""
        node = self.node(node_id)
        if not isinstance(getattr(node, "active", None), bool):
            raise TypeError(f"node '{node_id}' has no debug output to turn on or off")
        node.active = on  # type: ignore[attr-defined]  # checked just above

    # ---- testing --------------------------------------------------------------------------
    def observe(self, observer: Observer | None) -> None:
        """Let ``observer`` see every send and error of every node (a test harness)."""
        self._observer = observer
        for run in self._runs.values():
            run.observer = run.node.ctx.observer = observer

    def seed_state(self, node_id: str, state: Any) -> None:
        """Restore ``state`` (what the node's ``snapshot`` returns) into ``node_id`` right
        after its first successful ``start``, before any batch. Call before ``run``."""
        if node_id not in self._runs:
            raise KeyError(f"no running node '{node_id}'")
        self._nodes.seeded[node_id] = state

    async def settled(self) -> None:
        """Return when the flow has done all it can until time passes or input comes: the
        loop has nothing ready, no counted thread works (``to_thread``: see
        :mod:`flowengine.settle`), and no node is inside ``process``/``write`` except one
        asleep on a fake clock or waiting for room on a full wire. No wall-clock waiting:
        a node busy in real time (a slow sink) is waited for batch by batch."""
        settle.count_threads()
        while True:
            await settle.quiet()
            if await settle.threads_idle():
                continue
            holds = getattr(self.clock, "holds", None)
            busy = [
                run
                for run in self._runs.values()
                if run.handling
                and not run.delivering
                and not (holds is not None and (holds(run.task) or holds(run.waiting)))
            ]
            if not busy:
                return
            progress = self._nodes.progress
            if progress is None:
                progress = self._nodes.progress = asyncio.Event()
            progress.clear()
            await progress.wait()  # a node finished a batch: look again

    def held_by_clock(self) -> bool:
        """True when some node waits for its clock to move on: inside ``process``/``write``
        (asleep, or behind a node that is), or backing off before its next start. A test
        draining a flow on a fake clock moves the clock while this holds."""
        return any(
            run.handling or (not run.started and run.next_delay is not None)
            for run in self._runs.values()
        )

    # ---- reading --------------------------------------------------------------------------
    def node(self, node_id: str) -> Node[Any]:
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
