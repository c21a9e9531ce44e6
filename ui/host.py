"""The editor's handle on a running flow: start, deploy into, stop, and read its live state.

A :class:`FlowHost` runs one flow at a time in a process of its own (:mod:`.hostproc`, driven
through :mod:`.flowproc`), so a flow that keeps a core busy never slows the editor, and a flow
that crashes or is killed takes nothing with it. Every method is meant for the editor's event
loop; none blocks it. The sync reads return what the flow's process last pushed (a few times a
second, sampled and bounded there), so any number of viewers costs the flow nothing.

API (what the editor calls):

* ``await host.start(checked)`` runs the checked flow; returns once its nodes run (raises
  :class:`RuntimeError` if one already runs, :class:`~flowengine.problems.FlowError` if the
  flow has errors or a node cannot be created).
* ``await host.deploy(checked) -> DeployReport`` applies the flow to the running one (only
  changed nodes restart) or, when nothing runs, starts it (the report lists every node as added).
* ``await host.stop() -> RunReport | None`` stops and drains (``None`` when nothing ran; a
  report with ``drained=False`` when the process was killed).
* ``await host.restart()`` stops the flow and starts the last one started or deployed again
  (a new process: also what brings back a flow whose process was killed).
* ``await host.fire(node_id)``: one extra batch from a running ``firable`` source now (the
  inject button); :class:`KeyError`, :class:`TypeError` (not firable) or
  :class:`~flowengine.runtime.NotRunning`.
* ``await host.set_debug(node_id, on)``: a debug node's output on or off, no deploy; it stays
  so over deploys and restarts. ``host.debug_on(node_id)`` reads it.
* ``host.running`` is True while a flow runs and is not stopping.
* ``host.error``: why the last run ended abnormally (its process killed, crashed), else None.
* ``host.pid``: the flow process's pid (None before the first start).
* ``host.snapshot()``: one dict per node: ``id``, ``type``, ``kind``, ``state`` (starting, ok,
  retrying, error, stopped: the dot's colour), ``text`` (the status text), ``rows_in``,
  ``rows_out``, ``rows_per_s``, ``errors``, ``last_error``, ``data_age``, ``counters``,
  ``queues``, ``on_disk`` (None, or what a buffer or journal holds: ``kind``, ``batches``,
  ``rows``, ``bytes``, ``age_s``) and ``warning`` (None, or why the node needs a look: a full
  buffer, a sink down with a backlog). Empty before the first start; the last run's state
  after it ended (every node ``error`` with the reason when its process died).
* ``host.wire_fill()``: ``{(source, port, dest, dest_port): fill 0..1}`` per wire.
* ``host.debug_batches(node_id) -> list[Batch]``: the latest batches a node kept in its
  ``recent`` buffer (the ``debug`` node does), oldest first (empty for others or unknown ids);
  at most :data:`~flowengine.ui.hostproc.DEBUG_ROWS` rows each. A batch stays the same object
  across calls.
* ``host.taps``: the recent batches entering and leaving every node (bounded and rate-limited:
  see :mod:`flowengine.ui.taps`), what "Save as test" reads. A deploy drops what the nodes
  it restarts saw before; a new run starts with none.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from flowengine.node import Source
from flowengine.runtime import DeployReport, NotRunning, RunReport, WireKey, mask_secrets
from flowengine.types import Batch
from flowengine.ui.flowproc import FlowProcess, failure
from flowengine.ui.hostproc import Push
from flowengine.ui.taps import Event, Tap, Taps
from flowengine.validate import CheckedFlow

log = logging.getLogger("flowengine.editor")


class MirrorTaps(Taps):
    """The editor's copy of the taps the flow's process keeps (it does the sampling)."""

    def merge(self, new: dict[str, list[Event]], skipped: int) -> None:
        for node, events in new.items():
            log_ = self._logs.get(node)
            if log_ is None:
                log_ = self._logs[node] = deque(maxlen=self.keep)
            for event in events:
                self._append(log_, event)
                if isinstance(event, Tap):
                    self.held += len(event.frame.index)
        self.skipped = skipped


class FlowHost:
    """Runs one flow at a time in its own process and deploys new versions into it."""

    def __init__(self) -> None:
        self.taps = MirrorTaps()
        self.error: str | None = None
        self._proc: FlowProcess | None = None
        self._checked: CheckedFlow | None = None
        self._report: RunReport | None = None
        self._failure: Exception | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._running = False
        self._snapshot: list[dict[str, object]] = []
        self._fill: dict[WireKey, float] = {}
        self._debug: dict[str, tuple[int, deque[Batch]]] = {}
        self._muted: set[str] = set()
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.alive and self._running and not self._stopping

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, checked: CheckedFlow) -> None:
        """Run ``checked`` in a new process; returns once its nodes run."""
        async with self._lock:
            await self._start(checked)

    async def _start(self, checked: CheckedFlow) -> None:
        old = self._proc
        if old is not None and old.alive:
            raise RuntimeError("a flow is already running: deploy into it or stop it first")
        if old is not None:
            await old.close()  # ended by itself or died: reaped before the next one
        mask_secrets(checked)  # its data shows here (debug, taps): its secrets are masked here
        self.taps.forget(())  # a new run: what the last one saw is not this one's
        self._snapshot, self._fill, self._debug = [], {}, {}
        self._running, self._stopping, self.error = False, False, None
        self._report, self._failure = None, None
        proc = self._proc = await FlowProcess.spawn(self._on_push)
        self._checked = checked
        try:
            await proc.request("start", checked, sorted(self._muted))
        except BaseException:
            await proc.close()
            raise
        self._watcher = asyncio.create_task(self._watch(proc))

    async def deploy(self, checked: CheckedFlow) -> DeployReport:
        """Apply ``checked`` to the running flow, or start it when none runs."""
        async with self._lock:
            proc = self._proc
            if proc is not None and proc.alive:
                mask_secrets(checked)
                try:
                    report: DeployReport = await proc.request("deploy", checked)
                except NotRunning:  # ended, stopping or gone: let it finish, then start anew
                    await self._stop()
                else:  # what a changed node saw before is not what it does now
                    self._checked = checked
                    self.taps.forget(set(checked.nodes) - {*report.added, *report.restarted})
                    return report
            await self._start(checked)
            return DeployReport(added=[str(s["id"]) for s in self._snapshot])

    async def stop(self) -> RunReport | None:
        """Stop the flow and wait for it to drain; its report, or None when nothing ran."""
        async with self._lock:
            return await self._stop()

    async def _stop(self) -> RunReport | None:
        proc = self._proc
        if proc is None:
            return None
        if self._report is None:
            self._stopping = True
            drain = self._checked.flow.settings.drain_timeout if self._checked else 15.0
            await proc.stop(drain)
            self._ended(proc)
        if self._failure is not None:
            raise self._failure
        return self._report

    async def restart(self) -> None:
        """Stop the flow (if it runs) and start the last one started or deployed again."""
        async with self._lock:
            if self._checked is None:
                raise RuntimeError("no flow was started: nothing to restart")
            try:
                await self._stop()
            except Exception as exc:  # how the last run ended does not stop the new one
                log.warning("the flow's last run ended with an error: %s", exc)
            await self._start(self._checked)

    async def _watch(self, proc: FlowProcess) -> None:
        """A run that ends by itself, or a process that dies, shows as such."""
        await proc.closed.wait()
        if proc is self._proc and self._report is None and not self._stopping:
            await proc.close()
            self._ended(proc)

    def _ended(self, proc: FlowProcess) -> None:
        """The run is over: its report, and for a process that died, why on every node."""
        self._running = False
        result = proc.result
        if isinstance(result, RunReport):
            self._report = result
            return
        errors = sum(n for s in self._snapshot if isinstance(n := s.get("errors"), int))
        self._report = RunReport(False, 0.0, 0, errors)
        self._failure = failure(result)
        if self._failure is not None:
            self.error = f"the flow failed: {self._failure}"
        if proc.lost is not None:
            self.error = proc.lost
            self._snapshot = [
                {**s, "state": "error", "text": proc.lost, "last_error": proc.lost}
                for s in self._snapshot
            ]

    # ---- the editor's buttons ------------------------------------------------------------
    async def fire(self, node_id: str) -> None:
        """One extra batch from the running source ``node_id`` (the inject button)."""
        built = self._checked.nodes.get(node_id) if self._checked is not None else None
        if built is None:
            raise KeyError(node_id)
        if not (issubclass(built.cls, Source) and built.cls.firable):  # said without a round trip
            raise TypeError(f"node '{node_id}' ({built.defn.type}) cannot be fired")
        await self._live().request("fire", node_id)

    async def set_debug(self, node_id: str, on: bool) -> None:
        """Turn the debug node ``node_id``'s output on or off (kept for later runs too)."""
        proc = self._proc
        if proc is not None and proc.alive:
            await proc.request("set_debug", node_id, on)
        (self._muted.discard if on else self._muted.add)(node_id)

    def debug_on(self, node_id: str) -> bool:
        return node_id not in self._muted

    def _live(self) -> FlowProcess:
        proc = self._proc
        if proc is None or not proc.alive or not self._running:
            raise NotRunning(self.error or "the flow is not running")
        return proc

    # ---- the live view -------------------------------------------------------------------
    def _on_push(self, push: Push) -> None:
        self._running = push.running
        self._snapshot, self._fill = push.snapshot, push.fill
        debug: dict[str, tuple[int, deque[Batch]]] = {}
        for node_id in push.debug_nodes:
            held = self._debug.get(node_id)
            update = push.debug.get(node_id)
            if update is not None:
                if held is None or held[0] != update.generation:
                    held = (update.generation, deque(maxlen=update.keep))
                held[1].extend(update.batches)
            if held is not None:
                debug[node_id] = held
        self._debug = debug
        self.taps.merge(push.taps, push.skipped)

    def snapshot(self) -> list[dict[str, object]]:
        return list(self._snapshot)

    def wire_fill(self) -> dict[WireKey, float]:
        return dict(self._fill)

    def debug_batches(self, node_id: str) -> list[Batch]:
        held = self._debug.get(node_id)
        return list(held[1]) if held is not None else []
