"""Per-wire bounded buffers: fairness, end of stream, and no loss when a sender is cancelled."""

from __future__ import annotations

import asyncio

import pandas as pd

from flowengine.inbox import Inbox, Wire
from flowengine.types import Batch


def batch(n: int) -> Batch:
    return Batch(pd.DataFrame({"n": [n]}))


def make(*names: str, capacity: int = 2) -> tuple[Inbox, list[Wire]]:
    inbox = Inbox()
    wires = [Wire(name, "out", "dest", "in", capacity) for name in names]
    for wire in wires:
        inbox.attach(wire)
    return inbox, wires


def test_round_robin_over_wires_and_end_of_stream():
    async def main() -> list[tuple[str, int]]:
        inbox, (a, b) = make("a", "b", capacity=3)
        for i in range(3):
            await inbox.put(a, batch(i))
        await inbox.put(b, batch(10))
        inbox.close(a)
        inbox.close(b)
        got = []
        while (item := await inbox.get()) is not None:
            got.append(int(item.frame["n"].iloc[0]))
        return got

    assert asyncio.run(main()) == [0, 10, 1, 2]


def test_full_wire_blocks_the_sender_until_the_reader_takes_one():
    async def main() -> tuple[bool, bool]:
        inbox, (a,) = make("a", capacity=1)
        await inbox.put(a, batch(1))
        sender = asyncio.create_task(inbox.put(a, batch(2)))
        await asyncio.sleep(0)
        blocked = not sender.done()
        await inbox.get()
        await asyncio.wait_for(sender, 1)
        return blocked, a.depth == 1

    assert asyncio.run(main()) == (True, True)


def test_cancelled_sender_still_delivers_its_batch():
    async def main() -> list[int]:
        inbox, (a,) = make("a", capacity=1)
        await inbox.put(a, batch(1))
        sender = asyncio.create_task(inbox.put(a, batch(2)))
        await asyncio.sleep(0)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        inbox.close(a)
        out = []
        while (item := await inbox.get()) is not None:
            out.append(int(item.frame["n"].iloc[0]))
        return out

    assert asyncio.run(main()) == [1, 2]


def test_reader_waits_for_data_then_for_close():
    async def main() -> list[object]:
        inbox, (a,) = make("a")
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        assert not reader.done()
        await inbox.put(a, batch(5))
        first = await asyncio.wait_for(reader, 1)
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        inbox.close(a)
        return [int(first.frame["n"].iloc[0]), await asyncio.wait_for(reader, 1)]

    assert asyncio.run(main()) == [5, None]
