"""Drive one node directly, as the runtime does around a checkpoint: feed, snapshot, restore.

A crash test without a flow: one instance is fed batches 1..k, its snapshot goes through
pickle (as the checkpoint store does), a fresh instance with the same config is started,
restored and fed k+1..n; what both instances emitted must equal one uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd

from flowengine.context import Context
from flowengine.node import Done, Node, Sink, Source, Transform
from flowengine.registry import default_registry
from flowengine.status import NodeStats
from flowengine.types import Batch, Emittable, Result

#: What a node emitted: (port, frame), in order; empty frames are dropped as the runtime does.
Emitted = list[tuple[str, pd.DataFrame]]


def emitted(result: Result, port: str = "out") -> Emitted:
    """A node's result as (port, frame) pairs (a mapping sends per port, a list in order)."""
    if result is None:
        return []
    if isinstance(result, pd.DataFrame | Batch):
        frame = result.frame if isinstance(result, Batch) else result
        return [] if frame.empty else [(port, frame)]
    out: Emitted = []
    for name, value in result.items():
        items: Sequence[Emittable | None] = (
            value if isinstance(value, list | tuple) else [cast("Emittable | None", value)]
        )
        for item in items:
            out.extend(emitted(item, name))
    return out


class Driven:
    """One node instance with a context whose sends (timers, sources) land in ``sent``."""

    def __init__(
        self, type_name: str, config: Mapping[str, Any], flow_dir: Path | None = None
    ) -> None:
        cls = default_registry().get(type_name)
        folder = flow_dir or Path.cwd()
        cfg = cls.Config.model_validate(dict(config), context={"flow_dir": folder})
        self.sent: Emitted = []

        async def sender(result: Result, port: str) -> None:
            self.sent.extend(emitted(result, port))

        ctx = Context(
            type_name,
            stats=NodeStats(type_name, type_name, cls.kind),
            outputs={port: [type_name] for port in (*cls.outputs, "error")},
            sender=sender,
            log=logging.LoggerAdapter(logging.getLogger(f"tests.state.{type_name}"), {}),
            flow_dir=folder,
        )
        self.node: Node[Any] = cls(cfg, ctx)

    async def feed(self, batches: Sequence[Batch]) -> None:
        """Process (or write) each batch in order, keeping what it returns."""
        for batch in batches:
            node = self.node
            if isinstance(node, Transform):
                result = node.process(batch)
            elif isinstance(node, Sink):
                result = node.write(batch)
            else:
                raise TypeError(f"{type(node).__name__} takes no input")
            if inspect.isawaitable(result):
                result = await result
            self.sent.extend(emitted(result))

    async def read(self, count: int) -> None:
        """Read ``count`` batches from a source."""
        assert isinstance(self.node, Source)
        for _ in range(count):
            self.sent.extend(emitted(await self.node.read()))

    async def drain(self) -> None:
        """Read from a source until it is done."""
        with contextlib.suppress(Done):
            await self.read(1_000_000)

    async def finish(self) -> Emitted:
        """Flush and close (the end of the stream); everything emitted."""
        self.sent.extend(emitted(await self.node.flush()))
        await self.node.close()
        return self.sent


def pickled(node: Node[Any]) -> Any:
    """The node's snapshot after a round trip through pickle, as a checkpoint keeps it."""
    return pickle.loads(pickle.dumps(node.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))


async def _uninterrupted(
    type_name: str, config: Mapping[str, Any], batches: Sequence[Batch], flow_dir: Path | None
) -> Emitted:
    one = Driven(type_name, config, flow_dir)
    await one.node.start()
    await one.feed(batches)
    return await one.finish()


async def _resumed(
    type_name: str,
    config: Mapping[str, Any],
    batches: Sequence[Batch],
    cut: int,
    flow_dir: Path | None,
) -> Emitted:
    first = Driven(type_name, config, flow_dir)
    await first.node.start()
    await first.feed(batches[:cut])
    state = pickled(first.node)
    await first.node.close()  # the crash: nothing held is flushed
    second = Driven(type_name, config, flow_dir)
    await second.node.start()
    second.node.restore(state)
    await second.feed(batches[cut:])
    return first.sent + await second.finish()


def assert_same(resumed: Emitted, expected: Emitted) -> None:
    """Same ports and frames in the same order (the row index is not data)."""
    assert [p for p, _ in resumed] == [p for p, _ in expected]
    for (_, got), (_, want) in zip(resumed, expected, strict=True):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def assert_resumes(
    type_name: str,
    config: Mapping[str, Any],
    batches: Sequence[Batch | pd.DataFrame],
    cut: int,
    flow_dir: Path | None = None,
) -> Emitted:
    """Restored after ``cut`` batches, the node emits what an uninterrupted run does."""
    wrapped = [b if isinstance(b, Batch) else Batch(b) for b in batches]
    expected = asyncio.run(_uninterrupted(type_name, config, wrapped, flow_dir))
    assert_same(asyncio.run(_resumed(type_name, config, wrapped, cut, flow_dir)), expected)
    return expected
