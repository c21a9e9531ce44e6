"""Sending: what a node returns or sends, turned into batches and put on its outgoing wires.

This runs for every batch, so the common case (one frame to one port) takes the shortest path.
A fan-out shares the frame: the first wire gets it, the others shallow copy-on-write copies.
A port with one wire hands a new batch over itself (``Batch.for_only_wire``), and to a reader
that waits idle on that wire, in this call: the reader's handler runs here, so a chain of idle
nodes costs no task switch per hop (``Inbox.idle``), in order and with the stats, status and
error handling of the reader's own task; what must wait goes on in a task of the reader's
(``_hand_over``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

import pandas as pd

from flowengine.inbox import Inbox, Wire
from flowengine.noderun import NodeRun
from flowengine.types import ERROR_PORT, Batch, Result
from flowengine.wiring import release

#: Batches being handed over inside their senders' calls, nested (a chain of idle nodes runs as
#: one call chain); past this depth they go through the wire as ever, so the stack stays small.
MAX_DIRECT_DEPTH = 24
_depth = 0


async def send(run: NodeRun, result: Result, port: str, parent: Batch | None) -> None:
    """Send ``result`` from ``run`` on ``port``; a new frame inherits ``parent``'s topic and age."""
    if type(result) is pd.DataFrame:  # the common case, without the generator
        await deliver(run, port, _wrap(run, result, parent))
    elif type(result) is Batch:
        await deliver(run, port, result)
    else:
        for out_port, batch in batches_of(run, result, port, parent):
            await deliver(run, out_port, batch)


async def send_plain(run: NodeRun, result: Result, port: str) -> None:
    """A node's own send (``ctx.send``): no parent batch."""
    await send(run, result, port, None)


async def send_acknowledged(run: NodeRun, result: Result, port: str) -> None:
    """A source's send, then its ``acknowledge``: what it sent is on its wires now."""
    await send(run, result, port, None)
    await run.node.acknowledge()  # type: ignore[attr-defined]  # only sources get this sender


def _wrap(run: NodeRun, frame: pd.DataFrame, parent: Batch | None) -> Batch:
    """A frame from ``run`` as a batch: the topic and age of the batch it came from, if any."""
    topic, created = (parent.topic, parent.created) if parent else (None, run.clock.time())
    return Batch(frame, topic, run.id, created)


def batches_of(
    run: NodeRun, result: object, port: str, parent: Batch | None
) -> Iterator[tuple[str, Batch]]:
    """Flatten a result (frame, batch, per-port mapping of one or several) into sends."""
    if result is None:
        return
    if isinstance(result, Mapping):
        for out_port, value in result.items():
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if type(item) is Batch:
                    item.shared()  # it may be on several ports: each recipient gets a copy
                yield from batches_of(run, item, str(out_port), parent)
        return
    if isinstance(result, pd.DataFrame):
        yield port, _wrap(run, result, parent)
    elif isinstance(result, Batch):
        yield port, result
    else:
        raise TypeError(
            f"returned {type(result).__name__}; expected a DataFrame, Batch, mapping or None"
        )


async def deliver(run: NodeRun, port: str, batch: Batch) -> None:
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
        if run.observer is not None and (len(batch) or batch.error is not None):
            run.observer.sent(run.id, port, batch, ())
        return  # an unwired port drops (and does not count as output)
    rows = len(batch)
    if not rows and batch.error is None:
        return  # an empty frame means filtered
    if run.observer is not None:
        run.observer.sent(run.id, port, batch, wires)
    stats = run.stats
    stats.batches_out += 1
    stats.rows_out += rows
    stats.last_data = time.time()
    if len(wires) == 1:  # most ports: the batch itself, handed over to an idle reader
        wire = wires[0]
        inbox = wire.inbox
        assert inbox is not None
        item = batch.for_only_wire(run.id, wire.dest_port)
        direct = inbox.direct
        if direct is not None and not wire.items and _depth < MAX_DIRECT_DEPTH and inbox.idle():
            _hand_over(inbox, direct, item)
        elif len(wire.items) < wire.capacity:
            inbox.put_nowait(wire, item)
        else:
            await _deliver_waiting(run, wires, 0, item)
        return
    for i, wire in enumerate(wires):
        inbox = wire.inbox
        assert inbox is not None
        item = _copy_for(run, wire, batch, i == 0)
        if len(wire.items) < wire.capacity:
            inbox.put_nowait(wire, item)
            continue
        await _deliver_waiting(run, wires, i, item)
        return


def _hand_over(
    inbox: Inbox, direct: Callable[[Batch], Coroutine[Any, Any, None]], item: Batch
) -> None:
    """Have the idle reader of ``inbox`` handle ``item`` now, in this call (``Inbox.direct``):
    one task switch and loop turn less per hop. The handling runs here until it is done or
    must wait (room on a full wire further on, a sink's I/O); the rest then goes on as a task
    of its own (``Inbox.resume``), which the reader's task waits for before its next batch,
    while what the sender sends meanwhile queues on the wire as ever. So the sender never
    waits inside another node's handling, and cancelling it (a source, at stop) cannot cancel
    that handling."""
    global _depth
    inbox.taken = True
    handling = direct(item)
    _depth += 1
    try:
        waiting = handling.send(None)
    except StopIteration:
        return
    finally:
        _depth -= 1
        inbox.taken = False
    inbox.resume(handling, waiting)  # taken again, until that ends


def _copy_for(run: NodeRun, wire: Wire, batch: Batch, first: bool) -> Batch:
    """``batch`` as ``wire`` receives it: the frame itself for the first wire, else a copy."""
    return batch.for_wire(run.id, wire.dest_port, first)


async def _deliver_waiting(run: NodeRun, wires: list[Wire], i: int, item: Batch) -> None:
    """The rest of a fan-out from ``wires[i]`` (full): wait for room wire by wire. A deploy
    that takes wires away meanwhile lets go of them only after this batch is on them all."""
    first = item
    run.delivering += 1
    try:
        for j in range(i, len(wires)):
            wire = wires[j]
            if j > i:
                item = _copy_for(run, wire, first, first=False)
            assert wire.inbox is not None
            try:
                await wire.inbox.put(wire, item)
            except asyncio.CancelledError:  # finish the fan-out: nothing read is lost
                for rest in wires[j + 1 :]:
                    assert rest.inbox is not None
                    rest.inbox.put_nowait(rest, _copy_for(run, rest, first, first=False))
                raise
    finally:
        run.delivering -= 1
        if not run.delivering and run.dropped:
            for gone in run.dropped:
                release(gone)
            run.dropped.clear()
