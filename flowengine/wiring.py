"""The routing table: which wires exist between running nodes, and when each one closes.

A wire belongs to the nodes that may send on it; it closes (end of stream for its reader) when
the last of them lets go, never while a batch is on its way. Both the first build of a flow and
every deploy go through :func:`wire_up`.
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx

from flowengine.inbox import Wire
from flowengine.noderun import NodeRun, WireKey


def graph_wires(graph: nx.MultiDiGraph, runs: Mapping[str, NodeRun]) -> set[WireKey]:
    """The wires of ``graph`` between nodes that have a run."""
    return {
        (src, data["port"], dest, data["dest_port"])
        for src, dest, data in graph.edges(data=True)
        if src in runs and dest in runs
    }


def wire_up(
    graph: nx.MultiDiGraph, runs: Mapping[str, NodeRun], wires: dict[WireKey, Wire]
) -> None:
    """Make every run's outputs and inbox match ``graph``; ``wires`` is updated in place.

    Synchronous, so no batch sees half a routing table. A run that has ended gets no new
    wires (it sends nothing more); a wire that left the graph is detached and closes when
    its last sender lets go of it.
    """
    wanted = _wanted(graph, runs)
    for key, wire in list(wires.items()):
        if key not in wanted or wire.closed:
            del wires[key]
            if wire.inbox is not None:
                wire.inbox.detach(wire)
    outputs: dict[str, dict[str, list[Wire]]] = {}
    incoming: dict[str, list[Wire]] = {}
    for key, capacity in wanted.items():
        wire = _wire(wires, key, capacity)
        inbox = runs[key[2]].inbox
        assert inbox is not None
        if wire.inbox is not inbox:
            inbox.attach(wire)
        outputs.setdefault(key[0], {}).setdefault(key[1], []).append(wire)
        incoming.setdefault(key[2], []).append(wire)
    for node_id, run in runs.items():
        if not run.ended:
            set_outputs(run, outputs.get(node_id, {}))
        if run.inbox is not None:
            run.stats.wires = incoming.get(node_id, [])


def _wanted(graph: nx.MultiDiGraph, runs: Mapping[str, NodeRun]) -> dict[WireKey, int]:
    """The wires ``graph`` asks for, with their capacity (the receiver's queue size)."""
    wanted: dict[WireKey, int] = {}
    for src, dest, data in graph.edges(data=True):
        sender, receiver = runs.get(src), runs.get(dest)
        if sender and receiver and receiver.inbox is not None and not sender.ended:
            wanted[(src, data["port"], dest, data["dest_port"])] = receiver.capacity
    return wanted


def _wire(wires: dict[WireKey, Wire], key: WireKey, capacity: int) -> Wire:
    """The wire for ``key`` with ``capacity``: the existing one (resized) or a new one."""
    wire = wires.get(key)
    if wire is None:
        wire = wires[key] = Wire(*key, capacity)
    elif wire.capacity != capacity:
        wire.resize(capacity)
    return wire


def set_outputs(run: NodeRun, outputs: dict[str, list[Wire]]) -> None:
    """Swap ``run``'s routing table in place (its context reads the same dict)."""
    before = {id(w): w for ws in run.outputs.values() for w in ws}
    after = {id(w) for ws in outputs.values() for w in ws}
    for ws in outputs.values():
        for wire in ws:
            if id(wire) not in before:
                wire.refs += 1
    for key, wire in before.items():
        if key not in after:
            if run.delivering:
                run.dropped.append(wire)  # a batch is on its way: let go after it
            else:
                release(wire)
    run.outputs.clear()
    run.outputs.update(outputs)


def release(wire: Wire) -> None:
    """One sender fewer; the last one closes the wire (end of stream for its reader)."""
    wire.refs -= 1
    if wire.refs <= 0 and wire.inbox is not None:
        wire.inbox.close(wire)


def release_all(run: NodeRun) -> None:
    """``run`` sends no more: let go of every outgoing wire."""
    for wires in run.outputs.values():
        for wire in wires:
            release(wire)
    run.outputs.clear()
