"""A source of timed long-format batches, and a one-node mini-flow around it."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from flowengine.node import Done, NodeConfig, Source, option
from flowengine.testing import FlowResult, run_flow
from flowengine.types import long_frame

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


class TimedConfig(NodeConfig):
    frames: list[list[list[Any]]] = option(description="Batches of [seconds, sensor, value] rows.")
    pause: float = option(0.0, description="Seconds to wait before the first batch.")


class Timed(Source[TimedConfig]):
    """Emits long-format batches with timestamps T0 + seconds, in order (for multi-batch tests)."""

    async def start(self) -> None:
        self._next = 0

    async def read(self) -> pd.DataFrame:
        if self._next == len(self.config.frames):
            raise Done
        if self._next == 0:
            await asyncio.sleep(self.config.pause)
        rows = self.config.frames[self._next]
        self._next += 1
        return long_frame(
            [T0 + pd.Timedelta(seconds=r[0]) for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )


def through(node: dict[str, Any], frames: list[list[list[Any]]]) -> FlowResult:
    """Run `frames` through one node into a capture sink `cap`."""
    flow = {
        "src": {"type": "timed", "frames": frames, "wires": ["n"]},
        "n": {**node, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    return run_flow(flow, types={"timed": Timed})
