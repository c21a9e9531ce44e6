"""What a flow test runs instead of the real thing: feeders, mocks, drops, and the flow reshaped.

:func:`reshape` turns a checked flow into the one a test case runs: only the target's nodes,
external I/O replaced (a source by a :class:`Feeder` the test feeds, a sink by a :class:`Drop`
whose input the harness records), mocked nodes replaced by fixed output, a feeder wired into
every input the test may feed, and checkpoints off (a test seeds state instead). The node ids
stay the flow's, so expectations name the nodes the user sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

import networkx as nx
import pandas as pd

from flowengine.context import Context
from flowengine.model import NodeDef
from flowengine.node import Node, NodeConfig, Sink, Source, Transform, option
from flowengine.noderun import active_nodes
from flowengine.problems import FlowError, did_you_mean
from flowengine.types import ERROR_PORT, Batch, Result
from flowengine.validate import BuiltNode, CheckedFlow

#: A sub-graph target: (from, to), either may be None (everything downstream / upstream).
Range: TypeAlias = tuple[str | None, str | None]
#: Rows as a test gives them: a frame, or records (a `timestamp` column becomes UTC).
Rows: TypeAlias = pd.DataFrame | Sequence[Mapping[str, Any]]


def as_frame(rows: Rows) -> pd.DataFrame:
    """``rows`` as a frame; records get a UTC ``timestamp`` like a flow's own sources give."""
    if isinstance(rows, pd.DataFrame):
        return rows
    frame = pd.DataFrame([dict(r) for r in rows])
    if "timestamp" in frame and not pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def check_state(node_id: str, kind: type[Node[Any]], state: Any) -> None:
    """Refuse a state that the default ``restore`` would silently ignore: a node that keeps
    no state, or names that are not its ``state_attrs`` (a misspelt one tests nothing)."""
    if kind.restore is not Node.restore or kind.snapshot is not Node.snapshot:
        return  # its own restore decides (and may raise: see FlowHarness._seed)
    attrs = kind.state_attrs
    if not attrs:
        name = kind.type_name or kind.__name__
        raise ValueError(f"state for node '{node_id}', whose type '{name}' keeps none")
    if not isinstance(state, Mapping):
        raise ValueError(
            f"state for node '{node_id}' must map its state names ({', '.join(attrs)}) to values"
        )
    for name in state:
        if name not in attrs:
            raise ValueError(
                f"node '{node_id}' keeps no state '{name}' (its state: {', '.join(attrs)})"
                f"{did_you_mean(str(name), attrs)}"
            )


class StandInConfig(NodeConfig):
    ports: list[str] = option(["out"], description="Output ports (those of the node replaced).")


class _StandIn:
    """Output ports come from the config: those of the node stood in for."""

    category: ClassVar[str] = "test"

    @classmethod
    def output_ports(cls, config: NodeConfig | None) -> tuple[str, ...] | None:
        return tuple(config.ports) if isinstance(config, StandInConfig) else None


class Feeder(_StandIn, Source[StandInConfig]):
    """Sends what the test feeds it, on the port it names, until stopped."""

    def __init__(self, config: StandInConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.queue: asyncio.Queue[tuple[str, pd.DataFrame]] = asyncio.Queue()
        #: The origin its batches carry (the node that feeds this input in the real flow).
        self.origin: str | None = None

    async def run(self) -> None:
        while True:
            port, frame = await self.queue.get()
            origin = self.origin or self.ctx.node_id
            await self.ctx.send(Batch(frame, None, origin, self.ctx.clock.time()), port)


class MockSource(_StandIn, Source[StandInConfig]):
    """Sends its fixed output once at the start, then nothing until stopped."""

    def __init__(self, config: StandInConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.output: dict[str, pd.DataFrame] = {}  # set by the harness

    async def run(self) -> None:
        for port, frame in self.output.items():
            await self.ctx.send(frame, port)
        await asyncio.Event().wait()


class MockTransform(_StandIn, Transform[StandInConfig]):
    """Answers every batch with its fixed output."""

    def __init__(self, config: StandInConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.output: dict[str, pd.DataFrame] = {}  # set by the harness

    def process(self, batch: Batch) -> Result:
        return dict(self.output)


class Drop(Sink[StandInConfig]):
    """Takes every batch and does nothing with it (the harness records what it received)."""

    category: ClassVar[str] = "test"

    def write(self, batch: Batch) -> None:
        return None


def select(graph: nx.MultiDiGraph, target: str | Range | None) -> set[str]:
    """The node ids a target keeps: all, one node, or those on paths ``from`` -> ``to``."""
    if target is None:
        return set(graph)
    named = [target] if isinstance(target, str) else [t for t in target if t is not None]
    for node_id in named:
        if node_id not in graph:
            raise ValueError(f"target node '{node_id}' is not in the flow (or is disabled)")
    if isinstance(target, str):
        return {target}
    start, end = target
    down = {start, *nx.descendants(graph, start)} if start is not None else set(graph)
    up = {end, *nx.ancestors(graph, end)} if end is not None else set(graph)
    kept = down & up
    if not kept:
        raise ValueError(f"no path from '{start}' to '{end}'")
    return kept


def feeder_id(node_id: str, port: str) -> str:
    """The id of the feeder wired into ``node_id``'s input ``port``."""
    return f"feed:{node_id}.{port}"


@dataclasses.dataclass(slots=True)
class Reshaped:
    """The flow a case runs, and how its nodes stand in for the original ones."""

    checked: CheckedFlow
    #: The nodes under test as the flow has them, by id (feeders not included).
    originals: dict[str, BuiltNode]
    #: Fed node id -> {port: feeder node id}: a replaced source feeds itself.
    feeds: dict[str, dict[str, str]]


def reshape(
    checked: CheckedFlow,
    *,
    target: str | Range | None = None,
    replace_io: bool = True,
    feeders: Mapping[str, Collection[str]] | None = None,
    mocks: Collection[str] = (),
) -> Reshaped:
    """The flow a test case runs (see the module docstring). ``feeders``: node id -> ports the
    test feeds (a source's output ports, or a node's inputs); None feeds every input of every
    node. Nodes left without an input in the target are fed on all their inputs."""
    if not checked.ok:
        raise FlowError(checked.problems)
    active = {b.defn.id: b for b in active_nodes(checked)}
    kept = select(checked.graph.subgraph(active), target)
    for node_id in [*(feeders or {}), *mocks]:
        if node_id not in kept:
            raise ValueError(f"node '{node_id}' is not in the flow under test")
    for node_id, ports in (feeders or {}).items():
        _check_ports(active[node_id], ports)
    graph = nx.MultiDiGraph(checked.graph.subgraph(kept))
    nodes: dict[str, BuiltNode] = {}
    feeds: dict[str, dict[str, str]] = {}
    for node_id in [n for n in active if n in kept]:  # the flow's order: runs repeat exactly
        built = active[node_id]
        nodes[node_id] = _stand_in(built, replace_io, feeders, mocks)
        stand_in = nodes[node_id]
        if stand_in.cls is Feeder:
            assert isinstance(stand_in.config, StandInConfig)
            feeds[node_id] = dict.fromkeys(stand_in.config.ports, node_id)
        elif built.cls.inputs:
            wanted = feeders.get(node_id, ()) if feeders is not None else built.cls.inputs
            if graph.in_degree(node_id) == 0:
                wanted = built.cls.inputs  # nothing upstream in the target: the test feeds it
            for port in wanted:
                fid = feeder_id(node_id, port)
                nodes[fid] = BuiltNode(NodeDef(fid, "feeder"), Feeder, StandInConfig(ports=["out"]))
                graph.add_edge(fid, node_id, port="out", dest_port=port)
                feeds.setdefault(node_id, {})[port] = fid
    settings = checked.flow.settings.model_copy(update={"checkpoint": None})
    flow = dataclasses.replace(checked.flow, settings=settings)
    kept_nodes = {node_id: built for node_id, built in active.items() if node_id in kept}
    return Reshaped(CheckedFlow(flow, nodes, graph), kept_nodes, feeds)


def _check_ports(built: BuiltNode, ports: Collection[str]) -> None:
    """A fed port must be one of the node's: a source's outputs (or ``error``), else inputs."""
    cls = built.cls
    known = (*_ports(built), ERROR_PORT) if cls.kind == "source" else cls.inputs
    for port in ports:
        if port not in known:
            what = "output" if cls.kind == "source" else "input"
            raise ValueError(
                f"node '{built.defn.id}' has no {what} port '{port}' to feed "
                f"({what}s: {', '.join(known) or 'none'})"
            )


def _ports(built: BuiltNode) -> list[str]:
    return list(built.cls.output_ports(built.config) or built.cls.outputs)


def _stand_in(
    built: BuiltNode,
    replace_io: bool,
    feeders: Mapping[str, Collection[str]] | None,
    mocks: Collection[str],
) -> BuiltNode:
    """``built`` itself, or what stands in for it in a test."""
    node_id, kind = built.defn.id, built.cls.kind
    cls: type[Node[Any]] | None = None
    if node_id in mocks:
        mocked: dict[str, type[Node[Any]]] = {
            "source": MockSource,
            "transform": MockTransform,
            "sink": Drop,
        }
        cls = mocked[kind]
    elif kind == "source" and (node_id in (feeders or {}) or (replace_io and _io(built))):
        cls = Feeder
    elif kind == "sink" and replace_io and _io(built):
        cls = Drop
    if cls is None:
        return built
    ports = _ports(built)
    if cls is Feeder:  # a source may be fed on its error port too
        ports = list(dict.fromkeys([*ports, *(feeders or {}).get(node_id, ())]))
    defn = dataclasses.replace(built.defn, buffer=None)
    return BuiltNode(defn, cls, StandInConfig(ports=ports))


def _io(built: BuiltNode) -> bool:
    return bool(getattr(built.cls, "io", False))
