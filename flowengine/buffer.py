"""Store-and-forward for sinks (the node key ``buffer``): batches wait on disk, not in memory.

A buffered sink takes each batch off its inbox by appending it to its buffer (a
:class:`~flowengine.journal.Journal` in the flow's state folder), which is as far as the flow
and its checkpoints are concerned a delivered batch. A forwarder task hands the buffered
batches to the sink's ``write`` in order and deletes each only once ``write`` returned: a
sink that is down for an hour holds up nothing upstream while the disk has room, and a crash
or a stop keeps what is still buffered for the next start.

A ``write`` that raises a transient error (the sink's ``is_transient``: connection refused, a
timeout) is retried with the node's backoff, the batch staying first in line; any other error
is the batch's own (bad data the sink refuses): it goes to the ``error`` port like an
unbuffered sink's failure, and the next batch goes on. A full buffer holds the flow back
(``when_full: block``) or drops its oldest batches (``drop_oldest``, counted and logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from flowengine.journal import Journal, JournalFull
from flowengine.noderun import NodeRun
from flowengine.settings import BufferPolicy
from flowengine.types import Batch

#: Batches read from the buffer at a time.
CHUNK = 16
#: Seconds between attempts to store while the buffer (or its disk) is full.
FULL_RETRY = 0.5

ErrorHandler = Callable[[NodeRun, Exception, Batch], Awaitable[None]]


class SinkBuffer:
    """The disk buffer in front of one sink, and its forwarder."""

    def __init__(self, run: NodeRun, policy: BufferPolicy, folder: Path) -> None:
        self.run = run
        self.journal = Journal(
            folder / f"buffer-{run.id}.db",
            sync=policy.sync,
            max_bytes=policy.max_bytes,
            when_full=policy.when_full,
            name=run.id,
        )
        self._more = asyncio.Event()
        self._full_since: float | None = None
        self.show()

    async def put(self, batch: Batch) -> None:
        """Store ``batch`` (the sink's handler); waits while the buffer is full."""
        record = (
            batch.frame,
            {"topic": batch.topic, "origin": batch.origin, "created": batch.created},
        )
        while True:
            dropped = self.journal.lost_batches
            try:
                await asyncio.to_thread(self.journal.append, [record])
                break
            except JournalFull as exc:
                self.run.stats.counters["buffer_full"] = 1
                if self._full_since is None:
                    self._full_since = time.monotonic()
                    self.run.log.warning("%s: holding the flow back", exc)
                self.run.stats.set_state("retrying", f"buffer full: {exc}")
                await asyncio.sleep(FULL_RETRY)
        if self.journal.lost_batches > dropped:
            self.run.stats.errors += self.journal.lost_batches - dropped
            self.run.stats.last_error = (
                "buffer full: oldest batches dropped (when_full: drop_oldest)"
            )
            self.run.stats.counters["dropped_batches"] = self.journal.lost_batches
        if self._full_since is not None:
            self.run.stats.counters["buffer_full"] = 0
            self._full_since = None
            self.run.stats.set_state("ok", "")
        self._more.set()
        self.show()

    async def forward(self, write: Callable[[Batch], Any], on_error: ErrorHandler) -> None:
        """Hand buffered batches to ``write`` in order until cancelled (see the module doc)."""
        while True:
            entries = await asyncio.to_thread(self.journal.read, 0, CHUNK)
            if not entries:
                self._more.clear()
                await self._more.wait()
                continue
            for entry in entries:
                batch = Batch(entry.frame, entry.meta.get("topic"), entry.meta.get("origin"))
                batch.created = float(entry.meta.get("created") or batch.created)
                await self._write_one(batch, write, on_error)
            # written (or sent to error): forget them, one commit per chunk (a crash before it
            # writes them again: at least once)
            await asyncio.to_thread(self.journal.delete_through, entries[-1].seq)
            self.show()

    async def _write_one(
        self, batch: Batch, write: Callable[[Batch], Any], on_error: ErrorHandler
    ) -> None:
        run = self.run
        attempt = 0
        while True:
            try:
                result = write(batch)
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:
                if not run.node.is_transient(exc):  # type: ignore[attr-defined]
                    await on_error(run, exc, batch)  # the batch's own fault: error port
                    return
                delay = run.retry.delay(attempt)
                attempt += 1
                run.stats.errors += 1
                run.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
                run.stats.set_state(
                    "retrying", f"sink unavailable, buffering (retry in {delay:.1f}s)"
                )
                if attempt == 1:
                    run.log.warning(
                        "write failed: %s; buffering on disk meanwhile", run.stats.last_error
                    )
                await asyncio.sleep(delay)
                continue
            if attempt:
                run.log.info("sink back after %d attempts; forwarding the buffer", attempt)
                run.stats.set_state("ok", "")
            run.stats.counters["forwarded_rows"] = run.stats.counters.get(
                "forwarded_rows", 0
            ) + len(batch.frame)
            return

    async def drain(self, timeout: float) -> bool:
        """Wait until everything buffered was written (True) or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while self.journal.stats.batches:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def show(self) -> None:
        """Buffered batches, rows, bytes and the oldest's age, as the node's counters."""
        stats, counters = self.journal.stats, self.run.stats.counters
        counters["buffered_batches"] = stats.batches
        counters["buffered_rows"] = stats.rows
        counters["buffered_bytes"] = stats.bytes
        counters["buffered_oldest"] = int(stats.oldest or 0)  # epoch s: readers age it

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.journal.close()
