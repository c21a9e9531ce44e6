"""Save as test, part one: from the batches the running flow's nodes saw (:mod:`.taps`) to what
a test case of a node or a selection feeds and expects (:class:`Capture`).

A selection's inputs are the batches that came into it over wires from outside (and what a
source inside it emitted: it becomes a feeder); its outputs are what its last nodes sent (for a
sink, what it received). Both come from one stretch of the taps without a gap, the latest that
has an input: so every batch that went in during that time is fed and everything that came
out is expected. A node's output keeps its input batch's creation time, which pairs them: an
output of an input from before the stretch is left out, and so is an input newer than the last
output (still on its way when saved). Nodes that the case's target would run besides the
selection are mocked to send nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import pandas as pd

from flowengine.standins import select
from flowengine.types import ERROR_PORT
from flowengine.ui.taps import Tap, Taps
from flowengine.validate import CheckedFlow


class SaveError(ValueError):
    """Why the selection cannot be saved as a test (shown to the user as is)."""


@dataclass(slots=True)
class Part:
    """Rows fed into ``node.port`` (one feed step) or expected from it (one expectation)."""

    node: str
    port: str
    frame: pd.DataFrame
    batches: int

    @property
    def rows(self) -> int:
        return len(self.frame.index)


@dataclass(slots=True)
class Capture:
    """A test case's substance: target, mocks, the start time, feeds and expectations."""

    selection: list[str]
    target: str | dict[str, str] | None
    feeds: list[Part]
    expects: list[Part]
    start: pd.Timestamp
    mocks: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the dialog: what goes in and what is expected."""

        def parts(items: list[Part]) -> str:
            return ", ".join(f"{p.node}.{p.port}: {p.rows} rows" for p in items)

        ins = sum(p.batches for p in self.feeds)
        outs = sum(p.batches for p in self.expects)
        return (
            f"{ins} batch(es) in ({parts(self.feeds)}); "
            f"{outs} batch(es) out ({parts(self.expects) or 'nothing'})"
        )


def _kind(checked: CheckedFlow, node: str) -> str:
    return str(checked.nodes[node].cls.kind)


def _ends(graph: nx.MultiDiGraph, chosen: set[str]) -> tuple[list[str], list[str]]:
    """The selection's heads (nothing inside feeds them) and tails (they feed nothing inside)."""
    heads = [n for n in chosen if not any(s in chosen for s, _ in graph.in_edges(n))]
    tails = [n for n in chosen if not any(d in chosen for _, d in graph.out_edges(n))]
    return sorted(heads), sorted(tails)


def _target(graph: nx.MultiDiGraph, chosen: set[str]) -> tuple[Any, list[str]]:
    """The case's ``target`` for the selection, and the nodes it runs besides (to mock)."""
    if len(chosen) == 1:
        return next(iter(chosen)), []
    heads, tails = _ends(graph, chosen)
    start = heads[0] if len(heads) == 1 else None
    end = tails[0] if len(tails) == 1 else None
    target: dict[str, str] | None = None
    if start or end:
        target = {k: v for k, v in (("from", start), ("to", end)) if v}
    try:
        kept = select(graph, (start, end) if target else None)
    except ValueError:
        target, kept = None, set(graph)
    return target, sorted(kept - chosen)


def _is_input(tap: Tap, boundary: set[tuple[str, str]], sources: set[str]) -> bool:
    if tap.way == "in":
        return (tap.node, tap.port) in boundary
    return tap.node in sources and tap.port != ERROR_PORT


def _is_output(tap: Tap, tails: set[str], sinks: set[str]) -> bool:
    if tap.node not in tails:
        return False
    return tap.way == ("in" if tap.node in sinks else "out")


def _merge(taps: list[Tap]) -> list[Part]:
    """The frames of each node port as one (one data file, one feed step or expectation),
    in the order the ports first appear."""
    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for tap in taps:
        frames.setdefault((tap.node, tap.port), []).append(tap.frame)
    return [
        Part(node, port, pd.concat(got, ignore_index=True), len(got))
        for (node, port), got in frames.items()
    ]


def _paired(inputs: list[Tap], outputs: list[Tap]) -> tuple[list[Tap], list[Tap]]:
    """Inputs and the outputs they caused: a node's output keeps its input batch's creation
    time, so an output older than the first input came from before, and an input newer than
    the last output is still on its way (or dropped: either way nothing to expect of it)."""
    first = inputs[0]
    outputs = [t for t in outputs if t.seq > first.seq and t.created >= first.created]
    if outputs:
        last_seq, last_created = outputs[-1].seq, max(t.created for t in outputs)
        inputs = [t for t in inputs if t.seq < last_seq and t.created <= last_created]
    return inputs, outputs


def capture(taps: Taps, checked: CheckedFlow, selection: list[str]) -> Capture:
    """What a test case of ``selection`` feeds and expects; :class:`SaveError` when nothing
    (or nothing usable) was captured."""
    graph = checked.graph
    chosen = {n for n in selection if n in graph and n in checked.nodes}
    if not chosen:
        raise SaveError("Select a node (or several) on the canvas first.")
    kinds = {n: _kind(checked, n) for n in chosen}
    sources = {n for n in chosen if kinds[n] == "source"}
    sinks = {n for n in chosen if kinds[n] == "sink"}
    if len(chosen) == 1 and (sources or sinks):
        what = "a source has nothing entering it" if sources else "a sink sends nothing"
        raise SaveError(f"Cannot test '{next(iter(chosen))}' alone: {what}; select it with "
                        "the nodes it feeds or that feed it.")  # fmt: skip
    _, tails = _ends(graph, chosen)
    if all(t in sources for t in tails):
        raise SaveError("The selection ends in sources only: select the nodes they feed too.")
    boundary = {
        (n, str(data.get("dest_port", "in")))
        for n in chosen
        for s, _, data in graph.in_edges(n, data=True)
        if s not in chosen
    }
    ends = set(tails) - sources
    stretch = _latest(taps, chosen, boundary, sources, sorted(chosen))
    inputs, outputs = _paired(
        [t for t in stretch if _is_input(t, boundary, sources)],
        [t for t in stretch if _is_output(t, ends, sinks)],
    )
    expects = _merge(outputs)
    for tail in tails:
        if tail not in sources and not any(p.node == tail for p in expects):
            expects.append(Part(tail, "in" if tail in sinks else "out", pd.DataFrame(), 0))
    target, mocks = _target(graph, chosen)
    start = pd.Timestamp(inputs[0].at, unit="s", tz="UTC").floor("ms")
    return Capture(sorted(chosen), target, _merge(inputs), expects, start, mocks)


def _latest(
    taps: Taps,
    chosen: set[str],
    boundary: set[tuple[str, str]],
    sources: set[str],
    names: list[str],
) -> list[Tap]:
    """The latest stretch of the taps without a gap that has an input of the selection."""
    for stretch in reversed(taps.stretches(chosen)):
        if any(_is_input(t, boundary, sources) for t in stretch):
            return stretch
    why = "let data flow through it (the flow must be running), then save again"
    if taps.skipped:
        why += (
            f"; {taps.skipped} batch(es) were not kept (the editor samples at most "
            f"{taps.rate:g} batches/s and {taps.max_rows} rows per batch)"
        )
    raise SaveError(f"Nothing captured entering {', '.join(names)} yet: {why}.")
