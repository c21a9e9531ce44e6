"""Checkpoints and ingest journals of one running flow (``settings: {checkpoint: 1s}``).

What it adds to the runtime, and where:

* **Sources journal what they emit.** A source's sends go through :meth:`Durability.send`:
  the batches are appended to the source's journal (one SQLite file, committed per
  ``journal_sync``), then the source may confirm them upstream (``Source.acknowledge``: MQTT
  acks), then they travel on. The journal entry also carries the source's own state (its
  clock, its cursor), so a restarted source goes on from its last journaled batch.
* **Barriers.** Every ``checkpoint`` seconds each source puts a barrier on its wires after its
  last journaled batch (its *position*); nodes snapshot when the barrier is aligned on their
  inputs and pass it on; nodes without outgoing wires acknowledge it. See
  :mod:`flowengine.checkpoint` for the algorithm.
* **Completion.** A checkpoint whose every terminal node acknowledged is saved atomically;
  then each journal deletes through its source's position, and each source hears which of
  its states the saved checkpoint holds (``Source.committed``: a JetStream source acks then).
* **Restart.** Node states come back from the last complete checkpoint (after ``start``,
  before the first batch); each source first replays its journal after its position, then
  reads anew. Everything after the checkpoint is processed again: at-least-once delivery,
  stateful results as if uninterrupted.
* **Clean stop.** After a full drain every journaled batch has reached the sinks: a last
  checkpoint holds the drained states and the journals are emptied, so a restart replays
  nothing (no duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from flowengine.checkpoint import (
    Barrier,
    Checkpoint,
    CheckpointBackend,
    CheckpointStore,
    Coordinator,
    decode_state,
    encode_state,
    fingerprint,
)
from flowengine.journal import Journal, JournalFull
from flowengine.model import Flow
from flowengine.node import Source
from flowengine.noderun import NodeRun
from flowengine.sending import batches_of, deliver
from flowengine.types import Batch, Result

log = logging.getLogger("flowengine.durable")

#: Batches replayed from a journal per read.
REPLAY_CHUNK = 64
#: Seconds between attempts while a journal's disk is full (the source waits: backpressure).
FULL_RETRY = 1.0


def state_folder(flow: Flow) -> Path:
    """Where checkpoints and journals of ``flow`` live (``settings.state_dir``, by default
    ``.flowengine/<flow file stem>`` beside the flow file)."""
    base = flow.path.parent
    configured = flow.settings.state_dir
    if configured:
        folder = Path(configured).expanduser()
        return folder if folder.is_absolute() else base / folder
    return base / ".flowengine" / flow.path.stem


class Durability:
    """The checkpoint coordinator, journals and restore logic for one :class:`Runtime`; its
    checkpoints in ``folder/checkpoint`` or ``backend`` (a store other hosts read)."""

    def __init__(
        self, flow: Flow, runs: dict[str, NodeRun], backend: CheckpointBackend | None = None
    ) -> None:
        self.flow = flow
        self.runs = runs
        self.interval = flow.settings.checkpoint or 1.0
        self.folder = state_folder(flow)
        self.store = CheckpointStore(self.folder, backend)
        self.restored_from = self.store.load()
        #: The checkpoint a clean stop saved, until its sources heard of it (``confirm``).
        self.final: Checkpoint | None = None
        self.coordinator = Coordinator(self.store, self.restored_from)
        self.journals: dict[str, Journal] = {}
        self.positions: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._restored: set[str] = set()
        self._replayed: set[str] = set()
        self._saving = asyncio.Lock()
        self._fingerprints: dict[NodeRun, str] = {}  # by identity (eq=False)
        #: Each source's state as of its last journaled batch (encoded): what a checkpoint
        #: records for it, since its live state may be ahead (a read not yet journaled).
        self.source_states: dict[str, str | None] = {}

    # ---- journals --------------------------------------------------------------------------
    def journal(self, run: NodeRun) -> Journal:
        """The journal of source ``run`` (opened, and recovered if needed, on first use)."""
        journal = self.journals.get(run.id)
        if journal is None:
            path = self.folder / f"journal-{run.id}.db"
            journal = Journal(path, sync=self.flow.settings.journal_sync, name=run.id)
            self.journals[run.id] = journal
            saved = self.restored_from.positions.get(run.id, 0) if self.restored_from else 0
            if saved > journal.last_seq():  # a salvaged journal lost its numbering: go on above
                journal.continue_after(saved)
            # what this run has delivered downstream: the checkpoint's position until the
            # replay or a new batch moves it (a barrier records exactly this)
            self.positions[run.id] = saved
            if journal.lost_batches:
                run.stats.errors += journal.lost_batches
        return journal

    def _fingerprint(self, run: NodeRun) -> str:
        """``run``'s type and settings digest, worked out once per run (sends need it)."""
        fp = self._fingerprints.get(run)
        if fp is None:
            fp = self._fingerprints[run] = fingerprint(run.built.defn.type, run.built.defn.config)
        return fp

    def lock(self, run: NodeRun) -> asyncio.Lock:
        return self._locks.setdefault(run.id, asyncio.Lock())

    async def send(self, run: NodeRun, result: Result, port: str) -> None:
        """A source's send: journal first, confirm upstream, then deliver downstream.

        Once a source has read something it is out of the device: a stop that cancels the
        source meanwhile waits for this send to finish (journal and wires), then goes on.
        """
        task = asyncio.ensure_future(self._send(run, result, port))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task  # a second cancel (the drain watchdog) ends this wait
            raise

    async def _send(self, run: NodeRun, result: Result, port: str) -> None:
        if isinstance(run.node, Source) and run.node.replayable:
            await self._send_replayable(run, result, port)
            return
        sends = list(batches_of(run, result, port, None))
        if not sends:
            return
        journal = self.journal(run)
        state = encode_state(run.node.snapshot())
        fp = self._fingerprint(run)
        records = [
            (b.frame, {"port": p, "topic": b.topic, "created": b.created, "state": state, "fp": fp})
            for p, b in sends
        ]
        async with self.lock(run):
            seqs = await self._append(run, journal, records)
            self.positions[run.id] = seqs[-1]
            self.source_states[run.id] = state
            if isinstance(run.node, Source):
                await run.node.acknowledge()
            for out_port, batch in sends:
                await deliver(run, out_port, batch)
        self._show(run, journal)

    async def _send_replayable(self, run: NodeRun, result: Result, port: str) -> None:
        """A source that replays itself from its state: deliver, then note that state (what
        the next checkpoint keeps for it, as of the batches it has sent)."""
        async with self.lock(run):
            for out_port, batch in batches_of(run, result, port, None):
                await deliver(run, out_port, batch)
            self.source_states[run.id] = encode_state(run.node.snapshot())

    async def _append(
        self, run: NodeRun, journal: Journal, records: list[tuple[Any, dict[str, Any]]]
    ) -> list[int]:
        """Append, waiting while the disk is full (the source is held back, not dropped)."""
        while True:
            try:
                return await asyncio.to_thread(journal.append, records)
            except JournalFull as exc:
                run.stats.set_state("retrying", f"{exc}: holding back")
                await asyncio.sleep(FULL_RETRY)

    def _show(self, run: NodeRun, journal: Journal) -> None:
        stats = journal.stats
        counters = run.stats.counters
        counters["journal_batches"] = stats.batches
        counters["journal_rows"] = stats.rows
        counters["journal_bytes"] = stats.bytes
        counters["journal_oldest"] = int(stats.oldest or 0)

    # ---- restart ---------------------------------------------------------------------------
    def restore(self, run: NodeRun) -> None:
        """Give ``run`` its state back, once, right after its first successful start."""
        if run.id in self._restored:
            return
        self._restored.add(run.id)
        journaled = isinstance(run.node, Source) and not run.node.replayable
        state = self._source_state(run) if journaled else None
        if state is None and self.restored_from is not None:
            fp = self._fingerprint(run)
            state = self.restored_from.state_of(run.id, fp)
            if state is None and run.id in self.restored_from.states:
                run.log.warning(
                    "its settings changed since checkpoint %d: the state saved then (open "
                    "windows, held rows) does not fit them and is dropped",
                    self.restored_from.id,
                )
        if state is None:
            return
        try:
            run.node.restore(state)
        except Exception as exc:  # a state the node cannot take must not stop the flow's start
            run.node.ctx.error(f"state not restored: {type(exc).__name__}: {exc}")
            run.log.error(
                "its saved state could not be restored (%s: %s): it starts without it",
                type(exc).__name__,
                exc,
            )
            return
        run.log.info("state restored (checkpoint %s)", self.restored_from and self.restored_from.id)

    def _source_state(self, run: NodeRun) -> Any:
        """A source's state as of its last journaled batch (newer than any checkpoint)."""
        journal = self.journal(run)
        last = journal.read(after=max(0, journal.last_seq() - 1), limit=1)
        if not last:
            return None
        if last[-1].meta.get("fp") != self._fingerprint(run):
            run.log.warning("its settings changed since its journal was written: it starts anew")
            return None
        return decode_state(last[-1].meta.get("state"))

    async def replay(self, run: NodeRun) -> None:
        """Send again what ``run``'s journal holds after the last checkpoint's position (once
        per run, before the source reads anew)."""
        if run.id in self._replayed or (isinstance(run.node, Source) and run.node.replayable):
            return
        self._replayed.add(run.id)
        journal = self.journal(run)
        start = self.positions.get(run.id, 0)
        replayed = 0
        async with self.lock(run):  # no barrier can pass the replay: positions stay honest
            if start:
                await asyncio.to_thread(journal.delete_through, start)
            after = start
            while entries := await asyncio.to_thread(journal.read, after, REPLAY_CHUNK):
                for entry in entries:
                    batch = _batch_of(run, entry.frame, entry.meta)
                    await deliver(run, entry.meta.get("port", "out"), batch)
                    replayed += len(entry.frame)
                    self.positions[run.id] = after = entry.seq
        if replayed:
            run.log.warning("replayed %d rows from its journal after a restart", replayed)

    # ---- checkpoints -----------------------------------------------------------------------
    async def run_checkpoints(self) -> None:
        """Open a checkpoint every ``interval`` seconds (one at a time), until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            if self.coordinator.open:
                continue  # the last one has not completed yet: do not pile barriers up
            await self.begin()

    async def begin(self) -> None:
        live = [r for r in self.runs.values() if not r.ended]
        terminals = {r.id for r in live if not any(r.outputs.values())}
        if not terminals or not any(isinstance(r.node, Source) for r in live):
            return  # nothing to wait for, or no barrier would be sent: it would cover nothing
        cid = self.coordinator.begin(terminals)
        for run in live:  # a source still connecting sends its barrier too: its wires are
            if isinstance(run.node, Source):  # idle, and its consumers must not wait for it
                async with self.lock(run):
                    if run.id in self._restored:
                        self._record(run, cid, self.positions.get(run.id))
                    else:  # never started: its last state stands, but what it replayed counts
                        self.coordinator.record_position(cid, run.id, self.positions.get(run.id))
                    await self._pass_on(run, Barrier(cid))

    def _record(self, run: NodeRun, cid: int, position: int | None = None) -> None:
        fp = self._fingerprint(run)
        if isinstance(run.node, Source):
            if run.id not in self.source_states:  # sent nothing yet: what it was restored to
                self.source_states[run.id] = encode_state(run.node.snapshot())
            state = decode_state(self.source_states[run.id])
        else:
            state = run.node.snapshot()
        self.coordinator.record(cid, run.id, state, fp, position)

    async def _pass_on(self, run: NodeRun, barrier: Barrier) -> None:
        """Forward ``barrier`` on every outgoing wire, or acknowledge it at a terminal."""
        wires = [w for port_wires in run.outputs.values() for w in port_wires]
        if not wires:
            await self._completed(self.coordinator.acknowledge(barrier.id, run.id))
            return
        for wire in wires:
            assert wire.inbox is not None
            await wire.inbox.put(wire, barrier)

    async def on_barrier(self, run: NodeRun, barrier: Barrier) -> None:
        """``run``'s inbox aligned ``barrier``: snapshot, then pass it on."""
        self._record(run, barrier.id)
        await self._pass_on(run, barrier)

    async def ended(self, run: NodeRun) -> None:
        """``run`` finished: it acknowledges nothing more."""
        for cp in self.coordinator.forget_terminal(run.id):
            await self._completed(cp)

    async def _completed(self, checkpoint: Checkpoint | None) -> None:
        """Save a complete checkpoint, then let the journals forget what it covers; both in a
        worker thread (fsyncs), one completion at a time, so the saves stay in order."""
        if checkpoint is None:
            return
        async with self._saving:
            try:
                await asyncio.to_thread(self.store.save, checkpoint)
            except Exception as exc:  # a store on the network may be away: the next one saves
                self._unsaved(f"checkpoint {checkpoint.id}", exc)
                return
            await self._commit(checkpoint)
            for source, position in checkpoint.positions.items():
                journal = self.journals.get(source)
                if journal is not None and position:
                    await asyncio.to_thread(journal.delete_through, position)
                    run = self.runs.get(source)
                    if run is not None:
                        self._show(run, journal)

    async def _commit(self, checkpoint: Checkpoint) -> None:
        """Tell each source that cares (``Source.committed``) which of its states the saved
        ``checkpoint`` holds, so it may confirm upstream what that state covers."""
        for run in list(self.runs.values()):
            node = run.node
            if not isinstance(node, Source) or type(node).committed is Source.committed:
                continue  # (a source without state records none: nothing to confirm)
            try:
                state = checkpoint.state_of(run.id, self._fingerprint(run))
                if state is not None:
                    await node.committed(state)
            except Exception as exc:  # never fails the checkpoint: it is saved already
                run.log.warning("confirming checkpoint %d failed: %s", checkpoint.id, exc)

    async def confirm(self) -> None:
        """After the run: the sources hear of a clean stop's last checkpoint; store closed."""
        try:
            if self.final is not None:
                await self._commit(self.final)
        finally:
            self.final = None
            self.store.close()

    def _unsaved(self, what: str, exc: Exception) -> None:
        where = self.store.backend.where
        log.error(
            "%s not saved to %s: %s: %s (journals kept)", what, where, type(exc).__name__, exc
        )

    def abort(self) -> None:
        """A deploy changed the graph: open checkpoints are dropped, inboxes unaligned."""
        self.coordinator.abort_all()
        for run in self.runs.values():
            if run.inbox is not None:
                run.inbox.reset_alignment()

    # ---- the end ---------------------------------------------------------------------------
    def finish(self, drained: bool) -> None:
        """After the run: on a full drain save the drained states and empty the journals;
        otherwise keep the journals for the next start to replay. Close them."""
        try:
            if drained:
                self._final_checkpoint()
        except Exception as exc:  # the store is away: the last periodic checkpoint stands
            self._unsaved("the last checkpoint", exc)
        finally:
            for journal in self.journals.values():
                with contextlib.suppress(Exception):
                    journal.close()

    def _final_checkpoint(self) -> None:
        cid = self.coordinator.begin(set())
        for run in self.runs.values():
            if isinstance(run.node, Source) and run.id not in self._restored:
                continue  # never started: it keeps the last checkpoint's state
            self._record(run, cid, self.positions.get(run.id))
        checkpoint = self.coordinator.acknowledge(cid, "")
        if checkpoint is None:  # begin with no terminals completes on the first acknowledge
            return
        self.store.save(checkpoint)  # the run is over: nothing else waits on the loop
        self.final = checkpoint
        for source, journal in self.journals.items():
            journal.delete_through(self.positions.get(source, journal.last_seq()))


def _batch_of(run: NodeRun, frame: pd.DataFrame, meta: dict[str, Any]) -> Batch:
    """A replayed journal entry as the batch it was: topic and creation time kept."""
    batch = Batch(frame, meta.get("topic"), run.id)
    created = meta.get("created")
    if isinstance(created, int | float):
        batch.created = float(created)
    return batch
