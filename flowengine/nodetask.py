"""The task of one node: start with retries, read or consume until the stream ends, drain, close.

A source runs until ``stop`` (or a deploy halting it) cancels it; every other node reads its
inbox until all its wires have closed, then flushes, closes and lets go of its own wires, so the
end of stream travels down the graph and nothing already read is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from flowengine.checkpoint import Barrier
from flowengine.logs import redact
from flowengine.node import Source, Transform
from flowengine.noderun import NodeRun
from flowengine.sending import send
from flowengine.types import ERROR_PORT, Batch
from flowengine.wiring import release_all

if TYPE_CHECKING:
    from flowengine.durable import Durability

#: Seconds a node's ``close`` may take after a hard stop.
CLOSE_TIMEOUT = 5.0


class NodeTasks:
    """Runs node tasks for one runtime: ``stop`` is its stop signal (set by ``Runtime.stop``),
    ``dropped`` counts batches lost by nodes removed before they could start."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.stop: asyncio.Event | None = None
        self.dropped = 0
        #: Checkpoints and journals, when the flow has ``settings.checkpoint``.
        self.durable: Durability | None = None
        #: Seconds a stop gives buffered sinks to forward what they hold (then it stays on disk).
        self.drain_timeout = 15.0
        #: Set after each batch a node handled, while ``Runtime.settled`` waits for one.
        self.progress: asyncio.Event | None = None
        #: States to restore into nodes once started (a test's given state), by node id.
        self.seeded: dict[str, Any] = {}

    async def main(self, run: NodeRun) -> None:
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
                await asyncio.wait_for(self.close_node(run), CLOSE_TIMEOUT)
            if not run.retired:
                run.stats.set_state("stopped", "stopped before draining")
            raise
        finally:
            run.ready.set()

    # ---- starting -------------------------------------------------------------------------
    async def try_start(self, run: NodeRun) -> None:
        """One call of the node's ``start``; a failure schedules the next attempt."""
        try:
            await run.node.start()
        except Exception as exc:
            await self._failed(run, exc, "start failed")
            return
        finally:
            run.ready.set()
        run.started = True
        run.stats.set_state("ok", "")
        if self.durable is not None:
            self.durable.restore(run)
        if run.id in self.seeded:
            run.node.restore(self.seeded.pop(run.id))

    async def _open(self, run: NodeRun) -> bool:
        """Call ``start`` until it succeeds, backing off between attempts. A node a deploy
        removed gets one more attempt, then gives up: False."""
        while not run.started:
            if run.next_delay is not None:
                if run.halt.is_set():
                    return False
                await self._back_off(run, run.next_delay)
                run.next_delay = None
            await self.try_start(run)
        return True

    @staticmethod
    async def _back_off(run: NodeRun, delay: float) -> None:
        """Wait ``delay`` on the node's clock, or until a deploy halts the node."""
        halted = asyncio.ensure_future(run.halt.wait())
        waited = asyncio.ensure_future(run.clock.sleep(delay))
        try:
            await asyncio.wait({halted, waited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
            waited.cancel()

    async def _failed(self, run: NodeRun, exc: BaseException, what: str) -> None:
        """Record a failed connect or run, close the node, and schedule the next attempt."""
        delay = run.retry.delay(run.attempt, self.rng)
        run.attempt += 1
        run.next_delay = delay
        run.started = False
        stats = run.stats
        stats.errors += 1
        stats.retries += 1
        stats.last_error = redact(f"{type(exc).__name__}: {exc}")
        stats.set_state("retrying", redact(f"{exc} (retry in {delay:.1f}s)"))
        run.log.warning("%s: %s; retrying in %.1fs", what, stats.last_error, delay)
        if run.observer is not None:
            run.observer.failed(run.id, f"{what}: {stats.last_error}")
        await self.close_node(run)

    @staticmethod
    async def close_node(run: NodeRun) -> None:
        """The node's ``close``; its errors are logged, never raised."""
        try:
            await run.node.close()
        except Exception as exc:
            run.log.error("close failed: %s: %s", type(exc).__name__, exc)

    async def unless_stopped(self, task: asyncio.Task[None], run: NodeRun | None = None) -> bool:
        """Wait for ``task`` unless ``stop`` (or a deploy halting ``run``) comes first, then
        cancel it; True if it finished."""
        assert self.stop is not None
        stoppers = {asyncio.create_task(self.stop.wait())}
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

    # ---- sources --------------------------------------------------------------------------
    async def _source_main(self, run: NodeRun) -> None:
        """Supervise the source until it ends, ``stop`` or a deploy halts it; then finish it."""
        task = asyncio.create_task(self._supervise_source(run), name=f"source:{run.id}")
        if await self.unless_stopped(task, run) and (exc := task.exception()) is not None:
            run.log.error("source crashed: %s: %s", type(exc).__name__, exc)  # a bug, not data
        await self._finish(run)

    async def _supervise_source(self, run: NodeRun) -> None:
        """Run a source; on failure close it, back off and connect again."""
        assert isinstance(run.node, Source)
        for consumer in run.gate:  # deployed with new consumers downstream: they start first
            await consumer.wait()
        if self.durable is not None:  # what the last run journaled goes on first, even while
            await self.durable.replay(run)  # the device itself cannot be reached
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

    # ---- transforms and sinks -------------------------------------------------------------
    async def _consume_main(self, run: NodeRun) -> None:
        """Start, then call the handler per batch until every input wire has closed; finish.

        A buffered sink takes batches into its buffer from the first moment, started or not
        (a destination that is down at start-up holds nothing up); its forwarder connects it,
        with retries, and writes the buffer on.
        """
        if run.buffer is not None:
            forwarder = asyncio.create_task(self._forward(run))
            try:
                await self._consume(run)
            finally:
                await self._stop_forwarding(run, forwarder)
            await self._finish(run)
            return
        if not await self._open(run):  # removed by a deploy before it could ever start
            await self._drop_queued(run)
            return
        await self._consume(run)
        await self._finish(run)

    async def _forward(self, run: NodeRun) -> None:
        """A buffered sink's forwarder: connect (retrying), then buffered batches to ``write``."""
        assert run.buffer is not None
        if not await self._open(run):
            return  # removed by a deploy before it could start: the buffer stays on disk
        write = run.node.write  # type: ignore[attr-defined]
        await run.buffer.forward(write, self._node_error)

    async def _stop_forwarding(self, run: NodeRun, forwarder: asyncio.Task[None]) -> None:
        """Give the forwarder the drain time to empty the buffer; what is left stays on disk
        for the next start (not lost)."""
        assert run.buffer is not None
        if not forwarder.done():
            with contextlib.suppress(asyncio.CancelledError):
                drained = await run.buffer.drain(self.drain_timeout * 0.8)
                if not drained:
                    left = run.buffer.journal.stats
                    run.log.warning(
                        "sink still unavailable: %d batches (%d rows) stay buffered on disk for "
                        "the next start",
                        left.batches,
                        left.rows,
                    )
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarder
        run.buffer.close()

    async def _consume(self, run: NodeRun) -> None:
        """Call the handler per batch until every input wire has closed. A plain (not async)
        handler also takes batches in its sender's call while it waits with nothing to read
        (``Inbox.direct``, see flowengine/sending.py); what of that had to wait goes on in
        ``Inbox.resuming``, which ``Inbox.get`` waits for before the next batch or the end."""
        inbox = run.inbox
        assert inbox is not None and run.handler is not None
        handle = self._handle
        if not run.handler_is_async and run.buffer is None:
            inbox.direct = functools.partial(handle, run)
        try:
            while (batch := await inbox.get()) is not None:  # after one handed over: in order
                if isinstance(batch, Barrier):
                    assert self.durable is not None  # barriers come only with checkpoints
                    await self.durable.on_barrier(run, batch)
                    continue
                await handle(run, batch)
        finally:
            inbox.direct = None
            resuming = inbox.resuming
            if resuming is not None and not resuming.done():  # this task was cancelled (a
                resuming.cancel()  # hard stop) while it waited: the handing over ends with it
                await asyncio.wait((resuming,))

    async def _handle(self, run: NodeRun, batch: Batch) -> None:
        """One batch through the node's handler, its result sent on; an error is the node's
        (never its sender's, when the batch was handed over in the sender's call)."""
        stats = run.stats
        stats.batches_in += 1
        stats.rows_in += len(batch)
        stats.last_data = time.time()
        run.handling = True
        try:
            result = run.handler(batch)  # type: ignore[misc]
            if run.handler_is_async:
                result = await result
            if result is not None:
                if isinstance(run.node, Transform):
                    await send(run, result, "out", batch)
                elif inspect.isawaitable(result):  # a sink's plain ``write`` that must wait
                    # in a task of its own: code in it that binds to its task (asyncio.timeout,
                    # TaskGroup) must not bind to a sender that handed the batch over
                    run.waiting = asyncio.ensure_future(result)
                    try:
                        await run.waiting
                    finally:
                        run.waiting = None
        except Exception as exc:
            try:
                await self._node_error(run, exc, batch)
            except Exception as failed:  # reporting it failed: still this node's, logged
                run.log.error("could not report an error: %s: %s", type(failed).__name__, failed)
            return
        finally:
            run.handling = False
            if self.progress is not None:
                self.progress.set()
        if stats.state == "error":
            stats.set_state("ok", "")

    async def _drop_queued(self, run: NodeRun) -> None:
        """Count and drop what was queued for a node that never started, then end it."""
        assert run.inbox is not None
        lost = 0
        while (item := await run.inbox.get()) is not None:  # its wires are detached: none blocks
            lost += not isinstance(item, Barrier)
        if lost:
            self.dropped += lost
            run.log.error("removed before it could start: %d queued batches dropped", lost)
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
        if run.observer is not None:
            run.observer.failed(run.id, message)
        if run.outputs.get(ERROR_PORT) or run.observer is not None:
            failed = Batch(batch.frame, batch.topic, run.id, batch.created, error=message)
            await send(run, failed, ERROR_PORT, None)

    def _stops_with_state(self, run: NodeRun) -> bool:
        """A transform of a checkpointed flow that is being stopped (not a stream that ended)
        keeps what it holds for the next start instead of flushing it as if the stream were
        over (Flink's stop-with-savepoint): a window spanning the stop is emitted once, whole."""
        stopping = self.stop is not None and self.stop.is_set()
        if self.durable is None or not stopping or not isinstance(run.node, Transform):
            return False
        return run.node.snapshot() is not None  # a node that keeps no state flushes as ever

    async def _finish(self, run: NodeRun) -> None:
        """Flush, close, and let go of every outgoing wire (the end of stream, unless a
        successor of this node still sends on it)."""
        run.ended = True
        try:
            if self._stops_with_state(run):
                pending = None  # its open windows and held rows go into the final checkpoint
            else:
                pending = await run.node.flush()
            if isinstance(run.node, Source):  # the way its other sends go (journal, acks)
                await run.node.ctx.send(pending)
            else:
                await send(run, pending, "out", None)
        except Exception as exc:
            run.log.error("flush failed: %s: %s", type(exc).__name__, exc)
            run.stats.errors += 1
            if run.observer is not None:
                run.observer.failed(run.id, redact(f"flush failed: {type(exc).__name__}: {exc}"))
        await self.close_node(run)
        if run.stats.state != "error" and not run.retired:
            run.stats.set_state("stopped")
        release_all(run)
        if self.durable is not None:
            await self.durable.ended(run)
