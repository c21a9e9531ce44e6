"""Bounded buffers, one per input wire, read by the receiving node's single task.

A full buffer makes the sender wait, so a slow sink slows its sources instead of growing memory.
A sender cancelled while waiting still leaves its batch in the buffer: nothing already read is
lost at shutdown (the buffer may then exceed its capacity by that one batch).

A checkpoint :class:`~flowengine.checkpoint.Barrier` travels in band like a batch. The inbox
*aligns* it: a wire that delivered barrier *n* is held back until every other open wire has
delivered it too; only then does the reader get the barrier, so what the node has processed at
that moment is exactly everything before barrier *n* on all its inputs.

A deploy changes wires under a running flow: a wire leaving the flow is *detached* (its senders
no longer wait on it; its reader drains it and forgets it once closed and empty), and a
restarted node's new inbox takes over the old one's wires with what they hold.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from flowengine.checkpoint import Barrier
from flowengine.types import Batch

#: What travels on a wire: batches, and now and then a checkpoint barrier.
Item = Batch | Barrier


class Wire:
    """One connection from ``source.port`` to ``dest.dest_port``, with its own bounded buffer."""

    __slots__ = (
        "capacity",
        "closed",
        "dest",
        "dest_port",
        "detached",
        "inbox",
        "items",
        "port",
        "refs",
        "source",
        "waiters",
    )

    def __init__(self, source: str, port: str, dest: str, dest_port: str, capacity: int) -> None:
        self.source = source
        self.port = port
        self.dest = dest
        self.dest_port = dest_port
        self.capacity = capacity
        self.items: deque[Item] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.detached = False
        #: Node runs that may still send on this wire; the last one to let go closes it.
        self.refs = 0
        self.inbox: Inbox | None = None

    @property
    def depth(self) -> int:
        return len(self.items)

    @property
    def fill(self) -> float:
        """How full the buffer is, 0..1 (a cancelled sender may overfill it by one batch)."""
        return min(1.0, len(self.items) / self.capacity)

    def resize(self, capacity: int) -> None:
        """Change the capacity; senders waiting for room get it if there now is some."""
        self.capacity = capacity
        self._wake_senders(capacity - len(self.items))

    def _wake_senders(self, n: int) -> None:
        waiters = self.waiters
        while n > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def __repr__(self) -> str:
        return f"<Wire {self.source}.{self.port} -> {self.dest}.{self.dest_port} {self.depth}/{self.capacity}>"


class Inbox:
    """The input side of one node: fair round-robin over its wires, end of stream when all close."""

    def __init__(self) -> None:
        self.wires: list[Wire] = []
        self._getter: asyncio.Future[None] | None = None
        self._next = 0
        #: The barrier being aligned, and the wires that delivered it (held back meanwhile).
        self._aligning: Barrier | None = None
        self._held: set[Wire] = set()
        #: The reader's handler for a batch handed to it in its sender's call (set by a node
        #: that can take one: see ``idle``), None otherwise.
        self.direct: Callable[[Batch], Coroutine[Any, Any, None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # see _running_loop
        #: True while a batch handed over to the reader is being handled: in its sender's
        #: call, then (if it had to wait) in ``resuming``.
        self.taken = False
        #: The rest of a handed-over batch's handling that had to wait, running as a task.
        self.resuming: asyncio.Task[None] | None = None

    def idle(self) -> bool:
        """The reader waits on its one wire with nothing to read and no batch handed over to
        it in progress (started, not handling a batch, no barrier pending): a batch for it may
        then be handled by ``direct`` in the sender's call, in order, without a task switch
        (flowengine/sending.py ``_hand_over``)."""
        getter = self._getter
        return (
            getter is not None
            and not self.taken
            and not getter.done()
            and len(self.wires) == 1
            and self._aligning is None
        )

    def resume(self, handling: Coroutine[Any, Any, None], waiting: Any) -> None:
        """Go on with ``handling`` (a coroutine of the reader's handler, suspended on
        ``waiting``) as a task of its own: ``resuming``, awaited by the reader's task."""
        self.taken = True
        task = self.resuming = self._running_loop().create_task(_drive(handling, waiting))
        task.add_done_callback(self._resumed)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The reader's loop, looked up once (in Python 3.11 each lookup is a getpid call)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _resumed(self, task: asyncio.Task[None]) -> None:
        if self.resuming is task:
            self.resuming = None
            self.taken = False

    def _wake(self) -> None:
        """Resume the reader if it waits (like ``asyncio.Queue``: no event churn per put)."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def attach(self, wire: Wire) -> None:
        wire.inbox = self
        self.wires.append(wire)

    async def put(self, wire: Wire, batch: Item) -> None:
        """Append to ``wire``'s buffer, waiting while it is full."""
        items = wire.items
        while len(items) >= wire.capacity:
            waiter = asyncio.get_running_loop().create_future()
            wire.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                items.append(batch)
                _reader_of(wire)._wake()
                raise
        items.append(batch)
        _reader_of(wire)._wake()  # a restart may have moved the wire to a new inbox meanwhile

    def put_nowait(self, wire: Wire, batch: Item) -> None:
        """Append without waiting: when the wire has room, or to finish a cancelled fan-out."""
        wire.items.append(batch)
        self._wake()

    def close(self, wire: Wire) -> None:
        """Mark ``wire`` finished: its sender will send nothing more."""
        wire.closed = True
        self._forget_if_done(wire)
        self._wake()

    def detach(self, wire: Wire) -> None:
        """``wire`` left the flow: senders stop waiting on it; what it holds is still read."""
        wire.detached = True
        wire.capacity = sys.maxsize
        wire._wake_senders(len(wire.waiters))
        self._forget_if_done(wire)
        self._wake()

    def take_over(self, old: Inbox) -> None:
        """Read ``old``'s wires from now on, queued batches included; ``old`` sees its end."""
        for wire in old.wires:
            self.attach(wire)
        old.wires.clear()
        old._wake()

    def _forget_if_done(self, wire: Wire) -> None:
        if wire.detached and wire.closed and not wire.items and wire in self.wires:
            self.wires.remove(wire)

    async def get(self) -> Item | None:
        """The next batch from any wire, or an aligned barrier, or ``None`` once every wire is
        closed and empty; after the handling of a batch handed over to the reader is done
        (``resuming``), so that batches stay in order and queued ones on their wire."""
        while True:
            resuming = self.resuming
            if resuming is not None:
                try:
                    await resuming  # a hard stop cancelling the reader cancels it too
                finally:
                    self._resumed(resuming)  # done: its callback may not have run yet
                continue
            wire = self._ready_wire()
            if wire is not None:
                item = wire.items.popleft()
                wire._wake_senders(1)
                if wire.detached:
                    self._forget_if_done(wire)
                if type(item) is not Barrier:
                    return item
                if self._arrive(wire, item):
                    return item
                continue
            if self._aligning is not None and self._aligned():
                return self._release()
            if all(w.closed for w in self.wires):
                self._held.clear()
                return None
            self._getter = self._running_loop().create_future()
            await self._getter

    def _ready_wire(self) -> Wire | None:
        """The next wire in round-robin order that has an item and is not held back."""
        wires = self.wires
        n = len(wires)
        held = self._held
        for i in range(n):
            wire = wires[(self._next + i) % n]
            if wire.items and (not held or wire not in held):
                self._next = (self._next + i + 1) % n
                return wire
        return None

    def _arrive(self, wire: Wire, barrier: Barrier) -> bool:
        """``wire`` delivered ``barrier``: hold the wire back; True when now aligned."""
        current = self._aligning
        if current is not None and barrier.id < current.id:
            return False  # an abandoned checkpoint's barrier (a later one is aligning)
        if current is None or barrier.id > current.id:
            self._held.clear()  # a later checkpoint supersedes one that never aligned
            self._aligning = barrier
        self._held.add(wire)
        if self._aligned():
            self._release()
            return True
        return False

    def _aligned(self) -> bool:
        """Every wire has delivered the barrier, or has ended and holds nothing more."""
        held = self._held
        return all(w in held or (w.closed and not w.items) for w in self.wires)

    def _release(self) -> Barrier:
        barrier = self._aligning
        assert barrier is not None
        self._aligning = None
        self._held.clear()
        return barrier

    def reset_alignment(self) -> None:
        """Forget a barrier being aligned (a deploy changed the wires under it)."""
        self._aligning = None
        self._held.clear()
        self._wake()

    @property
    def depth(self) -> int:
        return sum(len(w.items) for w in self.wires)


async def _drive(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run ``coro`` on from where it suspended on ``waiting`` (a future, or None for a bare
    yield), as a task steps its coroutine: resumed when what it waits for is done; cancelled
    (a hard stop) as a task is: what it waits for is cancelled, else the cancellation is thrown
    into it. What a handed-over handling waits for is the engine's (room on a wire, a sink's
    write running in a task of its own: see ``NodeTasks._handle``), never code that binds to
    the task it runs in."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await asyncio.wait((waiting,))
        except asyncio.CancelledError:
            if waiting is not None and waiting.cancel():
                continue  # as a task's: it resumes once what it waits for has ended
            try:
                waiting = coro.throw(asyncio.CancelledError())
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return


def _reader_of(wire: Wire) -> Inbox:
    assert wire.inbox is not None  # a wire is attached before anything is put on it
    return wire.inbox
