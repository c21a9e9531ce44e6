"""What the editor keeps of the batches entering and leaving every node of the running flow,
for "Save as test" (see :mod:`flowengine.ui.savetest`).

:class:`Taps` is the runtime's observer (``Runtime.observe``): the runtime calls it inside every
send, so it does the least it can there: it keeps a reference to the batch's frame (frames are
read-only once sent, so nothing is copied) in a bounded per-node log. Three limits keep a
viewer from costing the flow anything that grows:

* each node keeps its latest ``keep`` events (``deque(maxlen)``);
* a batch over ``max_rows`` rows, or one that would take the rows held past ``max_held``, is
  not kept;
* ``rate`` events per second across the flow (bursts of ``burst``): when the budget runs out,
  recording stops until it is full again, so what is kept comes in whole stretches.

An event that is not kept leaves a :class:`Gap` in its node's log: a stretch of the log without
a gap (and after what the log already dropped) holds every batch that node saw in that time,
which is what a test case needs (:meth:`Taps.stretches`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from flowengine.inbox import Wire
from flowengine.types import Batch

#: Events kept per node.
KEEP = 60
#: A batch with more rows than this is not kept.
MAX_ROWS = 5_000
#: Rows kept across all nodes.
MAX_HELD = 200_000
#: Events per second kept across the flow, and the burst the budget allows.
RATE = 50.0
BURST = 200.0

Way = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Tap:
    """One batch entering (``in``, on an input port) or leaving (``out``) a node."""

    seq: int
    node: str
    way: Way
    port: str
    frame: pd.DataFrame
    at: float  # wall-clock time it was seen (epoch seconds)
    #: The batch's creation time: a node's output keeps its input's, so it pairs them.
    created: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Events of a node were not kept here (rate, size or memory limit)."""

    seq: int


Event = Tap | Gap


class Taps:
    """The runtime's observer in the editor: recent batches in and out of every node."""

    def __init__(
        self,
        *,
        keep: int = KEEP,
        max_rows: int = MAX_ROWS,
        max_held: int = MAX_HELD,
        rate: float = RATE,
        burst: float = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep = keep
        self.max_rows = max_rows
        self.max_held = max_held
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._logs: dict[str, deque[Event]] = {}
        self._seq = itertools.count()
        self._tokens = burst
        self._last = clock()
        self._on = True
        self.held = 0  # rows kept now
        self.skipped = 0  # events not kept since the start

    # ---- the runtime's side (Observer) ---------------------------------------------------
    def sent(self, node_id: str, port: str, batch: Batch, wires: Sequence[Wire]) -> None:
        """``node_id`` sent ``batch`` on ``port``: it leaves that node and enters each wire's."""
        now = time.time()
        self._add(node_id, "out", port, batch, now)
        for wire in wires:
            self._add(wire.dest, "in", wire.dest_port, batch, now)

    def failed(self, node_id: str, message: str) -> None:
        """Errors show on the node already; the failed batch comes as a send on ``error``."""

    def _allowed(self) -> bool:
        """The rate budget, with hysteresis: once empty, off until full again."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if not self._on and self._tokens >= self.burst:
            self._on = True
        if self._on and self._tokens < 1.0:
            self._on = False
        if not self._on:
            return False
        self._tokens -= 1.0
        return True

    def _add(self, node: str, way: Way, port: str, batch: Batch, now: float) -> None:
        log = self._logs.get(node)
        if log is None:
            log = self._logs[node] = deque(maxlen=self.keep)
        seq = next(self._seq)
        rows = len(batch.frame.index)
        if rows > self.max_rows or self.held + rows > self.max_held or not self._allowed():
            self.skipped += 1
            if not log or not isinstance(log[-1], Gap):
                self._append(log, Gap(seq))
            return
        self._append(log, Tap(seq, node, way, port, batch.frame, now, batch.created, batch.error))
        self.held += rows

    def _append(self, log: deque[Event], event: Event) -> None:
        if len(log) == log.maxlen and isinstance(log[0], Tap):
            self.held -= len(log[0].frame.index)
        log.append(event)

    # ---- the editor's side ---------------------------------------------------------------
    def events(self, node: str) -> list[Event]:
        """A node's log, oldest first."""
        return list(self._logs.get(node, ()))

    def forget(self, keep: Collection[str]) -> None:
        """Drop the logs of nodes not in ``keep`` (a deploy removed them)."""
        for node in [n for n in self._logs if n not in keep]:
            for event in self._logs.pop(node):
                if isinstance(event, Tap):
                    self.held -= len(event.frame.index)

    def stretches(self, nodes: Collection[str]) -> list[list[Tap]]:
        """The events of ``nodes`` in stretches that lost none of them, oldest first.

        A stretch ends at a gap in any of the nodes' logs; what came before the oldest event
        of a full log (it dropped older ones) is in no stretch.
        """
        start = -1
        cuts: list[int] = []
        taps: list[Tap] = []
        for node in nodes:
            log = self._logs.get(node)
            if not log:
                continue
            if len(log) == log.maxlen:
                start = max(start, log[0].seq)
            for event in log:
                if isinstance(event, Gap):
                    cuts.append(event.seq)
                else:
                    taps.append(event)
        out: list[list[Tap]] = [[]]
        bounds = iter(sorted(c for c in cuts if c >= start))
        cut = next(bounds, None)
        for tap in sorted((t for t in taps if t.seq >= start), key=lambda t: t.seq):
            while cut is not None and tap.seq > cut:
                out.append([])
                cut = next(bounds, None)
            out[-1].append(tap)
        return [s for s in out if s]
