"""The editor's handle on a running flow: start, deploy into, stop, and read its live state.

A :class:`FlowHost` owns one :class:`~flowengine.runtime.Runtime` at a time, running as a
background task on the event loop of whoever calls :meth:`FlowHost.start` (the editor's own).
Every method is meant for that loop; none blocks it.

API (what the editor calls):

* ``await host.start(checked)`` runs the checked flow; returns once its nodes run (raises
  :class:`RuntimeError` if one already runs, :class:`~flowengine.problems.FlowError` if the
  flow has errors or a node cannot be created).
* ``await host.deploy(checked) -> DeployReport`` applies the flow to the running one (only
  changed nodes restart) or, when nothing runs, starts it (the report lists every node as added).
* ``await host.stop() -> RunReport | None`` stops and drains (``None`` when nothing ran).
* ``host.running`` is True while a flow runs and is not stopping.
* ``host.snapshot()``: one dict per node: ``id``, ``type``, ``kind``, ``state`` (starting, ok,
  retrying, error, stopped: the dot's colour), ``text`` (the status text), ``rows_in``,
  ``rows_out``, ``rows_per_s``, ``errors``, ``last_error``, ``data_age``, ``counters``,
  ``queues``, ``on_disk`` (None, or what a buffer or journal holds: ``kind``, ``batches``,
  ``rows``, ``bytes``, ``age_s``) and ``warning`` (None, or why the node needs a look: a full
  buffer, a sink down with a backlog). Empty before the first start; the last run's state
  after it ended.
* ``host.wire_fill()``: ``{(source, port, dest, dest_port): fill 0..1}`` per wire.
* ``host.debug_batches(node_id) -> list[Batch]``: the latest batches a node kept in its
  ``recent`` buffer (the ``debug`` node does), oldest first (empty for others or unknown ids).
* ``host.taps``: the recent batches entering and leaving every node (bounded and rate-limited:
  see :mod:`flowengine.ui.taps`), what "Save as test" reads. A deploy drops what the nodes
  it restarts saw before; a new run starts with none.
"""

from __future__ import annotations

import asyncio

from flowengine.runtime import DeployReport, NotRunning, RunReport, Runtime, WireKey
from flowengine.types import Batch
from flowengine.ui.taps import Taps
from flowengine.validate import CheckedFlow


class FlowHost:
    """Runs one flow at a time in the background and deploys new versions into it."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self._task: asyncio.Task[RunReport] | None = None
        self.taps = Taps()

    @property
    def running(self) -> bool:
        return self.runtime is not None and self.runtime.running

    async def start(self, checked: CheckedFlow) -> None:
        """Run ``checked`` in a background task; returns once its nodes run."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("a flow is already running: deploy into it or stop it first")
        runtime = Runtime(checked)
        self.taps.forget(())  # a new run: what the last one saw is not this one's
        runtime.observe(self.taps)
        self.runtime = runtime
        task = self._task = asyncio.create_task(runtime.run(), name="flowengine:host")
        started = asyncio.create_task(runtime.wait_started())
        try:  # a run that fails at once ends the wait too, and start raises its error
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if task.done():
            task.result()  # raises what the run raised

    async def deploy(self, checked: CheckedFlow) -> DeployReport:
        """Apply ``checked`` to the running flow, or start it when none runs."""
        if self.runtime is not None and self._task is not None and not self._task.done():
            try:
                report = await self.runtime.apply(checked)
            except NotRunning:
                await self.stop()  # it ended or is stopping: let it finish, then start anew
            else:  # what a changed node saw before is not what it does now
                self.taps.forget(set(checked.nodes) - {*report.added, *report.restarted})
                return report
        await self.start(checked)
        assert self.runtime is not None
        return DeployReport(added=list(self.runtime.stats))

    async def stop(self) -> RunReport | None:
        """Stop the flow and wait for it to drain; its report, or None when nothing ran."""
        if self.runtime is None or self._task is None:
            return None
        self.runtime.stop()
        return await asyncio.shield(self._task)

    def snapshot(self) -> list[dict[str, object]]:
        return self.runtime.snapshot() if self.runtime else []

    def wire_fill(self) -> dict[WireKey, float]:
        return self.runtime.wire_fill() if self.runtime else {}

    def debug_batches(self, node_id: str) -> list[Batch]:
        try:
            node = self.runtime.node(node_id) if self.runtime else None
        except KeyError:
            return []
        return list(node.recent) if node is not None and node.recent is not None else []
