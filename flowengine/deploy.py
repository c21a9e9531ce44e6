"""Hot deploy: ``Runtime.apply`` puts a new version of the flow into the running one.

Nodes whose type and settings are unchanged keep their instance, state, inbox and counters; the
others stop the same way the whole flow does (sources cancelled, the rest drain, flush and
close) and their successors start. A restarted node's successor takes over its inbox, so what
was queued for the old config is processed by the new one. A wire closes when the last node
run that may send on it lets go, never while a batch is on its way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import networkx as nx

from flowengine.node import Source
from flowengine.noderun import KIND_ORDER, NodeRun, WireKey, active_nodes
from flowengine.problems import FlowError
from flowengine.settings import FlowSettings
from flowengine.status import NodeStats
from flowengine.validate import BuiltNode, CheckedFlow
from flowengine.wiring import graph_wires, wire_up

if TYPE_CHECKING:
    from flowengine.durable import Durability
    from flowengine.inbox import Wire
    from flowengine.nodetask import NodeTasks
    from flowengine.problems import Problem

log = logging.getLogger("flowengine.runtime")


class NotRunning(RuntimeError):
    """``apply`` was called on a flow that is not running (not started, stopping or ended)."""


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


class Deploying:
    """The deploy half of :class:`~flowengine.runtime.Runtime`, which provides the state and
    the building blocks declared below."""

    if TYPE_CHECKING:
        checked: CheckedFlow
        stats: dict[str, NodeStats]
        _nodes: NodeTasks
        _durable: Durability | None
        _runs: dict[str, NodeRun]
        _wires: dict[WireKey, Wire]
        _tasks: list[asyncio.Task[None]]
        _retired: list[NodeRun]
        _group: asyncio.TaskGroup | None
        _deploying: asyncio.Lock

        def _adopt(self, checked: CheckedFlow) -> None: ...
        def _make_run(self, built: BuiltNode, stats: NodeStats | None = None) -> NodeRun: ...
        def _cannot_create(self, built: BuiltNode, exc: Exception) -> Problem: ...
        def _spawn(self, group: asyncio.TaskGroup, run: NodeRun) -> None: ...
        async def wait_started(self) -> bool: ...

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
            if self._nodes.stop is None:
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
        old_runs, old_keys = self._runs, graph_wires(self.checked.graph, self._runs)
        wanted = {b.defn.id: b for b in active_nodes(checked)}
        restart = self._to_restart(checked, wanted)
        self._adopt(checked)
        fresh = self._replace_runs(old_runs, wanted, restart, report)
        report.removed = [n for n in old_runs if n not in wanted]
        for node_id in report.removed:
            self._retire(old_runs[node_id])
        wire_up(checked.graph, self._runs, self._wires)

        new_keys = graph_wires(checked.graph, self._runs)
        report.wires_added = sorted(new_keys - old_keys)
        report.wires_removed = sorted(old_keys - new_keys)
        touched = {n for key in new_keys ^ old_keys for n in (key[0], key[2])}
        report.rewired = [n for n in report.kept if n in touched]
        self._start_fresh(checked, fresh, self._group)
        if self._durable is not None:  # open checkpoints spanned the old graph
            self._durable.runs = self._runs
            self._durable.abort()
        log.info(
            "deployed: %d added, %d removed, %d restarted, %d kept (%d rewired)",
            *map(len, (report.added, report.removed, report.restarted, report.kept)),
            len(report.rewired),
        )
        return report

    def _replace_runs(
        self,
        old_runs: Mapping[str, NodeRun],
        wanted: Mapping[str, BuiltNode],
        restart: set[str],
        report: DeployReport,
    ) -> list[NodeRun]:
        """Keep or replace the run of every wanted node (``self._runs`` and ``self.stats``
        become the new ones); returns the new runs, not started yet."""
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
                stats[node_id] = (old.stats if old else None) or _failed_stats(built, report)
                continue
            runs[node_id], stats[node_id] = run, run.stats
            fresh.append(run)
        self._runs, self.stats = runs, stats
        return fresh

    def _start_fresh(
        self, checked: CheckedFlow, fresh: list[NodeRun], group: asyncio.TaskGroup
    ) -> None:
        """Spawn the new runs, consumers first; a new source waits for its new consumers."""
        consumers = {r.id: r for r in fresh if r.inbox is not None}
        for run in sorted(fresh, key=lambda r: KIND_ORDER[r.built.cls.kind]):
            if isinstance(run.node, Source):
                descendants = nx.descendants(checked.graph, run.id)
                run.gate = [consumers[d].ready for d in descendants if d in consumers]
            self._spawn(group, run)
        self._tasks = [t for t in self._tasks if not t.done()]
        self._retired = [r for r in self._retired if not (r.task and r.task.done())]

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
                _show_failure(stats, message)
            return None
        run.stats.set_state("starting", "")
        if old is not None:
            run.after = old.task
            if old.inbox is not None and run.inbox is not None:
                run.inbox.take_over(old.inbox)
        return run

    def _retire(self, run: NodeRun) -> None:
        """Stop ``run`` as the whole flow stops: a source is cancelled, a consumer reads on
        until its wires close (or its successor takes them), then flushes and closes."""
        run.retired = True
        run.halt.set()
        if run.task is not None and not run.task.done():
            self._retired.append(run)


def _failed_stats(built: BuiltNode, report: DeployReport) -> NodeStats:
    """Status of a new node that could not be created: ``error`` with the reason."""
    stats = NodeStats(built.defn.id, built.defn.type, built.cls.kind)
    _show_failure(stats, report.failed[built.defn.id])
    return stats


def _show_failure(stats: NodeStats, message: str) -> None:
    """Show ``message`` as the node's error; it has no run, so no wires either."""
    stats.errors += 1
    stats.last_error = message
    stats.wires = []
    stats.set_state("error", message[:200])


def _same(run: NodeRun, built: BuiltNode, settings: FlowSettings) -> bool:
    """True when ``run`` can stay as ``built`` under ``settings``: same type, config, queue
    size (for a node with inputs) and retry policy (disabled nodes are not running at all)."""
    return (
        run.built.cls is built.cls
        and run.built.config == built.config
        and (not built.cls.inputs or run.capacity == (built.defn.queue_size or settings.queue_size))
        and run.retry == (built.defn.retry or settings.retry)
    )
