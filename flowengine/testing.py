"""A mini-flow harness: a capture sink plus ``run_flow``, so a node's test is a three-line flow.

result = run_flow({"src": {"type": "inject", "rows": [...], "wires": ["cap"]},
                   "cap": {"type": "capture"}})
assert result.frame("cap")["value"].tolist() == [...]

For time and step-by-step control (a fake clock, feeding, per-node outputs) use
:class:`FlowHarness` (from :mod:`flowengine.harness`, re-exported here with ``FakeClock``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from flowengine.clock import FakeClock as FakeClock
from flowengine.flowfile import FlowDocument
from flowengine.harness import FlowHarness as FlowHarness
from flowengine.model import parse_flow
from flowengine.node import Done, Node, NodeConfig, Sink, Source, option
from flowengine.problems import FlowError
from flowengine.registry import Registry, default_registry
from flowengine.runtime import RunReport, Runtime
from flowengine.types import Batch
from flowengine.validate import CheckedFlow, check_flow


class CaptureConfig(NodeConfig):
    delay: float = option(0.0, description="Seconds to wait per batch, to play a slow sink.")


class Capture(Sink[CaptureConfig]):
    """Keeps every batch it receives, in order (for tests and benchmarks)."""

    category = "test"

    def __init__(self, config: CaptureConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.batches: list[Batch] = []

    async def write(self, batch: Batch) -> None:
        if self.config.delay:
            await asyncio.sleep(self.config.delay)
        self.batches.append(batch)


class CounterConfig(NodeConfig):
    batches: int = option(10, description="Batches in all (across restarts), then the end.")
    rows: int = option(5, description="Rows per batch.")
    pause: float = option(0.0, description="Seconds before each batch.")


class Counter(Source[CounterConfig]):
    """Rows numbered 0, 1, 2... in a `seq` column; its position is its state, so a restart from
    a checkpoint goes on from there (for durability tests and benchmarks)."""

    category = "test"
    state_attrs = ("n",)

    async def start(self) -> None:
        self.n = 0

    async def read(self) -> pd.DataFrame:
        if self.n >= self.config.batches:
            raise Done
        await asyncio.sleep(self.config.pause)
        first = self.n * self.config.rows
        self.n += 1
        return pd.DataFrame({"seq": range(first, first + self.config.rows)})


class FramesConfig(NodeConfig):
    frames: list[list[dict[str, Any]]] = option(description="Batches to emit, in order.")


class Frames(Source[FramesConfig]):
    """Emits the configured batches in order, then ends; a `timestamp` column becomes UTC."""

    category = "test"

    async def start(self) -> None:
        self._next = 0

    async def read(self) -> pd.DataFrame:
        if self._next == len(self.config.frames):
            raise Done
        self._next += 1
        frame = pd.DataFrame(self.config.frames[self._next - 1])
        if "timestamp" in frame:
            frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
        return frame


def registry_with(extra: Mapping[str, type[Node[Any]]] | None = None) -> Registry:
    """The installed types plus ``capture``, ``frames`` and any ``extra`` types."""
    base = default_registry()
    registry = Registry()
    for name in base.names():
        registry.register(name, base.get(name))
    registry.broken.update(base.broken)
    registry.register("capture", Capture)
    registry.register("frames", Frames)
    for name, cls in (extra or {}).items():
        registry.register(name, cls)
    return registry


def check_text(
    flow: Mapping[str, Any] | str,
    *,
    types: Mapping[str, type[Node[Any]]] | None = None,
    path: str | Path = "test-flow.yaml",
    env: Mapping[str, str] | None = None,
) -> CheckedFlow:
    """Parse and check a flow given as YAML text, a full flow mapping or just its nodes."""
    if not isinstance(flow, str):
        doc = dict(flow) if "nodes" in flow else {"version": 1, "nodes": dict(flow)}
        flow = yaml.safe_dump(doc, sort_keys=False)
    document, problems = FlowDocument.parse(flow, Path(path))
    if document is None:
        raise FlowError(problems)
    parsed, more = parse_flow(document)
    checked = check_flow(parsed, registry_with(types), env if env is not None else {})
    checked.problems[:0] = problems + more
    return checked


@dataclass
class FlowResult:
    """What a mini-flow did: its runtime (for stats) and the report."""

    runtime: Runtime
    report: RunReport

    def node(self, node_id: str) -> Node[Any]:
        """The instance that ran as ``node_id`` (to look at its state after the run)."""
        return self.runtime.node(node_id)

    def batches(self, node_id: str) -> list[Batch]:
        node = self.node(node_id)
        if not isinstance(node, Capture):
            raise TypeError(f"node '{node_id}' is not a capture sink")
        return node.batches

    def frame(self, node_id: str) -> pd.DataFrame:
        frames = [b.frame for b in self.batches(node_id)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def stats(self, node_id: str) -> dict[str, object]:
        return self.runtime.stats[node_id].snapshot()


def run_flow(
    flow: Mapping[str, Any] | str,
    *,
    types: Mapping[str, type[Node[Any]]] | None = None,
    duration: float | None = None,
    path: str | Path = "test-flow.yaml",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> FlowResult:
    """Check and run a flow to completion (finite sources) or for ``duration`` seconds.

    A flow still running after ``timeout`` seconds fails the test instead of hanging it.
    """
    checked = check_text(flow, types=types, path=path, env=env)
    runtime = Runtime(checked)
    try:
        report = asyncio.run(asyncio.wait_for(runtime.run(duration), timeout))
    except TimeoutError:
        raise AssertionError(
            f"flow did not finish within {timeout}s: {runtime.snapshot()}"
        ) from None
    return FlowResult(runtime, report)
